// BGPConfiguration and BGPPeer (Calico v3 bgpconfig.go, bgppeer.go).
// Gingham extensions (not in Calico, marked below) exist only where tests and fast failover need them.
import { z } from 'zod';
import { asNumber, cidr, duration, ipAddress, secretKeyRef, selector } from './common.js';

const logSeverity = z.enum(['Trace', 'Debug', 'Info', 'Warning', 'Error', 'Fatal']);
const cidrEntry = z.strictObject({ cidr: cidr });
const community = z.string().regex(/^\d+:\d+(:\d+)?$/, 'a community "aa:nn" or large community "aa:nn:mm"');

/**
 * The `default` BGPConfiguration carries the cluster-wide values; `node.<name>` ones override per node.
 * Defaults (asNumber 64512, mesh on, port 179, Info) are therefore applied to `default` only
 * (see kinds.ts) so that a per-node object does not shadow the global one with default values.
 */
export const bgpConfigurationSpec = z.strictObject({
  logSeverityScreen: logSeverity.optional(),
  nodeToNodeMeshEnabled: z.boolean().optional(),
  asNumber: asNumber.optional(),
  listenPort: z.number().int().min(1).max(65535).optional(),
  bindMode: z.enum(['None', 'NodeIP']).optional(),
  serviceClusterIPs: z.array(cidrEntry).optional(),
  serviceExternalIPs: z.array(cidrEntry).optional(),
  serviceLoadBalancerIPs: z.array(cidrEntry).optional(),
  communities: z.array(z.strictObject({ name: z.string().min(1), value: community })).optional(),
  prefixAdvertisements: z.array(z.strictObject({ cidr: cidr, communities: z.array(z.string()) })).optional(),
  nodeMeshPassword: secretKeyRef.optional(),
  nodeMeshMaxRestartTime: duration.optional(),
  ignoredInterfaces: z.array(z.string()).optional(),
  localWorkloadPeeringIPV4: ipAddress.optional(),
  localWorkloadPeeringIPV6: ipAddress.optional(),
  programClusterRoutes: z.enum(['Enabled', 'Disabled', 'EnabledNoEncapOnly', 'EnabledIPIPOnly']).optional(),
  /** Gingham extension: keepalive interval of node-to-node mesh sessions. */
  nodeMeshKeepaliveTime: duration.optional(),
  /** Gingham extension: hold time of node-to-node mesh sessions. */
  nodeMeshHoldTime: duration.optional(),
});

export const BGP_CONFIGURATION_DEFAULTS = {
  logSeverityScreen: 'Info',
  nodeToNodeMeshEnabled: true,
  asNumber: 64512,
  listenPort: 179,
} as const;

/** "10.0.0.1", "10.0.0.1:1790", "fd00::1", "[fd00::1]:1790". */
const peerIP = z.string().refine((s) => {
  if (ipAddress.safeParse(s).success) return true;
  const v6 = /^\[([^\]]+)\]:(\d{1,5})$/.exec(s);
  if (v6) return ipAddress.safeParse(v6[1]).success && Number(v6[2]) <= 65535;
  const v4 = /^([\d.]+):(\d{1,5})$/.exec(s);
  return !!v4 && ipAddress.safeParse(v4[1]).success && Number(v4[2]) <= 65535;
}, 'an IP address, optionally with a port ("10.0.0.1:1790", "[fd00::1]:1790")');

export const bgpPeerSpec = z
  .strictObject({
    /** Only this node peers (cluster-wide when neither node nor nodeSelector is set). */
    node: z.string().optional(),
    nodeSelector: selector.optional(),
    peerIP: peerIP.optional(),
    peerSelector: selector.optional(),
    asNumber: asNumber.optional(),
    localASNumber: asNumber.optional(),
    keepOriginalNextHop: z.boolean().optional(),
    nextHopMode: z.enum(['Auto', 'Self', 'Keep']).optional(),
    password: secretKeyRef.optional(),
    sourceAddress: z.enum(['UseNodeIP', 'None']).default('UseNodeIP'),
    failureDetectionMode: z.enum(['None', 'BFDIfDirectlyConnected']).optional(),
    restartMode: z.enum(['GracefulRestart', 'LongLivedGracefulRestart']).optional(),
    maxRestartTime: duration.optional(),
    birdGatewayMode: z.enum(['Recursive', 'DirectIfDirectlyConnected']).optional(),
    numAllowedLocalASNumbers: z.number().int().min(0).optional(),
    ttlSecurity: z.number().int().min(0).max(255).optional(),
    keepaliveTime: duration.optional(),
    /** Gingham extension: hold time offered in OPEN (Calico leaves it to BIRD's 240 s). */
    holdTime: duration.optional(),
    reachableBy: ipAddress.optional(),
    filters: z.array(z.string()).optional(),
    localWorkloadSelector: selector.optional(),
    reversePeering: z.enum(['Auto', 'Manual']).optional(),
  })
  .superRefine((s, ctx) => {
    if (s.node !== undefined && s.nodeSelector !== undefined) {
      ctx.addIssue({
        code: 'custom',
        path: ['nodeSelector'],
        message: 'at most one of node and nodeSelector',
      });
    }
    if (s.peerIP !== undefined && s.peerSelector !== undefined) {
      ctx.addIssue({
        code: 'custom',
        path: ['peerSelector'],
        message: 'at most one of peerIP and peerSelector',
      });
    }
    if (s.peerIP === undefined && s.peerSelector === undefined && s.localWorkloadSelector === undefined) {
      ctx.addIssue({
        code: 'custom',
        path: ['peerIP'],
        message: 'one of peerIP, peerSelector or localWorkloadSelector',
      });
    }
    if (s.peerIP !== undefined && s.asNumber === undefined) {
      ctx.addIssue({ code: 'custom', path: ['asNumber'], message: 'an AS number when peerIP is set' });
    }
  });

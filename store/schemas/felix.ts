// FelixConfiguration (Calico v3 felixconfig.go): the per-node agent's knobs. The subset Gingham's
// agent implements; anything else is rejected rather than silently ignored.
// `default` holds cluster-wide values, `node.<name>` overrides per node, so defaults are applied
// to `default` only (kinds.ts) and `mergeFelixConfiguration` resolves the effective values.
import { z } from 'zod';
import { cidr, duration, ipAddress } from './common.js';

const logSeverity = z.enum(['Trace', 'Debug', 'Info', 'Warning', 'Error', 'Fatal']);
const protoPort = z.strictObject({
  protocol: z.enum(['TCP', 'UDP', 'SCTP']),
  port: z.number().int().min(0).max(65535),
  net: z.string().optional(),
});
const enabled = z.enum(['Enabled', 'Disabled']);

export const felixConfigurationSpec = z.strictObject({
  logSeverityScreen: logSeverity.optional(),
  logSeverityFile: logSeverity.optional(),
  logFilePath: z.string().optional(),
  reportingInterval: duration.optional(),
  reportingTTL: duration.optional(),
  interfacePrefix: z
    .string()
    .regex(/^[a-z][a-z0-9]{0,3}$/, 'an interface prefix of 1-4 lower-case characters (ours: gh)')
    .optional(),
  interfaceExclude: z.string().optional(),
  routeRefreshInterval: duration.optional(),
  nftablesRefreshInterval: duration.optional(),
  nftablesMode: z.enum(['Enabled', 'Disabled', 'Auto']).optional(),
  chainInsertMode: z.enum(['Insert', 'Append']).optional(),
  defaultEndpointToHostAction: z.enum(['Drop', 'Accept', 'Return']).optional(),
  failsafeInboundHostPorts: z.array(protoPort).optional(),
  failsafeOutboundHostPorts: z.array(protoPort).optional(),
  ipipEnabled: z.boolean().optional(),
  ipipMTU: z.number().int().min(0).optional(),
  vxlanEnabled: z.boolean().optional(),
  vxlanMTU: z.number().int().min(0).optional(),
  vxlanMTUV6: z.number().int().min(0).optional(),
  vxlanPort: z.number().int().min(1).max(65535).optional(),
  vxlanVNI: z.number().int().min(1).max(16777215).optional(),
  mtuIfacePattern: z.string().optional(),
  ipv6Support: z.boolean().optional(),
  /** Route protocol number that marks our routes (Felix: 80). */
  deviceRouteProtocol: z.number().int().min(1).max(255).optional(),
  removeExternalRoutes: z.boolean().optional(),
  natOutgoingAddress: ipAddress.optional(),
  natOutgoingExclusions: z.enum(['IPPoolsOnly', 'IPPoolsAndHostIPs']).optional(),
  natPortRange: z
    .string()
    .regex(/^\d{1,5}(:\d{1,5})?$/, 'a port range "first:last"')
    .optional(),
  externalNodesCIDRList: z.array(cidr).optional(),
  allowVXLANPacketsFromWorkloads: z.boolean().optional(),
  allowIPIPPacketsFromWorkloads: z.boolean().optional(),
  serviceLoopPrevention: z.enum(['Drop', 'Reject', 'Disabled']).optional(),
  healthEnabled: z.boolean().optional(),
  healthHost: z.string().optional(),
  healthPort: z.number().int().min(1).max(65535).optional(),
  prometheusMetricsEnabled: z.boolean().optional(),
  prometheusMetricsHost: z.string().optional(),
  prometheusMetricsPort: z.number().int().min(1).max(65535).optional(),
  endpointStatusPathPrefix: z.string().optional(),
  routeSource: z.enum(['CalicoIPAM', 'WorkloadIPs']).optional(),
  programClusterRoutes: enabled.optional(),
  floatingIPs: enabled.optional(),
  wireguardEnabled: z.boolean().optional(),
  bpfEnabled: z.boolean().optional(),
});

export type FelixConfigurationSpec = z.infer<typeof felixConfigurationSpec>;

const FAILSAFE_IN = [
  { protocol: 'TCP', port: 22 },
  { protocol: 'UDP', port: 68 },
  { protocol: 'TCP', port: 179 },
  { protocol: 'TCP', port: 2379 },
  { protocol: 'TCP', port: 2380 },
  { protocol: 'TCP', port: 5473 },
  { protocol: 'TCP', port: 6443 },
  { protocol: 'TCP', port: 6666 },
  { protocol: 'TCP', port: 6667 },
] as const;
const FAILSAFE_OUT = [
  { protocol: 'UDP', port: 53 },
  { protocol: 'UDP', port: 67 },
  { protocol: 'TCP', port: 179 },
  { protocol: 'TCP', port: 2379 },
  { protocol: 'TCP', port: 2380 },
  { protocol: 'TCP', port: 5473 },
  { protocol: 'TCP', port: 6443 },
  { protocol: 'TCP', port: 6666 },
  { protocol: 'TCP', port: 6667 },
] as const;

/** Felix's documented defaults, with Gingham's own interface prefix. */
export const FELIX_CONFIGURATION_DEFAULTS = {
  logSeverityScreen: 'Info',
  reportingInterval: '30s',
  interfacePrefix: 'gh',
  routeRefreshInterval: '90s',
  nftablesRefreshInterval: '180s',
  nftablesMode: 'Enabled',
  chainInsertMode: 'Insert',
  defaultEndpointToHostAction: 'Drop',
  failsafeInboundHostPorts: FAILSAFE_IN.map((p) => ({ ...p })),
  failsafeOutboundHostPorts: FAILSAFE_OUT.map((p) => ({ ...p })),
  ipipEnabled: false,
  vxlanEnabled: false,
  vxlanPort: 4789,
  vxlanVNI: 4096,
  ipv6Support: true,
  deviceRouteProtocol: 80,
  removeExternalRoutes: true,
  natOutgoingExclusions: 'IPPoolsOnly',
  serviceLoopPrevention: 'Drop',
  healthEnabled: true,
  healthHost: 'localhost',
  healthPort: 9099,
  prometheusMetricsEnabled: false,
  prometheusMetricsHost: '',
  prometheusMetricsPort: 9091,
  routeSource: 'CalicoIPAM',
  programClusterRoutes: 'Enabled',
  floatingIPs: 'Disabled',
} satisfies FelixConfigurationSpec;

/** Effective configuration for a node: defaults < `default` object < `node.<name>` object. */
export function mergeFelixConfiguration(
  global: FelixConfigurationSpec | undefined,
  perNode: FelixConfigurationSpec | undefined,
): FelixConfigurationSpec & typeof FELIX_CONFIGURATION_DEFAULTS {
  const out: Record<string, unknown> = { ...FELIX_CONFIGURATION_DEFAULTS };
  for (const src of [global, perNode]) {
    if (!src) continue;
    for (const [k, v] of Object.entries(src)) if (v !== undefined) out[k] = v;
  }
  return out as FelixConfigurationSpec & typeof FELIX_CONFIGURATION_DEFAULTS;
}

// Node (Calico v3 node.go): the BGP identity and tunnel addresses of one host.
import { z } from 'zod';
import {
  asNumber,
  ipAddress,
  ipv4Address,
  ipv4AddressWithPrefix,
  ipv6Address,
  ipv6AddressWithPrefix,
} from './common.js';

const mac = z.string().regex(/^([0-9a-fA-F]{2}:){5}[0-9a-fA-F]{2}$/, 'a MAC address aa:bb:cc:dd:ee:ff');

export const nodeSpec = z.strictObject({
  bgp: z
    .strictObject({
      asNumber: asNumber.optional(),
      ipv4Address: ipv4AddressWithPrefix.optional(),
      ipv6Address: ipv6AddressWithPrefix.optional(),
      ipv4IPIPTunnelAddr: ipv4Address.optional(),
      /** Set on route reflectors; IPv4 dotted form. */
      routeReflectorClusterID: ipv4Address.optional(),
    })
    .optional(),
  ipv4VXLANTunnelAddr: ipv4Address.optional(),
  vxlanTunnelMACAddr: mac.optional(),
  ipv6VXLANTunnelAddr: ipv6Address.optional(),
  vxlanTunnelMACAddrV6: mac.optional(),
  orchRefs: z.array(z.strictObject({ nodeName: z.string().optional(), orchestrator: z.string() })).optional(),
  addresses: z
    .array(
      z.strictObject({
        address: z
          .string()
          .refine((s) => ipAddress.safeParse(s.split('/')[0]).success, 'an IP address (optionally /len)'),
        type: z.enum(['CalicoNodeIP', 'InternalIP', 'ExternalIP']).optional(),
      }),
    )
    .optional(),
  wireguard: z
    .strictObject({
      interfaceIPv4Address: ipv4Address.optional(),
      interfaceIPv6Address: ipv6Address.optional(),
    })
    .optional(),
});

export const nodeStatus = z.strictObject({
  wireguardPublicKey: z.string().optional(),
  wireguardPublicKeyV6: z.string().optional(),
  podCIDRs: z.array(z.string()).optional(),
});

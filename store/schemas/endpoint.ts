// WorkloadEndpoint and HostEndpoint (Calico v3 workloadendpoint.go, hostendpoint.go).
import { z } from 'zod';
import { cidr, endpointPort, ipAddress, ipv4Address, ipv6Address } from './common.js';

export const workloadEndpointSpec = z.strictObject({
  orchestrator: z.string().optional(),
  workload: z.string().optional(),
  node: z.string().min(1),
  containerID: z.string().optional(),
  pod: z.string().optional(),
  endpoint: z.string().optional(),
  serviceAccountName: z.string().optional(),
  /** The workload's addresses, as /32 and /128 networks. */
  ipNetworks: z.array(cidr).default(() => []),
  ipNATs: z.array(z.strictObject({ internalIP: ipAddress, externalIP: ipAddress })).optional(),
  ipv4Gateway: ipv4Address.optional(),
  ipv6Gateway: ipv6Address.optional(),
  profiles: z.array(z.string()).optional(),
  /** Host-side veth name (our prefix: gh). */
  interfaceName: z.string().max(15).optional(),
  mac: z
    .string()
    .regex(/^([0-9a-fA-F]{2}:){5}[0-9a-fA-F]{2}$/, 'a MAC address')
    .optional(),
  ports: z.array(endpointPort).optional(),
  allowSpoofedSourcePrefixes: z.array(cidr).optional(),
});

export const hostEndpointSpec = z
  .strictObject({
    node: z.string().min(1),
    interfaceName: z.string().optional(),
    expectedIPs: z.array(ipAddress).optional(),
    profiles: z.array(z.string()).optional(),
    ports: z.array(endpointPort.omit({ hostPort: true, hostIP: true })).optional(),
  })
  .refine((s) => s.interfaceName !== undefined || (s.expectedIPs?.length ?? 0) > 0, {
    message: 'interfaceName or at least one of expectedIPs',
    path: ['interfaceName'],
  });

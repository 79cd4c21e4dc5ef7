// Names and numbers the CNI plugin and the agent must agree on (design principle 3:
// own only what you create — one route protocol, one interface prefix).
import { createHash } from 'node:crypto';

/** Route protocol number stamped on every route Gingham programs (`ip route ... proto 80`). */
export const GINGHAM_ROUTE_PROTOCOL = 80;

/** Prefix of every host-side workload veth. */
export const INTERFACE_PREFIX = 'gh';

/** MAC of every host-side workload veth: the pod's next hop 169.254.1.1 resolves to it by proxy ARP. */
export const HOST_SIDE_MAC = 'ee:ee:ee:ee:ee:ee';

/** The fictitious gateway every workload routes through. */
export const WORKLOAD_GATEWAY_V4 = '169.254.1.1';

/**
 * Host-side veth name for a workload: `gh` + the first 11 hex chars of sha1(workloadId), 13 chars
 * (kernel limit 15). Calico uses sha1("<namespace>.<pod>") with prefix `cali`; the CNI plugin passes
 * that same string for Kubernetes pods and "cni.<containerID>.<ifname>" otherwise.
 */
export function hostVethName(workloadId: string): string {
  return INTERFACE_PREFIX + createHash('sha1').update(workloadId).digest('hex').slice(0, 11);
}

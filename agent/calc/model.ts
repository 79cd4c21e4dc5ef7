// The agent's view of the world (inputs) and of the kernel it wants (desired state).
// Pure data: no I/O. The calculation in desired.ts turns one into the other.
import type { Family } from '../../lib/ip.js';

export type EncapMode = 'Never' | 'Always' | 'CrossSubnet';

/** How remote blocks reach the kernel when a pool is not encapsulated. */
export type RemoteRouteSource =
  /** Routes come from BGP (learned routes input); none are derived from IPAM. The default. */
  | 'bgp'
  /** Remote blocks are routed from the IPAM data directly: `via <node ip> onlink dev <uplink>`. */
  | 'static';

export interface PoolInput {
  name: string;
  cidr: string;
  vxlanMode: EncapMode;
  ipipMode: EncapMode;
  natOutgoing: boolean;
  disabled: boolean;
}

export interface NodeInput {
  name: string;
  /** `spec.bgp.ipv4Address`, with its prefix length (`192.168.1.10/24`). */
  ipv4Address?: string;
  ipv6Address?: string;
  ipv4VXLANTunnelAddr?: string;
  vxlanTunnelMACAddr?: string;
  ipv6VXLANTunnelAddr?: string;
  vxlanTunnelMACAddrV6?: string;
  ipv4IPIPTunnelAddr?: string;
  /** Other addresses of the node (`spec.addresses`), with or without prefix. */
  addresses?: string[];
}

export interface EndpointInput {
  /** Store key of the WorkloadEndpoint: `<namespace>/<name>`. */
  key: string;
  name: string;
  namespace: string;
  interfaceName: string;
  /** The workload's MAC (container side), if known. */
  mac?: string;
  /** `/32` and `/128` networks of the workload. */
  ipNetworks: string[];
  /** etcd mod revision of the endpoint as last seen. */
  revision: bigint;
}

/** One IPAM block as the agent needs it (parsed from the IPAM engineer's JSON). */
export interface BlockInput {
  cidr: string;
  /** Node name the block is affine to, or null. */
  affinity: string | null;
  /** Addresses in this block allocated to workloads of a node other than the affine one. */
  borrowed: Array<{ ip: string; node: string }>;
}

/** A route learned from BGP (the BGP engineer's seam): prefix → next hops. */
export interface LearnedRoute {
  prefix: string;
  nextHops: Array<{ via: string; dev?: string; onlink?: boolean }>;
}

export interface AgentSettings {
  vxlanVNI: number;
  vxlanPort: number;
  /** MTU of the VXLAN device; 0 = let the kernel derive it from the parent. */
  vxlanMTU: number;
  /** The same for the IPv6 device (its encapsulation is 20 bytes larger). */
  vxlanMTUV6: number;
  remoteRouteSource: RemoteRouteSource;
  /** When false the agent programs rp_filter=1 (strict) on workload interfaces. */
  allowSpoofing: boolean;
}

export const DEFAULT_SETTINGS: AgentSettings = {
  vxlanVNI: 4096,
  vxlanPort: 4789,
  vxlanMTU: 0,
  vxlanMTUV6: 0,
  remoteRouteSource: 'bgp',
  allowSpoofing: false,
};

/** What the host itself looks like (measured by the shell, passed in). */
export interface HostFacts {
  /** The interface holding the node's IPv4 address (VXLAN parent, static next-hop device). */
  uplinkV4?: string;
  uplinkV6?: string;
  /** The kernel can create `ipip` tunnels (module present). */
  ipipSupported: boolean;
}

export interface CalcInput {
  nodeName: string;
  self: NodeInput;
  nodes: ReadonlyMap<string, NodeInput>;
  pools: readonly PoolInput[];
  blocks: readonly BlockInput[];
  endpoints: readonly EndpointInput[];
  learned: readonly LearnedRoute[];
  settings: AgentSettings;
  host: HostFacts;
  /**
   * Bumped by the caller whenever nodes, pools, settings or host facts change; lets a CalcCache
   * reuse per-block results between calls (see desired.ts). Optional.
   */
  remoteVersion?: number;
  /** Bumped by the caller on every IPAM block change (with remoteVersion, enables the base cache). */
  blocksVersion?: number;
}

// ---- desired state ----

export type RouteKind = 'workload' | 'blackhole' | 'vxlan' | 'ipip' | 'static' | 'crosssubnet' | 'learned';

export interface RouteSpec {
  family: Family;
  /** Canonical prefix text, `10.65.0.5/32`. */
  dst: string;
  kind: RouteKind;
  type: 'unicast' | 'blackhole';
  /** Output device name (absent for blackholes). */
  dev?: string;
  via?: string;
  onlink: boolean;
  scope: 'link' | 'universe';
  /**
   * Two or more next hops (ECMP): one multipath kernel route (RTA_MULTIPATH), each hop weight 1.
   * Sorted by via then dev, without duplicates; `dev` and `via` above are then absent.
   */
  multipath?: NextHopSpec[];
}

/** One next hop of a multipath route. */
export interface NextHopSpec {
  via: string;
  dev: string;
  onlink: boolean;
}

export interface NeighSpec {
  family: Family;
  dev: string;
  ip: string;
  mac: string;
}

/** A VXLAN forwarding entry: remote VTEP MAC reached at a node's underlay address. */
export interface FdbSpec {
  dev: string;
  mac: string;
  dst: string;
}

export interface VxlanLinkSpec {
  kind: 'vxlan';
  name: string;
  family: Family;
  vni: number;
  port: number;
  /** Underlay source address and parent device. */
  local: string;
  parent?: string;
  mac: string;
  mtu: number;
  /** The tunnel address assigned to the device (`/32` or `/128`). */
  address: string;
}

export interface IpipLinkSpec {
  kind: 'ipip';
  name: 'tunl0';
  address: string;
}

export type TunnelSpec = VxlanLinkSpec | IpipLinkSpec;

export interface SysctlSpec {
  /** Path under /proc/sys, with dots or slashes: `net/ipv4/conf/gh1234/proxy_arp`. */
  path: string;
  value: string;
}

/** A condition the agent cannot satisfy; reported (log, metric, readiness) not thrown. */
export interface Problem {
  code:
    | 'ipip-unsupported'
    | 'no-gateway-route'
    | 'no-uplink'
    | 'no-tunnel-address'
    | 'remote-vtep-incomplete'
    | 'route-conflict';
  subject: string;
  message: string;
}

export interface DesiredState {
  routes: Map<string, RouteSpec>;
  neighs: Map<string, NeighSpec>;
  fdb: Map<string, FdbSpec>;
  tunnels: Map<string, TunnelSpec>;
  /**
   * Tunnel devices in use whose spec is momentarily incomplete (e.g. our tunnel address is being
   * reallocated): left as they are rather than deleted (fail static).
   */
  retainTunnels: Set<string>;
  /** Workload interfaces that must be up (and get per-interface sysctls). */
  workloadIfaces: Set<string>;
  sysctls: Map<string, SysctlSpec>;
  problems: Problem[];
  /** Pools that cannot be served (e.g. IPIP without kernel support): not ready for them. */
  unreadyPools: Set<string>;
}

export function routeKey(r: Pick<RouteSpec, 'family' | 'dst'>): string {
  return `${r.family}|${r.dst}`;
}
export function neighKey(n: Pick<NeighSpec, 'dev' | 'ip'>): string {
  return `${n.dev}|${n.ip}`;
}
export function fdbKey(f: Pick<FdbSpec, 'dev' | 'mac'>): string {
  return `${f.dev}|${f.mac.toLowerCase()}`;
}

/** The canonical order of next hops: by address, then device. */
export function compareNextHops(a: NextHopSpec, b: NextHopSpec): number {
  if (a.via !== b.via) return a.via < b.via ? -1 : 1;
  return a.dev < b.dev ? -1 : a.dev > b.dev ? 1 : 0;
}

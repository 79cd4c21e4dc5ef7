// From store resources to what this node's BGP speaker should be doing — pure, no I/O.
// Mirrors Calico's confd peer computation (calico.md §4, bgp_processor.go): node-to-node mesh,
// global / node-scoped / nodeSelector BGPPeers, peerSelector peers, route reflectors, and the
// export filter Calico's BIRD config applies (pools, disabled pools, communities).
import type { PeerConfig, Policy, PolicyStatement, SpeakerConfig } from '../../bgp/index.js';
import { formatPrefix, ipFamily, parseIp, parsePrefix, prefixContains } from '../../lib/ip.js';
import { evaluate, parseSelector } from '../../policy/selector.js';
import { durationMs } from '../../store/schemas/common.js';

// ---- inputs (already narrowed from resources by the runner) -------------------------------------

export interface BgpNode {
  name: string;
  labels: Record<string, string>;
  /** Without prefix length. */
  ipv4?: string;
  ipv6?: string;
  asNumber?: number;
  routeReflectorClusterID?: string;
}

export interface BgpConfigSpec {
  nodeToNodeMeshEnabled?: boolean;
  asNumber?: number;
  listenPort?: number;
  communities?: Array<{ name: string; value: string }>;
  prefixAdvertisements?: Array<{ cidr: string; communities: string[] }>;
  serviceClusterIPs?: Array<{ cidr: string }>;
  serviceExternalIPs?: Array<{ cidr: string }>;
  serviceLoadBalancerIPs?: Array<{ cidr: string }>;
  nodeMeshMaxRestartTime?: string;
  nodeMeshKeepaliveTime?: string;
  nodeMeshHoldTime?: string;
}

export interface BgpPeerSpec {
  node?: string;
  nodeSelector?: string;
  peerIP?: string;
  peerSelector?: string;
  asNumber?: number;
  keepOriginalNextHop?: boolean;
  nextHopMode?: 'Auto' | 'Self' | 'Keep';
  sourceAddress?: 'UseNodeIP' | 'None';
  maxRestartTime?: string;
  keepaliveTime?: string;
  holdTime?: string;
  reversePeering?: 'Auto' | 'Manual';
}

export interface BgpPool {
  cidr: string;
  disabled: boolean;
  disableBGPExport: boolean;
}

export interface BgpInputs {
  nodeName: string;
  nodes: ReadonlyMap<string, BgpNode>;
  /** BGPConfiguration objects by name: `default` and `node.<name>`. */
  configs: ReadonlyMap<string, BgpConfigSpec>;
  peers: ReadonlyMap<string, BgpPeerSpec>;
  pools: readonly BgpPool[];
}

// ---- outputs ---------------------------------------------------------------------------------

export type PeerType = 'node-to-node mesh' | 'global' | 'node specific' | 'route reflector client';

export interface DesiredSpeaker {
  /** Settings that need a new Speaker when they change. */
  speaker: Pick<SpeakerConfig, 'routerId' | 'asn' | 'clusterId'> & { listenPort: number };
  peers: PeerConfig[];
  /** Why some configured peering was skipped (shown in logs). */
  problems: string[];
}

export class BgpConfigError extends Error {
  constructor(
    readonly node: string,
    readonly reason: string,
  ) {
    super(`BGP config for node ${node}: ${reason}`);
    this.name = 'BgpConfigError';
  }
}

export const DEFAULT_ASN = 64512;
export const DEFAULT_PORT = 179;
/** BIRD's default in Calico's template (graceful restart time). */
export const DEFAULT_RESTART_SEC = 120;

const sec = (d: string | undefined): number | undefined =>
  d === undefined ? undefined : Math.round(durationMs(d) / 1000);

function ipLess(a: string, b: string): boolean {
  return parseIp(a).addr < parseIp(b).addr;
}

/** "10.0.0.1", "10.0.0.1:1790", "fd00::1", "[fd00::1]:1790" → address and port. */
export function splitPeerIP(s: string): { address: string; port?: number } {
  const v6 = /^\[([^\]]+)\]:(\d+)$/.exec(s);
  if (v6) return { address: v6[1]!, port: Number(v6[2]) };
  const v4 = /^([\d.]+):(\d+)$/.exec(s);
  if (v4) return { address: v4[1]!, port: Number(v4[2]) };
  return { address: s };
}

/**
 * Calico's export filter (bird_ipam.cfg's calico_export_to_bgp_peers + apply_communities +
 * calico_aggr, in the parts that apply here): reject prefixes of disabled / non-exported pools,
 * tag prefixes with the configured communities, accept prefixes inside enabled pools and service
 * ranges, reject everything else.
 */
export function calicoExportPolicy(pools: readonly BgpPool[], cfg: BgpConfigSpec): Policy {
  const statements: PolicyStatement[] = [];
  const within = (cidr: string) => {
    const p = parsePrefix(cidr, { loose: true }); // Calico tolerates host bits in pool CIDRs
    return { prefix: formatPrefix(p), minLen: p.len, maxLen: p.family === 4 ? 32 : 128 };
  };
  for (const pool of pools) {
    if (pool.disabled || pool.disableBGPExport) {
      statements.push({
        name: `pool ${pool.cidr} not exported`,
        match: { prefixes: [within(pool.cidr)] },
        action: 'reject',
      });
    }
  }
  const named = new Map((cfg.communities ?? []).map((c) => [c.name, c.value]));
  for (const adv of cfg.prefixAdvertisements ?? []) {
    const values = adv.communities.map((c) => named.get(c) ?? c);
    statements.push({
      name: `communities for ${adv.cidr}`,
      match: { prefixes: [within(adv.cidr)] },
      set: { addCommunities: values },
      action: 'continue',
    });
  }
  const accepted = [
    ...pools.filter((p) => !p.disabled && !p.disableBGPExport).map((p) => p.cidr),
    ...(cfg.serviceClusterIPs ?? []).map((c) => c.cidr),
    ...(cfg.serviceExternalIPs ?? []).map((c) => c.cidr),
    ...(cfg.serviceLoadBalancerIPs ?? []).map((c) => c.cidr),
  ];
  if (accepted.length > 0) {
    statements.push({
      name: 'enabled pools and service ranges',
      match: { prefixes: accepted.map(within) },
      action: 'accept',
    });
  }
  return { statements, defaultAction: 'reject' };
}

/** This node's desired speaker and peers. Throws BgpConfigError when the node cannot run BGP. */
export function computeBgpConfig(inp: BgpInputs): DesiredSpeaker {
  const me = inp.nodes.get(inp.nodeName);
  if (!me) throw new BgpConfigError(inp.nodeName, 'no Node resource');
  if (!me.ipv4 && !me.ipv6)
    throw new BgpConfigError(inp.nodeName, 'Node has neither spec.bgp.ipv4Address nor ipv6Address');
  const global = inp.configs.get('default') ?? {};
  const perNode = inp.configs.get(`node.${inp.nodeName}`) ?? {};
  const cfg: BgpConfigSpec = { ...global, ...perNode };
  const globalAsn = global.asNumber ?? DEFAULT_ASN;
  const asnOf = (n: BgpNode) => n.asNumber ?? globalAsn;
  const myAsn = asnOf(me);
  const clusterId = me.routeReflectorClusterID;
  const problems: string[] = [];
  const exportPolicy = calicoExportPolicy(inp.pools, cfg);
  const families = (addr: string): PeerConfig['families'] =>
    ipFamily(addr) === 6 ? ['ipv6-unicast'] : me.ipv6 ? ['ipv4-unicast', 'ipv6-unicast'] : ['ipv4-unicast'];
  const source = (addr: string) => (ipFamily(addr) === 6 ? me.ipv6 : me.ipv4);

  const byAddress = new Map<string, PeerConfig>();
  const add = (p: PeerConfig, override: boolean) => {
    if (!override && byAddress.has(p.address)) return;
    byAddress.set(p.address, p);
  };

  /** A peering with another node of the cluster: the higher address waits (passive). */
  const nodePeers = (
    other: BgpNode,
    base: Omit<PeerConfig, 'address' | 'asn'> & { asn?: number },
    useNodeIp: boolean,
  ): PeerConfig[] => {
    const out: PeerConfig[] = [];
    // IPv4 session carries both families (MP-BGP) when both nodes are dual-stack, as BIRD's
    // Calico config has separate v4 / v6 sessions we keep one per family for clarity.
    for (const [mine, theirs] of [
      [me.ipv4, other.ipv4],
      [me.ipv6, other.ipv6],
    ] as const) {
      if (!mine || !theirs) continue;
      const rrClient =
        clusterId !== undefined && asnOf(other) === myAsn && other.routeReflectorClusterID !== clusterId;
      const port = inp.configs.get(`node.${other.name}`)?.listenPort ?? global.listenPort;
      out.push({
        ...base,
        address: theirs,
        port: port === undefined || port === DEFAULT_PORT ? undefined : port,
        asn: base.asn ?? asnOf(other),
        localAddress: useNodeIp ? mine : undefined,
        passive: ipLess(theirs, mine),
        families: ipFamily(theirs) === 6 ? ['ipv6-unicast'] : ['ipv4-unicast'],
        rrClient,
        type: rrClient ? 'route reflector client' : base.type,
      });
    }
    return out;
  };

  // Node-to-node mesh among non-reflector nodes (reflectors peer through BGPPeers only).
  if ((global.nodeToNodeMeshEnabled ?? true) && clusterId === undefined) {
    const hold = sec(global.nodeMeshHoldTime);
    const ka = sec(global.nodeMeshKeepaliveTime);
    const restart = sec(global.nodeMeshMaxRestartTime);
    for (const other of [...inp.nodes.values()].sort((a, b) => a.name.localeCompare(b.name))) {
      if (other.name === me.name || other.routeReflectorClusterID !== undefined) continue;
      const mesh = {
        type: 'node-to-node mesh',
        holdTimeSec: hold,
        keepaliveSec: ka,
        restartTimeSec: restart,
        exportPolicy,
      };
      for (const p of nodePeers(other, mesh, true)) {
        add(p, false);
      }
    }
  }

  for (const [name, spec] of [...inp.peers].sort(([a], [b]) => a.localeCompare(b))) {
    // Which nodes this BGPPeer applies to.
    let applies: boolean;
    let scoped = false;
    if (spec.node !== undefined) {
      applies = spec.node === me.name;
      scoped = true;
    } else if (spec.nodeSelector !== undefined) {
      scoped = true;
      try {
        applies = evaluate(parseSelector(spec.nodeSelector), { labels: me.labels });
      } catch (e) {
        problems.push(`BGPPeer ${name}: nodeSelector: ${(e as Error).message}`);
        continue;
      }
    } else applies = true;
    const type: PeerType = scoped ? 'node specific' : 'global';
    // Reverse peering (Calico's reversePeering: Auto): a node selected by peerSelector peers
    // back with every node the BGPPeer applies to — how reflectors learn their clients.
    if (spec.peerSelector !== undefined && spec.reversePeering !== 'Manual') {
      let sel: ReturnType<typeof parseSelector> | null = null;
      let scope: ReturnType<typeof parseSelector> | null = null;
      try {
        sel = parseSelector(spec.peerSelector);
        scope = spec.nodeSelector !== undefined ? parseSelector(spec.nodeSelector) : null;
      } catch {
        sel = null; // reported below
      }
      if (sel && evaluate(sel, { labels: me.labels })) {
        for (const other of [...inp.nodes.values()].sort((a, b) => a.name.localeCompare(b.name))) {
          if (other.name === me.name) continue;
          const inScope =
            spec.node !== undefined
              ? spec.node === other.name
              : scope
                ? evaluate(scope, { labels: other.labels })
                : true;
          if (!inScope) continue;
          const useNodeIp = (spec.sourceAddress ?? 'UseNodeIP') === 'UseNodeIP';
          const rev = {
            type,
            holdTimeSec: sec(spec.holdTime),
            keepaliveSec: sec(spec.keepaliveTime),
            restartTimeSec: sec(spec.maxRestartTime),
            exportPolicy,
          };
          for (const p of nodePeers(other, { ...rev, asn: spec.asNumber }, useNodeIp)) add(p, true);
        }
      }
    }
    if (!applies) continue;
    const base = {
      type,
      holdTimeSec: sec(spec.holdTime),
      keepaliveSec: sec(spec.keepaliveTime),
      restartTimeSec: sec(spec.maxRestartTime),
      nextHopSelf: spec.nextHopMode === 'Self',
      exportPolicy:
        spec.nextHopMode === 'Keep' || spec.keepOriginalNextHop
          ? {
              ...exportPolicy,
              statements: [
                { set: { nextHop: 'keep' }, action: 'continue' as const },
                ...exportPolicy.statements,
              ],
            }
          : exportPolicy,
    };
    const useNodeIp = (spec.sourceAddress ?? 'UseNodeIP') === 'UseNodeIP';
    if (spec.peerIP !== undefined) {
      const { address, port } = splitPeerIP(spec.peerIP);
      if (address === me.ipv4 || address === me.ipv6) continue; // never peer with ourselves
      const peerNode = [...inp.nodes.values()].find((n) => n.ipv4 === address || n.ipv6 === address);
      const asn = spec.asNumber ?? (peerNode ? asnOf(peerNode) : myAsn);
      const rrClient =
        clusterId !== undefined && asn === myAsn && peerNode?.routeReflectorClusterID !== clusterId;
      const local = useNodeIp ? source(address) : undefined;
      if (!local && useNodeIp) {
        problems.push(`BGPPeer ${name}: no local address of ${address}'s family`);
        continue;
      }
      add(
        {
          ...base,
          address,
          port,
          asn,
          localAddress: local,
          families: families(address),
          rrClient,
          type: rrClient ? 'route reflector client' : type,
        },
        true,
      );
      continue;
    }
    if (spec.peerSelector !== undefined) {
      let sel: ReturnType<typeof parseSelector>;
      try {
        sel = parseSelector(spec.peerSelector);
      } catch (e) {
        problems.push(`BGPPeer ${name}: peerSelector: ${(e as Error).message}`);
        continue;
      }
      for (const other of [...inp.nodes.values()].sort((a, b) => a.name.localeCompare(b.name))) {
        if (other.name === me.name || !evaluate(sel, { labels: other.labels })) continue;
        for (const p of nodePeers(other, { ...base, asn: spec.asNumber }, useNodeIp)) {
          add(p, true);
        }
      }
    }
  }

  const routerId = me.ipv4 ?? routerIdFromName(me.name);
  return {
    speaker: { routerId, asn: myAsn, clusterId, listenPort: cfg.listenPort ?? DEFAULT_PORT },
    peers: [...byAddress.values()].sort((a, b) => a.address.localeCompare(b.address)),
    problems,
  };
}

/** IPv6-only nodes: a stable 32-bit router id from the node name (Calico hashes the name too). */
export function routerIdFromName(name: string): string {
  let h = 2166136261;
  for (const ch of Buffer.from(name)) h = Math.imul(h ^ ch, 16777619) >>> 0;
  h = (h | 0x01000000) >>> 0; // never 0.x.x.x
  return `${h >>> 24}.${(h >>> 16) & 255}.${(h >>> 8) & 255}.${h & 255}`;
}

// ---- announcements ---------------------------------------------------------------------------

export interface BlockInfo {
  cidr: string;
  /** The node the block is affine to (null: none). */
  affinity: string | null;
  /** Addresses of this block assigned to workloads on other nodes. */
  borrowed: Array<{ ip: string; node: string }>;
}

/**
 * What this node announces: its affine blocks, and /32 (/128) routes for addresses it borrowed
 * from other nodes' blocks — only inside enabled pools not marked disableBGPExport.
 */
export function computeAnnouncements(
  nodeName: string,
  blocks: Iterable<BlockInfo>,
  pools: readonly BgpPool[],
): string[] {
  const exported = pools
    .filter((p) => !p.disabled && !p.disableBGPExport)
    .map((p) => parsePrefix(p.cidr, { loose: true }));
  const inPool = (cidr: string) => {
    const p = parsePrefix(cidr, { loose: true });
    return exported.some((x) => prefixContains(x, p));
  };
  const out = new Set<string>();
  for (const b of blocks) {
    if (b.affinity === nodeName && inPool(b.cidr)) out.add(b.cidr);
    for (const x of b.borrowed) {
      if (x.node !== nodeName) continue;
      const host = `${x.ip}/${ipFamily(x.ip) === 6 ? 128 : 32}`;
      if (inPool(host)) out.add(host);
    }
  }
  return [...out].sort();
}

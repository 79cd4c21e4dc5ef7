// Read-only IPAM reports for `gingham ipam show` and `gingham ipam check`: pure functions over a
// snapshot (blocks, affinities, handles, pools, endpoints, nodes) plus the loader of that snapshot.
import { formatIp, parseIp, parsePrefix, prefixContains, prefixContainsIp, prefixSize } from '../lib/ip.js';
import { kindPrefix } from '../store/kinds.js';
import type { KvClient } from './etcd-lite.js';
import {
  affinityIsActive,
  affinityNode,
  type Block,
  blockAllocations,
  blockInUse,
  blockPrefix,
  HANDLE_PREFIX,
  type Handle,
  hostPrefix,
  parseAffinity,
  parseAffinityKey,
  parseBlock,
  parseHandle,
} from './model.js';
import { listNodeNames, type PoolInfo, readPools } from './resources.js';

export interface EndpointAddresses {
  name: string;
  namespace: string;
  node: string;
  ips: string[];
}

export interface IpamSnapshot {
  pools: PoolInfo[];
  blocks: Block[];
  affinities: { node: string; cidr: string; active: boolean }[];
  handles: Handle[];
  endpoints: EndpointAddresses[];
  nodes: Set<string>;
}

export async function loadSnapshot(kv: KvClient): Promise<IpamSnapshot> {
  const [pools, b4, b6, aff, handles, weps, nodes] = await Promise.all([
    readPools(kv),
    kv.range(blockPrefix(4)),
    kv.range(blockPrefix(6)),
    kv.range(hostPrefix()),
    kv.range(HANDLE_PREFIX),
    kv.range(kindPrefix('WorkloadEndpoint')),
    listNodeNames(kv),
  ]);
  const affinities: IpamSnapshot['affinities'] = [];
  for (const k of aff.kvs) {
    const p = parseAffinityKey(k.key);
    if (p) affinities.push({ ...p, active: affinityIsActive(parseAffinity(k.value, k.key)) });
  }
  const endpoints: EndpointAddresses[] = [];
  for (const k of weps.kvs) {
    try {
      const w = JSON.parse(k.value.toString()) as {
        metadata?: { name?: string; namespace?: string };
        spec?: { node?: string; ipNetworks?: string[] };
      };
      endpoints.push({
        name: w.metadata?.name ?? k.key,
        namespace: w.metadata?.namespace ?? '',
        node: w.spec?.node ?? '',
        ips: (w.spec?.ipNetworks ?? []).map((n) => n.split('/')[0]!),
      });
    } catch {
      // unreadable endpoints are reported by the store's own tools
    }
  }
  return {
    pools,
    blocks: [...b4.kvs, ...b6.kvs].map((k) => parseBlock(k.value, k.key)),
    affinities,
    handles: handles.kvs.map((k) => parseHandle(k.value, k.key)),
    endpoints,
    nodes,
  };
}

export interface ShowReport {
  pools: { name: string; cidr: string; size: number; inUse: number; free: number }[];
  blocks: { cidr: string; pool: string | null; node: string | null; inUse: number; free: number }[];
}

function poolOf(pools: PoolInfo[], cidr: string): PoolInfo | undefined {
  const p = parsePrefix(cidr);
  return pools.find((x) => prefixContains(x.prefix, p));
}

export function showReport(s: IpamSnapshot): ShowReport {
  const blocks = s.blocks
    .map((b) => {
      const inUse = blockInUse(b);
      return {
        cidr: b.cidr,
        pool: poolOf(s.pools, b.cidr)?.name ?? null,
        node: affinityNode(b.affinity),
        inUse,
        free: b.allocations.length - inUse,
      };
    })
    .sort((a, b) => compareCidr(a.cidr, b.cidr));
  const pools = s.pools.map((p) => {
    const inUse = blocks.filter((b) => b.pool === p.name).reduce((n, b) => n + b.inUse, 0);
    const size = Number(prefixSize(p.prefix));
    return { name: p.name, cidr: p.cidr, size, inUse, free: size - inUse };
  });
  return { pools, blocks };
}

function compareCidr(a: string, b: string): number {
  const pa = parsePrefix(a);
  const pb = parsePrefix(b);
  if (pa.family !== pb.family) return pa.family - pb.family;
  return pa.addr < pb.addr ? -1 : pa.addr > pb.addr ? 1 : 0;
}

export interface CheckReport {
  /** Allocated addresses no workload endpoint uses. */
  leaked: { ip: string; block: string; handleId: string | null; node: string | null }[];
  /** Endpoint addresses no block has allocated. */
  unallocatedEndpointAddresses: { endpoint: string; namespace: string; ip: string }[];
  /** Affinities (and affine blocks) of nodes that do not exist. */
  orphanAffinities: { node: string; cidr: string }[];
  /** Internal inconsistencies between blocks, affinities and handles. */
  inconsistencies: string[];
  ok: boolean;
}

export function checkReport(s: IpamSnapshot): CheckReport {
  const endpointIps = new Map<string, EndpointAddresses>();
  for (const e of s.endpoints) for (const ip of e.ips) endpointIps.set(canonical(ip), e);
  const allocated = new Set<string>();
  const leaked: CheckReport['leaked'] = [];
  const inconsistencies: string[] = [];
  const handleCounts = new Map<string, Map<string, number>>();
  for (const b of s.blocks) {
    for (const a of blockAllocations(b)) {
      allocated.add(a.address);
      if (!endpointIps.has(a.address))
        leaked.push({ ip: a.address, block: b.cidr, handleId: a.handleId, node: a.node });
      if (a.handleId) {
        const m = handleCounts.get(a.handleId) ?? new Map<string, number>();
        m.set(b.cidr, (m.get(b.cidr) ?? 0) + 1);
        handleCounts.set(a.handleId, m);
      }
    }
    const free = new Set(b.unallocated);
    b.allocations.forEach((x, o) => {
      if ((x === null) !== free.has(o))
        inconsistencies.push(
          `block ${b.cidr}: ordinal ${o} is ${x === null ? 'free but not in unallocated' : 'allocated and in unallocated'}`,
        );
    });
    if (free.size !== b.unallocated.length)
      inconsistencies.push(`block ${b.cidr}: duplicate ordinals in unallocated`);
    const owner = affinityNode(b.affinity);
    if (owner !== null && !s.affinities.some((a) => a.node === owner && a.cidr === b.cidr)) {
      inconsistencies.push(`block ${b.cidr} is affine to ${owner} but that node has no affinity key for it`);
    }
    if (!poolOf(s.pools, b.cidr)) inconsistencies.push(`block ${b.cidr} lies in no IP pool`);
  }
  for (const a of s.affinities) {
    if (a.active && !s.blocks.some((b) => b.cidr === a.cidr && affinityNode(b.affinity) === a.node)) {
      inconsistencies.push(`affinity of ${a.node} to ${a.cidr} has no matching block`);
    }
  }
  for (const h of s.handles) {
    const counted = handleCounts.get(h.handleID) ?? new Map<string, number>();
    for (const [cidr, n] of Object.entries(h.block)) {
      if ((counted.get(cidr) ?? 0) !== n)
        inconsistencies.push(
          `handle ${h.handleID}: holds ${n} in ${cidr} but the block says ${counted.get(cidr) ?? 0}`,
        );
    }
    for (const [cidr, n] of counted) {
      if (h.block[cidr] === undefined)
        inconsistencies.push(
          `handle ${h.handleID}: block ${cidr} has ${n} allocations the handle does not list`,
        );
    }
  }
  for (const hid of handleCounts.keys()) {
    if (!s.handles.some((h) => h.handleID === hid))
      inconsistencies.push(`allocations of handle ${hid} have no handle object`);
  }
  const unallocatedEndpointAddresses: CheckReport['unallocatedEndpointAddresses'] = [];
  for (const e of s.endpoints) {
    for (const ip of e.ips) {
      if (!allocated.has(canonical(ip)) && inAnyPool(s.pools, ip))
        unallocatedEndpointAddresses.push({ endpoint: e.name, namespace: e.namespace, ip });
    }
  }
  const orphanAffinities = s.affinities
    .filter((a) => !s.nodes.has(a.node))
    .map((a) => ({ node: a.node, cidr: a.cidr }));
  return {
    leaked,
    unallocatedEndpointAddresses,
    orphanAffinities,
    inconsistencies,
    ok:
      leaked.length +
        unallocatedEndpointAddresses.length +
        orphanAffinities.length +
        inconsistencies.length ===
      0,
  };
}

function canonical(ip: string): string {
  try {
    const { family, addr } = parseIp(ip);
    return formatIp(addr, family);
  } catch {
    return ip;
  }
}

/** Endpoint addresses outside every pool (e.g. from host-local) are not ours to check. */
function inAnyPool(pools: PoolInfo[], ip: string): boolean {
  const { family, addr } = parseIp(ip);
  return pools.some((p) => prefixContainsIp(p.prefix, addr, family));
}

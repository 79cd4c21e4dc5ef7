// Reads the store resources IPAM depends on (IPPool, IPAMConfiguration, Node) straight from etcd
// through a KvClient. Parsing is deliberately light (no zod): this runs in every CNI call, and the
// store has already validated what it wrote.
import { type Family, type Prefix, parsePrefix } from '../lib/ip.js';
import { Selector } from '../policy/selector.js';
import { kindPrefix, resourceKeyPath } from '../store/kinds.js';
import type { KeyValue, KvClient } from './etcd-lite.js';

export interface PoolInfo {
  name: string;
  cidr: string;
  prefix: Prefix;
  family: Family;
  blockSize: number;
  disabled: boolean;
  nodeSelector: string;
  allowedUses: string[];
}

export interface IpamConfig {
  strictAffinity: boolean;
  maxBlocksPerHost: number;
  autoAllocateBlocks: boolean;
}

export const DEFAULT_IPAM_CONFIG: IpamConfig = {
  strictAffinity: false,
  maxBlocksPerHost: 0,
  autoAllocateBlocks: true,
};

/** A pool's nodeSelector that does not parse (the store validates it at apply; this is for what got past). */
export class NodeSelectorError extends Error {
  constructor(
    readonly pool: string,
    readonly selector: string,
    why: string,
  ) {
    super(`IPPool ${pool}: nodeSelector "${selector}" is invalid: ${why}`);
    this.name = 'NodeSelectorError';
  }
}

function obj(v: unknown): Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : {};
}

export function parsePool(json: unknown): PoolInfo | null {
  const r = obj(json);
  const spec = obj(r.spec);
  const name = String(obj(r.metadata).name ?? '');
  if (typeof spec.cidr !== 'string') return null;
  let prefix: Prefix;
  try {
    prefix = parsePrefix(spec.cidr);
  } catch {
    return null;
  }
  return {
    name,
    cidr: spec.cidr,
    prefix,
    family: prefix.family,
    blockSize: typeof spec.blockSize === 'number' ? spec.blockSize : prefix.family === 4 ? 26 : 122,
    disabled: spec.disabled === true,
    nodeSelector: typeof spec.nodeSelector === 'string' ? spec.nodeSelector : 'all()',
    allowedUses: Array.isArray(spec.allowedUses) ? spec.allowedUses.map(String) : ['Workload', 'Tunnel'],
  };
}

/** Where the pools are (a prefix: read with readPools, or in a transaction and parsed by poolsFrom). */
export const POOLS_PREFIX = kindPrefix('IPPool');
/** Where the IPAM configuration is (readIpamConfig, or ipamConfigFrom). */
export const IPAM_CONFIG_KEY = resourceKeyPath('IPAMConfiguration', 'default');

export async function readPools(kv: KvClient): Promise<PoolInfo[]> {
  return poolsFrom((await kv.range(POOLS_PREFIX)).kvs);
}

/** The pools from their keys' values, in name order. */
export function poolsFrom(kvs: KeyValue[]): PoolInfo[] {
  const out: PoolInfo[] = [];
  for (const k of kvs) {
    try {
      const p = parsePool(JSON.parse(k.value.toString()));
      if (p) out.push(p);
    } catch {
      // An unreadable pool is skipped, never guessed at.
    }
  }
  return out.sort((a, b) => a.name.localeCompare(b.name));
}

export async function readIpamConfig(kv: KvClient): Promise<IpamConfig> {
  return ipamConfigFrom(await kv.get(IPAM_CONFIG_KEY));
}

/** The IPAM configuration from its key (null: absent, the defaults). */
export function ipamConfigFrom(k: KeyValue | null): IpamConfig {
  if (!k) return { ...DEFAULT_IPAM_CONFIG };
  const spec = obj(obj(JSON.parse(k.value.toString())).spec);
  return {
    strictAffinity: spec.strictAffinity === true,
    maxBlocksPerHost: typeof spec.maxBlocksPerHost === 'number' ? spec.maxBlocksPerHost : 0,
    autoAllocateBlocks: spec.autoAllocateBlocks !== false,
  };
}

export async function readNodeLabels(kv: KvClient, node: string): Promise<Record<string, string> | null> {
  const k = await kv.get(resourceKeyPath('Node', node));
  if (!k) return null;
  const labels = obj(obj(JSON.parse(k.value.toString())).metadata).labels;
  return { ...(obj(labels) as Record<string, string>), 'projectcalico.org/name': node };
}

export async function listNodeNames(kv: KvClient): Promise<Set<string>> {
  const prefix = kindPrefix('Node');
  const { kvs } = await kv.range(prefix);
  return new Set(kvs.map((k) => k.key.slice(prefix.length)));
}

/**
 * Whether a node with `labels` may use `pool`: its nodeSelector in Calico's whole selector language
 * (the parser policies use, policy/selector.ts).
 */
export function poolSelectsNode(
  pool: Pick<PoolInfo, 'name' | 'nodeSelector'>,
  labels: Record<string, string>,
): boolean {
  let selector: Selector;
  try {
    selector = Selector.of(pool.nodeSelector);
  } catch (e) {
    throw new NodeSelectorError(pool.name, pool.nodeSelector, (e as Error).message);
  }
  return selector.matches({ labels });
}

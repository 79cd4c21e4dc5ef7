// gingham-ipam: the CNI IPAM plugin over our block allocator. Used two ways: as its own
// executable (cni/ipam-plugin.ts, for any CNI main plugin) and in-process by gingham-cni when the
// network config says `"ipam": {"type": "gingham-ipam"}` (saves one Node start per call).
import { hostname } from 'node:os';
import {
  Allocator,
  type AllocatorMemory,
  type AllocatorOptions,
  IpamError,
  NoUsablePoolError,
  PoolExhaustedError,
} from '../ipam/allocator.js';
import {
  EtcdLite,
  EtcdRequestError,
  EtcdTlsConfigError,
  type EtcdTlsFile,
  EtcdUnavailableError,
  envTlsFiles,
  type KvClient,
  parseEndpoints,
  readEtcdTls,
} from '../ipam/etcd-lite.js';
import { blockAllocations, blockPrefix, handleIdFor, parseBlock } from '../ipam/model.js';
import { readPools } from '../ipam/resources.js';
import type { Family } from '../lib/ip.js';
import type { CniEnv, NetConf } from './config.js';
import { CniCode, CniError } from './errors.js';
import type { CniResult } from './result.js';

export const GINGHAM_IPAM = 'gingham-ipam';

export interface GinghamIpamConf {
  type: string;
  /** "true" / "false" / "auto" (default auto: every family that has a usable pool). */
  assign_ipv4?: string | boolean;
  assign_ipv6?: string | boolean;
  ipv4_pools?: string[];
  ipv6_pools?: string[];
  etcd_endpoints?: string;
  etcd_ca_cert_file?: string;
  etcd_cert_file?: string;
  etcd_key_file?: string;
  nodename?: string;
}

/** The network configuration's TLS keys (Calico's names). */
const TLS_KEYS = { ca: 'etcd_ca_cert_file', cert: 'etcd_cert_file', key: 'etcd_key_file' } as const;

/** What an IPAM step runs against: the datastore, the node it allocates for, the warm hint. */
export interface IpamContext {
  kv: KvClient;
  node: string;
  /** The allocator's last-block hint, kept across calls by a long-lived caller (the agent). */
  lastBlock?: Map<Family, string>;
  /** The blocks and handles the allocator remembers, kept across calls the same way. */
  memory?: AllocatorMemory;
}

function allocatorFor(ctx: IpamContext): Allocator {
  const opts: AllocatorOptions = { node: ctx.node };
  if (ctx.lastBlock) opts.lastBlock = ctx.lastBlock;
  if (ctx.memory) opts.memory = ctx.memory;
  return new Allocator(ctx.kv, opts);
}

function ipamSection(conf: NetConf): GinghamIpamConf {
  return (conf.ipam ?? { type: GINGHAM_IPAM }) as GinghamIpamConf;
}

/** Node name: config, then NODENAME, then the host name (Calico's order). */
export function nodeName(conf: NetConf): string {
  const ipam = ipamSection(conf);
  return conf.nodename ?? ipam.nodename ?? process.env.NODENAME ?? hostname();
}

export function etcdFor(conf: NetConf): EtcdLite {
  const ipam = ipamSection(conf);
  const spec =
    conf.etcd_endpoints ?? ipam.etcd_endpoints ?? process.env.ETCD_ENDPOINTS ?? 'http://127.0.0.1:2379';
  const endpoints = parseEndpoints(spec);
  // TLS files are read only when an endpoint needs them; a key set in the configuration (checked by
  // parseNetConf) wins over the environment, and an error names the one that was used.
  let files: { ca?: EtcdTlsFile; cert?: EtcdTlsFile; key?: EtcdTlsFile } = {};
  if (endpoints.some((e) => e.startsWith('https:'))) {
    files = envTlsFiles();
    for (const which of ['ca', 'cert', 'key'] as const) {
      const key = TLS_KEYS[which];
      const path = conf[key] ?? ipam[key];
      if (path !== undefined) files[which] = { setting: key, path };
    }
  }
  let tls: ReturnType<typeof readEtcdTls>;
  try {
    tls = readEtcdTls(files);
  } catch (e) {
    if (e instanceof EtcdTlsConfigError) throw new CniError(CniCode.InvalidNetworkConfig, e.message);
    throw e;
  }
  return new EtcdLite(endpoints, Number(process.env.GINGHAM_ETCD_TIMEOUT_MS ?? 5000), tls);
}

/** Maps IPAM and etcd failures onto CNI errors with clear messages. */
export function toCniError(e: unknown): CniError {
  if (e instanceof CniError) return e;
  if (e instanceof EtcdUnavailableError)
    return new CniError(CniCode.TryAgainLater, e.message, 'the datastore is down; retry later');
  if (e instanceof EtcdRequestError) return new CniError(CniCode.IoFailure, e.message);
  if (e instanceof PoolExhaustedError) return new CniError(CniCode.PoolExhausted, e.message);
  if (e instanceof NoUsablePoolError) return new CniError(CniCode.InvalidNetworkConfig, e.message);
  if (e instanceof IpamError) return new CniError(CniCode.IpamFailure, e.message);
  const err = e as Error;
  return new CniError(
    CniCode.IoFailure,
    err?.message ?? String(e),
    err?.stack?.split('\n').slice(0, 3).join(' | ') ?? '',
  );
}

function flag(v: string | boolean | undefined): boolean | 'auto' {
  if (v === undefined || v === 'auto') return 'auto';
  return v === true || v === 'true';
}

export async function ipamAdd(conf: NetConf, env: CniEnv, ctx: IpamContext): Promise<CniResult> {
  const ipam = ipamSection(conf);
  const alloc = allocatorFor(ctx);
  const handleId = handleIdFor(conf.name, env.containerId, env.ifname);
  // Pools, IPAM config, this node's affine blocks (and hinted block) and this attachment's handle
  // in one read-only transaction; addressesOf then uses the handle read there.
  const families = ([4, 6] as const).filter(
    (f) => flag(f === 4 ? ipam.assign_ipv4 : ipam.assign_ipv6) !== false,
  );
  await alloc.prefetch(families, handleId);
  const held = await alloc.addressesOf(handleId);
  const want = async (f: 4 | 6, v: boolean | 'auto', restrict?: string[]) => {
    if (v !== 'auto') return v ? 1 : 0;
    return (await alloc.usablePools(f, 'Workload', restrict)).length > 0 ? 1 : 0;
  };
  const num4 = await want(4, flag(ipam.assign_ipv4), ipam.ipv4_pools);
  const num6 = await want(6, flag(ipam.assign_ipv6), ipam.ipv6_pools);
  if (num4 + num6 === 0) {
    throw new CniError(
      CniCode.InvalidNetworkConfig,
      `no usable IP pool for node ${alloc.node} (create an IPPool, or check its nodeSelector/disabled)`,
    );
  }
  // ADD retried for the same attachment: hand back what it already holds.
  let ips = held;
  if (held.length === 0) {
    const attrs: Record<string, string> = { containerID: env.containerId, ifname: env.ifname };
    if (env.args.K8S_POD_NAMESPACE) attrs.namespace = env.args.K8S_POD_NAMESPACE;
    if (env.args.K8S_POD_NAME) attrs.pod = env.args.K8S_POD_NAME;
    const req = { handleId, num4, num6, attrs } as Parameters<Allocator['assign']>[0];
    if (ipam.ipv4_pools) req.ipv4Pools = ipam.ipv4_pools;
    if (ipam.ipv6_pools) req.ipv6Pools = ipam.ipv6_pools;
    ips = (await alloc.assign(req)).ips;
  }
  return {
    cniVersion: conf.cniVersion,
    ips: ips.map((ip) => ({ address: ip.includes(':') ? `${ip}/128` : `${ip}/32` })),
  };
}

export async function ipamDel(conf: NetConf, env: CniEnv, ctx: IpamContext): Promise<void> {
  const alloc = allocatorFor(ctx);
  await alloc.releaseHandle(handleIdFor(conf.name, env.containerId, env.ifname));
}

/** CHECK: the handle must still hold every address of prevResult. */
export async function ipamCheck(
  conf: NetConf,
  env: CniEnv,
  ctx: IpamContext,
  expected: string[],
): Promise<void> {
  const alloc = allocatorFor(ctx);
  const held = new Set(await alloc.addressesOf(handleIdFor(conf.name, env.containerId, env.ifname)));
  const missing = expected.filter((a) => !held.has(a.split('/')[0]!));
  if (missing.length > 0) {
    throw new CniError(
      CniCode.IpamFailure,
      `addresses no longer allocated to ${env.containerId}/${env.ifname}: ${missing.join(', ')}`,
    );
  }
}

/** GC: releases this node's allocations on this network whose attachment the runtime no longer has. */
export async function ipamGc(conf: NetConf, ctx: IpamContext): Promise<string[]> {
  const { kv, node } = ctx;
  const valid = new Set(
    (conf['cni.dev/valid-attachments'] ?? []).map((a) => handleIdFor(conf.name, a.containerID, a.ifname)),
  );
  const stale = new Set<string>();
  for (const f of [4, 6] as const) {
    const { kvs } = await kv.range(blockPrefix(f));
    for (const k of kvs) {
      for (const a of blockAllocations(parseBlock(k.value, k.key))) {
        if (a.node === node && a.handleId?.startsWith(`${conf.name}.`) && !valid.has(a.handleId))
          stale.add(a.handleId);
      }
    }
  }
  const alloc = allocatorFor(ctx);
  for (const h of stale) await alloc.releaseHandle(h);
  return [...stale];
}

/** STATUS: etcd answers and at least one enabled pool exists. */
export async function ipamStatus(kv: KvClient): Promise<void> {
  let pools: Awaited<ReturnType<typeof readPools>>;
  try {
    pools = await readPools(kv);
  } catch (e) {
    throw new CniError(CniCode.NotAvailable, `IPAM not available: ${(e as Error).message}`);
  }
  if (!pools.some((p) => !p.disabled))
    throw new CniError(CniCode.NotAvailable, 'IPAM not available: no enabled IP pool');
}

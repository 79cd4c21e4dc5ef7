// The block allocator: claim blocks by affinity, assign addresses to handles, release them.
// Every write is one etcd transaction guarded by the mod revisions of the keys it read (block,
// handle, affinity), so concurrent allocators on any number of nodes never hand out an address
// twice and a crash never leaves a block and its handle disagreeing. The revisions compared may
// come from this allocator's own last write rather than a fresh read (a guess the compare
// checks); a failed compare reads the keys back in the same request, and the retry uses those.
// Repeated conflicts retry with jitter.
import {
  type Family,
  formatPrefix,
  type Prefix,
  parseIp,
  parsePrefix,
  prefixContains,
  prefixContainsIp,
} from '../lib/ip.js';
import { blockCount, findFreeBlock } from './arith.js';
import {
  assignFromBlock,
  blockFree,
  blockIsEmpty,
  newBlock,
  releaseAddressesFromBlock,
  releaseHandleFromBlock,
} from './block.js';
import type { KeyValue, KvClient, ModRevisionCompare, TxnOp } from './etcd-lite.js';
import {
  affinityFor,
  affinityIsActive,
  affinityKey,
  affinityNode,
  type Block,
  blockKey,
  blockPrefix,
  type Handle,
  handleKey,
  hostPrefix,
  parseAffinity,
  parseAffinityKey,
  parseBlock,
  parseHandle,
  serializeAffinity,
  serializeBlock,
  serializeHandle,
} from './model.js';
import {
  IPAM_CONFIG_KEY,
  type IpamConfig,
  ipamConfigFrom,
  POOLS_PREFIX,
  type PoolInfo,
  poolSelectsNode,
  poolsFrom,
  readIpamConfig,
  readNodeLabels,
  readPools,
} from './resources.js';

export class IpamError extends Error {
  constructor(
    message: string,
    readonly context: Record<string, unknown> = {},
  ) {
    super(message);
    this.name = 'IpamError';
  }
}

/** No address could be found: every usable pool (and, when allowed, every block) is full. */
export class PoolExhaustedError extends IpamError {
  override name = 'PoolExhaustedError';
}

/** No enabled pool of the family may be used on this node. */
export class NoUsablePoolError extends IpamError {
  override name = 'NoUsablePoolError';
}

export class TooManyConflictsError extends IpamError {
  override name = 'TooManyConflictsError';
}

export type PoolUse = 'Workload' | 'Tunnel';

export interface AssignRequest {
  handleId: string;
  /** Addresses wanted per family. */
  num4: number;
  num6: number;
  /** Stored with each allocation (Calico "secondary" attributes); `node` is set automatically. */
  attrs?: Record<string, string>;
  /** Restrict to these pools (names or CIDRs). */
  ipv4Pools?: string[];
  ipv6Pools?: string[];
  use?: PoolUse;
}

export interface AssignResult {
  /** Assigned addresses (no prefix length), v4 first. */
  ips: string[];
  /** Block CIDR of each address (same order): the caller may report the pool or block. */
  blocks: string[];
}

export interface AllocatorOptions {
  node: string;
  maxRetries?: number;
  /**
   * Where the last-block hint is kept. Shared by a long-lived caller (the agent's CNI server makes
   * one Allocator per call, so pools and config are read fresh, but keeps the hint across calls).
   */
  lastBlock?: Map<Family, string>;
  /**
   * Where the remembered blocks and handles are kept (see Allocator.known*): shared the same way,
   * so that the agent's DEL releases what its ADD assigned in one request.
   */
  memory?: AllocatorMemory;
}

/** Blocks and handles at the mod revisions an Allocator last saw them (guesses for its compares). */
export interface AllocatorMemory {
  blocks: Map<string, Versioned<Block>>;
  handles: Map<string, Versioned<Handle> | null>;
}

export function newAllocatorMemory(): AllocatorMemory {
  return { blocks: new Map(), handles: new Map() };
}

export interface Versioned<T> {
  value: T;
  modRevision: bigint;
}

function versionedBlock(k: KeyValue): Versioned<Block> {
  return { value: parseBlock(k.value, k.key), modRevision: k.modRevision };
}

function versionedHandle(k: KeyValue): Versioned<Handle> {
  return { value: parseHandle(k.value, k.key), modRevision: k.modRevision };
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/**
 * Back-off before a retry. The first retry after a failed compare goes at once: it uses the state
 * that failed request read back, and the compare most often failed only because a remembered
 * revision was stale. Only a second failure in a row means other writers are racing for the key.
 */
function backOff(failedInARow: number, attempt: number): Promise<void> | undefined {
  return failedInARow >= 2 ? sleep(Math.random() * Math.min(30, 1 + attempt * 2)) : undefined;
}

/** Blocks and handles remembered per Allocator (a node has a few blocks; handles are per call). */
const MAX_KNOWN_BLOCKS = 64;
const MAX_KNOWN_HANDLES = 1024;

/** Map.set that keeps at most `limit` entries, dropping the oldest set. */
function remember<K, V>(m: Map<K, V>, key: K, value: V, limit: number): void {
  m.delete(key);
  m.set(key, value);
  if (m.size > limit) m.delete(m.keys().next().value as K);
}

/** What a compare-and-swap on a block (and the handle) ended with. */
type Commit<T> = { ok: true; got: T } | { ok: false };

/** Spreads nodes over a pool so that concurrent claims from different nodes rarely collide. */
function startIndex(node: string, count: bigint): bigint {
  let h = 2166136261;
  for (let i = 0; i < node.length; i++) h = Math.imul(h ^ node.charCodeAt(i), 16777619) >>> 0;
  return count > 0n ? BigInt(h) % count : 0n;
}

/**
 * Allocations of one node within one process are serialized: they all target the node's own
 * blocks, so running them in parallel only turns into CAS conflicts and retries. (Calico's CNI
 * takes a host-wide IPAM lock for the same reason.) Different nodes and processes still race,
 * safely, through the etcd transactions.
 */
const nodeQueues = new Map<string, Promise<unknown>>();

function serialized<T>(node: string, fn: () => Promise<T>): Promise<T> {
  const prev = nodeQueues.get(node) ?? Promise.resolve();
  const run = prev.then(fn, fn);
  const tail = run.catch(() => undefined);
  nodeQueues.set(node, tail);
  void tail.then(() => {
    if (nodeQueues.get(node) === tail) nodeQueues.delete(node);
  });
  return run;
}

export class Allocator {
  readonly node: string;
  private readonly maxRetries: number;
  /** Pools and config are read once per Allocator (one CNI call); blocks are always re-read. */
  private pools: Promise<PoolInfo[]> | undefined;
  private config: Promise<IpamConfig> | undefined;
  /** Per family: the affine block the last assignment used (a hint, re-checked on use). */
  private readonly lastBlock: Map<Family, string>;
  /** Per family: affine blocks read ahead by prefetch(), for the first attempt of the next assignment. */
  private readonly prefetchedAffine = new Map<Family, Promise<string[]>>();
  /**
   * Blocks (by CIDR) and handles (by id; null: absent) as this Allocator last read or wrote them,
   * with their mod revisions. Only ever a guess for a compare-and-swap: after its own write it
   * knows a block's content and revision, so the next assignment in that block is one request
   * (the transaction), not a read and a transaction. Another writer's change fails the compare.
   */
  private readonly knownBlocks: Map<string, Versioned<Block>>;
  private readonly knownHandles: Map<string, Versioned<Handle> | null>;
  /** The handle read by prefetch(), for addressesOf (once). */
  private prefetchedHandle: { handleId: string; value: Versioned<Handle> | null } | undefined;

  constructor(
    private readonly kv: KvClient,
    opts: AllocatorOptions,
  ) {
    this.node = opts.node;
    this.maxRetries = opts.maxRetries ?? 100;
    this.lastBlock = opts.lastBlock ?? new Map();
    const memory = opts.memory ?? newAllocatorMemory();
    this.knownBlocks = memory.blocks;
    this.knownHandles = memory.handles;
  }

  // ---- reads ------------------------------------------------------------

  private async readBlock(cidr: string): Promise<Versioned<Block> | null> {
    return this.sawBlock(cidr, await this.kv.get(blockKey(cidr)));
  }

  private async readHandle(handleId: string): Promise<Versioned<Handle> | null> {
    return this.sawHandle(handleId, await this.kv.get(handleKey(handleId)));
  }

  /** Remembers a block as read (null: absent) and returns it parsed. */
  private sawBlock(cidr: string, k: KeyValue | null): Versioned<Block> | null {
    const b = k ? versionedBlock(k) : null;
    this.setKnownBlock(cidr, b);
    return b;
  }

  private sawHandle(handleId: string, k: KeyValue | null): Versioned<Handle> | null {
    const h = k ? versionedHandle(k) : null;
    remember(this.knownHandles, handleId, h, MAX_KNOWN_HANDLES);
    return h;
  }

  private setKnownBlock(cidr: string, b: Versioned<Block> | null): void {
    if (b) remember(this.knownBlocks, cidr, b, MAX_KNOWN_BLOCKS);
    else this.knownBlocks.delete(cidr);
  }

  /** Remembers a handle as a transaction at `revision` left it (null: deleted). */
  private wroteHandle(handleId: string, h: Handle | null, revision: bigint): void {
    remember(this.knownHandles, handleId, h && { value: h, modRevision: revision }, MAX_KNOWN_HANDLES);
  }

  /** The handle as last seen, or absent if never seen: a new attachment's handle does not exist yet. */
  private guessHandle(handleId: string): Versioned<Handle> | null {
    return this.knownHandles.get(handleId) ?? null;
  }

  private async allBlocks(family: Family): Promise<Versioned<Block>[]> {
    const { kvs } = await this.kv.range(blockPrefix(family));
    return kvs.map((k: KeyValue) => ({ value: parseBlock(k.value, k.key), modRevision: k.modRevision }));
  }

  /** Confirmed affine block CIDRs of this node in one family. */
  private async affineBlocks(family: Family): Promise<string[]> {
    return this.activeAffinities((await this.kv.range(`${hostPrefix(this.node)}ipv${family}/block/`)).kvs);
  }

  /** The block CIDRs of this node's confirmed affinities among `kvs` (affinity keys). */
  private activeAffinities(kvs: KeyValue[]): string[] {
    const out: string[] = [];
    for (const k of kvs) {
      const parsed = parseAffinityKey(k.key);
      if (parsed && affinityIsActive(parseAffinity(k.value, k.key))) out.push(parsed.cidr);
    }
    return out;
  }

  /**
   * Reads pools and the IPAM configuration (cached for this Allocator's life), for the given
   * families this node's affine blocks (used once, by the next assignment of that family), with a
   * last-block hint that block, and the handle `handleId` (used once by addressesOf; block and
   * handle are remembered for the assignment's compare-and-swap): all in one read-only
   * transaction, i.e. one request and one revision, where separate reads cost a request each
   * (each is ~1–2 ms of the caller's CPU and etcd's over HTTP). A CNI ADD is then this and its
   * commit. Stale reads are harmless: a failed compare reads the keys back, and the retry uses those.
   */
  async prefetch(affinityFamilies: Family[] = [], handleId?: string): Promise<void> {
    const ops: TxnOp[] = [];
    const parse: ((r: { gets: (KeyValue | null)[]; ranges: KeyValue[][] }) => void)[] = [];
    let gi = 0;
    let ri = 0;
    const get = (key: string, use: (k: KeyValue | null) => void) => {
      const i = gi++;
      ops.push({ get: key });
      parse.push((r) => use(r.gets[i] ?? null));
    };
    const range = (prefix: string, use: (kvs: KeyValue[]) => void) => {
      const i = ri++;
      ops.push({ range: prefix });
      parse.push((r) => use(r.ranges[i] ?? []));
    };
    if (!this.pools) range(POOLS_PREFIX, (kvs) => (this.pools = Promise.resolve(poolsFrom(kvs))));
    if (!this.config) get(IPAM_CONFIG_KEY, (k) => (this.config = Promise.resolve(ipamConfigFrom(k))));
    // Set when the transaction's answer is parsed.
    const held: { value: Versioned<Handle> | null } = { value: null };
    if (handleId !== undefined) get(handleKey(handleId), (k) => (held.value = this.sawHandle(handleId, k)));
    for (const f of affinityFamilies) {
      if (!this.prefetchedAffine.has(f))
        range(`${hostPrefix(this.node)}ipv${f}/block/`, (kvs) =>
          this.prefetchedAffine.set(f, Promise.resolve(this.activeAffinities(kvs))),
        );
      // The hinted block, remembered: the assignment's transaction compares against it.
      const hint = this.lastBlock.get(f);
      if (hint && handleId !== undefined) get(blockKey(hint), (k) => this.sawBlock(hint, k));
    }
    if (ops.length === 0) return;
    const r = await this.kv.txn([], ops);
    for (const p of parse) p(r);
    if (handleId !== undefined) this.prefetchedHandle = { handleId, value: held.value };
  }

  /** Enabled pools of the family that this node may use for `use`, in name order. */
  async usablePools(family: Family, use: PoolUse, restrict?: string[]): Promise<PoolInfo[]> {
    this.pools ??= readPools(this.kv);
    const pools = (await this.pools).filter(
      (p) => p.family === family && !p.disabled && p.allowedUses.includes(use),
    );
    let chosen = pools;
    if (restrict && restrict.length > 0) {
      chosen = pools.filter((p) => restrict.includes(p.name) || restrict.includes(p.cidr));
      const missing = restrict.filter((r) => !pools.some((p) => p.name === r || p.cidr === r));
      if (missing.length > 0)
        throw new NoUsablePoolError(`requested pools not found or disabled: ${missing.join(', ')}`, {
          missing,
        });
    }
    if (chosen.some((p) => p.nodeSelector.trim() !== 'all()' && p.nodeSelector.trim() !== '')) {
      const labels = (await readNodeLabels(this.kv, this.node)) ?? { 'projectcalico.org/name': this.node };
      chosen = chosen.filter((p) => poolSelectsNode(p, labels));
    }
    return chosen;
  }

  /** Addresses currently held by a handle (for CHECK and idempotent ADD). */
  async addressesOf(handleId: string): Promise<string[]> {
    // The handle read by prefetch() (once, and only while this Allocator has written nothing
    // since): an ADD of a new attachment then reads nothing here.
    const pre = this.prefetchedHandle?.handleId === handleId ? this.prefetchedHandle : undefined;
    this.prefetchedHandle = undefined;
    const h = pre ? pre.value : await this.readHandle(handleId);
    if (!h) return [];
    const out: string[] = [];
    for (const cidr of Object.keys(h.value.block)) {
      const b = await this.readBlock(cidr);
      if (!b) continue;
      const idx = b.value.attributes.flatMap((a, i) => (a.handle_id === handleId ? [i] : []));
      const prefix = parsePrefix(cidr);
      b.value.allocations.forEach((a, o) => {
        if (a !== null && idx.includes(a)) out.push(formatIpAt(prefix, o));
      });
    }
    return out;
  }

  // ---- assign -----------------------------------------------------------

  assign(req: AssignRequest): Promise<AssignResult> {
    this.prefetchedHandle = undefined; // a write of this Allocator makes it stale
    return serialized(this.node, () => this.assignNow(req));
  }

  private async assignNow(req: AssignRequest): Promise<AssignResult> {
    this.config ??= readIpamConfig(this.kv);
    const config = await this.config;
    const ips: string[] = [];
    const blocks: string[] = [];
    try {
      for (const [family, n, restrict] of [
        [4, req.num4, req.ipv4Pools],
        [6, req.num6, req.ipv6Pools],
      ] as const) {
        if (n <= 0) continue;
        const pools = await this.usablePools(family, req.use ?? 'Workload', restrict);
        if (pools.length === 0) {
          throw new NoUsablePoolError(
            `no enabled IPv${family} pool allows ${req.use ?? 'Workload'} use on node ${this.node}`,
            {
              family,
              node: this.node,
            },
          );
        }
        const got = await this.assignFamily(
          family,
          n,
          req.handleId,
          { ...req.attrs, node: this.node },
          config,
          pools,
        );
        for (const g of got) {
          ips.push(g.ip);
          blocks.push(g.block);
        }
      }
    } catch (e) {
      // All or nothing: give back what this call took in the other family.
      if (ips.length > 0) await this.releaseHandleNow(req.handleId).catch(() => undefined);
      throw e;
    }
    return { ips, blocks };
  }

  private async assignFamily(
    family: Family,
    n: number,
    handleId: string,
    secondary: Record<string, string>,
    config: IpamConfig,
    pools: PoolInfo[],
  ): Promise<{ ip: string; block: string }[]> {
    const out: { ip: string; block: string }[] = [];
    const inPools = (cidr: string) => {
      const p = parsePrefix(cidr);
      return pools.some((pool) => prefixContains(pool.prefix, p));
    };
    const mine = (b: Versioned<Block> | null | undefined): b is Versioned<Block> =>
      !!b && b.value.affinity === affinityFor(this.node) && blockFree(b.value) > 0;
    let failedInARow = 0;
    for (let attempt = 0; out.length < n; attempt++) {
      if (attempt > this.maxRetries) {
        throw new TooManyConflictsError(`gave up after ${this.maxRetries} conflicting attempts`, {
          handleId,
          family,
        });
      }
      await backOff(failedInARow, attempt);
      const want = n - out.length;
      // One compare-and-swap in an existing block; a failed one counts towards the back-off.
      const assignIn = async (b: Versioned<Block>): Promise<void> => {
        const r = await this.commitAssign(b, want, handleId, secondary);
        if (r.ok) {
          out.push(...r.got);
          failedInARow = 0;
        } else failedInARow++;
      };
      // 1. Blocks this node owns.
      // The last block that had room is tried first, before listing affinities again: for a
      // long-lived allocator (the agent, a benchmark) that saves a round trip per address. When
      // this Allocator knows the block (its own last write, prefetch, or the state a failed
      // compare read back), the assignment is the transaction alone.
      const hint = this.lastBlock.get(family);
      if (hint && inPools(hint)) {
        const b = this.knownBlocks.get(hint) ?? (await this.readBlock(hint));
        if (mine(b)) {
          await assignIn(b);
          continue;
        }
        this.lastBlock.delete(family);
      }
      const pre = attempt === 0 ? this.prefetchedAffine.get(family) : undefined;
      this.prefetchedAffine.delete(family);
      const affine = (await (pre ?? this.affineBlocks(family))).filter(inPools);
      let tried = false;
      for (const cidr of affine) {
        // Read afresh: a remembered block that looks full may have had addresses released since.
        const b = await this.readBlock(cidr);
        if (!mine(b)) continue;
        // The hint from now on: after a conflict the retry goes straight to the state read back.
        this.lastBlock.set(family, cidr);
        await assignIn(b);
        tried = true;
        break;
      }
      if (tried) continue;
      // 2. Claim a new block (atomically with the first allocation in it).
      const all = await this.allBlocks(family);
      const underLimit = config.maxBlocksPerHost === 0 || affine.length < config.maxBlocksPerHost;
      if (config.autoAllocateBlocks && underLimit) {
        const taken = new Set(all.map((b) => b.value.cidr));
        let claimed: { ip: string; block: string }[] | null | undefined;
        for (const pool of pools) {
          const count = blockCount(pool.prefix, pool.blockSize);
          const free = findFreeBlock(pool.prefix, pool.blockSize, taken, startIndex(this.node, count));
          if (!free) continue;
          claimed = await this.commitClaim(free, want, handleId, secondary);
          break;
        }
        if (claimed === null) {
          failedInARow++; // lost a race: re-read everything
          continue;
        }
        if (claimed) {
          out.push(...claimed);
          failedInARow = 0;
          if (claimed[0]) this.lastBlock.set(family, claimed[0].block);
          continue;
        }
      }
      // 3. Borrow from other blocks in the pools.
      if (!config.strictAffinity) {
        const candidates = all.filter((b) => inPools(b.value.cidr) && blockFree(b.value) > 0);
        if (candidates.length > 0) {
          // Start at a random candidate so concurrent borrowers spread out.
          const b = candidates[Math.floor(Math.random() * candidates.length)]!;
          await assignIn(b);
          continue;
        }
      }
      if (out.length > 0) await this.releaseHandleNow(handleId).catch(() => undefined);
      const why = !config.autoAllocateBlocks
        ? 'autoAllocateBlocks is false'
        : !underLimit
          ? `node ${this.node} holds maxBlocksPerHost=${config.maxBlocksPerHost} blocks`
          : 'no free block left';
      throw new PoolExhaustedError(
        `no free IPv${family} address in pools ${pools.map((p) => p.cidr).join(', ')} for node ${this.node} (${why}${config.strictAffinity ? ', strictAffinity forbids borrowing' : ''})`,
        { family, node: this.node },
      );
    }
    return out;
  }

  /** The handle's next value (null: delete it) after adding `delta` addresses per block. */
  private handleOps(
    handleId: string,
    h: Versioned<Handle> | null,
    delta: Record<string, number>,
  ): { compare: ModRevisionCompare; op: TxnOp; next: Handle | null } {
    const block = { ...(h?.value.block ?? {}) };
    for (const [cidr, d] of Object.entries(delta)) {
      const v = (block[cidr] ?? 0) + d;
      if (v > 0) block[cidr] = v;
      else delete block[cidr];
    }
    const key = handleKey(handleId);
    const compare = { key, modRevision: h?.modRevision ?? 0n };
    if (Object.keys(block).length === 0) return { compare, op: { delete: key }, next: null };
    const next = { handleID: handleId, block, deleted: false };
    return { compare, op: { put: key, value: serializeHandle(next) }, next };
  }

  /**
   * Writes a block and the handle in one transaction that compares both mod revisions with the
   * versions given. On success they are remembered at the transaction's revision (every key a
   * transaction writes gets its revision); on failure the same request reads both back (the
   * failure branch) and those are remembered instead, for the retry.
   */
  private async commitBlockAndHandle(
    cidr: string,
    b: Versioned<Block> | null,
    blockOps: TxnOp[],
    /** The block after `blockOps` (null: deleted; undefined: not written). */
    next: Block | null | undefined,
    handleId: string,
    ho: { compare: ModRevisionCompare; op: TxnOp; next: Handle | null },
  ): Promise<boolean> {
    const bKey = blockKey(cidr);
    const hKey = handleKey(handleId);
    const r = await this.kv.txn(
      [{ key: bKey, modRevision: b?.modRevision ?? 0n }, ho.compare],
      [...blockOps, ho.op],
      [{ get: bKey }, { get: hKey }],
    );
    if (!r.succeeded) {
      this.sawBlock(cidr, r.gets[0] ?? null);
      this.sawHandle(handleId, r.gets[1] ?? null);
      return false;
    }
    if (next !== undefined) this.setKnownBlock(cidr, next && { value: next, modRevision: r.revision });
    this.wroteHandle(handleId, ho.next, r.revision);
    return true;
  }

  /** Assigns in an existing block, against the handle as last seen; not ok on a failed compare. */
  private async commitAssign(
    b: Versioned<Block>,
    want: number,
    handleId: string,
    secondary: Record<string, string>,
  ): Promise<Commit<{ ip: string; block: string }[]>> {
    const { block, addresses } = assignFromBlock(b.value, want, handleId, withTimestamp(secondary));
    if (addresses.length === 0) return { ok: true, got: [] };
    const ho = this.handleOps(handleId, this.guessHandle(handleId), { [block.cidr]: addresses.length });
    const ok = await this.commitBlockAndHandle(
      block.cidr,
      b,
      [{ put: blockKey(block.cidr), value: serializeBlock(block) }],
      block,
      handleId,
      ho,
    );
    return ok ? { ok, got: addresses.map((ip) => ({ ip, block: block.cidr })) } : { ok };
  }

  /** Creates a block affine to this node, its affinity and the first allocations in one txn. */
  private async commitClaim(
    prefix: Prefix,
    want: number,
    handleId: string,
    secondary: Record<string, string>,
  ): Promise<{ ip: string; block: string }[] | null> {
    const cidr = formatPrefix(prefix);
    const { block, addresses } = assignFromBlock(
      newBlock(cidr, affinityFor(this.node)),
      want,
      handleId,
      withTimestamp(secondary),
    );
    const ho = this.handleOps(handleId, this.guessHandle(handleId), { [cidr]: addresses.length });
    const aKey = affinityKey(this.node, cidr);
    const r = await this.kv.txn(
      [{ key: blockKey(cidr), modRevision: 0n }, { key: aKey, modRevision: 0n }, ho.compare],
      [
        { put: blockKey(cidr), value: serializeBlock(block) },
        { put: aKey, value: serializeAffinity({ state: 'confirmed', deleted: false }) },
        ho.op,
      ],
      // The handle read back: the compare may have failed on it (an attachment's earlier ADD).
      [{ get: handleKey(handleId) }],
    );
    if (!r.succeeded) {
      this.sawHandle(handleId, r.gets[0] ?? null);
      return null;
    }
    this.setKnownBlock(cidr, { value: block, modRevision: r.revision });
    this.wroteHandle(handleId, ho.next, r.revision);
    return addresses.map((ip) => ({ ip, block: cidr }));
  }

  // ---- release ------------------------------------------------------------

  /**
   * Ops that write a block back after a release. An emptied block returns to the pool (deleted
   * with its affinity) unless it is its node's only block of that family: a node keeps one block
   * warm, so a pod going up and down does not claim, release, announce and withdraw a block each
   * time (Calico's CNI never releases affine blocks on DEL; its GC does later).
   */
  private async blockWriteOps(b: Block): Promise<TxnOp[]> {
    const keep: TxnOp[] = [{ put: blockKey(b.cidr), value: serializeBlock(b) }];
    if (!blockIsEmpty(b)) return keep;
    const owner = affinityNode(b.affinity);
    if (owner === null) return [{ delete: blockKey(b.cidr) }];
    const family = parsePrefix(b.cidr).family;
    const { kvs } = await this.kv.range(`${hostPrefix(owner)}ipv${family}/block/`);
    const others = kvs.filter(
      (k) => parseAffinityKey(k.key)?.cidr !== b.cidr && affinityIsActive(parseAffinity(k.value, k.key)),
    );
    if (others.length === 0) return keep;
    return [{ delete: blockKey(b.cidr) }, { delete: affinityKey(owner, b.cidr) }];
  }

  /** Releases every address a handle holds. Idempotent: an unknown handle releases nothing. */
  releaseHandle(handleId: string): Promise<string[]> {
    this.prefetchedHandle = undefined;
    return serialized(this.node, () => this.releaseHandleNow(handleId));
  }

  private async releaseHandleNow(handleId: string): Promise<string[]> {
    const released: string[] = [];
    // The handle as this Allocator wrote it (its own ADD, or an earlier release step), else read:
    // the compare below checks it either way.
    let h = this.knownHandles.get(handleId) ?? (await this.readHandle(handleId));
    let failedInARow = 0;
    for (let attempt = 0; ; attempt++) {
      if (attempt > this.maxRetries)
        throw new TooManyConflictsError(`release of ${handleId} kept conflicting`, { handleId });
      await backOff(failedInARow, attempt);
      if (!h) return released;
      const cidr = Object.keys(h.value.block)[0];
      if (cidr === undefined) {
        const key = handleKey(handleId);
        const r = await this.kv.txn([{ key, modRevision: h.modRevision }], [{ delete: key }], [{ get: key }]);
        if (r.succeeded) {
          this.wroteHandle(handleId, null, r.revision);
          return released;
        }
        h = this.sawHandle(handleId, r.gets[0] ?? null);
        failedInARow++;
        continue;
      }
      const b = this.knownBlocks.get(cidr) ?? (await this.readBlock(cidr));
      const ho = this.handleOps(handleId, h, { [cidr]: -(h.value.block[cidr] ?? 0) });
      let ok: boolean;
      let freed: string[] = [];
      if (!b) {
        // The block is gone (released by someone else): just forget it in the handle.
        ok = await this.commitBlockAndHandle(cidr, null, [], undefined, handleId, ho);
      } else {
        const rel = releaseHandleFromBlock(b.value, handleId);
        const blockOps = rel.addresses.length > 0 ? await this.blockWriteOps(rel.block) : [];
        const kept = blockOps.some((op) => 'put' in op);
        const next = blockOps.length === 0 ? undefined : kept ? rel.block : null;
        ok = await this.commitBlockAndHandle(cidr, b, blockOps, next, handleId, ho);
        if (ok && next === null) {
          // The block went back to the pool: it is no hint any more.
          const family = parsePrefix(cidr).family;
          if (this.lastBlock.get(family) === cidr) this.lastBlock.delete(family);
        }
        freed = rel.addresses;
      }
      h = this.guessHandle(handleId); // as written, or as read back by the failed compare
      if (ok) {
        released.push(...freed);
        attempt = -1; // progress: next block with a fresh retry budget
        failedInARow = 0;
      } else failedInARow++;
    }
  }

  /** Releases the given addresses whoever holds them (`gingham ipam release --ip`). */
  async releaseAddresses(ips: string[]): Promise<string[]> {
    this.prefetchedHandle = undefined;
    const released: string[] = [];
    for (const ip of ips) {
      const { family, addr } = parseIp(ip);
      for (let attempt = 0; ; attempt++) {
        if (attempt > this.maxRetries)
          throw new TooManyConflictsError(`release of ${ip} kept conflicting`, { ip });
        if (attempt > 0) await sleep(Math.random() * Math.min(30, 1 + attempt * 2));
        const b = (await this.allBlocks(family)).find((x) =>
          prefixContainsIp(parsePrefix(x.value.cidr), addr, family),
        );
        if (!b) break;
        const rel = releaseAddressesFromBlock(b.value, [ip]);
        if (rel.addresses.length === 0) break;
        const compares: ModRevisionCompare[] = [{ key: blockKey(b.value.cidr), modRevision: b.modRevision }];
        const ops: TxnOp[] = await this.blockWriteOps(rel.block);
        for (const [hid, count] of rel.byHandle) {
          if (hid === '') continue;
          const h = await this.readHandle(hid);
          const ho = this.handleOps(hid, h, { [b.value.cidr]: -count });
          compares.push(ho.compare);
          ops.push(ho.op);
        }
        const r = await this.kv.txn(compares, ops);
        if (r.succeeded) {
          // Not remembered as written (a rare path): the next use reads them afresh.
          this.knownBlocks.delete(b.value.cidr);
          for (const hid of rel.byHandle.keys()) this.knownHandles.delete(hid);
          released.push(...rel.addresses);
          break;
        }
      }
    }
    return released;
  }
}

function withTimestamp(secondary: Record<string, string>): Record<string, string> {
  return { ...secondary, timestamp: new Date().toISOString() };
}

function formatIpAt(prefix: Prefix, ordinal: number): string {
  return formatPrefix({
    ...prefix,
    addr: prefix.addr + BigInt(ordinal),
    len: prefix.family === 4 ? 32 : 128,
  }).split('/')[0]!;
}

// The etcd v3 implementation of the store. Thin: key layout from kinds.ts, validation from
// validate.ts, resync from watch.ts; here only transactions, paging and error translation.
import { randomUUID } from 'node:crypto';
import { ConsecutiveBreaker, circuitBreaker, ExponentialBackoff, handleWhen, retry } from 'cockatiel';
import { type Etcd3, type IKeyValue, type IOptions, isRecoverableError } from 'etcd3';
import type {
  Kind,
  KvEvent,
  ListOptions,
  ListResult,
  Resource,
  ResourceEvent,
  ResourceKey,
  WatchHandle,
  WatchHandlers,
} from './api.js';
import {
  AlreadyExistsError,
  ConflictError,
  EtcdUnavailableError,
  NotFoundError,
  StoreError,
  ValidationError,
} from './errors.js';
import {
  KEY_PREFIX,
  kindInfo,
  kindOf,
  kindPrefix,
  parseResourceKeyPath,
  prefixEnd,
  resourceKeyPath,
} from './kinds.js';
import { validateResource } from './validate.js';
import { type PageSink, type RawChange, ResyncingWatch } from './watch.js';

export interface StoreOptions {
  /** etcd client URLs; default: $ETCD_ENDPOINTS (comma-separated) or http://127.0.0.1:2379. */
  endpoints?: string[];
  /** TLS; default: $ETCD_CA_CERT_FILE, $ETCD_CERT_FILE, $ETCD_KEY_FILE. */
  caFile?: string;
  certFile?: string;
  keyFile?: string;
  /** How long to wait for a connection (default 5000 ms). */
  dialTimeoutMs?: number;
  /** Deadline of each unary call (default 10000 ms; the CLI uses 5000). */
  requestTimeoutMs?: number;
  /**
   * How long an operation keeps retrying while etcd is unreachable before it throws
   * EtcdUnavailableError (default 2500 ms: rides over an etcd restart).
   */
  unavailableRetryMs?: number;
}

export interface KvItem {
  key: string;
  value: Buffer;
  modRevision: bigint;
}

export interface KvPutOptions {
  /** Compare-and-swap: the key's current mod revision must equal this; 0n = the key must not exist. */
  expectModRevision?: bigint;
  /** Attach the key to a lease (lease ID as returned by etcd, decimal). */
  lease?: string | bigint;
}

export interface KvWatchHandlers {
  onEvents(events: KvEvent[]): void;
  onInSync(revision: bigint): void;
  onOutOfSync?(reason: Error): void;
}

const DEFAULT_PAGE = 1000;

export interface WatchOptions {
  /** Only this namespace (namespaced kinds). */
  namespace?: string;
  /**
   * Deliver the deleted object as `previous` when a resync finds a key gone (default true). Costs
   * a copy of every watched value; a consumer that never reads `previous` (the agent, watching
   * 100k endpoints) turns it off and gets `previous: null`.
   */
  previous?: boolean;
}

type WatchBackoff = NonNullable<NonNullable<IOptions['faultHandling']>['watchBackoff']>;

function isUnavailable(e: unknown): boolean {
  if (!(e instanceof Error)) return false;
  if (isRecoverableError(e)) return true;
  return (
    [
      'BrokenCircuitError',
      'TaskCancelledError',
      'GRPCDeadlineExceededError',
      'GRPCUnavailableError',
    ].includes(e.constructor.name) ||
    /UNAVAILABLE|DEADLINE_EXCEEDED|circuit breaker is open|Failed to connect/i.test(e.message)
  );
}

export function etcd3Options(
  endpoints: string[],
  opts: StoreOptions,
  creds?: IOptions['credentials'],
): IOptions {
  const requestTimeoutMs = opts.requestTimeoutMs ?? 10_000;
  return {
    hosts: endpoints,
    dialTimeout: opts.dialTimeoutMs ?? 5000,
    credentials: creds,
    grpcOptions: {
      // Paging keeps responses small, but one huge value must not break a list.
      'grpc.max_receive_message_length': 256 * 1024 * 1024,
      'grpc.max_send_message_length': 64 * 1024 * 1024,
      // grpc-js backs off up to 120 s between reconnects by default; a restarted etcd must be
      // seen within ~2 s (deps.md §2).
      'grpc.initial_reconnect_backoff_ms': 100,
      'grpc.max_reconnect_backoff_ms': 1000,
      // etcd3 replaces its channel after a failure; a shared (global) subchannel would keep the
      // old one's failure backoff, so every channel gets its own.
      'grpc.use_local_subchannel_pool': 1,
    },
    defaultCallOptions: (ctx) => (ctx.isStream ? {} : { deadline: Date.now() + requestTimeoutMs }),
    faultHandling: {
      host: () =>
        circuitBreaker(handleWhen(isRecoverableError), {
          halfOpenAfter: 1000,
          breaker: new ConsecutiveBreaker(3),
        }),
      global: retry(handleWhen(isRecoverableError), { maxAttempts: 3 }),
      // etcd3's typings name cockatiel 2's IBackoff; cockatiel 3's factory works at runtime (its
      // next() returns an object with `duration`), as measured in deps.md §2.
      watchBackoff: new ExponentialBackoff({ initialDelay: 100, maxDelay: 1000 }) as unknown as WatchBackoff,
    },
  };
}

/** Fields that cannot change once set (Calico: an IP pool's CIDR and block size; IPAM depends on them). */
const IMMUTABLE: Partial<Record<Kind, string[]>> = { IPPool: ['cidr', 'blockSize'] };

function checkImmutable(kind: Kind, old: Resource, next: Resource): void {
  const fields = IMMUTABLE[kind];
  if (!fields) return;
  const before = old.spec as Record<string, unknown>;
  const after = next.spec as Record<string, unknown>;
  const issues = fields
    .filter((f) => before[f] !== after[f])
    .map((f) => ({
      path: `spec.${f}`,
      message: `expected the stored value ${JSON.stringify(before[f])}: ${f} cannot change after creation (create a new ${kind} instead)`,
    }));
  if (issues.length > 0) {
    throw new ValidationError(
      { kind: next.kind, name: next.metadata.name, namespace: next.metadata.namespace },
      issues,
    );
  }
}

function serialize(r: Resource): Buffer {
  const { resourceVersion: _rv, ...metadata } = r.metadata;
  return Buffer.from(JSON.stringify({ ...r, metadata }));
}

function decode(value: Buffer, modRevision: string | bigint): Resource {
  const r = JSON.parse(value.toString()) as Resource;
  r.metadata.resourceVersion = String(modRevision);
  return r;
}

export class EtcdStore {
  readonly keyPrefix = KEY_PREFIX;

  constructor(
    /** The underlying client, for multi-key transactions (IPAM). */
    readonly client: Etcd3,
    readonly endpoints: string[],
    private readonly unavailableRetryMs = 2500,
  ) {}

  /**
   * Runs one etcd operation, retrying transport failures for a short while (an etcd restart,
   * an open circuit breaker) and then translating them into EtcdUnavailableError.
   */
  private async call<T>(operation: string, fn: () => Promise<T>): Promise<T> {
    const started = Date.now();
    let delay = 50;
    // "circuit breaker is open" says nothing about why: report the last real failure instead.
    let cause: unknown;
    for (;;) {
      try {
        return await fn();
      } catch (e) {
        if (e instanceof StoreError || !isUnavailable(e)) throw e;
        if (!(e instanceof Error && e.constructor.name === 'BrokenCircuitError') || cause === undefined)
          cause = e;
        const elapsed = Date.now() - started;
        if (elapsed + delay > this.unavailableRetryMs)
          throw new EtcdUnavailableError(this.endpoints, elapsed, operation, cause);
        await new Promise((r) => setTimeout(r, delay));
        delay = Math.min(delay * 2, 400);
      }
    }
  }

  // ---- resources -------------------------------------------------------------------------

  private prepare(r: Resource): { kind: Kind; key: string; resource: Resource } {
    const resource = validateResource(r, { kind: r.kind, name: r.metadata?.name });
    const kind = kindOf(resource);
    return {
      kind,
      key: resourceKeyPath(kind, resource.metadata.name, resource.metadata.namespace),
      resource,
    };
  }

  /** Creates the object; AlreadyExistsError if it exists. Returns it with its resourceVersion. */
  async create(r: Resource): Promise<Resource> {
    const { kind, key, resource } = this.prepare(r);
    delete resource.metadata.resourceVersion;
    resource.metadata.uid ??= randomUUID();
    resource.metadata.creationTimestamp ??= new Date().toISOString();
    const k = Buffer.from(key);
    const res = await this.call(`create ${key}`, () =>
      this.client.kv.txn({
        compare: [{ key: k, target: 'Create', result: 'Equal', create_revision: 0 }],
        success: [{ request_put: { key: k, value: serialize(resource) } }],
      }),
    );
    if (!res.succeeded)
      throw new AlreadyExistsError(kind, resource.metadata.name, resource.metadata.namespace, key);
    resource.metadata.resourceVersion = res.header.revision;
    return resource;
  }

  /**
   * Replaces an existing object. With metadata.resourceVersion set, only if it is still at that
   * revision (ConflictError otherwise). uid and creationTimestamp are carried over.
   */
  async update(r: Resource): Promise<Resource> {
    const { kind, key, resource } = this.prepare(r);
    const want = resource.metadata.resourceVersion;
    const { name, namespace } = resource.metadata;
    for (let attempt = 0; ; attempt++) {
      const cur = await this.kvGet(key);
      if (!cur) throw new NotFoundError(kind, name, namespace, key);
      if (want !== undefined && String(cur.modRevision) !== want) {
        throw new ConflictError(
          key,
          want,
          String(cur.modRevision),
          `${kind} ${namespace ? `${namespace}/` : ''}${name}`,
        );
      }
      const old = decode(cur.value, cur.modRevision);
      checkImmutable(kind, old, resource);
      const next: Resource = structuredClone(resource);
      next.metadata.uid ??= old.metadata.uid;
      next.metadata.creationTimestamp ??= old.metadata.creationTimestamp;
      try {
        const rev = await this.kvPut(key, serialize(next), { expectModRevision: cur.modRevision });
        next.metadata.resourceVersion = String(rev);
        return next;
      } catch (e) {
        // Without a resourceVersion the caller asked for last-writer-wins: retry on a race.
        if (e instanceof ConflictError && want === undefined && attempt < 5) continue;
        if (e instanceof ConflictError && e.actual === null)
          throw new NotFoundError(kind, name, namespace, key);
        if (e instanceof ConflictError) throw new ConflictError(key, e.expected, e.actual, `${kind} ${name}`);
        throw e;
      }
    }
  }

  /** Creates or updates. */
  async apply(r: Resource): Promise<Resource> {
    for (let attempt = 0; ; attempt++) {
      try {
        if (r.metadata?.resourceVersion !== undefined) return await this.update(r);
        try {
          return await this.update(r);
        } catch (e) {
          if (e instanceof NotFoundError) return await this.create(r);
          throw e;
        }
      } catch (e) {
        if (e instanceof AlreadyExistsError && attempt < 3) continue; // created concurrently: update it
        throw e;
      }
    }
  }

  async tryGet(kind: Kind, name: string, namespace?: string): Promise<Resource | null> {
    const key = resourceKeyPath(kind, name, namespace);
    const cur = await this.kvGet(key);
    return cur ? decode(cur.value, cur.modRevision) : null;
  }

  async get(kind: Kind, name: string, namespace?: string): Promise<Resource> {
    const r = await this.tryGet(kind, name, namespace);
    if (!r) throw new NotFoundError(kind, name, namespace, resourceKeyPath(kind, name, namespace));
    return r;
  }

  /** All objects of a kind (one namespace, or all), read at one revision in pages. */
  async list(kind: Kind, opts: ListOptions = {}): Promise<ListResult> {
    const info = kindInfo(kind);
    const prefix = kindPrefix(kind, info.namespaced ? opts.namespace : undefined);
    const { kvs, revision } = await this.rangePrefixes([prefix], opts.pageSize);
    const items: Resource[] = [];
    for (const kv of kvs) {
      if (!parseResourceKeyPath(kind, kv.key.toString())) continue;
      items.push(decode(kv.value, kv.mod_revision));
    }
    return { items, revision };
  }

  /** Deletes; with resourceVersion only if still at that revision. Returns the deleted object. */
  async delete(key: ResourceKey, opts: { resourceVersion?: string } = {}): Promise<Resource> {
    const path = resourceKeyPath(key.kind, key.name, key.namespace);
    const k = Buffer.from(path);
    if (opts.resourceVersion !== undefined) {
      const res = await this.call(`delete ${path}`, () =>
        this.client.kv.txn({
          compare: [{ key: k, target: 'Mod', result: 'Equal', mod_revision: opts.resourceVersion }],
          success: [{ request_delete_range: { key: k, prev_kv: true } }],
          failure: [{ request_range: { key: k } }],
        }),
      );
      if (!res.succeeded) {
        const cur = res.responses[0]?.response_range.kvs[0];
        if (!cur) throw new NotFoundError(key.kind, key.name, key.namespace, path);
        throw new ConflictError(path, opts.resourceVersion, cur.mod_revision, `${key.kind} ${key.name}`);
      }
      const prev = res.responses[0]?.response_delete_range.prev_kvs[0];
      if (!prev) throw new NotFoundError(key.kind, key.name, key.namespace, path);
      return decode(prev.value, prev.mod_revision);
    }
    const res = await this.call(`delete ${path}`, () =>
      this.client.kv.deleteRange({ key: k, prev_kv: true }),
    );
    const prev = res.prev_kvs[0];
    if (!prev) throw new NotFoundError(key.kind, key.name, key.namespace, path);
    return decode(prev.value, prev.mod_revision);
  }

  /**
   * Snapshot-then-deltas watch over kinds (store/api.ts). Resyncs after compaction, watch errors
   * and etcd outages; onOutOfSync is called once per outage.
   */
  watch(kinds: Kind[], handlers: WatchHandlers, opts: WatchOptions = {}): WatchHandle {
    const prefixes = kinds.map((k) => kindPrefix(k, kindInfo(k).namespaced ? opts.namespace : undefined));
    const kindByPrefix = kinds.map((k, i) => [prefixes[i]!, k] as const);
    const locate = (key: string): { kind: Kind; name: string; namespace?: string } | null => {
      for (const [p, kind] of kindByPrefix) {
        if (!key.startsWith(p)) continue;
        const at = parseResourceKeyPath(kind, key);
        if (at) return { kind, ...at };
      }
      return null;
    };
    const w = new ResyncingWatch(
      this.client,
      this,
      prefixes,
      {
        onChanges: (changes: RawChange[]) => {
          const events: ResourceEvent[] = [];
          for (const c of changes) {
            const at = locate(c.key);
            if (!at) continue;
            try {
              if (c.type === 'put') {
                events.push({
                  type: c.created ? 'added' : 'modified',
                  kind: at.kind,
                  resource: decode(c.value, c.modRevision),
                  revision: c.modRevision,
                });
              } else {
                const key: ResourceKey = { kind: at.kind, name: at.name };
                if (at.namespace !== undefined) key.namespace = at.namespace;
                events.push({
                  type: 'deleted',
                  kind: at.kind,
                  key,
                  previous: c.prev ? decode(c.prev, c.modRevision) : null,
                  revision: c.modRevision,
                });
              }
            } catch {
              // A value that is not JSON was not written by us; skip it rather than stop the watch.
            }
          }
          if (events.length > 0) handlers.onEvents(events);
        },
        onInSync: (rev) => handlers.onInSync(rev),
        onOutOfSync: handlers.onOutOfSync ? (e) => handlers.onOutOfSync!(e) : undefined,
      },
      { retainValues: opts.previous !== false },
    );
    w.start();
    return { close: () => w.close() };
  }

  // ---- raw keys ---------------------------------------------------------------------------

  /** Every key under the prefixes at one revision, paged (etcd's 4 MiB message limit). */
  async rangePrefixes(
    prefixes: string[],
    pageSize = DEFAULT_PAGE,
    onPage?: PageSink,
  ): Promise<{ kvs: IKeyValue[]; revision: bigint }> {
    // A compaction past the snapshot revision between two pages makes the rest unreadable at
    // that revision: start again at the current one (onPage then sees the newer revision).
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.rangeOnce(prefixes, pageSize, onPage);
      } catch (e) {
        if (attempt >= 3 || !(e instanceof Error) || !/compacted/i.test(e.message)) throw e;
      }
    }
  }

  private async rangeOnce(
    prefixes: string[],
    pageSize: number,
    onPage: PageSink | undefined,
  ): Promise<{ kvs: IKeyValue[]; revision: bigint }> {
    let revision = 0n;
    const kvs: IKeyValue[] = [];
    for (const prefix of prefixes) {
      const end = prefixEnd(prefix);
      let start = Buffer.from(prefix);
      for (;;) {
        const res = await this.call(`list ${prefix}`, () =>
          this.client.kv.range({
            key: start,
            range_end: end,
            limit: pageSize,
            revision: revision === 0n ? 0 : String(revision),
          }),
        );
        if (revision === 0n) revision = BigInt(res.header.revision);
        if (onPage) onPage(res.kvs, revision);
        else for (const kv of res.kvs) kvs.push(kv); // not push(...): a page may exceed the argument limit
        const last = res.kvs[res.kvs.length - 1];
        if (!res.more || !last) break;
        start = Buffer.concat([last.key, Buffer.from([0])]);
      }
    }
    if (revision === 0n) {
      // No prefixes: still report the current revision.
      const res = await this.call('revision', () =>
        this.client.kv.range({ key: Buffer.from(KEY_PREFIX), count_only: true }),
      );
      revision = BigInt(res.header.revision);
    }
    return { kvs, revision };
  }

  async kvGet(key: string): Promise<{ value: Buffer; modRevision: bigint } | null> {
    const res = await this.call(`get ${key}`, () => this.client.kv.range({ key: Buffer.from(key) }));
    const kv = res.kvs[0];
    return kv ? { value: kv.value, modRevision: BigInt(kv.mod_revision) } : null;
  }

  async kvList(
    prefix: string,
    opts: { pageSize?: number } = {},
  ): Promise<{ items: KvItem[]; revision: bigint }> {
    const { kvs, revision } = await this.rangePrefixes([prefix], opts.pageSize);
    return {
      items: kvs.map((kv) => ({
        key: kv.key.toString(),
        value: kv.value,
        modRevision: BigInt(kv.mod_revision),
      })),
      revision,
    };
  }

  /** Puts a raw key; returns its new mod revision. ConflictError when expectModRevision does not hold. */
  async kvPut(key: string, value: string | Buffer, opts: KvPutOptions = {}): Promise<bigint> {
    const k = Buffer.from(key);
    const put = {
      key: k,
      value: Buffer.from(value),
      lease: opts.lease === undefined ? undefined : String(opts.lease),
    };
    if (opts.expectModRevision === undefined) {
      const res = await this.call(`put ${key}`, () => this.client.kv.put(put));
      return BigInt(res.header.revision);
    }
    const expect = opts.expectModRevision;
    const res = await this.call(`put ${key}`, () =>
      this.client.kv.txn({
        compare: [{ key: k, target: 'Mod', result: 'Equal', mod_revision: String(expect) }],
        success: [{ request_put: put }],
        failure: [{ request_range: { key: k } }],
      }),
    );
    if (!res.succeeded) {
      const cur = res.responses[0]?.response_range.kvs[0];
      throw new ConflictError(key, String(expect), cur ? cur.mod_revision : null);
    }
    return BigInt(res.header.revision);
  }

  /** Deletes a raw key; returns whether it existed. ConflictError when expectModRevision does not hold. */
  async kvDelete(key: string, opts: { expectModRevision?: bigint } = {}): Promise<boolean> {
    const k = Buffer.from(key);
    if (opts.expectModRevision === undefined) {
      const res = await this.call(`delete ${key}`, () => this.client.kv.deleteRange({ key: k }));
      return res.deleted !== '0';
    }
    const expect = opts.expectModRevision;
    const res = await this.call(`delete ${key}`, () =>
      this.client.kv.txn({
        compare: [{ key: k, target: 'Mod', result: 'Equal', mod_revision: String(expect) }],
        success: [{ request_delete_range: { key: k } }],
        failure: [{ request_range: { key: k } }],
      }),
    );
    if (!res.succeeded) {
      const cur = res.responses[0]?.response_range.kvs[0];
      throw new ConflictError(key, String(expect), cur ? cur.mod_revision : null);
    }
    return res.responses[0]?.response_delete_range.deleted !== '0';
  }

  /** Raw-key watch with the same snapshot/resync contract as watch(). */
  kvWatch(prefix: string, handlers: KvWatchHandlers): WatchHandle {
    // A raw delete event carries no value (KvEvent.value is null): nothing to retain.
    const w = new ResyncingWatch(
      this.client,
      this,
      [prefix],
      {
        onChanges: (changes) =>
          handlers.onEvents(
            changes.map((c) =>
              c.type === 'put'
                ? { type: 'put', key: c.key, value: c.value, modRevision: c.modRevision }
                : { type: 'delete', key: c.key, value: null, modRevision: c.modRevision },
            ),
          ),
        onInSync: (rev) => handlers.onInSync(rev),
        onOutOfSync: handlers.onOutOfSync ? (e) => handlers.onOutOfSync!(e) : undefined,
      },
      { retainValues: false },
    );
    w.start();
    return { close: () => w.close() };
  }

  async close(): Promise<void> {
    this.client.close();
  }
}

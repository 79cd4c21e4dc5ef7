// The resync engine behind every store watch (resources and raw keys alike).
//
// Contract (store/api.ts): list the prefixes at one revision R, emit the difference against what
// this watcher emitted before (everything, the first time), signal in-sync at R, then stream
// deltas from R+1. On ANY watch error — compaction ("Watcher canceled"), a dropped stream, etcd
// down — drop the etcd watchers, report out-of-sync, and start over with a fresh list. The diff
// makes a resync invisible to the consumer except for the changes it really missed, including
// deletes of keys that vanished meanwhile. (Calico: watchersyncer/watchercache.go.)
//
// Memory: a watch over 100k keys must not hold 100k values. The listing is consumed page by page
// (each page's puts are emitted as it arrives, in several onChanges calls before onInSync), and
// per key only its mod revision is remembered. Values are kept only when the consumer wants the
// previous object of a delete (`retainValues`), and then as compact copies: a value handed out by
// the etcd client is a view into the whole gRPC message it came in, so keeping one pins the page.
import type { Etcd3, IKeyValue, IWatchResponse, Watcher } from 'etcd3';

export type RawChange =
  | { type: 'put'; key: string; value: Buffer; modRevision: bigint; created: boolean }
  /** `prev`: the deleted value, when the watch retains values (null otherwise). */
  | { type: 'delete'; key: string; modRevision: bigint; prev: Buffer | null };

export interface RawSink {
  onChanges(changes: RawChange[]): void;
  onInSync(revision: bigint): void;
  onOutOfSync?(reason: Error): void;
}

/** Receives one page of a listing; every page of one listing has the same revision. */
export type PageSink = (kvs: IKeyValue[], revision: bigint) => void;

export interface RangeReader {
  /**
   * All keys under the prefixes, read at one revision (paged). With `onPage`, each page is handed
   * over as it arrives instead of being accumulated, and the returned `kvs` hold only what was not
   * handed over. A listing restarted after a compaction between pages starts again from the first
   * key at a newer revision.
   */
  rangePrefixes(
    prefixes: string[],
    pageSize?: number,
    onPage?: PageSink,
  ): Promise<{ kvs: IKeyValue[]; revision: bigint }>;
}

export interface ResyncingWatchOptions {
  /** Remember each key's value so a delete found by a resync can carry it (default true). */
  retainValues?: boolean;
}

const MIN_RETRY_MS = 100;
/** Capped low so that a restarted etcd is picked up within ~1–2 s. */
const MAX_RETRY_MS = 1000;

/** Thrown from a page callback to stop a listing this watch no longer wants. */
class ListingAbandoned extends Error {}

export class ResyncingWatch {
  /** Key → mod revision of what was last emitted for it. */
  private readonly known = new Map<string, bigint>();
  /** Key → value last emitted (compact copy), only with retainValues. */
  private readonly values: Map<string, Buffer> | null;
  private watchers: Watcher[] = [];
  private generation = 0;
  private closed = false;
  private outOfSyncReported = false;
  private timer: NodeJS.Timeout | undefined;
  /** Settles when the current resync attempt loop exits (used by close()). */
  private running: Promise<void> = Promise.resolve();

  constructor(
    private readonly client: Etcd3,
    private readonly reader: RangeReader,
    private readonly prefixes: string[],
    private readonly sink: RawSink,
    opts: ResyncingWatchOptions = {},
  ) {
    this.values = opts.retainValues === false ? null : new Map();
  }

  start(): void {
    this.running = this.resync(null);
  }

  async close(): Promise<void> {
    this.closed = true;
    this.generation++;
    if (this.timer) clearTimeout(this.timer);
    await this.dropWatchers();
    await this.running.catch(() => {});
  }

  private async dropWatchers(): Promise<void> {
    const old = this.watchers;
    this.watchers = [];
    // cancel() waits for etcd's confirmation when connected; never let a dead stream block us.
    await Promise.all(
      old.map((w) =>
        Promise.race([w.cancel().catch(() => {}), new Promise<void>((r) => setTimeout(r, 1000).unref())]),
      ),
    );
  }

  private fail(gen: number, err: Error): void {
    if (gen !== this.generation || this.closed) return;
    this.running = this.resync(err);
  }

  private async resync(reason: Error | null): Promise<void> {
    const gen = ++this.generation;
    await this.dropWatchers();
    if (reason) this.reportOutOfSync(reason);
    let delay = MIN_RETRY_MS;
    while (!this.closed && gen === this.generation) {
      // Keys seen by the current listing (reset when a listing starts over at a new revision).
      let seen = new Set<string>();
      let listRevision: bigint | null = null;
      // An exception thrown by the consumer is its bug, not an etcd failure: it must not be
      // retried as one, so it is carried out of the listing and rethrown.
      let consumerError = null as { e: unknown } | null;
      const onPage: PageSink = (kvs, revision) => {
        if (this.closed || gen !== this.generation) throw new ListingAbandoned();
        if (revision !== listRevision) {
          listRevision = revision;
          seen = new Set();
        }
        try {
          this.emitPage(kvs, seen);
        } catch (e) {
          consumerError = { e };
          throw new ListingAbandoned();
        }
      };
      let revision: bigint;
      try {
        const listed = await this.reader.rangePrefixes(this.prefixes, undefined, onPage);
        // A reader that does not page (or pages only partly) returns the rest here.
        if (listed.kvs.length > 0) onPage(listed.kvs, listed.revision);
        revision = listed.revision;
      } catch (e) {
        if (consumerError) throw consumerError.e;
        if (this.closed || gen !== this.generation) return;
        this.reportOutOfSync(e instanceof Error ? e : new Error(String(e)));
        await new Promise<void>((r) => {
          this.timer = setTimeout(r, delay);
        });
        delay = Math.min(delay * 2, MAX_RETRY_MS);
        continue;
      }
      if (this.closed || gen !== this.generation) return;
      this.emitVanished(seen, revision);
      this.startWatchers(gen, revision);
      this.outOfSyncReported = false;
      this.sink.onInSync(revision);
      return;
    }
  }

  private reportOutOfSync(err: Error): void {
    if (this.outOfSyncReported) return;
    this.outOfSyncReported = true;
    this.sink.onOutOfSync?.(err);
  }

  /** Remembers a put; with retainValues a compact copy of the value (not a view into the page). */
  private remember(key: string, mod: bigint, value: Buffer): void {
    this.known.set(key, mod);
    this.values?.set(key, Buffer.from(value));
  }

  private forget(key: string): Buffer | null {
    this.known.delete(key);
    const prev = this.values?.get(key) ?? null;
    this.values?.delete(key);
    return prev;
  }

  /** One page of a listing: emits the keys that are new or changed since last emitted. */
  private emitPage(kvs: IKeyValue[], seen: Set<string>): void {
    const changes: RawChange[] = [];
    for (const kv of kvs) {
      const key = kv.key.toString();
      const mod = BigInt(kv.mod_revision);
      seen.add(key);
      const had = this.known.get(key);
      if (had === mod) continue;
      this.remember(key, mod, kv.value);
      changes.push({ type: 'put', key, value: kv.value, modRevision: mod, created: had === undefined });
    }
    if (changes.length > 0) this.sink.onChanges(changes);
  }

  /** After a complete listing: deletes for every key emitted before that the listing lacks. */
  private emitVanished(seen: Set<string>, revision: bigint): void {
    const changes: RawChange[] = [];
    for (const key of this.known.keys()) {
      if (seen.has(key)) continue;
      changes.push({ type: 'delete', key, modRevision: revision, prev: this.forget(key) });
    }
    if (changes.length > 0) this.sink.onChanges(changes);
  }

  private startWatchers(gen: number, revision: bigint): void {
    for (const prefix of this.prefixes) {
      const w = this.client
        .watch()
        .prefix(prefix)
        .startRevision(String(revision + 1n))
        .watcher();
      // Listeners go on before the watch is sent: an unlistened 'error' would throw.
      w.on('data', (res: IWatchResponse) => this.onData(gen, res));
      w.on('error', (err: Error) => {
        // etcd cancelled this watch (compaction): etcd3 has already dropped it, nothing to cancel.
        this.watchers = this.watchers.filter((x) => x !== w);
        this.fail(gen, err);
      });
      w.on('disconnected', (err: Error) => this.fail(gen, err));
      this.watchers.push(w);
    }
  }

  private onData(gen: number, res: IWatchResponse): void {
    if (gen !== this.generation || this.closed || res.events.length === 0) return;
    const changes: RawChange[] = [];
    for (const ev of res.events) {
      const key = ev.kv.key.toString();
      const mod = BigInt(ev.kv.mod_revision);
      const had = this.known.get(key);
      if (ev.type === 'Put') {
        if (had !== undefined && had >= mod) continue; // already seen through a list
        this.remember(key, mod, ev.kv.value);
        changes.push({ type: 'put', key, value: ev.kv.value, modRevision: mod, created: had === undefined });
      } else {
        if (had === undefined) continue;
        changes.push({ type: 'delete', key, modRevision: mod, prev: this.forget(key) });
      }
    }
    if (changes.length > 0) this.sink.onChanges(changes);
  }
}

// The resync engine behind every store watch (resources and raw keys alike).
//
// Contract (store/api.ts): list the prefixes at one revision R, emit the difference against what
// this watcher emitted before (everything, the first time), signal in-sync at R, then stream
// deltas from R+1. On ANY watch error — compaction ("Watcher canceled"), a dropped stream, etcd
// down — drop the etcd watchers, report out-of-sync, and start over with a fresh list. The diff
// makes a resync invisible to the consumer except for the changes it really missed, including
// deletes of keys that vanished meanwhile. (Calico: watchersyncer/watchercache.go.)
import type { Etcd3, IKeyValue, IWatchResponse, Watcher } from 'etcd3';

export type RawChange =
  | { type: 'put'; key: string; value: Buffer; modRevision: bigint; created: boolean }
  | { type: 'delete'; key: string; modRevision: bigint; prev: Buffer | null };

export interface RawSink {
  onChanges(changes: RawChange[]): void;
  onInSync(revision: bigint): void;
  onOutOfSync?(reason: Error): void;
}

export interface RangeReader {
  /** All keys under the prefixes, read at one revision (paged). */
  rangePrefixes(prefixes: string[]): Promise<{ kvs: IKeyValue[]; revision: bigint }>;
}

const MIN_RETRY_MS = 100;
/** Capped low so that a restarted etcd is picked up within ~1–2 s. */
const MAX_RETRY_MS = 1000;

export class ResyncingWatch {
  private readonly known = new Map<string, { mod: bigint; value: Buffer }>();
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
  ) {}

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
      let listed: { kvs: IKeyValue[]; revision: bigint };
      try {
        listed = await this.reader.rangePrefixes(this.prefixes);
      } catch (e) {
        if (this.closed || gen !== this.generation) return;
        this.reportOutOfSync(e instanceof Error ? e : new Error(String(e)));
        await new Promise<void>((r) => {
          this.timer = setTimeout(r, delay);
        });
        delay = Math.min(delay * 2, MAX_RETRY_MS);
        continue;
      }
      if (this.closed || gen !== this.generation) return;
      // Outside the try: an exception thrown by the consumer is its bug, not an etcd failure,
      // and must not be retried as one.
      this.emitDiff(listed.kvs, listed.revision);
      this.startWatchers(gen, listed.revision);
      this.outOfSyncReported = false;
      this.sink.onInSync(listed.revision);
      return;
    }
  }

  private reportOutOfSync(err: Error): void {
    if (this.outOfSyncReported) return;
    this.outOfSyncReported = true;
    this.sink.onOutOfSync?.(err);
  }

  private emitDiff(kvs: IKeyValue[], revision: bigint): void {
    const changes: RawChange[] = [];
    const seen = new Set<string>();
    for (const kv of kvs) {
      const key = kv.key.toString();
      const mod = BigInt(kv.mod_revision);
      seen.add(key);
      const had = this.known.get(key);
      if (had && had.mod === mod) continue;
      this.known.set(key, { mod, value: kv.value });
      changes.push({ type: 'put', key, value: kv.value, modRevision: mod, created: !had });
    }
    for (const [key, had] of this.known) {
      if (seen.has(key)) continue;
      this.known.delete(key);
      changes.push({ type: 'delete', key, modRevision: revision, prev: had.value });
    }
    if (changes.length > 0) this.sink.onChanges(changes);
  }

  private startWatchers(gen: number, revision: bigint): void {
    for (const prefix of this.prefixes) {
      const w = this.client
        .watch()
        .prefix(prefix)
        .withPreviousKV()
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
        if (had && had.mod >= mod) continue; // already seen through a list
        this.known.set(key, { mod, value: ev.kv.value });
        changes.push({ type: 'put', key, value: ev.kv.value, modRevision: mod, created: !had });
      } else {
        if (!had) continue;
        this.known.delete(key);
        changes.push({ type: 'delete', key, modRevision: mod, prev: had.value });
      }
    }
    if (changes.length > 0) this.sink.onChanges(changes);
  }
}

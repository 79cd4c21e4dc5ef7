// Adj-RIB-In and Loc-RIB in one table: each destination holds every peer's path for it (the
// peer's Adj-RIB-In entry, pre-policy attributes kept beside the accepted ones) and the selected
// best path(s). One PrefixMap keyed by prefix key (a number for IPv4: see prefix.ts); attribute
// sets are shared (interned) objects, and a destination with a single path is that path itself,
// so the common route costs one map entry and no object of its own.
import type { RouteAttrs } from './attrs.js';
import { selectBest } from './decision.js';
import { type PrefixKey, PrefixMap } from './prefix.js';
import type { RouteSource } from './source.js';

export interface Path {
  readonly source: RouteSource;
  /** As received (pre-import-policy): Adj-RIB-In. */
  readonly raw: RouteAttrs;
  /** After import policy and loop checks; null = not eligible (rejected). */
  readonly attrs: RouteAttrs | null;
  /**
   * Graceful restart: kept from a restarting peer until End-of-RIB or the restart timer.
   * Path objects are shared by every prefix learned with the same (source, attributes) — one
   * per UPDATE rather than one per route — so this is never flipped in place: the table swaps
   * in a private stale copy instead.
   */
  readonly stale: boolean;
}

/**
 * A destination several sources have a path for. The common case — one path — is stored as the
 * bare Path instead (no Dest, no array): at a million routes that is most of the table's memory
 * and allocation, and with one path the decision process is trivial (best = it, if eligible).
 */
class Dest {
  constructor(
    public paths: Path[],
    /** The best path; with ECMP its equal-cost siblings follow in `siblings`. */
    public best: Path | null,
    public siblings: Path[] | null,
  ) {}
}

type Entry = Path | Dest;

const NO_BEST: readonly Path[] = Object.freeze([]);

export type BestChangeListener = (prefix: PrefixKey, best: readonly Path[]) => void;

export interface SourceCounts {
  received: number;
  accepted: number;
}

export class Rib {
  private readonly dests = new PrefixMap<Entry>();
  private readonly counts = new Map<string, SourceCounts>();
  /** Destinations with a best path (the Loc-RIB's size). */
  bestCount = 0;
  /** The last non-stale path made: a run of prefixes from one UPDATE shares it. */
  private lastPath: Path | null = null;
  /** Sources that may still have stale paths (set by markStale, cleared by a sweep that finds none left). */
  private readonly staleSources = new Set<string>();
  /** `[lastPath]`, frozen: the best-path list handed to the listener for a single-path prefix. */
  private lastSingle: readonly Path[] = NO_BEST;

  constructor(
    private readonly opts: { ecmp: boolean },
    private readonly onBestChange: BestChangeListener,
  ) {}

  /** Installs or replaces `source`'s path for `prefix`. */
  set(source: RouteSource, prefix: PrefixKey, raw: RouteAttrs, attrs: RouteAttrs | null): void {
    this.setWith(source, prefix, raw, attrs, this.countsOf(source.id));
  }

  /**
   * Installs one source's paths for many prefixes sharing one attribute set (one UPDATE's NLRI):
   * the counters are looked up once. `attrsOf` gives the post-import attributes per prefix.
   */
  setMany(
    source: RouteSource,
    prefixes: readonly PrefixKey[],
    raw: RouteAttrs,
    attrsOf: (prefix: PrefixKey) => RouteAttrs | null,
  ): void {
    const c = this.countsOf(source.id);
    for (const prefix of prefixes) this.setWith(source, prefix, raw, attrsOf(prefix), c);
  }

  private setWith(
    source: RouteSource,
    prefix: PrefixKey,
    raw: RouteAttrs,
    attrs: RouteAttrs | null,
    c: SourceCounts,
  ): void {
    const e = this.dests.get(prefix);
    if (e === undefined) {
      const path = this.pathFor(source, raw, attrs);
      this.dests.set(prefix, path);
      c.received++;
      if (attrs !== null) {
        c.accepted++;
        this.bestCount++;
        this.onBestChange(prefix, this.lastSingle);
      }
      return;
    }
    if (!(e instanceof Dest)) {
      if (e.source.id === source.id) {
        if (e.raw === raw && e.attrs === attrs) {
          // Re-learned after a graceful restart: same route, no churn.
          if (e.stale) this.dests.set(prefix, this.pathFor(source, raw, attrs));
          return;
        }
        const path = this.pathFor(source, raw, attrs);
        this.dests.set(prefix, path);
        if (e.attrs !== null) c.accepted--;
        if (attrs !== null) c.accepted++;
        this.bestCount += (attrs !== null ? 1 : 0) - (e.attrs !== null ? 1 : 0);
        // One source: the best changes exactly when its eligible attributes do.
        if (e.attrs !== attrs) this.onBestChange(prefix, attrs !== null ? this.lastSingle : NO_BEST);
        return;
      }
      // A second source: from here on a full destination with the decision process.
      const path = this.pathFor(source, raw, attrs);
      const d = new Dest([e, path], e.attrs !== null ? e : null, null);
      this.dests.set(prefix, d);
      c.received++;
      if (attrs !== null) c.accepted++;
      this.reselect(prefix, d);
      return;
    }
    const d = e;
    const path = this.pathFor(source, raw, attrs);
    const i = d.paths.findIndex((p) => p.source.id === source.id);
    if (i >= 0) {
      const old = d.paths[i]!;
      if (old.raw === raw && old.attrs === attrs) {
        if (old.stale) replaceIn(d, i, path);
        return;
      }
      if (old.attrs !== null) c.accepted--;
      d.paths[i] = path;
    } else {
      d.paths.push(path);
      c.received++;
    }
    if (attrs !== null) c.accepted++;
    this.reselect(prefix, d);
  }

  /** Removes `source`'s path for `prefix`; false when it had none. */
  remove(sourceId: string, prefix: PrefixKey): boolean {
    const e = this.dests.get(prefix);
    if (e === undefined) return false;
    if (!(e instanceof Dest)) {
      if (e.source.id !== sourceId) return false;
      const c = this.countsOf(sourceId);
      c.received--;
      this.dests.delete(prefix);
      if (e.attrs !== null) {
        c.accepted--;
        this.bestCount--;
        this.onBestChange(prefix, NO_BEST);
      }
      return true;
    }
    const d = e;
    const i = d.paths.findIndex((p) => p.source.id === sourceId);
    if (i < 0) return false;
    const c = this.countsOf(sourceId);
    c.received--;
    if (d.paths[i]!.attrs !== null) c.accepted--;
    d.paths.splice(i, 1);
    this.reselect(prefix, d);
    if (d.paths.length === 0) this.dests.delete(prefix);
    else if (d.paths.length === 1) this.dests.set(prefix, d.paths[0]!); // back to the compact form
    return true;
  }

  /** Removes every path of a source matching `filter` (all of them by default); returns how many. */
  removeSource(sourceId: string, filter?: (prefix: PrefixKey, p: Path) => boolean): number {
    let n = 0;
    this.dests.forEach((e, prefix) => {
      const p = pathOf(e, sourceId);
      if (p && (!filter || filter(prefix, p)) && this.remove(sourceId, prefix)) n++;
    });
    if (!filter) {
      this.counts.delete(sourceId);
      this.staleSources.delete(sourceId);
    }
    return n;
  }

  /** Graceful restart helper: marks a source's paths (optionally of some prefixes only) stale. */
  markStale(sourceId: string, filter?: (prefix: PrefixKey) => boolean): number {
    let n = 0;
    // One stale copy per shared path, not one per prefix.
    const copies = new Map<Path, Path>();
    const staleOf = (p: Path): Path => {
      let c = copies.get(p);
      if (c === undefined) {
        c = { ...p, stale: true };
        copies.set(p, c);
      }
      return c;
    };
    this.dests.forEach((e, prefix) => {
      if (filter && !filter(prefix)) return;
      if (!(e instanceof Dest)) {
        if (e.source.id !== sourceId) return;
        if (!e.stale) this.dests.set(prefix, staleOf(e));
        n++;
        return;
      }
      const i = e.paths.findIndex((x) => x.source.id === sourceId);
      if (i < 0) return;
      const p = e.paths[i]!;
      if (!p.stale) replaceIn(e, i, staleOf(p));
      n++;
    });
    if (n > 0) this.staleSources.add(sourceId);
    return n;
  }

  /** Drops the source's paths still stale (after End-of-RIB or the restart/stale timer). */
  sweepStale(sourceId: string, filter?: (prefix: PrefixKey) => boolean): number {
    // Every End-of-RIB asks: without this, a full table would be walked for nothing.
    if (!this.staleSources.has(sourceId)) return 0;
    let left = 0;
    const n = this.removeSource(sourceId, (prefix, p) => {
      if (!p.stale) return false;
      if (!filter || filter(prefix)) return true;
      left++;
      return false;
    });
    if (left === 0) this.staleSources.delete(sourceId);
    return n;
  }

  /** Re-runs import for every path of a source (policy changed): `reimport(prefix, raw)` gives new attrs. */
  reimport(sourceId: string, reimport: (prefix: PrefixKey, raw: RouteAttrs) => RouteAttrs | null): void {
    this.dests.forEach((e, prefix) => {
      const p = pathOf(e, sourceId);
      if (p) this.set(p.source, prefix, p.raw, reimport(prefix, p.raw));
    });
  }

  best(prefix: PrefixKey): readonly Path[] {
    const e = this.dests.get(prefix);
    return e === undefined ? NO_BEST : bestOf(e);
  }

  /** The first best path alone (no array): the export loop's question. */
  bestPath(prefix: PrefixKey): Path | null {
    const e = this.dests.get(prefix);
    if (e === undefined) return null;
    if (e instanceof Dest) return e.best;
    return e.attrs !== null ? e : null;
  }

  paths(prefix: PrefixKey): readonly Path[] {
    const e = this.dests.get(prefix);
    if (e === undefined) return NO_BEST;
    return e instanceof Dest ? e.paths : [e];
  }

  /** Loc-RIB: every destination with a best path. */
  bestRoutes(): Array<[PrefixKey, readonly Path[]]> {
    const out: Array<[PrefixKey, readonly Path[]]> = [];
    this.dests.forEach((e, prefix) => {
      const b = bestOf(e);
      if (b.length > 0) out.push([prefix, b]);
    });
    return out;
  }

  /** Prefixes of every destination with a best path (no per-route arrays). */
  bestPrefixes(): PrefixKey[] {
    const out: PrefixKey[] = [];
    this.dests.forEach((e, prefix) => {
      if (e instanceof Dest ? e.best !== null : e.attrs !== null) out.push(prefix);
    });
    return out;
  }

  /** A source's Adj-RIB-In. */
  adjRibIn(sourceId: string): Array<[PrefixKey, Path]> {
    const out: Array<[PrefixKey, Path]> = [];
    this.dests.forEach((e, prefix) => {
      const p = pathOf(e, sourceId);
      if (p) out.push([prefix, p]);
    });
    return out;
  }

  countsOf(sourceId: string): SourceCounts {
    let c = this.counts.get(sourceId);
    if (!c) {
      c = { received: 0, accepted: 0 };
      this.counts.set(sourceId, c);
    }
    return c;
  }

  get size(): number {
    return this.dests.size;
  }

  /** A non-stale path for (source, raw, attrs), shared with the previous prefix when they match. */
  private pathFor(source: RouteSource, raw: RouteAttrs, attrs: RouteAttrs | null): Path {
    const l = this.lastPath;
    if (l !== null && l.source === source && l.raw === raw && l.attrs === attrs) return l;
    const p: Path = { source, raw, attrs, stale: false };
    this.lastPath = p;
    this.lastSingle = Object.freeze([p]);
    return p;
  }

  private reselect(prefix: PrefixKey, d: Dest): void {
    const best = d.paths.length === 0 ? NO_BEST : selectBest(d.paths, this.opts.ecmp);
    const changed = !sameBest(best, destBest(d));
    this.bestCount += (best.length > 0 ? 1 : 0) - (d.best ? 1 : 0);
    d.best = best[0] ?? null;
    d.siblings = best.length > 1 ? best.slice(1) : null;
    if (changed) this.onBestChange(prefix, best);
  }
}

/** Swaps paths[i] for an equivalent path object (only `stale` differs), keeping best/siblings pointing at it. */
function replaceIn(d: Dest, i: number, next: Path): void {
  const old = d.paths[i]!;
  d.paths[i] = next;
  if (d.best === old) d.best = next;
  if (d.siblings) d.siblings = d.siblings.map((x) => (x === old ? next : x));
}

function pathOf(e: Entry, sourceId: string): Path | undefined {
  if (e instanceof Dest) return e.paths.find((x) => x.source.id === sourceId);
  return e.source.id === sourceId ? e : undefined;
}

function bestOf(e: Entry): readonly Path[] {
  if (e instanceof Dest) return destBest(e);
  return e.attrs !== null ? [e] : NO_BEST;
}

function destBest(d: Dest): readonly Path[] {
  if (!d.best) return NO_BEST;
  return d.siblings ? [d.best, ...d.siblings] : [d.best];
}

function sameBest(a: readonly Path[], b: readonly Path[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++)
    if (a[i]!.source !== b[i]!.source || a[i]!.attrs !== b[i]!.attrs) return false;
  return true;
}

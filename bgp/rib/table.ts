// Adj-RIB-In and Loc-RIB in one table: each destination holds every peer's path for it (the
// peer's Adj-RIB-In entry, pre-policy attributes kept beside the accepted ones) and the selected
// best path(s). One Map keyed by canonical prefix text; paths and attribute sets are shared
// objects, so a route costs one map entry, one small destination and one path object.
import type { RouteAttrs } from './attrs.js';
import { selectBest } from './decision.js';
import type { RouteSource } from './source.js';

export interface Path {
  readonly source: RouteSource;
  /** As received (pre-import-policy): Adj-RIB-In. */
  readonly raw: RouteAttrs;
  /** After import policy and loop checks; null = not eligible (rejected). */
  readonly attrs: RouteAttrs | null;
  /** Graceful restart: kept from a restarting peer until End-of-RIB or the restart timer. */
  stale: boolean;
}

interface Dest {
  paths: Path[];
  /** The best path; with ECMP its equal-cost siblings follow in `siblings`. */
  best: Path | null;
  siblings: Path[] | null;
}

const NO_BEST: readonly Path[] = Object.freeze([]);

export type BestChangeListener = (prefix: string, best: readonly Path[]) => void;

export interface SourceCounts {
  received: number;
  accepted: number;
}

export class Rib {
  private readonly dests = new Map<string, Dest>();
  private readonly counts = new Map<string, SourceCounts>();
  /** Destinations with a best path (the Loc-RIB's size). */
  bestCount = 0;

  constructor(
    private readonly opts: { ecmp: boolean },
    private readonly onBestChange: BestChangeListener,
  ) {}

  /** Installs or replaces `source`'s path for `prefix`. */
  set(source: RouteSource, prefix: string, raw: RouteAttrs, attrs: RouteAttrs | null): void {
    const c = this.countsOf(source.id);
    const path: Path = { source, raw, attrs, stale: false };
    let d = this.dests.get(prefix);
    if (!d) {
      // An exact-size array: push() onto [] would reserve room for 17 paths.
      d = { paths: [path], best: null, siblings: null };
      this.dests.set(prefix, d);
      c.received++;
      if (attrs !== null) c.accepted++;
      this.reselect(prefix, d);
      return;
    }
    const i = d.paths.findIndex((p) => p.source.id === source.id);
    if (i >= 0) {
      const old = d.paths[i]!;
      if (old.raw === raw && old.attrs === attrs) {
        old.stale = false; // re-learned after a graceful restart: same route, no churn
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
  remove(sourceId: string, prefix: string): boolean {
    const d = this.dests.get(prefix);
    if (!d) return false;
    const i = d.paths.findIndex((p) => p.source.id === sourceId);
    if (i < 0) return false;
    const c = this.countsOf(sourceId);
    c.received--;
    if (d.paths[i]!.attrs !== null) c.accepted--;
    d.paths.splice(i, 1);
    this.reselect(prefix, d);
    if (d.paths.length === 0) this.dests.delete(prefix);
    return true;
  }

  /** Removes every path of a source matching `filter` (all of them by default); returns how many. */
  removeSource(sourceId: string, filter?: (prefix: string, p: Path) => boolean): number {
    let n = 0;
    for (const [prefix, d] of this.dests) {
      const p = d.paths.find((x) => x.source.id === sourceId);
      if (p && (!filter || filter(prefix, p)) && this.remove(sourceId, prefix)) n++;
    }
    if (!filter) this.counts.delete(sourceId);
    return n;
  }

  /** Graceful restart helper: marks a source's paths (optionally of some prefixes only) stale. */
  markStale(sourceId: string, filter?: (prefix: string) => boolean): number {
    let n = 0;
    for (const [prefix, d] of this.dests) {
      for (const p of d.paths) {
        if (p.source.id === sourceId && (!filter || filter(prefix))) {
          p.stale = true;
          n++;
        }
      }
    }
    return n;
  }

  /** Drops the source's paths still stale (after End-of-RIB or the restart/stale timer). */
  sweepStale(sourceId: string, filter?: (prefix: string) => boolean): number {
    return this.removeSource(sourceId, (prefix, p) => p.stale && (!filter || filter(prefix)));
  }

  /** Re-runs import for every path of a source (policy changed): `reimport(prefix, raw)` gives new attrs. */
  reimport(sourceId: string, reimport: (prefix: string, raw: RouteAttrs) => RouteAttrs | null): void {
    for (const [prefix, d] of this.dests) {
      const p = d.paths.find((x) => x.source.id === sourceId);
      if (p) this.set(p.source, prefix, p.raw, reimport(prefix, p.raw));
    }
  }

  best(prefix: string): readonly Path[] {
    const d = this.dests.get(prefix);
    return d ? bestOf(d) : NO_BEST;
  }

  paths(prefix: string): readonly Path[] {
    return this.dests.get(prefix)?.paths ?? NO_BEST;
  }

  /** Loc-RIB: every destination with a best path. */
  *bestRoutes(): IterableIterator<[string, readonly Path[]]> {
    for (const [prefix, d] of this.dests) if (d.best) yield [prefix, bestOf(d)];
  }

  /** A source's Adj-RIB-In. */
  *adjRibIn(sourceId: string): IterableIterator<[string, Path]> {
    for (const [prefix, d] of this.dests) {
      const p = d.paths.find((x) => x.source.id === sourceId);
      if (p) yield [prefix, p];
    }
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

  private reselect(prefix: string, d: Dest): void {
    const best = d.paths.length === 0 ? NO_BEST : selectBest(d.paths, this.opts.ecmp);
    const changed = !sameBest(best, bestOf(d));
    this.bestCount += (best.length > 0 ? 1 : 0) - (d.best ? 1 : 0);
    d.best = best[0] ?? null;
    d.siblings = best.length > 1 ? best.slice(1) : null;
    if (changed) this.onBestChange(prefix, best);
  }
}

function bestOf(d: Dest): readonly Path[] {
  if (!d.best) return NO_BEST;
  return d.siblings ? [d.best, ...d.siblings] : [d.best];
}

function sameBest(a: readonly Path[], b: readonly Path[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++)
    if (a[i]!.source !== b[i]!.source || a[i]!.attrs !== b[i]!.attrs) return false;
  return true;
}

// The BGP decision process (RFC 4271 §9.1.2.2) with the usual tie-breakers, and the ECMP
// "mergeable" relation. Pure functions over paths; GoBGP's BestPathReason order and BIRD's
// bgp_rte_better were the references for the order of steps.
import { asPathLength, DEFAULT_LOCAL_PREF, neighborAs } from './attrs.js';
import { ipv4ToNumber } from './source.js';
import type { Path } from './table.js';

/** Why a path won, for status output and tests. */
export type BestReason =
  | 'only-path'
  | 'local-pref'
  | 'local-origin'
  | 'as-path-length'
  | 'origin'
  | 'med'
  | 'ebgp-over-ibgp'
  | 'router-id'
  | 'cluster-list-length'
  | 'peer-address'
  | 'equal';

function localPref(p: Path): number {
  return p.attrs!.localPref ?? DEFAULT_LOCAL_PREF;
}

function originatorNum(p: Path): number {
  const o = p.attrs!.originatorId;
  return o ? ipv4ToNumber(o) : p.source.routerIdNum;
}

/**
 * Compares two eligible paths (attrs not null). Negative: a is better; positive: b is better.
 * Returns the deciding step as well.
 */
export function comparePaths(a: Path, b: Path): { cmp: number; reason: BestReason } {
  const A = a.attrs!;
  const B = b.attrs!;
  let d = localPref(b) - localPref(a);
  if (d !== 0) return { cmp: d, reason: 'local-pref' };
  if (a.source.local !== b.source.local) return { cmp: a.source.local ? -1 : 1, reason: 'local-origin' };
  d = asPathLength(A.asPath) - asPathLength(B.asPath);
  if (d !== 0) return { cmp: d, reason: 'as-path-length' };
  d = A.origin - B.origin;
  if (d !== 0) return { cmp: d, reason: 'origin' };
  // MED only between routes from the same neighbouring AS; a missing MED is 0 (RFC 4271 §9.1.2.2c).
  if (neighborAs(A.asPath) === neighborAs(B.asPath)) {
    d = (A.med ?? 0) - (B.med ?? 0);
    if (d !== 0) return { cmp: d, reason: 'med' };
  }
  if (a.source.ibgp !== b.source.ibgp) return { cmp: a.source.ibgp ? 1 : -1, reason: 'ebgp-over-ibgp' };
  d = originatorNum(a) - originatorNum(b);
  if (d !== 0) return { cmp: d, reason: 'router-id' };
  d = (A.clusterList?.length ?? 0) - (B.clusterList?.length ?? 0);
  if (d !== 0) return { cmp: d, reason: 'cluster-list-length' };
  if (a.source.addressNum !== b.source.addressNum) {
    return { cmp: a.source.addressNum < b.source.addressNum ? -1 : 1, reason: 'peer-address' };
  }
  return { cmp: 0, reason: 'equal' };
}

/**
 * Two paths are ECMP siblings when they tie up to (and including) the eBGP/iBGP step, as BIRD's
 * bgp_rte_mergable does: same local-pref, AS path length, origin, MED, and both eBGP or both iBGP.
 */
export function mergeable(a: Path, b: Path): boolean {
  const A = a.attrs!;
  const B = b.attrs!;
  return (
    localPref(a) === localPref(b) &&
    a.source.local === b.source.local &&
    asPathLength(A.asPath) === asPathLength(B.asPath) &&
    A.origin === B.origin &&
    (A.med ?? 0) === (B.med ?? 0) &&
    a.source.ibgp === b.source.ibgp &&
    A.nextHop !== B.nextHop
  );
}

/** The best path first, then (with ECMP) its mergeable siblings in preference order. */
export function selectBest(paths: readonly Path[], ecmp: boolean): Path[] {
  let best: Path | undefined;
  for (const p of paths) {
    if (p.attrs === null) continue;
    if (!best || comparePaths(p, best).cmp < 0) best = p;
  }
  if (!best) return [];
  if (!ecmp) return [best];
  const out = [best];
  const others = paths.filter((p) => p !== best && p.attrs !== null && mergeable(best, p));
  others.sort((x, y) => comparePaths(x, y).cmp);
  for (const o of others) if (!out.some((q) => q.attrs!.nextHop === o.attrs!.nextHop)) out.push(o);
  return out;
}

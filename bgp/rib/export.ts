// Which best path goes to which peer, and with what attributes: RFC 4271 §9.1.3 (iBGP split
// horizon), RFC 4456 (reflection, ORIGINATOR_ID / CLUSTER_LIST), eBGP AS prepend and next hop
// self. Pure; export policy runs after this on the result.
import { evaluatePolicy, type Policy } from '../policy.js';
import { DEFAULT_LOCAL_PREF, prependAs, type RouteAttrs } from './attrs.js';
import type { RouteSource } from './source.js';
import type { Path } from './table.js';

export interface ExportTarget {
  id: string;
  asn: number;
  ibgp: boolean;
  rrClient: boolean;
  /** The peer's BGP identifier, once known: reflected routes are not sent back to their originator. */
  routerId?: string;
  nextHopSelf: boolean;
  /** Our addresses usable as next hop on this session, per family ('' = none: family not exported). */
  selfNextHop4: string;
  selfNextHop6: string;
  policy?: Policy;
}

export interface LocalSpeaker {
  asn: number;
  routerId: string;
  /** Set when this speaker is a route reflector. */
  clusterId?: string;
}

export function prefixFamily(prefix: string): 4 | 6 {
  return prefix.includes(':') ? 6 : 4;
}

/** The attributes to advertise `best` with to `to`, or null when it must not be advertised. */
export function exportAttrs(
  prefix: string,
  best: Path,
  to: ExportTarget,
  local: LocalSpeaker,
): RouteAttrs | null {
  const base = baseExportAttrs(prefixFamily(prefix), best, to, local);
  return base === null ? null : applyExportPolicy(prefix, base, best, to);
}

/**
 * The prefix-independent part of export (everything but the policy): depends only on the
 * path's attributes and source, the target and the family, so callers can memoise it.
 */
export function baseExportAttrs(
  family: 4 | 6,
  best: Path,
  to: ExportTarget,
  local: LocalSpeaker,
): RouteAttrs | null {
  const src: RouteSource = best.source;
  const a = best.attrs;
  if (a === null) return null;
  if (src.id === to.id) return null; // never back to the peer it came from
  const self = family === 4 ? to.selfNextHop4 : to.selfNextHop6;
  const out: { -readonly [K in keyof RouteAttrs]: RouteAttrs[K] } = { ...a };
  let nextHopSelf = to.nextHopSelf || a.nextHop === '';
  const learnedIbgp = !src.local && src.ibgp;
  if (to.ibgp) {
    if (learnedIbgp) {
      // iBGP-learned to iBGP: only a reflector passes it on (RFC 4456 §6).
      if (!local.clusterId) return null;
      if (!src.rrClient && !to.rrClient) return null;
      const originator = a.originatorId ?? src.routerId;
      if (to.routerId !== undefined && to.routerId === originator) return null;
      out.originatorId = originator;
      out.clusterList = [local.clusterId, ...(a.clusterList ?? [])];
    }
    out.localPref = a.localPref ?? DEFAULT_LOCAL_PREF;
  } else {
    out.asPath = prependAs(a.asPath, local.asn);
    delete out.localPref;
    delete out.originatorId;
    delete out.clusterList;
    // A MED learned from one neighbouring AS is not passed to another (RFC 4271 §5.1.4).
    if (!src.local) delete out.med;
    nextHopSelf = true;
  }
  if (nextHopSelf) out.nextHop = self;
  if (out.nextHop === '' && !to.policy) return null;
  return out;
}

/** Runs the target's export policy; returns `base` itself when the policy changed nothing. */
export function applyExportPolicy(
  prefix: string,
  base: RouteAttrs,
  best: Path,
  to: ExportTarget,
): RouteAttrs | null {
  const family = prefixFamily(prefix);
  const out = evaluatePolicy(to.policy, prefix, base, {
    family,
    peerIbgp: to.ibgp,
    local: best.source.local,
    selfNextHop: family === 4 ? to.selfNextHop4 : to.selfNextHop6,
    originalNextHop: best.attrs?.nextHop ?? '',
  });
  if (out === null || out.nextHop === '') return null;
  return out;
}

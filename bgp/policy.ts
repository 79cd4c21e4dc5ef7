// Import/export policy hooks: an ordered list of statements (match → set → accept/reject/continue),
// like a BIRD filter or a GoBGP policy definition, evaluated per route. The library ships no
// site defaults: the agent builds Calico's (calico.md §4) from its configuration.
import { familyBits, type Prefix, parsePrefix, prefixContains } from '../lib/ip.js';
import type { LargeCommunity } from './codec/types.js';
import {
  isLargeCommunityText,
  parseCommunity,
  parseLargeCommunity,
  prependAs,
  type RouteAttrs,
} from './rib/attrs.js';

export interface PrefixMatch {
  /** "10.65.0.0/16" */
  prefix: string;
  /** Accepted prefix lengths; default exactly the prefix's own length. */
  minLen?: number;
  maxLen?: number;
}

export interface PolicyMatch {
  /** Any of these (prefix within `prefix`, length in [minLen, maxLen]). */
  prefixes?: PrefixMatch[];
  /** Any of these communities ("aa:nn" or large "aa:nn:mm") present on the route. */
  communities?: string[];
  family?: 4 | 6;
  /** The session this policy is applied on. */
  peerType?: 'ebgp' | 'ibgp';
  /** Routes this speaker originated (announce()) vs learned ones. */
  origin?: 'local' | 'learned';
}

export interface PolicySet {
  addCommunities?: string[];
  removeCommunities?: string[];
  localPref?: number;
  med?: number;
  /** "self": this speaker's session address; "keep": the route's next hop unchanged; else an address. */
  nextHop?: 'self' | 'keep' | string;
  prependAs?: { asn: number; times: number };
}

export interface PolicyStatement {
  name?: string;
  match?: PolicyMatch;
  set?: PolicySet;
  /** What to do when matched (after applying `set`); "continue" goes on to the next statement. */
  action: 'accept' | 'reject' | 'continue';
}

export interface Policy {
  statements: PolicyStatement[];
  /** When no statement accepted or rejected. */
  defaultAction: 'accept' | 'reject';
}

export interface PolicyContext {
  family: 4 | 6;
  peerIbgp: boolean;
  local: boolean;
  /** This speaker's address on the session for the route's family ('' when it has none). */
  selfNextHop: string;
  /** The next hop the route had before export processing. */
  originalNextHop: string;
}

export class PolicyError extends Error {
  constructor(
    readonly statement: string,
    readonly reason: string,
  ) {
    super(`policy statement ${statement}: ${reason}`);
    this.name = 'PolicyError';
  }
}

interface CompiledStatement {
  prefixes: Array<{ net: Prefix; min: number; max: number }> | null;
  communities: number[] | null;
  large: LargeCommunity[] | null;
  st: PolicyStatement;
  addStd: number[];
  addLarge: LargeCommunity[];
  removeStd: Set<number>;
  removeLarge: LargeCommunity[];
}

const compiled = new WeakMap<Policy, CompiledStatement[]>();

function splitCommunities(list: string[] | undefined): { std: number[]; large: LargeCommunity[] } {
  const std: number[] = [];
  const large: LargeCommunity[] = [];
  for (const c of list ?? []) {
    if (isLargeCommunityText(c)) large.push(parseLargeCommunity(c));
    else std.push(parseCommunity(c));
  }
  return { std, large };
}

/** Validates and pre-parses a policy (throws PolicyError on a bad prefix/community). */
export function compilePolicy(policy: Policy): CompiledStatement[] {
  const hit = compiled.get(policy);
  if (hit) return hit;
  const out = policy.statements.map((st, i): CompiledStatement => {
    const where = st.name ?? `#${i}`;
    try {
      const prefixes =
        st.match?.prefixes?.map((m) => {
          const net = parsePrefix(m.prefix);
          const min = m.minLen ?? net.len;
          const max = m.maxLen ?? net.len;
          if (min < net.len || max > familyBits(net.family) || min > max) {
            throw new PolicyError(where, `length range ${min}-${max} does not fit ${m.prefix}`);
          }
          return { net, min, max };
        }) ?? null;
      const m = st.match?.communities ? splitCommunities(st.match.communities) : null;
      const add = splitCommunities(st.set?.addCommunities);
      const rem = splitCommunities(st.set?.removeCommunities);
      return {
        prefixes,
        communities: m?.std ?? null,
        large: m?.large ?? null,
        st,
        addStd: add.std,
        addLarge: add.large,
        removeStd: new Set(rem.std),
        removeLarge: rem.large,
      };
    } catch (e) {
      if (e instanceof PolicyError) throw e;
      throw new PolicyError(where, (e as Error).message);
    }
  });
  compiled.set(policy, out);
  return out;
}

const sameLarge = (a: LargeCommunity, b: LargeCommunity) =>
  a.globalAdmin === b.globalAdmin && a.localData1 === b.localData1 && a.localData2 === b.localData2;

function matches(c: CompiledStatement, net: () => Prefix, a: RouteAttrs, ctx: PolicyContext): boolean {
  const m = c.st.match;
  if (!m) return true;
  if (m.family !== undefined && m.family !== ctx.family) return false;
  if (m.peerType !== undefined && (m.peerType === 'ibgp') !== ctx.peerIbgp) return false;
  if (m.origin !== undefined && (m.origin === 'local') !== ctx.local) return false;
  if (c.prefixes) {
    const p = net();
    if (!c.prefixes.some((x) => p.len >= x.min && p.len <= x.max && prefixContains(x.net, p))) return false;
  }
  if (c.communities || c.large) {
    const hasStd = (c.communities ?? []).some((v) => a.communities?.includes(v));
    const hasLarge = (c.large ?? []).some((v) => a.largeCommunities?.some((x) => sameLarge(x, v)));
    if (!hasStd && !hasLarge) return false;
  }
  return true;
}

function applySet(c: CompiledStatement, a: RouteAttrs, ctx: PolicyContext): RouteAttrs {
  const s = c.st.set;
  if (!s) return a;
  let out: { -readonly [K in keyof RouteAttrs]: RouteAttrs[K] } = { ...a };
  if (c.removeStd.size > 0 && out.communities)
    out.communities = out.communities.filter((v) => !c.removeStd.has(v));
  if (c.removeLarge.length > 0 && out.largeCommunities) {
    out.largeCommunities = out.largeCommunities.filter((x) => !c.removeLarge.some((r) => sameLarge(r, x)));
  }
  if (c.addStd.length > 0) {
    const cur = out.communities ?? [];
    out.communities = [...cur, ...c.addStd.filter((v) => !cur.includes(v))];
  }
  if (c.addLarge.length > 0) {
    const cur = out.largeCommunities ?? [];
    out.largeCommunities = [...cur, ...c.addLarge.filter((v) => !cur.some((x) => sameLarge(x, v)))];
  }
  if (out.communities?.length === 0) delete out.communities;
  if (out.largeCommunities?.length === 0) delete out.largeCommunities;
  if (s.localPref !== undefined) out.localPref = s.localPref;
  if (s.med !== undefined) out.med = s.med;
  if (s.nextHop === 'self') out.nextHop = ctx.selfNextHop;
  else if (s.nextHop === 'keep') out.nextHop = ctx.originalNextHop;
  else if (s.nextHop !== undefined) out.nextHop = s.nextHop;
  if (s.prependAs) {
    let path = out.asPath;
    for (let i = 0; i < s.prependAs.times; i++) path = prependAs(path, s.prependAs.asn);
    out = { ...out, asPath: path };
  }
  return out;
}

/**
 * Runs a policy over one route. Returns the (possibly modified) attributes, or null when rejected.
 * No policy = accept unchanged. The returned object is new only when a statement changed something.
 */
export function evaluatePolicy(
  policy: Policy | undefined,
  prefix: string,
  attrs: RouteAttrs,
  ctx: PolicyContext,
): RouteAttrs | null {
  if (!policy) return attrs;
  let net: Prefix | undefined;
  const lazyNet = () => {
    net ??= parsePrefix(prefix);
    return net;
  };
  let a = attrs;
  for (const c of compilePolicy(policy)) {
    if (!matches(c, lazyNet, a, ctx)) continue;
    a = applySet(c, a, ctx);
    if (c.st.action === 'accept') return a;
    if (c.st.action === 'reject') return null;
  }
  return policy.defaultAction === 'accept' ? a : null;
}

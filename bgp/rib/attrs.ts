// Path attributes as the RIB holds them: the codec's PathAttributes without the MP_REACH /
// MP_UNREACH carriers (their next hop is folded into `nextHop`), frozen and interned so that
// the thousands of routes sharing one attribute set share one object (memory, and identity
// comparison when packing UPDATEs).
import type { AsPathSegment, LargeCommunity, Origin, PathAttributes } from '../codec/types.js';

export type RouteAttrs = Readonly<Omit<PathAttributes, 'mpReach' | 'mpUnreach'>> & {
  readonly origin: Origin;
  readonly asPath: readonly AsPathSegment[];
  /** The next hop for the route's own family ('' when none, e.g. before next-hop-self on export). */
  readonly nextHop: string;
};

export const ORIGIN_IGP: Origin = 0;
export const DEFAULT_LOCAL_PREF = 100;

function canonicalKey(a: RouteAttrs): string {
  return JSON.stringify(a, (_k, v: unknown) =>
    v instanceof Uint8Array ? Buffer.from(v).toString('hex') : v,
  );
}

/**
 * Hands out one shared frozen object per distinct attribute set. Entries are weak: an attribute
 * set no route uses any more is collected and its key dropped.
 */
export class AttrInterner {
  private readonly byKey = new Map<string, WeakRef<RouteAttrs>>();
  private readonly registry = new FinalizationRegistry<string>((key) => {
    const ref = this.byKey.get(key);
    if (ref && ref.deref() === undefined) this.byKey.delete(key);
  });
  /** The last few results, so a run of identical lookups skips the key computation. */
  private lastIn: RouteAttrs | undefined;
  private lastOut: RouteAttrs | undefined;

  intern(a: RouteAttrs): RouteAttrs {
    if (a === this.lastIn || a === this.lastOut) return this.lastOut!;
    const key = canonicalKey(a);
    const hit = this.byKey.get(key)?.deref();
    if (hit) {
      this.lastIn = a;
      this.lastOut = hit;
      return hit;
    }
    const frozen = deepFreeze(a);
    this.byKey.set(key, new WeakRef(frozen));
    this.registry.register(frozen, key);
    this.lastIn = frozen;
    this.lastOut = frozen;
    return frozen;
  }

  get size(): number {
    return this.byKey.size;
  }
}

function deepFreeze<T>(o: T): T {
  if (o && typeof o === 'object' && !(o instanceof Uint8Array) && !Object.isFrozen(o)) {
    Object.freeze(o);
    for (const v of Object.values(o as object)) deepFreeze(v);
  }
  return o;
}

/** AS_PATH length for the decision process: a set counts 1, confederation segments 0 (RFC 4271 §9.1.2.2a, RFC 5065). */
export function asPathLength(path: readonly AsPathSegment[]): number {
  let n = 0;
  for (const s of path) {
    if (s.type === 'sequence') n += s.asns.length;
    else if (s.type === 'set') n += 1;
  }
  return n;
}

/** The neighbouring AS a route came through: the first AS of the path, or 0 for a local / iBGP-internal route. */
export function neighborAs(path: readonly AsPathSegment[]): number {
  const first = path.find((s) => s.type === 'sequence' || s.type === 'set');
  return first?.asns[0] ?? 0;
}

export function asPathContains(path: readonly AsPathSegment[], asn: number): boolean {
  return path.some((s) => s.asns.includes(asn));
}

export function prependAs(path: readonly AsPathSegment[], asn: number): AsPathSegment[] {
  const first = path[0];
  if (first && first.type === 'sequence' && first.asns.length < 255) {
    return [{ type: 'sequence', asns: [asn, ...first.asns] }, ...path.slice(1)];
  }
  return [{ type: 'sequence', asns: [asn] }, ...path];
}

export class CommunityParseError extends Error {
  constructor(readonly input: string) {
    super(`invalid community "${input}": expected "aa:nn" (16-bit each) or large "aa:nn:mm" (32-bit each)`);
    this.name = 'CommunityParseError';
  }
}

/** "65000:100" → 32-bit value (RFC 1997). */
export function parseCommunity(text: string): number {
  const m = /^(\d+):(\d+)$/.exec(text);
  if (!m) throw new CommunityParseError(text);
  const hi = Number(m[1]);
  const lo = Number(m[2]);
  if (hi > 0xffff || lo > 0xffff) throw new CommunityParseError(text);
  return hi * 0x10000 + lo;
}

export function formatCommunity(v: number): string {
  return `${Math.floor(v / 0x10000)}:${v & 0xffff}`;
}

/** "65000:1:2" → large community (RFC 8092). */
export function parseLargeCommunity(text: string): LargeCommunity {
  const m = /^(\d+):(\d+):(\d+)$/.exec(text);
  if (!m) throw new CommunityParseError(text);
  const [g, d1, d2] = [Number(m[1]), Number(m[2]), Number(m[3])];
  if (g > 0xffffffff || d1 > 0xffffffff || d2 > 0xffffffff) throw new CommunityParseError(text);
  return { globalAdmin: g, localData1: d1, localData2: d2 };
}

export function formatLargeCommunity(c: LargeCommunity): string {
  return `${c.globalAdmin}:${c.localData1}:${c.localData2}`;
}

/** Either kind of community from its text form (two numbers = standard, three = large). */
export function isLargeCommunityText(text: string): boolean {
  return text.split(':').length === 3;
}

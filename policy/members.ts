// Selector → members index, and the nft sets built from the members. Pure.
//
// The compiler asks "which address objects does this (scope, selector) match" and "give me the
// set of their addresses"; this index answers from memory and keeps the answers current as objects
// come, go or change, one object at a time: on a change only the entries the object matches (before
// or after) move, and their sets get element deltas. Entries nobody asked for in the last full pass
// are dropped (sweep), so the per-change work is bounded by the selectors in use.
//
// Sets handed out are never mutated afterwards: after `publish()` the next change copies the set
// first (copy-on-write), so a ruleset snapshot the applier holds stays what it applied.

import type { Family, Prefix } from '../lib/ip.js';
import { type AddressObject, type EntityMatch, matchesEntity, NAMESPACE_LABEL } from './model.js';
import { type ElemKey, elemKey, prefixSetExpr, type SetSpec } from './nft.js';

type Recipe =
  | { kind: 'host'; f: Family }
  | { kind: 'net'; f: Family }
  | { kind: 'np'; f: Family; names: readonly string[]; protocol: number };

interface BuiltSet {
  spec: SetSpec;
  recipe: Recipe;
  /** Generation the spec object was made in: older ones are published and copied before a change. */
  gen: number;
  /** Host sets: extra contributors per element beyond the first (two endpoints with one address). */
  dups: Map<string, number> | null;
}

interface Entry {
  em: EntityMatch;
  members: Set<AddressObject>;
  /** Full pass that last asked for it. */
  used: number;
  sets: Map<string, BuiltSet>;
  /** Rendered rules depend on the members' ports (named ports): a change re-renders chains. */
  portsUsed: boolean;
  /** Members with CIDRs per family: an interval set exists exactly when there are some. */
  nets4: number;
  nets6: number;
  /** shortHash(em.key): names its sets. */
  hash: string;
}

/** The set name for a (match, recipe): stable, so rules keep referring to the same set. */
function shortHash(s: string): string {
  // FNV-1a 64 → 12 hex chars: stable, no crypto dependency in the pure core.
  let h = 0xcbf29ce484222325n;
  for (let i = 0; i < s.length; i++) {
    h ^= BigInt(s.charCodeAt(i));
    h = (h * 0x100000001b3n) & 0xffffffffffffffffn;
  }
  return h.toString(16).padStart(16, '0').slice(0, 12);
}

const NOTHING: readonly AddressObject[] = Object.freeze([]);

export class SelectorIndex {
  /** An index over `objects` with these namespaces (a one-shot compile). */
  static of(
    objects: Iterable<AddressObject>,
    namespaces: ReadonlyMap<string, Record<string, string>>,
  ): SelectorIndex {
    const ix = new SelectorIndex();
    ix.setNamespaces(namespaces);
    for (const o of objects) ix.update(undefined, o, false);
    return ix;
  }

  private readonly objects = new Set<AddressObject>();
  /** label key → value → objects, only for keys some selector's `k == v` term uses. */
  private readonly byKey = new Map<string, Map<string, Set<AddressObject>>>();
  private readonly entries = new Map<string, Entry>();
  private readonly byName = new Map<string, BuiltSet>();
  private namespaces: ReadonlyMap<string, Record<string, string>> = new Map();
  private namespacesSig = '';
  private pass = 0;
  private gen = 1;
  /** Set names whose elements changed since `takeChanged()`. */
  private changed = new Set<string>();
  /** A change that rendered rules depend on (an interval set appeared, a named port moved). */
  private chainsStale = false;

  get size(): { objects: number; entries: number } {
    return { objects: this.objects.size, entries: this.entries.size };
  }

  /** Namespace labels decide `namespaceSelector` scopes: when they change, every entry is recomputed. */
  setNamespaces(ns: ReadonlyMap<string, Record<string, string>>): void {
    this.namespaces = ns;
    const sig = JSON.stringify([...ns].sort((a, b) => (a[0] < b[0] ? -1 : 1)));
    if (sig === this.namespacesSig) return;
    this.namespacesSig = sig;
    this.dropEntries();
  }

  /**
   * Replaces `prev` by `next` (either may be absent). `track` = false skips the entries (a bulk load
   * drops them instead: recomputing lazily is cheaper than 100k × selectors evaluations).
   */
  update(prev: AddressObject | undefined, next: AddressObject | undefined, track = true): void {
    if (prev === next) return;
    if (prev) {
      this.objects.delete(prev);
      for (const [k, byVal] of this.byKey) {
        const v = prev.labels[k];
        if (v !== undefined) byVal.get(v)?.delete(prev);
      }
    }
    if (next) {
      this.objects.add(next);
      for (const [k, byVal] of this.byKey) {
        const v = next.labels[k];
        if (v === undefined) continue;
        const s = byVal.get(v);
        if (s) s.add(next);
        else byVal.set(v, new Set([next]));
      }
    }
    if (!track) return;
    for (const e of this.entries.values()) {
      const was = prev !== undefined && e.members.has(prev);
      const is = next !== undefined && matchesEntity(e.em, next, this.namespaces);
      if (!was && !is) continue;
      if (was) {
        e.members.delete(prev);
        countNets(e, prev, -1);
      }
      if (is) {
        e.members.add(next);
        countNets(e, next, 1);
      }
      this.moved(e, was ? prev : undefined, is ? next : undefined);
    }
  }

  /** Forget every entry (bulk changes): the next full pass recomputes what it uses. */
  dropEntries(): void {
    if (this.entries.size === 0) return;
    for (const e of this.entries.values()) for (const name of e.sets.keys()) this.changed.add(name);
    this.entries.clear();
    this.byName.clear();
    this.chainsStale = true;
  }

  /** Starts a full pass: entries it does not ask for are dropped by `sweep()`. */
  beginPass(): void {
    this.pass++;
    this.chainsStale = false;
  }

  sweep(): void {
    for (const [k, e] of this.entries) {
      if (e.used === this.pass) continue;
      this.entries.delete(k);
      for (const name of e.sets.keys()) this.byName.delete(name);
    }
  }

  /** The next change copies sets before touching them: what was handed out stays as it was. */
  publish(): void {
    this.gen++;
  }

  /** Sets whose elements changed since the last call, and whether rendered chains may be stale. */
  takeChanged(): { sets: Set<string>; chainsStale: boolean } {
    const out = { sets: this.changed, chainsStale: this.chainsStale };
    this.changed = new Set();
    this.chainsStale = false;
    return out;
  }

  /** Current spec of a set this index built (after a change: the updated copy). */
  set(name: string): SetSpec | undefined {
    return this.byName.get(name)?.spec;
  }

  members(em: EntityMatch): ReadonlySet<AddressObject> {
    return this.entry(em).members;
  }

  /** Named-port rules depend on members' ports: mark so a port change re-renders them. */
  membersForPorts(em: EntityMatch): ReadonlySet<AddressObject> {
    const e = this.entry(em);
    e.portsUsed = true;
    return e.members;
  }

  /** The selector's hash set of host addresses for one family (always exists, may be empty). */
  hostSet(em: EntityMatch, f: Family): SetSpec {
    const e = this.entry(em);
    return this.built(e, `s${f}-${e.hash}`, { kind: 'host', f }).spec;
  }

  /** The selector's interval set of CIDRs (network sets) for one family, or null when it has none. */
  netSet(em: EntityMatch, f: Family): SetSpec | null {
    const e = this.entry(em);
    const name = `n${f}-${e.hash}`;
    if ((f === 4 ? e.nets4 : e.nets6) === 0) {
      if (e.sets.delete(name)) this.byName.delete(name);
      return null;
    }
    return this.built(e, name, { kind: 'net', f }).spec;
  }

  /** addr . proto . port elements for the named ports `names` of the members. */
  namedPortSet(em: EntityMatch, names: readonly string[], protocol: number, f: Family): SetSpec {
    const sorted = [...new Set(names)].sort();
    const e = this.entry(em);
    e.portsUsed = true;
    const name = `p${f}-${shortHash(`${em.key}|${sorted.join(',')}|${protocol}`)}`;
    return this.built(e, name, { kind: 'np', f, names: sorted, protocol }).spec;
  }

  // ---- internals ------------------------------------------------------------------------------

  private entry(em: EntityMatch): Entry {
    let e = this.entries.get(em.key);
    if (!e) {
      const members = new Set<AddressObject>();
      e = {
        em,
        members,
        used: this.pass,
        sets: new Map(),
        portsUsed: false,
        nets4: 0,
        nets6: 0,
        hash: shortHash(em.key),
      };
      for (const o of this.candidates(em)) {
        if (!matchesEntity(em, o, this.namespaces)) continue;
        members.add(o);
        countNets(e, o, 1);
      }
      this.entries.set(em.key, e);
    }
    e.used = this.pass;
    return e;
  }

  /** Objects that may match: narrowed through a `key == "value"` term, or the namespace of an ns scope. */
  private candidates(em: EntityMatch): Iterable<AddressObject> {
    const n = em.sel.node;
    const eq = n.op === '==' ? n : n.op === 'and' ? n.args.find((a) => a.op === '==') : undefined;
    let best: Iterable<AddressObject> = this.objects;
    let size = this.objects.size;
    if (eq?.op === '==') {
      const s = this.keyIndex(eq.key).get(eq.value);
      if (!s) return NOTHING;
      best = s;
      size = s.size;
    }
    if (em.scope.kind === 'ns') {
      const s = this.keyIndex(NAMESPACE_LABEL).get(em.scope.ns);
      if (!s) return NOTHING;
      if (s.size < size) best = s;
    }
    return best;
  }

  private keyIndex(key: string): Map<string, Set<AddressObject>> {
    let byVal = this.byKey.get(key);
    if (!byVal) {
      byVal = new Map();
      for (const o of this.objects) {
        const v = o.labels[key];
        if (v === undefined) continue;
        const s = byVal.get(v);
        if (s) s.add(o);
        else byVal.set(v, new Set([o]));
      }
      this.byKey.set(key, byVal);
    }
    return byVal;
  }

  private built(e: Entry, name: string, recipe: Recipe): BuiltSet {
    let b = e.sets.get(name);
    if (!b) {
      const type = recipe.f === 4 ? 'ipv4_addr' : 'ipv6_addr';
      const spec: SetSpec = {
        name,
        type: recipe.kind === 'np' ? [type, 'inet_proto', 'inet_service'] : type,
        interval: recipe.kind === 'net',
        elements: new Map(),
      };
      b = { spec, recipe, gen: this.gen, dups: recipe.kind === 'host' ? new Map() : null };
      fill(b, e.members);
      e.sets.set(name, b);
      this.byName.set(name, b);
    }
    return b;
  }

  /** One member left (`gone`) and/or one joined (`came`): update the entry's sets. */
  private moved(e: Entry, gone: AddressObject | undefined, came: AddressObject | undefined): void {
    if (e.portsUsed && ((gone?.ports.length ?? 0) > 0 || (came?.ports.length ?? 0) > 0))
      this.chainsStale = true;
    for (const b of e.sets.values()) {
      const r = b.recipe;
      const touches =
        r.kind === 'host'
          ? hostsOf(gone, r.f).length + hostsOf(came, r.f).length > 0
          : r.kind === 'net'
            ? netsOf(gone, r.f).length + netsOf(came, r.f).length > 0
            : (gone?.ports.length ?? 0) + (came?.ports.length ?? 0) > 0;
      if (!touches) continue;
      this.writable(b);
      if (r.kind === 'host') {
        for (const a of hostsOf(gone, r.f)) removeHost(b, a);
        for (const a of hostsOf(came, r.f)) addHost(b, a);
      } else {
        // Interval and named-port sets are small: rebuilt from the members.
        b.spec.elements = new Map();
        fill(b, e.members);
      }
      this.changed.add(b.spec.name);
    }
    // An interval set appears with the first CIDR member and goes with the last: rules change.
    for (const f of [4, 6] as const) {
      const has = e.sets.has(`n${f}-${e.hash}`);
      if (has !== (f === 4 ? e.nets4 : e.nets6) > 0) this.chainsStale = true;
    }
  }

  private writable(b: BuiltSet): void {
    if (b.gen === this.gen) return;
    b.spec = { ...b.spec, elements: new Map(b.spec.elements) };
    if (b.dups) b.dups = new Map(b.dups);
    b.gen = this.gen;
  }
}

function hostsOf(o: AddressObject | undefined, f: Family): readonly string[] {
  if (!o) return NO_HOSTS;
  return f === 4 ? o.hosts4 : o.hosts6;
}

function netsOf(o: AddressObject | undefined, f: Family): readonly Prefix[] {
  if (!o || o.nets.length === 0) return NO_PREFIXES;
  return o.nets.filter((n) => n.family === f);
}

const NO_HOSTS: readonly string[] = Object.freeze([]);
const NO_PREFIXES: readonly Prefix[] = Object.freeze([]);

function countNets(e: Entry, o: AddressObject, d: 1 | -1): void {
  if (o.nets.length === 0) return;
  if (o.nets.some((n) => n.family === 4)) e.nets4 += d;
  if (o.nets.some((n) => n.family === 6)) e.nets6 += d;
}

function addHost(b: BuiltSet, a: string): void {
  const k = elemKey(a);
  if (b.spec.elements.has(k)) b.dups!.set(k, (b.dups!.get(k) ?? 0) + 1);
  else b.spec.elements.set(k, a);
}

function removeHost(b: BuiltSet, a: string): void {
  const k = elemKey(a);
  const d = b.dups!.get(k);
  if (d === undefined) b.spec.elements.delete(k);
  else if (d <= 1) b.dups!.delete(k);
  else b.dups!.set(k, d - 1);
}

function fill(b: BuiltSet, members: ReadonlySet<AddressObject>): void {
  const r = b.recipe;
  const els = b.spec.elements;
  if (r.kind === 'host') {
    for (const o of members) for (const a of hostsOf(o, r.f)) addHost(b, a);
  } else if (r.kind === 'net') {
    const nets: Prefix[] = [];
    for (const o of members) for (const n of netsOf(o, r.f)) nets.push(n);
    if (nets.length > 0) for (const e of mergeAsElems(nets)) els.set(elemKey(e), e);
  } else {
    for (const o of members) {
      for (const p of o.ports) {
        if (!r.names.includes(p.name) || p.protocol !== r.protocol) continue;
        for (const a of hostsOf(o, r.f)) {
          const e: ElemKey = { concat: [a, r.protocol, p.port] };
          els.set(elemKey(e), e);
        }
      }
    }
  }
}

/** CIDRs merged into interval-set elements (nft does not merge overlapping elements). */
export function mergeAsElems(ps: Prefix[]): ElemKey[] {
  const e = prefixSetExpr(ps);
  return typeof e === 'object' && e !== null && 'set' in e ? (e.set as ElemKey[]) : [e];
}

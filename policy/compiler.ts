// The policy compiler: cluster resources + this node's name → one `inet gingham` nftables table.
// Pure: no I/O; the applier (applier.ts) puts the result into the kernel.
//
// Layout (see docs/policy.md for the full picture):
//   forward  (filter, hook forward, prio 0): conntrack fast path, unknown gh* interfaces dropped,
//            `iifname vmap @fw-dispatch` (egress policy of the sending workload), then
//            `oifname vmap @tw-dispatch` (ingress policy of the receiving workload).
//   input    (filter, hook input, prio 0): conntrack, workload→host traffic through the sender's egress
//            policy, then host endpoint ingress (`@fh-dispatch`).
//   output   (filter, hook output, prio 0): conntrack, host endpoint egress (`@th-dispatch`).
//            Host→local-workload traffic is always allowed (as in Calico: kubelet probes).
//   nat-postrouting (nat, hook postrouting, prio 110 = srcnat+10, after kube-proxy's 100):
//            masquerade when saddr ∈ masq pools and daddr ∉ all pools.
// Priority 0 is the `filter` slot; other tables at the same hook (Docker, kube-proxy) still see every
// packet: an accept here is not final for them, a drop here is final for all.
//
// Verdicts between chains travel in two mark bits (like Felix): a policy's Allow sets ACCEPT and
// returns (so the receiving side's ingress policy still runs in the same forward pass), Pass sets
// PASS and returns (later policies of the tier see PASS and return at once), Deny drops.

import type { Family, Prefix } from '../lib/ip.js';
import {
  type AddressObject,
  buildModel,
  type Direction,
  type Endpoint,
  type EntityMatch,
  localEndpoints,
  type Model,
  matchesEntity,
  type NEntity,
  type NPolicy,
  type NProfile,
  type NRule,
  type PolicyInput,
  type PortRange,
  type Problem,
  tiersFor,
} from './model.js';
import {
  accept,
  type ChainSpec,
  counter,
  drop,
  type ElemKey,
  elemKey,
  emptyRuleset,
  jump,
  type MapSpec,
  match,
  meta,
  type NftExpr,
  type NftRuleset,
  type NftStmt,
  payload,
  prefixSetExpr,
  type RuleSpec,
  ret,
  type SetSpec,
} from './nft.js';

export const IFACE_PREFIX = 'gh';
export const MARK_ACCEPT = 0x01000000;
export const MARK_PASS = 0x02000000;
export const FILTER_PRIORITY = 0;
export const NAT_PRIORITY = 110;

export const CHAIN = {
  forward: 'forward',
  input: 'input',
  output: 'output',
  nat: 'nat-postrouting',
} as const;
export const MAP = {
  fromWl: 'fw-dispatch',
  toWl: 'tw-dispatch',
  fromHost: 'fh-dispatch',
  toHost: 'th-dispatch',
} as const;
export const SET_LOCAL_IFACES = 'local-ifaces';

export interface CompileOptions {
  table?: string;
  /** Carries work from one compile to the next (default: one per process). */
  cache?: CompileCache;
}

export interface CompileResult {
  ruleset: NftRuleset;
  model: Model;
  problems: Problem[];
}

const mark = meta('mark');
const markTest = (bit: number, op: '==' | '!='): NftStmt => match({ '&': [mark, bit] }, op, 0);
const markSet = (bit: number): NftStmt => ({ mangle: { key: mark, value: { '|': [mark, bit] } } });
const markClear = (bits: number): NftStmt => ({ mangle: { key: mark, value: { '&': [mark, ~bits >>> 0] } } });

function shortHash(s: string): string {
  // FNV-1a 64 → 12 hex chars: stable, no crypto dependency in the pure core.
  let h = 0xcbf29ce484222325n;
  for (let i = 0; i < s.length; i++) {
    h ^= BigInt(s.charCodeAt(i));
    h = (h * 0x100000001b3n) & 0xffffffffffffffffn;
  }
  return h.toString(16).padStart(16, '0').slice(0, 12);
}

export function policyChainName(p: NPolicy, dir: Direction): string {
  const display = p.kind === 'K8sNetworkPolicy' ? `${p.namespace}/knp.default.${p.name}` : p.id;
  return `${dir === 'ingress' ? 'pi' : 'po'}-${p.tier}/${display}`;
}
export function profileChainName(name: string, dir: Direction): string {
  return `${dir === 'ingress' ? 'pri' : 'pro'}-${name}`;
}
export function endpointChainName(e: Endpoint, dir: Direction): string {
  // Workloads: "to workload" = ingress, "from workload" = egress. Host endpoints: from host iface = ingress.
  if (e.kind === 'WorkloadEndpoint') return `${dir === 'ingress' ? 'tw' : 'fw'}-${e.iface}`;
  return `${dir === 'ingress' ? 'fh' : 'th'}-${e.iface}`;
}

/**
 * What one compile can hand the next: selector members and the sets built from them, valid while
 * the model's address objects are the very same objects (model.ts re-uses unchanged endpoints) and
 * the namespaces' labels are the same. The agent keeps one; `compile` uses a module default.
 */
export class CompileCache {
  objects: readonly AddressObject[] = [];
  namespacesSig = '';
  readonly members = new Map<string, AddressObject[]>();
  readonly matches = new Map<string, EntityMatch>();
  readonly sets = new Map<string, SetSpec>();
  readonly setsByMatch = new Map<string, Set<string>>();
  /** "matchKey|family" → the set references selectorSets returned. */
  readonly selectorRefs = new Map<string, string[]>();

  /**
   * Keeps what is still valid for model `m`: after a few endpoints changed (relabel, new pod), only
   * the selectors that matched one of them, before or after, are recomputed. Namespace label
   * changes or mass changes drop everything.
   */
  validate(m: Model): void {
    const sig = JSON.stringify([...m.namespaces]);
    if (sig !== this.namespacesSig) this.clear();
    else if (m.objects.length !== this.objects.length || !m.objects.every((o, i) => o === this.objects[i])) {
      // Only the window between the common head and the common tail can differ (objects are unique
      // in each list): no 100k-entry Sets per compile when one endpoint came or went.
      const a = this.objects;
      const b = m.objects;
      let i = 0;
      while (i < a.length && i < b.length && a[i] === b[i]) i++;
      let ja = a.length;
      let jb = b.length;
      while (ja > i && jb > i && a[ja - 1] === b[jb - 1]) {
        ja--;
        jb--;
      }
      const oldW = a.slice(i, ja);
      const newW = b.slice(i, jb);
      const before = new Set(oldW);
      const after = new Set(newW);
      const changed = [...oldW.filter((o) => !after.has(o)), ...newW.filter((o) => !before.has(o))];
      if (changed.length > 256) this.clear();
      else if (changed.length > 0) {
        for (const [key, em] of this.matches) {
          if (!changed.some((o) => matchesEntity(em, o, m.namespaces))) continue;
          this.members.delete(key);
          this.matches.delete(key);
          for (const name of this.setsByMatch.get(key) ?? []) this.sets.delete(name);
          this.setsByMatch.delete(key);
          this.selectorRefs.delete(`${key}|4`);
          this.selectorRefs.delete(`${key}|6`);
        }
      }
    }
    this.objects = m.objects;
    this.namespacesSig = sig;
  }

  private clear(): void {
    this.members.clear();
    this.matches.clear();
    this.sets.clear();
    this.setsByMatch.clear();
    this.selectorRefs.clear();
  }
}

const defaultCache = new CompileCache();

class Builder {
  readonly rs: NftRuleset;
  private readonly memberCache: Map<string, AddressObject[]>;

  constructor(
    readonly m: Model,
    table: string,
    private readonly cache: CompileCache,
  ) {
    this.rs = emptyRuleset(table);
    cache.validate(m);
    this.memberCache = cache.members;
  }

  chain(name: string, rules: RuleSpec[], base?: ChainSpec['base']): void {
    this.rs.chains.set(name, { name, rules, ...(base ? { base } : {}) });
  }

  private labelIndex: Map<string, AddressObject[]> | null = null;

  /** Objects that may match: narrowed through a `key == "value"` term when the selector has one. */
  private candidates(em: EntityMatch): readonly AddressObject[] {
    const n = em.sel.node;
    const eq = n.op === '==' ? n : n.op === 'and' ? n.args.find((a) => a.op === '==') : undefined;
    if (eq?.op !== '==') return this.m.objects;
    if (!this.labelIndex) {
      this.labelIndex = new Map();
      for (const o of this.m.objects) {
        for (const [k, v] of Object.entries(o.labels)) {
          const ik = `${k}\u0000${v}`;
          const l = this.labelIndex.get(ik);
          if (l) l.push(o);
          else this.labelIndex.set(ik, [o]);
        }
      }
    }
    return this.labelIndex.get(`${eq.key}\u0000${eq.value}`) ?? [];
  }

  private members(em: EntityMatch): AddressObject[] {
    let ms = this.memberCache.get(em.key);
    if (!ms) {
      ms = this.candidates(em).filter((o) => matchesEntity(em, o, this.m.namespaces));
      this.memberCache.set(em.key, ms);
      this.cache.matches.set(em.key, em);
    }
    return ms;
  }

  private ensureSet(
    matchKey: string,
    name: string,
    type: string | string[],
    interval: boolean,
    elems: () => ElemKey[],
  ): string {
    if (!this.rs.sets.has(name)) {
      let set = this.cache.sets.get(name);
      if (!set) {
        const elements = new Map<string, ElemKey>();
        for (const e of elems()) elements.set(elemKey(e), e);
        set = { name, type, interval, elements };
        this.cache.sets.set(name, set);
        const names = this.cache.setsByMatch.get(matchKey);
        if (names) names.add(name);
        else this.cache.setsByMatch.set(matchKey, new Set([name]));
      }
      this.rs.sets.set(name, set);
    }
    return `@${name}`;
  }

  /** Set requests made while rendering a policy chain, so a cached chain can re-create its sets. */
  recording: Replay[] | null = null;

  replay(r: Replay): string {
    if (r.kind === 'sel') return this.selectorSets(r.em, r.f).join(',');
    if (r.kind === 'np') return this.namedPortSet(r.em, r.names, r.protocol, r.f);
    return String(this.namedPortResolves(r.em, r.names, r.protocol));
  }

  /** The selector's address sets for one family: a hash set always, an interval set when CIDRs are members. */
  selectorSets(em: EntityMatch, f: Family): string[] {
    if (this.recording) {
      const rec = this.recording;
      this.recording = null;
      const out = this.selectorSets(em, f);
      rec.push({ kind: 'sel', em, f, out: out.join(',') });
      this.recording = rec;
      return out;
    }
    const refKey = `${em.key}|${f}`;
    const known = this.cache.selectorRefs.get(refKey);
    if (known) {
      for (const ref of known) {
        const name = ref.slice(1);
        if (!this.rs.sets.has(name)) this.rs.sets.set(name, this.cache.sets.get(name)!);
      }
      return known;
    }
    const h = shortHash(em.key);
    const type = f === 4 ? 'ipv4_addr' : 'ipv6_addr';
    const ms = this.members(em);
    const out = [
      this.ensureSet(em.key, `s${f}-${h}`, type, false, () => {
        const out: string[] = [];
        for (const o of ms) for (const a of f === 4 ? o.hosts4 : o.hosts6) out.push(a);
        return out;
      }),
    ];
    const nets = ms.flatMap((o) => o.nets.filter((n) => n.family === f));
    if (nets.length > 0) out.push(this.ensureSet(em.key, `n${f}-${h}`, type, true, () => mergeAsElems(nets)));
    this.cache.selectorRefs.set(refKey, out);
    return out;
  }

  /** addr . proto . port elements of the named ports of endpoints in `em`. */
  namedPortSet(em: EntityMatch, names: string[], protocol: number, f: Family): string {
    this.recording?.push({ kind: 'np', em, names, protocol, f, out: '' });
    const sorted = [...new Set(names)].sort();
    const h = shortHash(`${em.key}|${sorted.join(',')}|${protocol}`);
    const name = `p${f}-${h}`;
    const last = this.recording?.at(-1);
    if (last?.kind === 'np') last.out = `@${name}`;
    return this.ensureSet(
      em.key,
      name,
      [f === 4 ? 'ipv4_addr' : 'ipv6_addr', 'inet_proto', 'inet_service'],
      false,
      () => {
        const out: ElemKey[] = [];
        for (const o of this.members(em)) {
          for (const p of o.ports) {
            if (!sorted.includes(p.name) || p.protocol !== protocol) continue;
            for (const a of f === 4 ? o.hosts4 : o.hosts6) out.push({ concat: [a, protocol, p.port] });
          }
        }
        return out;
      },
    );
  }

  namedPortResolves(em: EntityMatch, names: string[], protocol: number): boolean {
    const out = this.members(em).some((o) =>
      o.ports.some((p) => names.includes(p.name) && p.protocol === protocol),
    );
    this.recording?.push({ kind: 'res', em, names, protocol, out: String(out) });
    return out;
  }
}

function mergeAsElems(ps: Prefix[]): ElemKey[] {
  const e = prefixSetExpr(ps);
  return typeof e === 'object' && e !== null && 'set' in e ? (e.set as ElemKey[]) : [e];
}

function mergeRanges(rs: readonly PortRange[]): PortRange[] {
  const s = [...rs].sort((a, b) => a[0] - b[0]);
  const out: PortRange[] = [];
  for (const r of s) {
    const last = out[out.length - 1];
    if (last && r[0] <= last[1] + 1) last[1] = Math.max(last[1], r[1]);
    else out.push([r[0], r[1]]);
  }
  return out;
}

function portsExpr(rs: readonly PortRange[]): NftExpr {
  const elems: NftExpr[] = mergeRanges(rs).map(([a, b]) => (a === b ? a : { range: [a, b] }));
  return elems.length === 1 ? elems[0]! : { set: elems };
}

function familiesOf(ps: Prefix[]): Set<Family> {
  return new Set(ps.map((p) => p.family));
}

type Verdicts = { Allow: NftStmt[]; Deny: NftStmt[]; Pass: NftStmt[] };
const POLICY_VERDICTS: Verdicts = {
  Allow: [markSet(MARK_ACCEPT), ret()],
  Deny: [drop()],
  Pass: [markSet(MARK_PASS), ret()],
};
const PROFILE_VERDICTS: Verdicts = { Allow: [markSet(MARK_ACCEPT), ret()], Deny: [drop()], Pass: [ret()] };

/** One Calico rule → zero or more nft rules (alternatives: per family, per set kind, numeric vs named ports). */
function renderRule(
  b: Builder,
  r: NRule,
  verdicts: Verdicts,
  comment: string,
  problems: Problem[],
  where: string,
): RuleSpec[] {
  let fams: Family[] = r.ipVersion ? [r.ipVersion] : [4, 6];
  if (r.protocol === 1) fams = fams.filter((f) => f === 4);
  if (r.protocol === 58) fams = fams.filter((f) => f === 6);
  for (const side of [r.src, r.dst]) {
    if (side.nets.length > 0) {
      const fs = familiesOf(side.nets);
      fams = fams.filter((f) => fs.has(f));
    }
  }
  const sides: [NEntity, 'saddr' | 'daddr', 'sport' | 'dport'][] = [
    [r.src, 'saddr', 'sport'],
    [r.dst, 'daddr', 'dport'],
  ];
  const needsAddr = sides.some(
    ([e]) =>
      e.nets.length + e.notNets.length + e.namedPorts.length + e.notNamedPorts.length > 0 ||
      e.match ||
      e.notMatch,
  );
  const variants: (Family | null)[] = !needsAddr && !r.ipVersion && fams.length === 2 ? [null] : fams;

  for (const [e] of sides) {
    for (const names of [e.namedPorts, e.notNamedPorts]) {
      if (
        names.length > 0 &&
        r.protocol !== undefined &&
        !b.namedPortResolves(e.portScope, names, r.protocol)
      ) {
        problems.push({
          severity: 'warning',
          object: where,
          message: `named port(s) ${names.join(', ')} resolve to no endpoint port yet; the rule matches nothing until one does`,
        });
      }
    }
  }

  const out: RuleSpec[] = [];
  for (const f of variants) {
    const common: NftStmt[] = [];
    if (f !== null && !needsAddr) common.push(match(meta('nfproto'), '==', f === 4 ? 'ipv4' : 'ipv6'));
    if (r.protocol !== undefined) common.push(match(meta('l4proto'), '==', r.protocol));
    if (r.notProtocol !== undefined) common.push(match(meta('l4proto'), '!=', r.notProtocol));
    const icmpProto = r.protocol === 58 ? 'icmpv6' : 'icmp';
    if (r.icmp?.type !== undefined) common.push(match(payload(icmpProto, 'type'), '==', r.icmp.type));
    if (r.icmp?.code !== undefined) common.push(match(payload(icmpProto, 'code'), '==', r.icmp.code));
    if (r.notICMP?.type !== undefined) {
      if (r.notICMP.code === undefined) common.push(match(payload(icmpProto, 'type'), '!=', r.notICMP.type));
      else
        common.push(
          match({ concat: [payload(icmpProto, 'type'), payload(icmpProto, 'code')] }, '!=', {
            set: [{ concat: [r.notICMP.type, r.notICMP.code] }],
          }),
        );
    }
    // Alternatives multiply: each list is OR, lists are AND.
    const alternatives: NftStmt[][][] = [];
    for (const [e, addrField, portField] of sides) {
      const addr = f === null ? null : payload(f === 4 ? 'ip' : 'ip6', addrField);
      if (addr && f !== null) {
        const nets = e.nets.filter((n) => n.family === f);
        if (nets.length > 0) common.push(match(addr, '==', prefixSetExpr(nets)));
        const notNets = e.notNets.filter((n) => n.family === f);
        if (notNets.length > 0) common.push(match(addr, '!=', prefixSetExpr(notNets)));
        if (e.notMatch) for (const s of b.selectorSets(e.notMatch, f)) common.push(match(addr, '!=', s));
        if (e.match) alternatives.push(b.selectorSets(e.match, f).map((s) => [match(addr, '==', s)]));
      }
      const port = payload('th', portField);
      if (e.notPorts.length > 0) common.push(match(port, '!=', portsExpr(e.notPorts)));
      const portAlts: NftStmt[][] = [];
      if (e.ports.length > 0) portAlts.push([match(port, '==', portsExpr(e.ports))]);
      if (addr && f !== null && r.protocol !== undefined) {
        const key = { concat: [addr, meta('l4proto'), port] };
        if (e.namedPorts.length > 0)
          portAlts.push([match(key, '==', b.namedPortSet(e.portScope, e.namedPorts, r.protocol, f))]);
        if (e.notNamedPorts.length > 0)
          common.push(match(key, '!=', b.namedPortSet(e.portScope, e.notNamedPorts, r.protocol, f)));
      }
      if (portAlts.length > 0) alternatives.push(portAlts);
    }
    let combos: NftStmt[][] = [[]];
    for (const alts of alternatives) combos = combos.flatMap((c) => alts.map((a) => [...c, ...a]));
    const verdict =
      r.action === 'Log'
        ? [{ log: { prefix: `gingham ${comment.slice(0, 20)} ` } } as NftStmt]
        : verdicts[r.action];
    for (const c of combos) {
      const body = [...common, ...c];
      // A family variant with no address match must still be limited to its family.
      if (f !== null && needsAddr && !body.some((st) => mentionsFamily(st, f))) {
        body.unshift(match(meta('nfproto'), '==', f === 4 ? 'ipv4' : 'ipv6'));
      }
      out.push({ expr: [...body, counter(), ...verdict], comment });
    }
  }
  return out;
}

function mentionsFamily(st: NftStmt, f: Family): boolean {
  const proto = f === 4 ? '"protocol":"ip"' : '"protocol":"ip6"';
  return JSON.stringify(st).includes(proto);
}

type Replay =
  | { kind: 'sel'; em: EntityMatch; f: Family; out: string }
  | { kind: 'np'; em: EntityMatch; names: string[]; protocol: number; f: Family; out: string }
  | { kind: 'res'; em: EntityMatch; names: string[]; protocol: number; out: string };

interface ChainMemo {
  rules: RuleSpec[];
  replay: Replay[];
  problems: Problem[];
}

/**
 * Rendered policy chains by (normalised policy, direction). A chain's rules depend only on the
 * policy and on the names of the sets it uses, so an unchanged policy re-uses its rules: its set
 * requests are replayed (filling this ruleset's sets) and must give the same set names, else the
 * chain is rendered again (e.g. an interval set appeared because a NetworkSet now matches).
 */
const chainMemo = new WeakMap<NPolicy, Partial<Record<Direction, ChainMemo>>>();

function cachedPolicyChain(b: Builder, p: NPolicy, dir: Direction, problems: Problem[]): RuleSpec[] {
  const memo = chainMemo.get(p)?.[dir];
  if (memo?.replay.every((r) => b.replay(r) === r.out)) {
    problems.push(...memo.problems);
    return memo.rules;
  }
  b.recording = [];
  const ps: Problem[] = [];
  let rules: RuleSpec[];
  try {
    rules = policyChain(b, p, dir, ps);
    const entry = chainMemo.get(p) ?? {};
    entry[dir] = { rules, replay: b.recording, problems: ps };
    chainMemo.set(p, entry);
  } finally {
    b.recording = null;
  }
  problems.push(...ps);
  return rules;
}

function policyChain(b: Builder, p: NPolicy, dir: Direction, problems: Problem[]): RuleSpec[] {
  const where = `${p.kind} ${p.id}`;
  const rules: RuleSpec[] = [
    { expr: [markTest(MARK_PASS, '!='), ret()], comment: 'an earlier policy of this tier passed' },
  ];
  if (p.broken) {
    rules.push({
      expr: [counter(), drop()],
      comment: `${where} is invalid (fail closed): ${p.broken.split('\n')[0]}`,
    });
    return rules;
  }
  const rs = (dir === 'ingress' ? p.ingress : p.egress) ?? [];
  for (const r of rs) {
    rules.push(
      ...renderRule(
        b,
        r,
        POLICY_VERDICTS,
        `${p.tier}/${p.id} ${dir} ${r.index} ${r.action}`,
        problems,
        where,
      ),
    );
  }
  return rules;
}

function profileChain(b: Builder, pr: NProfile, dir: Direction, problems: Problem[]): RuleSpec[] {
  if (pr.broken)
    return [{ expr: [counter(), drop()], comment: `Profile ${pr.name} is invalid (fail closed)` }];
  const rules: RuleSpec[] = [];
  for (const r of dir === 'ingress' ? pr.ingress : pr.egress) {
    rules.push(
      ...renderRule(
        b,
        r,
        PROFILE_VERDICTS,
        `profile ${pr.name} ${dir} ${r.index} ${r.action}`,
        problems,
        `Profile ${pr.name}`,
      ),
    );
  }
  return rules;
}

/** The per-endpoint chain: tiers in order, end-of-tier default action, then profiles, then deny. */
/**
 * Calico's failsafe ports: a host endpoint never loses SSH, BGP, etcd, the API server or DHCP/DNS,
 * whatever its policy says (felix FailsafeInboundHostPorts / FailsafeOutboundHostPorts).
 */
export const FAILSAFE = {
  ingress: { tcp: [22, 179, 2379, 2380, 5473, 6443, 6666, 6667], udp: [68] },
  egress: { tcp: [179, 2379, 2380, 5473, 6443, 6666, 6667], udp: [53, 67] },
} as const;

function failsafeRules(dir: Direction): RuleSpec[] {
  const f = FAILSAFE[dir];
  return (['tcp', 'udp'] as const).map((proto) => ({
    expr: [
      match(meta('l4proto'), '==', proto === 'tcp' ? 6 : 17),
      match(payload('th', 'dport'), '==', { set: [...f[proto]] }),
      counter(),
      accept(),
    ],
    comment: `failsafe ${dir} ${proto.toUpperCase()} ports`,
  }));
}

/**
 * Endpoint chains by content signature: the chain depends only on the policies, tiers and profiles
 * that apply, so equal signatures give the very same rules array, which the diff skips cheaply.
 */
const endpointChainMemo = new Map<string, RuleSpec[]>();

function endpointChain(b: Builder, e: Endpoint, dir: Direction, problems: Problem[]): RuleSpec[] {
  const tiers = tiersFor(b.m, e, dir);
  const sig: string[] = [e.kind, dir];
  for (const { tier, policies } of tiers) {
    sig.push(`T${tier.name}:${tier.defaultAction}`);
    for (const p of policies) {
      const name = policyChainName(p, dir);
      if (!b.rs.chains.has(name)) b.chain(name, cachedPolicyChain(b, p, dir, problems));
      sig.push(`P${name}\u0000${p.tier}/${p.id}`);
    }
  }
  const profiles: string[] = [];
  for (const name of e.profiles) {
    const pr = b.m.profiles.get(name);
    if (!pr) {
      // Calico's per-service-account profiles (ksa.<ns>.<sa>) only carry labels; CNIs list them
      // whether or not they exist. Others are worth a warning.
      if (name.startsWith('ksa.')) continue;
      problems.push({
        severity: 'warning',
        object: `${e.kind} ${e.namespace ?? ''}/${e.name}`,
        message: `profile "${name}" does not exist`,
      });
      continue;
    }
    const cn = profileChainName(name, dir);
    if (!b.rs.chains.has(cn)) b.chain(cn, profileChain(b, pr, dir, problems));
    profiles.push(name);
    sig.push(`R${name}`);
  }
  const key = sig.join('\u0001');
  const hit = endpointChainMemo.get(key);
  if (hit) return hit;

  const rules: RuleSpec[] = [
    ...(e.kind === 'HostEndpoint' ? failsafeRules(dir) : []),
    { expr: [markClear(MARK_ACCEPT | MARK_PASS)] },
  ];
  for (const [ti, { tier, policies }] of tiers.entries()) {
    if (ti > 0) rules.push({ expr: [markClear(MARK_PASS)] });
    for (const p of policies) {
      rules.push({ expr: [jump(policyChainName(p, dir))] });
      rules.push({ expr: [markTest(MARK_ACCEPT, '!='), ret()], comment: `allowed by ${p.tier}/${p.id}` });
    }
    if (tier.defaultAction === 'Deny') {
      rules.push({
        expr: [markTest(MARK_PASS, '=='), counter(), drop()],
        comment: `end of tier ${tier.name}: default deny`,
      });
    }
  }
  if (tiers.length > 0) rules.push({ expr: [markClear(MARK_PASS)] });
  for (const name of profiles) {
    rules.push({ expr: [jump(profileChainName(name, dir))] });
    rules.push({ expr: [markTest(MARK_ACCEPT, '!='), ret()], comment: `allowed by profile ${name}` });
  }
  rules.push({ expr: [counter(), drop()], comment: 'no policy or profile allowed' });
  if (endpointChainMemo.size > 20_000) endpointChainMemo.clear();
  endpointChainMemo.set(key, rules);
  return rules;
}

const ctFastPath = (): RuleSpec[] => [
  {
    expr: [match({ ct: { key: 'state' } }, 'in', ['established', 'related']), accept()],
    comment: 'conntrack: established',
  },
  {
    expr: [match({ ct: { key: 'state' } }, 'in', 'invalid'), counter(), drop()],
    comment: 'conntrack: invalid',
  },
];

function unknownIfaceDrop(key: 'iifname' | 'oifname'): RuleSpec {
  return {
    expr: [
      match(meta(key), '==', `${IFACE_PREFIX}*`),
      match(meta(key), '!=', `@${SET_LOCAL_IFACES}`),
      counter(),
      drop(),
    ],
    comment: `unknown ${IFACE_PREFIX}* interface (fail closed)`,
  };
}

function dispatch(key: 'iifname' | 'oifname', map: string): RuleSpec {
  return { expr: [{ vmap: { key: meta(key), data: `@${map}` } }] };
}

function natRules(b: Builder): RuleSpec[] {
  const rules: RuleSpec[] = [];
  for (const f of [4, 6] as const) {
    const type = f === 4 ? 'ipv4_addr' : 'ipv6_addr';
    const pools = b.m.pools.filter((p) => p.prefix.family === f);
    const masq = pools.filter((p) => p.natOutgoing).map((p) => p.prefix);
    const all = pools.map((p) => p.prefix);
    b.rs.sets.set(`masq-pools${f}`, setOf(`masq-pools${f}`, type, mergeAsElemsOrEmpty(masq)));
    b.rs.sets.set(`all-pools${f}`, setOf(`all-pools${f}`, type, mergeAsElemsOrEmpty(all)));
    const proto = f === 4 ? 'ip' : 'ip6';
    rules.push({
      expr: [
        match(payload(proto, 'saddr'), '==', `@masq-pools${f}`),
        match(payload(proto, 'daddr'), '!=', `@all-pools${f}`),
        counter(),
        { masquerade: null },
      ],
      comment: `natOutgoing IPv${f}`,
    });
  }
  return rules;
}

function mergeAsElemsOrEmpty(ps: Prefix[]): ElemKey[] {
  return ps.length === 0 ? [] : mergeAsElems(ps);
}

function setOf(name: string, type: string, elems: ElemKey[]): SetSpec {
  return { name, type, interval: true, elements: new Map(elems.map((e) => [elemKey(e), e])) };
}

function mapOf(name: string): MapSpec {
  return { name, type: 'ifname', elements: new Map() };
}

export function compileModel(m: Model, opts: CompileOptions = {}): CompileResult {
  const b = new Builder(m, opts.table ?? 'gingham', opts.cache ?? defaultCache);
  const problems = [...m.problems];
  const rs = b.rs;
  // Base chains first so listings read top-down.
  const filter = (hook: 'forward' | 'input' | 'output') => ({
    type: 'filter' as const,
    hook,
    prio: FILTER_PRIORITY,
    policy: 'accept' as const,
  });
  b.chain(
    CHAIN.forward,
    [
      ...ctFastPath(),
      unknownIfaceDrop('iifname'),
      unknownIfaceDrop('oifname'),
      dispatch('iifname', MAP.fromWl),
      dispatch('oifname', MAP.toWl),
    ],
    filter('forward'),
  );
  b.chain(
    CHAIN.input,
    [
      ...ctFastPath(),
      unknownIfaceDrop('iifname'),
      dispatch('iifname', MAP.fromWl),
      dispatch('iifname', MAP.fromHost),
    ],
    filter('input'),
  );
  b.chain(CHAIN.output, [...ctFastPath(), dispatch('oifname', MAP.toHost)], filter('output'));
  b.chain(CHAIN.nat, [], { type: 'nat', hook: 'postrouting', prio: NAT_PRIORITY, policy: 'accept' });
  rs.chains.get(CHAIN.nat)!.rules = natRules(b);

  for (const k of Object.values(MAP)) rs.maps.set(k, mapOf(k));
  const ifaces: SetSpec = { name: SET_LOCAL_IFACES, type: 'ifname', interval: false, elements: new Map() };
  rs.sets.set(SET_LOCAL_IFACES, ifaces);

  const locals = localEndpoints(m).sort((a, b2) => (a.iface! < b2.iface! ? -1 : 1));
  for (const e of locals) {
    const iface = e.iface!;
    if (e.kind === 'WorkloadEndpoint') {
      if (!iface.startsWith(IFACE_PREFIX)) {
        problems.push({
          severity: 'warning',
          object: `WorkloadEndpoint ${e.namespace}/${e.name}`,
          message: `interface "${iface}" lacks the ${IFACE_PREFIX} prefix`,
        });
      }
      ifaces.elements.set(elemKey(iface), iface);
    }
    for (const dir of ['ingress', 'egress'] as const) {
      const cn = endpointChainName(e, dir);
      b.chain(cn, endpointChain(b, e, dir, problems));
      const map =
        e.kind === 'WorkloadEndpoint'
          ? dir === 'ingress'
            ? MAP.toWl
            : MAP.fromWl
          : dir === 'ingress'
            ? MAP.fromHost
            : MAP.toHost;
      rs.maps.get(map)!.elements.set(elemKey(iface), [iface, jump(cn)]);
    }
  }
  return { ruleset: rs, model: m, problems: dedupeProblems(problems) };
}

function dedupeProblems(ps: Problem[]): Problem[] {
  const seen = new Set<string>();
  return ps.filter((p) => {
    const k = `${p.severity}|${p.object}|${p.message}`;
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
}

/** Resources → model → ruleset, with the problems found on the way. */
export function compile(input: PolicyInput, opts: CompileOptions = {}): CompileResult {
  return compileModel(buildModel(input), opts);
}

/** The pure entry point the agent calls. */
export function compileRuleset(input: PolicyInput, opts: CompileOptions = {}): NftRuleset {
  return compile(input, opts).ruleset;
}

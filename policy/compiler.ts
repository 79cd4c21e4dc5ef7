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
import { mergeAsElems, SelectorIndex } from './members.js';
import {
  buildModel,
  type Direction,
  type Endpoint,
  type EntityMatch,
  localEndpoints,
  type Model,
  type NEntity,
  type NPolicy,
  type NProfile,
  type NRule,
  type PolicyInput,
  type PortRange,
  type Problem,
  policyApplies,
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
  /**
   * Selector members and their sets, kept current by the caller (the incremental engine). Default:
   * a fresh index over the model's objects.
   */
  index?: SelectorIndex;
  /** The local endpoints (default: those of `m.endpoints` on this node with an interface). */
  locals?: readonly Endpoint[];
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

class Builder {
  readonly rs: NftRuleset;

  constructor(
    readonly m: Model,
    table: string,
    private readonly index: SelectorIndex,
    rs?: NftRuleset,
  ) {
    this.rs = rs ?? emptyRuleset(table);
  }

  private use(set: SetSpec): string {
    this.rs.sets.set(set.name, set);
    return `@${set.name}`;
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
    const out = [this.use(this.index.hostSet(em, f))];
    const nets = this.index.netSet(em, f);
    if (nets) out.push(this.use(nets));
    this.recording?.push({ kind: 'sel', em, f, out: out.join(',') });
    return out;
  }

  /** addr . proto . port elements of the named ports of endpoints in `em`. */
  namedPortSet(em: EntityMatch, names: string[], protocol: number, f: Family): string {
    const out = this.use(this.index.namedPortSet(em, names, protocol, f));
    this.recording?.push({ kind: 'np', em, names, protocol, f, out });
    return out;
  }

  namedPortResolves(em: EntityMatch, names: string[], protocol: number): boolean {
    let out = false;
    for (const o of this.index.membersForPorts(em)) {
      if (o.ports.some((p) => names.includes(p.name) && p.protocol === protocol)) {
        out = true;
        break;
      }
    }
    this.recording?.push({ kind: 'res', em, names, protocol, out: String(out) });
    return out;
  }
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

// Sub-expressions every rendered rule repeats, made once and shared by all rules: rules are
// read-only once rendered (the applier serialises them, the diff compares their text), and 10,000
// rules × a dozen small objects each was a large part of a full compile's garbage collection.
const L4PROTO = meta('l4proto');
const COUNTER = counter();
const NFPROTO: Record<Family, NftStmt> = {
  4: match(meta('nfproto'), '==', 'ipv4'),
  6: match(meta('nfproto'), '==', 'ipv6'),
};
const ADDR: Record<Family, Record<'saddr' | 'daddr', NftExpr>> = {
  4: { saddr: payload('ip', 'saddr'), daddr: payload('ip', 'daddr') },
  6: { saddr: payload('ip6', 'saddr'), daddr: payload('ip6', 'daddr') },
};
const PORT = { sport: payload('th', 'sport'), dport: payload('th', 'dport') };
const l4protoEq = new Map<number, NftStmt>();
function protoMatch(n: number): NftStmt {
  let st = l4protoEq.get(n);
  if (!st) {
    st = match(L4PROTO, '==', n);
    l4protoEq.set(n, st);
  }
  return st;
}

/** One rule side's statements for one family: `common` ones (AND) and lists of alternatives (OR). */
interface SideOut {
  common: NftStmt[];
  /** Does `common` read an address field of the family (so no separate nfproto match is needed)? */
  commonAddr: boolean;
  alternatives: Alt[][];
}
/** One alternative: its statements, and whether they read an address field of the family. */
type Alt = { st: NftStmt[]; addr: boolean };

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
  const needsAddr = sideNeedsAddr(r.src) || sideNeedsAddr(r.dst);
  const variants: (Family | null)[] = !needsAddr && !r.ipVersion && fams.length === 2 ? [null] : fams;

  for (const e of [r.src, r.dst]) {
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
    const o: SideOut = { common: [], commonAddr: false, alternatives: [] };
    const common = o.common;
    if (f !== null && !needsAddr) common.push(NFPROTO[f]);
    if (r.protocol !== undefined) common.push(protoMatch(r.protocol));
    if (r.notProtocol !== undefined) common.push(match(L4PROTO, '!=', r.notProtocol));
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
    renderSide(b, r, r.src, f, 'saddr', 'sport', o);
    renderSide(b, r, r.dst, f, 'daddr', 'dport', o);
    const verdict =
      r.action === 'Log'
        ? [{ log: { prefix: `gingham ${comment.slice(0, 20)} ` } } as NftStmt]
        : verdicts[r.action];
    // Alternatives multiply: each list is OR, lists are AND. Combinations in the order of the lists.
    const emit = (k: number, chosen: Alt[]) => {
      if (k < o.alternatives.length) {
        for (const a of o.alternatives[k]!) {
          chosen.push(a);
          emit(k + 1, chosen);
          chosen.pop();
        }
        return;
      }
      const expr: NftStmt[] = [];
      // A family variant with no address match must still be limited to its family.
      if (f !== null && needsAddr && !o.commonAddr && !chosen.some((a) => a.addr)) expr.push(NFPROTO[f]);
      for (const st of common) expr.push(st);
      for (const a of chosen) for (const st of a.st) expr.push(st);
      expr.push(COUNTER);
      for (const st of verdict) expr.push(st);
      out.push({ expr, comment });
    };
    emit(0, []);
  }
  return out;
}

function sideNeedsAddr(e: NEntity): boolean {
  return (
    e.nets.length + e.notNets.length + e.namedPorts.length + e.notNamedPorts.length > 0 ||
    e.match !== undefined ||
    e.notMatch !== undefined
  );
}

/** One side (source or destination) of a rule for one family variant, into `o`. */
function renderSide(
  b: Builder,
  r: NRule,
  e: NEntity,
  f: Family | null,
  addrField: 'saddr' | 'daddr',
  portField: 'sport' | 'dport',
  o: SideOut,
): void {
  const common = o.common;
  const addr = f === null ? null : ADDR[f][addrField];
  if (addr && f !== null) {
    const nets = e.nets.length > 0 ? e.nets.filter((n) => n.family === f) : e.nets;
    if (nets.length > 0) {
      common.push(match(addr, '==', prefixSetExpr(nets)));
      o.commonAddr = true;
    }
    const notNets = e.notNets.length > 0 ? e.notNets.filter((n) => n.family === f) : e.notNets;
    if (notNets.length > 0) {
      common.push(match(addr, '!=', prefixSetExpr(notNets)));
      o.commonAddr = true;
    }
    if (e.notMatch) {
      for (const s of b.selectorSets(e.notMatch, f)) {
        common.push(match(addr, '!=', s));
        o.commonAddr = true;
      }
    }
    if (e.match) {
      const sets = b.selectorSets(e.match, f);
      const alts: Alt[] = [];
      for (const s of sets) alts.push({ st: [match(addr, '==', s)], addr: true });
      o.alternatives.push(alts);
    }
  }
  const port = PORT[portField];
  if (e.notPorts.length > 0) common.push(match(port, '!=', portsExpr(e.notPorts)));
  const portAlts: Alt[] = [];
  if (e.ports.length > 0) portAlts.push({ st: [match(port, '==', portsExpr(e.ports))], addr: false });
  if (addr && f !== null && r.protocol !== undefined) {
    const key = { concat: [addr, L4PROTO, port] };
    if (e.namedPorts.length > 0)
      portAlts.push({
        st: [match(key, '==', b.namedPortSet(e.portScope, e.namedPorts, r.protocol, f))],
        addr: true,
      });
    if (e.notNamedPorts.length > 0) {
      common.push(match(key, '!=', b.namedPortSet(e.portScope, e.notNamedPorts, r.protocol, f)));
      o.commonAddr = true;
    }
  }
  if (portAlts.length > 0) o.alternatives.push(portAlts);
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

/**
 * Forgets the endpoint chains rendered so far (the other memos are keyed by objects and go with
 * them), so that the next compile starts as cold as an agent's first: for measurements.
 */
export function forgetRenderedChains(): void {
  endpointChainMemo.clear();
}

/** A policy or profile chain an endpoint chain jumps to. */
type Use =
  | { name: string; policy: NPolicy; dir: Direction }
  | { name: string; profile: NProfile; dir: Direction };

function endpointChain(m: Model, e: Endpoint, dir: Direction, problems: Problem[], uses: Use[]): RuleSpec[] {
  const tiers = tiersFor(m, e, dir);
  const sig: string[] = [e.kind, dir];
  for (const { tier, policies } of tiers) {
    sig.push(`T${tier.name}:${tier.defaultAction}`);
    for (const p of policies) {
      const name = policyChainName(p, dir);
      uses.push({ name, policy: p, dir });
      sig.push(`P${name}\u0000${p.tier}/${p.id}`);
    }
  }
  const profiles: string[] = [];
  for (const name of e.profiles) {
    const pr = m.profiles.get(name);
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
    uses.push({ name: profileChainName(name, dir), profile: pr, dir });
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

/**
 * ICMPv6 neighbour discovery and MLD between a workload (or host endpoint) and its host: conntrack
 * does not track them, so without this an egress policy (workload → host is the sender's egress)
 * would cut the workload's IPv6 off its gateway. Types: MLD query/report/done (130–132), router
 * solicitation (133), neighbour solicitation/advertisement (135, 136), MLDv2 report (143) — not router
 * advertisements or redirects (a workload must not steer the host's routing). As Felix does.
 */
export const ND_ICMPV6_TYPES = [130, 131, 132, 133, 135, 136, 143] as const;

function neighbourDiscovery(dir: 'in' | 'out'): RuleSpec {
  return {
    expr: [
      match(meta('l4proto'), '==', 58),
      match(payload('icmpv6', 'type'), '==', { set: [...ND_ICMPV6_TYPES] }),
      accept(),
    ],
    comment: `ICMPv6 neighbour discovery and MLD ${dir === 'in' ? 'to' : 'from'} the host`,
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

const filterBase = (hook: 'forward' | 'input' | 'output'): ChainSpec['base'] => ({
  type: 'filter',
  hook,
  prio: FILTER_PRIORITY,
  policy: 'accept',
});

/** The base chains (fixed content; fresh objects per full build: callers may edit a ruleset). */
const baseChains = (): ChainSpec[] => [
  {
    name: CHAIN.forward,
    base: filterBase('forward'),
    rules: [
      ...ctFastPath(),
      unknownIfaceDrop('iifname'),
      unknownIfaceDrop('oifname'),
      dispatch('iifname', MAP.fromWl),
      dispatch('oifname', MAP.toWl),
    ],
  },
  {
    name: CHAIN.input,
    base: filterBase('input'),
    rules: [
      ...ctFastPath(),
      unknownIfaceDrop('iifname'),
      neighbourDiscovery('in'),
      dispatch('iifname', MAP.fromWl),
      dispatch('iifname', MAP.fromHost),
    ],
  },
  {
    name: CHAIN.output,
    base: filterBase('output'),
    rules: [...ctFastPath(), neighbourDiscovery('out'), dispatch('oifname', MAP.toHost)],
  },
];

/** What a non-base chain brought: the problems found rendering it, the chains or sets it refers to. */
interface ChainInfo {
  problems: Problem[];
  refs: string[];
}

/** Names a chain's rules refer to: jump targets (endpoint chains) or `@set`s (policy/profile chains). */
const refsMemo = new WeakMap<RuleSpec[], string[]>();
function refsOf(rules: RuleSpec[], kind: 'jump' | 'set'): string[] {
  let out = refsMemo.get(rules);
  if (out) return out;
  const found = new Set<string>();
  for (const r of rules) {
    for (const st of r.expr) {
      if (kind === 'jump' && 'jump' in st) found.add(st.jump.target);
      else if (kind === 'set' && 'match' in st) {
        const right = st.match.right;
        if (typeof right === 'string' && right.startsWith('@')) found.add(right.slice(1));
      }
    }
  }
  out = [...found];
  refsMemo.set(rules, out);
  return out;
}

/** A signature of what renders a profile's chains (bigint-safe). */
const profileSigMemo = new WeakMap<NProfile, string>();
function profileSig(pr: NProfile): string {
  let s = profileSigMemo.get(pr);
  if (s === undefined) {
    s = JSON.stringify([pr.ingress, pr.egress, pr.broken ?? null], (_k, v) =>
      typeof v === 'bigint' ? v.toString() : v instanceof Object && 'text' in v && 'node' in v ? v.text : v,
    );
    profileSigMemo.set(pr, s);
  }
  return s;
}

export interface RulesetUpdate {
  /** The model changed (policies, tiers, profiles, pools): compare and re-render what differs. */
  model?: boolean;
  /** The local endpoints may have changed. */
  locals?: boolean;
  /** Sets whose elements changed in the index (remote endpoints moved). */
  sets?: ReadonlySet<string>;
  /** Start over (bulk changes, stale chains). */
  full?: boolean;
}

/**
 * The ruleset, kept in step with a model one change at a time. A full build renders every local
 * endpoint's chains and the policy and profile chains they jump to. After that:
 *   - a changed policy re-renders its chains and the chains of the local endpoints it applies to
 *     (before or after the change); other chains and their sets are untouched objects;
 *   - a changed, added or removed local endpoint re-renders its two chains and map entries;
 *   - policy and profile chains no endpoint chain jumps to any more go, and so do sets no chain uses
 *     (reference counts);
 *   - sets whose elements moved are swapped for the index's current copy.
 * Rulesets returned by `ruleset()` are never mutated afterwards (copy-on-write).
 */
export class RulesetCompiler {
  private rs: NftRuleset;
  private shared = false;
  private mapsShared = false;
  private m: Model | null = null;
  private readonly info = new Map<string, ChainInfo>();
  private readonly chainRefs = new Map<string, number>();
  private readonly setRefs = new Map<string, number>();
  private locals = new Map<string, Endpoint>();
  private policyChains = new Map<string, { p: NPolicy; dir: Direction }>();
  private profileSigs = new Map<string, string>();
  private tiersSig = '';
  private namespacesSig = '';
  private poolsSig = '';
  private readonly localProblems = new Map<string, Problem>();

  constructor(
    private readonly index: SelectorIndex,
    private readonly table = 'gingham',
  ) {
    this.rs = emptyRuleset(table);
  }

  ruleset(): NftRuleset {
    this.shared = true;
    return this.rs;
  }

  problems(): Problem[] {
    const out = [...(this.m?.problems ?? []), ...this.localProblems.values()];
    for (const i of this.info.values()) out.push(...i.problems);
    return dedupeProblems(out);
  }

  update(m: Model, locals: readonly Endpoint[], u: RulesetUpdate = { full: true }): void {
    const tiersSig = m.tiers.map((t) => `${t.name}:${t.order}:${t.defaultAction}`).join(',');
    const nsSig = u.model || !this.m ? JSON.stringify([...m.namespaces]) : this.namespacesSig;
    if (u.full || !this.m || tiersSig !== this.tiersSig || nsSig !== this.namespacesSig) {
      this.tiersSig = tiersSig;
      this.namespacesSig = nsSig;
      this.build(m, locals);
      return;
    }
    this.writable();
    const old = this.m;
    this.m = m;
    const b = new Builder(m, this.table, this.index, this.rs);
    const dirty = new Map<string, Endpoint>();
    const gone: Endpoint[] = [];
    let next = this.locals;
    if (u.locals) {
      next = new Map();
      for (const e of locals) next.set(e.iface!, e);
      for (const [iface, e] of next) if (this.locals.get(iface) !== e) dirty.set(iface, e);
      for (const [iface, e] of this.locals) if (!next.has(iface)) gone.push(e);
      this.locals = next;
    }
    const reRender: string[] = [];
    if (u.model) {
      this.pools(b, m);
      const changed: NPolicy[] = [];
      const chains = policyChainsOf(m);
      for (const [name, v] of chains) {
        const was = this.policyChains.get(name);
        if (was?.p === v.p) continue;
        if (was) changed.push(was.p);
        changed.push(v.p);
        if (this.rs.chains.has(name)) reRender.push(name);
      }
      for (const [name, v] of this.policyChains) if (!chains.has(name)) changed.push(v.p);
      this.policyChains = chains;
      // Local endpoints a changed policy applies to, before or after: their chains change.
      for (const [iface, e] of this.locals) {
        if (dirty.has(iface)) continue;
        const hit =
          changed.length > 64 ||
          changed.some((p) =>
            (['ingress', 'egress'] as const).some(
              (dir) => policyApplies(m, p, e, dir) || policyApplies(old, p, e, dir),
            ),
          );
        if (hit) dirty.set(iface, e);
      }
      const sigs = new Map<string, string>();
      for (const [name, pr] of m.profiles) {
        const sig = profileSig(pr);
        sigs.set(name, sig);
        if (this.profileSigs.get(name) === sig) continue;
        for (const dir of ['ingress', 'egress'] as const) {
          const cn = profileChainName(name, dir);
          if (this.rs.chains.has(cn)) reRender.push(cn);
        }
      }
      this.profileSigs = sigs;
    }
    for (const e of gone) this.removeEndpoint(e);
    for (const e of dirty.values()) this.addEndpoint(b, e);
    for (const name of reRender) this.renderShared(b, name, this.useOf(name));
    this.collect();
    for (const name of u.sets ?? []) {
      if (!this.rs.sets.has(name)) continue;
      const s = this.index.set(name);
      if (s) this.rs.sets.set(name, s);
    }
  }

  // ---- internals ------------------------------------------------------------------------------

  private build(m: Model, locals: readonly Endpoint[]): void {
    this.m = m;
    this.rs = emptyRuleset(this.table);
    this.shared = false;
    this.mapsShared = false;
    this.info.clear();
    this.chainRefs.clear();
    this.setRefs.clear();
    this.localProblems.clear();
    this.locals = new Map();
    this.policyChains = policyChainsOf(m);
    this.profileSigs = new Map([...m.profiles].map(([n, pr]) => [n, profileSig(pr)]));
    this.index.beginPass();
    const b = new Builder(m, this.table, this.index, this.rs);
    for (const c of baseChains()) this.rs.chains.set(c.name, c);
    this.rs.chains.set(CHAIN.nat, {
      name: CHAIN.nat,
      base: { type: 'nat', hook: 'postrouting', prio: NAT_PRIORITY, policy: 'accept' },
      rules: [],
    });
    this.poolsSig = '';
    this.pools(b, m);
    for (const k of Object.values(MAP)) this.rs.maps.set(k, mapOf(k));
    this.rs.sets.set(SET_LOCAL_IFACES, {
      name: SET_LOCAL_IFACES,
      type: 'ifname',
      interval: false,
      elements: new Map(),
    });
    const sorted = [...locals].sort((a, b2) => (a.iface! < b2.iface! ? -1 : 1));
    for (const e of sorted) this.locals.set(e.iface!, e);
    for (const e of this.locals.values()) this.addEndpoint(b, e);
    this.index.sweep();
  }

  private pools(b: Builder, m: Model): void {
    const sig = JSON.stringify(m.pools, (_k, v) => (typeof v === 'bigint' ? v.toString() : v));
    if (sig === this.poolsSig) return;
    this.poolsSig = sig;
    const nat = this.rs.chains.get(CHAIN.nat)!;
    this.rs.chains.set(CHAIN.nat, { ...nat, rules: natRules(b) });
  }

  /** Copy-on-write: the ruleset last returned stays as it was. */
  private writable(): void {
    if (!this.shared) return;
    this.rs = { ...this.rs, chains: new Map(this.rs.chains), sets: new Map(this.rs.sets) };
    this.shared = false;
    this.mapsShared = true;
  }

  /** The dispatch maps and the interface set are copied only when a local endpoint changes. */
  private mapsWritable(): void {
    if (!this.mapsShared) return;
    const maps = new Map<string, MapSpec>();
    for (const [k, v] of this.rs.maps) maps.set(k, { ...v, elements: new Map(v.elements) });
    this.rs.maps = maps;
    const ifaces = this.rs.sets.get(SET_LOCAL_IFACES)!;
    this.rs.sets.set(SET_LOCAL_IFACES, { ...ifaces, elements: new Map(ifaces.elements) });
    this.mapsShared = false;
  }

  private useOf(name: string): Use | null {
    const pc = this.policyChains.get(name);
    if (pc) return { name, policy: pc.p, dir: pc.dir };
    const m = /^(pri|pro)-(.*)$/.exec(name);
    const pr = m ? this.m!.profiles.get(m[2]!) : undefined;
    return pr ? { name, profile: pr, dir: m![1] === 'pri' ? 'ingress' : 'egress' } : null;
  }

  /** (Re-)renders a policy or profile chain; its set references are counted. */
  private renderShared(b: Builder, name: string, use: Use | null): void {
    if (!use) return;
    const problems: Problem[] = [];
    const rules =
      'policy' in use
        ? cachedPolicyChain(b, use.policy, use.dir, problems)
        : profileChain(b, use.profile, use.dir, problems);
    const old = this.rs.chains.get(name);
    if (old?.rules !== rules) this.rs.chains.set(name, { name, rules });
    this.setInfo(name, { problems, refs: refsOf(rules, 'set') }, this.setRefs);
  }

  private setInfo(name: string, next: ChainInfo | null, counts: Map<string, number>): void {
    const prev = this.info.get(name);
    for (const r of next?.refs ?? []) counts.set(r, (counts.get(r) ?? 0) + 1);
    for (const r of prev?.refs ?? []) counts.set(r, (counts.get(r) ?? 0) - 1);
    if (next) this.info.set(name, next);
    else this.info.delete(name);
  }

  private addEndpoint(b: Builder, e: Endpoint): void {
    this.mapsWritable();
    const iface = e.iface!;
    const ifaces = this.rs.sets.get(SET_LOCAL_IFACES)!;
    this.localProblems.delete(iface);
    if (e.kind === 'WorkloadEndpoint') {
      if (!iface.startsWith(IFACE_PREFIX)) {
        this.localProblems.set(iface, {
          severity: 'warning',
          object: `WorkloadEndpoint ${e.namespace}/${e.name}`,
          message: `interface "${iface}" lacks the ${IFACE_PREFIX} prefix`,
        });
      }
      ifaces.elements.set(elemKey(iface), iface);
    } else ifaces.elements.delete(elemKey(iface));
    for (const dir of ['ingress', 'egress'] as const) {
      // A host endpoint and a workload never share an interface; if one replaced the other, the
      // other's chain and map entry go.
      const other: Endpoint = {
        ...e,
        kind: e.kind === 'WorkloadEndpoint' ? 'HostEndpoint' : 'WorkloadEndpoint',
      };
      this.dropEndpointChain(other, dir);
      const cn = endpointChainName(e, dir);
      const problems: Problem[] = [];
      const uses: Use[] = [];
      const rules = endpointChain(this.m!, e, dir, problems, uses);
      for (const use of uses) if (!this.rs.chains.has(use.name)) this.renderShared(b, use.name, use);
      if (this.rs.chains.get(cn)?.rules !== rules) this.rs.chains.set(cn, { name: cn, rules });
      this.setInfo(cn, { problems, refs: refsOf(rules, 'jump') }, this.chainRefs);
      const map = this.rs.maps.get(dispatchMap(e, dir))!;
      const k = elemKey(iface);
      const entry = map.elements.get(k);
      if (!entry || !('jump' in entry[1]) || entry[1].jump.target !== cn)
        map.elements.set(k, [iface, jump(cn)]);
    }
  }

  private removeEndpoint(e: Endpoint): void {
    this.mapsWritable();
    this.localProblems.delete(e.iface!);
    this.rs.sets.get(SET_LOCAL_IFACES)!.elements.delete(elemKey(e.iface!));
    for (const dir of ['ingress', 'egress'] as const) this.dropEndpointChain(e, dir);
  }

  private dropEndpointChain(e: Endpoint, dir: Direction): void {
    const cn = endpointChainName(e, dir);
    if (!this.rs.chains.has(cn)) return;
    this.rs.chains.delete(cn);
    this.setInfo(cn, null, this.chainRefs);
    this.rs.maps.get(dispatchMap(e, dir))!.elements.delete(elemKey(e.iface!));
  }

  /** Drops policy/profile chains no endpoint chain jumps to, then sets no chain uses. */
  private collect(): void {
    for (const [name, n] of this.chainRefs) {
      if (n > 0) continue;
      this.chainRefs.delete(name);
      if (this.rs.chains.delete(name)) this.setInfo(name, null, this.setRefs);
    }
    for (const [name, n] of this.setRefs) {
      if (n > 0) continue;
      this.setRefs.delete(name);
      this.rs.sets.delete(name);
    }
  }
}

function dispatchMap(e: Endpoint, dir: Direction): string {
  if (e.kind === 'WorkloadEndpoint') return dir === 'ingress' ? MAP.toWl : MAP.fromWl;
  return dir === 'ingress' ? MAP.fromHost : MAP.toHost;
}

/** Policy chain name → (policy, direction), for every policy of the model with rules in that direction. */
function policyChainsOf(m: Model): Map<string, { p: NPolicy; dir: Direction }> {
  const out = new Map<string, { p: NPolicy; dir: Direction }>();
  for (const t of m.tiers) {
    for (const p of t.policies) {
      if (p.ingress !== null) out.set(policyChainName(p, 'ingress'), { p, dir: 'ingress' });
      if (p.egress !== null) out.set(policyChainName(p, 'egress'), { p, dir: 'egress' });
    }
  }
  return out;
}

export function compileModel(m: Model, opts: CompileOptions = {}): CompileResult {
  const index = opts.index ?? SelectorIndex.of(m.objects, m.namespaces);
  const c = new RulesetCompiler(index, opts.table ?? 'gingham');
  c.update(m, opts.locals ?? localEndpoints(m), { full: true });
  return { ruleset: c.ruleset(), model: m, problems: c.problems() };
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

/** compile(), ruleset only (one shot; the agent uses PolicyEngine). */
export function compileRuleset(input: PolicyInput, opts: CompileOptions = {}): NftRuleset {
  return compile(input, opts).ruleset;
}

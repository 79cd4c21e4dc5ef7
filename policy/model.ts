// The policy model: cluster resources (plain typed data, no etcd) normalised into what both the
// compiler and `explain` evaluate. Pure.
//
// Semantics follow Calico (felix/calc, libcalico-go): tiers by order, policies by order (unset =
// +∞, ties by name), first Allow/Deny wins, Pass skips to the next tier, end of a tier whose
// policies apply gives the tier's default action; endpoints no policy applies to (in a direction)
// fall through to their profiles; an endpoint with neither is denied.

import { type Family, formatIp, type Prefix, parseIp, parsePrefix } from '../lib/ip.js';
import type { Resource } from '../store/api.js';
import type {
  EntityRule,
  GlobalNetworkPolicySpec,
  GlobalNetworkSetSpec,
  HostEndpointSpec,
  IPPoolSpec,
  K8sNetworkPolicySpec,
  NetworkPolicySpec,
  NetworkSetSpec,
  ProfileSpec,
  Rule,
  TierSpec,
  WorkloadEndpointSpec,
} from '../store/schemas/index.js';
import { convertK8sNetworkPolicy } from './k8s.js';
import { formatSelector, Selector, type SelectorNode, SelectorParseError } from './selector.js';

export const DEFAULT_TIER = 'default';
/** Calico's built-in default tier order. */
export const DEFAULT_TIER_ORDER = 1_000_000;
export const NAMESPACE_LABEL = 'projectcalico.org/namespace';
export const ORCHESTRATOR_LABEL = 'projectcalico.org/orchestrator';
export const SERVICE_ACCOUNT_LABEL = 'projectcalico.org/serviceaccount';
/** Label Kubernetes puts on every namespace; upstream NetworkPolicy tests select by it. */
export const K8S_NS_NAME_LABEL = 'kubernetes.io/metadata.name';
const ALL = Selector.of('all()');

/** What the agent (or `policy render`) hands the compiler: everything in the cluster, and who we are. */
export interface PolicyInput {
  /** This node's name: its WorkloadEndpoints/HostEndpoints are the local ones. */
  node: string;
  resources: readonly Resource[];
  /** Overrides IPPool resources for NAT (the agent may already hold them parsed). */
  pools?: readonly PoolInput[];
  /**
   * Namespaces of endpoints kept outside `resources` (the incremental engine keeps its endpoints
   * itself): they get their implicit `kns.<ns>` profile like those of the WorkloadEndpoints given.
   */
  endpointNamespaces?: Iterable<string>;
}

export interface PoolInput {
  cidr: string;
  natOutgoing: boolean;
  disabled: boolean;
}

export interface Problem {
  severity: 'error' | 'warning';
  /** e.g. "NetworkPolicy x/allow-web". */
  object: string;
  message: string;
}

export type Direction = 'ingress' | 'egress';
export type Action = 'Allow' | 'Deny' | 'Pass' | 'Log';

export interface NamedPort {
  name: string;
  protocol: number;
  port: number;
}

/** Anything with addresses that selectors can pick: endpoints and network sets. */
export interface AddressObject {
  kind: 'WorkloadEndpoint' | 'HostEndpoint' | 'NetworkSet' | 'GlobalNetworkSet';
  name: string;
  namespace?: string;
  /** Effective labels: own, inherited from profiles, and the projectcalico.org/* ones. */
  labels: Record<string, string>;
  /** Host addresses (/32, /128) in canonical text — go to hash sets. Text, not bigint: 100k of them. */
  hosts4: string[];
  hosts6: string[];
  /** Wider CIDRs (network sets) — go to interval sets. */
  nets: Prefix[];
  ports: NamedPort[];
}

export interface Endpoint extends AddressObject {
  kind: 'WorkloadEndpoint' | 'HostEndpoint';
  node: string;
  iface?: string;
  profiles: string[];
  serviceAccount?: string;
  /** The pod/workload name, for `explain --from ns/pod`. */
  workload?: string;
}

/** Where a selector looks: one namespace, namespaces matching a selector, or everywhere. */
export type Scope = { kind: 'any' } | { kind: 'ns'; ns: string } | { kind: 'nsSel'; sel: Selector };

export interface EntityMatch {
  scope: Scope;
  sel: Selector;
  /** Canonical text: equal matches share one set. */
  key: string;
}

export type PortRange = [number, number];

export interface NEntity {
  nets: Prefix[];
  notNets: Prefix[];
  match?: EntityMatch;
  notMatch?: EntityMatch;
  ports: PortRange[];
  namedPorts: string[];
  notPorts: PortRange[];
  notNamedPorts: string[];
  /** Where named ports resolve when `match` is absent. */
  portScope: EntityMatch;
}

export interface NRule {
  index: number;
  action: Action;
  ipVersion?: Family;
  protocol?: number;
  notProtocol?: number;
  icmp?: { type?: number; code?: number };
  notICMP?: { type?: number; code?: number };
  src: NEntity;
  dst: NEntity;
}

export interface NPolicy {
  kind: 'NetworkPolicy' | 'GlobalNetworkPolicy' | 'K8sNetworkPolicy';
  name: string;
  namespace?: string;
  /** "ns/name" or "name": unique within the kind. */
  id: string;
  tier: string;
  order: number;
  applies: EntityMatch;
  serviceAccountSelector?: Selector;
  ingress: NRule[] | null;
  egress: NRule[] | null;
  /** Set when the policy could not be compiled: the endpoints it selects are denied (fail closed). */
  broken?: string;
}

export interface NTier {
  name: string;
  order: number;
  defaultAction: 'Deny' | 'Pass';
  policies: NPolicy[];
}

export interface NProfile {
  name: string;
  ingress: NRule[];
  egress: NRule[];
  labelsToApply: Record<string, string>;
  broken?: string;
}

export interface NPool {
  prefix: Prefix;
  natOutgoing: boolean;
  disabled: boolean;
}

export interface Model {
  node: string;
  tiers: NTier[];
  profiles: Map<string, NProfile>;
  namespaces: Map<string, Record<string, string>>;
  endpoints: Endpoint[];
  objects: AddressObject[];
  pools: NPool[];
  problems: Problem[];
}

export class PolicyModelError extends Error {
  constructor(
    readonly object: string,
    readonly problem: string,
  ) {
    super(`${object}: ${problem}`);
    this.name = 'PolicyModelError';
  }
}

// ---- helpers --------------------------------------------------------------------------------

const PROTOCOLS: Record<string, number> = { TCP: 6, UDP: 17, ICMP: 1, ICMPv6: 58, SCTP: 132, UDPLite: 136 };
export const PROTOCOL_NAMES: Record<number, string> = {
  6: 'TCP',
  17: 'UDP',
  1: 'ICMP',
  58: 'ICMPv6',
  132: 'SCTP',
  136: 'UDPLite',
};

export function protocolNumber(p: string | number, where: string): number {
  if (typeof p === 'number') return p;
  const n =
    PROTOCOLS[p] ?? PROTOCOLS[Object.keys(PROTOCOLS).find((k) => k.toLowerCase() === p.toLowerCase()) ?? ''];
  if (n === undefined) throw new PolicyModelError(where, `unknown protocol "${p}"`);
  return n;
}

function parseSel(text: string | undefined, where: string): Selector {
  try {
    return Selector.of(text ?? '');
  } catch (e) {
    if (e instanceof SelectorParseError) throw new PolicyModelError(where, e.message);
    throw e;
  }
}

function parseNets(nets: readonly string[] | undefined, where: string): Prefix[] {
  if (!nets || nets.length === 0) return NO_NETS;
  return nets.map((n) => {
    try {
      return parsePrefix(n, { loose: true });
    } catch {
      throw new PolicyModelError(where, `invalid CIDR "${n}"`);
    }
  });
}

/** No ports: one shared, frozen answer (most rule sides have none). */
const NO_PORT_SPEC: { ranges: PortRange[]; named: string[] } = Object.freeze({
  ranges: Object.freeze([]) as unknown as PortRange[],
  named: Object.freeze([]) as unknown as string[],
});

function parsePorts(
  ports: readonly (string | number)[] | undefined,
  where: string,
): { ranges: PortRange[]; named: string[] } {
  if (!ports || ports.length === 0) return NO_PORT_SPEC;
  const ranges: PortRange[] = [];
  const named: string[] = [];
  for (const p of ports) {
    if (typeof p === 'number') ranges.push([p, p]);
    else if (/^\d+$/.test(p)) ranges.push([Number(p), Number(p)]);
    else if (/^\d+:\d+$/.test(p)) {
      const [a, b] = p.split(':').map(Number) as [number, number];
      if (a > b || b > 65535) throw new PolicyModelError(where, `invalid port range "${p}"`);
      ranges.push([a, b]);
    } else named.push(p);
  }
  return { ranges, named };
}

export function scopeKey(s: Scope): string {
  if (s.kind === 'any') return '*';
  if (s.kind === 'ns') return `ns=${s.ns}`;
  return `nsSel=${s.sel.text}`;
}

export function entityMatch(scope: Scope, sel: Selector): EntityMatch {
  return { scope, sel, key: `${scopeKey(scope)}|${sel.text}` };
}

/** Does an address object fall into an entity match? */
export function matchesEntity(
  m: EntityMatch,
  o: AddressObject,
  namespaces: ReadonlyMap<string, Record<string, string>>,
): boolean {
  const isGlobal = o.namespace === undefined;
  switch (m.scope.kind) {
    case 'ns':
      if (o.namespace !== m.scope.ns) return false;
      break;
    case 'nsSel': {
      if (m.scope.sel.node.op === 'all') break; // all(): every namespace, and global objects too
      const nsLabels =
        o.namespace === undefined ? {} : (namespaces.get(o.namespace) ?? nsDefaultLabels(o.namespace));
      if (!m.scope.sel.matches({ labels: nsLabels, isGlobal })) return false;
      break;
    }
    case 'any':
      break;
  }
  return m.sel.matches({ labels: o.labels, isGlobal });
}

function nsDefaultLabels(ns: string): Record<string, string> {
  return { [K8S_NS_NAME_LABEL]: ns };
}

// ---- normalisation --------------------------------------------------------------------------

/**
 * A rule's `serviceAccounts` match as a selector over endpoint labels: `names` against
 * projectcalico.org/serviceaccount; `selector` against the service account's labels, which an
 * endpoint carries as `pcsa.<key>` (applied by its `ksa.<ns>.<sa>` profile, as Calico does), with
 * `projectcalico.org/name` standing for the account's name.
 */
export function serviceAccountSelector(
  sa: { names?: readonly string[]; selector?: string },
  where: string,
): Selector {
  const parts: string[] = [`has(${SERVICE_ACCOUNT_LABEL})`];
  if (sa.names && sa.names.length > 0) {
    const quoted = sa.names.map((n) => (n.includes('"') ? `'${n}'` : `"${n}"`));
    parts.push(`${SERVICE_ACCOUNT_LABEL} in {${quoted.join(', ')}}`);
  }
  if (sa.selector !== undefined) {
    const own = parseSel(sa.selector, `${where} selector`);
    if (own.node.op !== 'all') parts.push(`(${formatSelector(prefixKeys(own.node))})`);
  }
  return Selector.of(parts.join(' && '));
}

function prefixKeys(n: SelectorNode): SelectorNode {
  const key = (k: string) => (k === 'projectcalico.org/name' ? SERVICE_ACCOUNT_LABEL : `pcsa.${k}`);
  switch (n.op) {
    case 'all':
    case 'global':
      return n;
    case 'not':
      return { op: 'not', arg: prefixKeys(n.arg) };
    case 'and':
    case 'or':
      return { op: n.op, args: n.args.map(prefixKeys) };
    default:
      return { ...n, key: key(n.key) };
  }
}

function normEntity(
  e: EntityRule | undefined,
  policyScope: Scope,
  defaultPortScope: EntityMatch,
  where: string,
): NEntity {
  const nets = parseNets(e?.nets, where);
  const notNets = parseNets(e?.notNets, where);
  let scope = policyScope;
  if (e?.namespaceSelector !== undefined)
    scope = { kind: 'nsSel', sel: parseSel(e.namespaceSelector, `${where} namespaceSelector`) };
  if (e?.services) {
    // A Kubernetes Service's endpoints come from EndpointSlices, which Gingham does not watch:
    // matching them would need a second address source that can lag the Service. Rejected (the
    // policy fails closed) rather than silently matching nothing.
    throw new PolicyModelError(
      where,
      'services matches in rules are not supported by Gingham (it does not watch Service endpoints)',
    );
  }
  const sa = e?.serviceAccounts
    ? serviceAccountSelector(e.serviceAccounts, `${where} serviceAccounts`)
    : null;
  const hasSel = e?.selector !== undefined || e?.namespaceSelector !== undefined || sa !== null;
  let sel = parseSel(e?.selector, `${where} selector`);
  if (sa) sel = Selector.and(sel, sa);
  const match = hasSel ? entityMatch(scope, sel) : undefined;
  const notMatch =
    e?.notSelector !== undefined
      ? entityMatch(scope, parseSel(e.notSelector, `${where} notSelector`))
      : undefined;
  const p = parsePorts(e?.ports, where);
  const np = parsePorts(e?.notPorts, where);
  // Plain stores in the order of the NEntity fields (no spreads of temporary objects: 20,000 of
  // these per 1,000 policies).
  const out = { nets, notNets } as NEntity;
  if (match) out.match = match;
  if (notMatch) out.notMatch = notMatch;
  out.ports = p.ranges;
  out.namedPorts = p.named;
  out.notPorts = np.ranges;
  out.notNamedPorts = np.named;
  out.portScope = match ?? defaultPortScope;
  return out;
}

const EVERYWHERE = entityMatch({ kind: 'any' }, ALL);
/** `all()` within a namespace, one per namespace (equal keys: they share one set anyway). */
const allInNs = new Map<string, EntityMatch>();

/** Every object of a policy's scope. */
function scopeAll(scope: Scope): EntityMatch {
  if (scope.kind === 'any') return EVERYWHERE;
  if (scope.kind === 'nsSel') return entityMatch(scope, ALL);
  let em = allInNs.get(scope.ns);
  if (!em) {
    em = entityMatch({ kind: 'ns', ns: scope.ns }, ALL);
    if (allInNs.size > 10_000) allInNs.clear();
    allInNs.set(scope.ns, em);
  }
  return em;
}

export function normRule(
  r: Rule,
  index: number,
  dir: Direction,
  policyScope: Scope,
  applies: EntityMatch,
  where: string,
): NRule {
  const w = `${where} ${dir} rule ${index}`;
  // Named ports on the local side resolve against the endpoints the policy applies to;
  // on the remote side, against any endpoint in the policy's scope.
  const srcScope = dir === 'egress' ? applies : scopeAll(policyScope);
  const dstScope = dir === 'ingress' ? applies : scopeAll(policyScope);
  const icmp = r.icmp
    ? {
        ...(r.icmp.type !== undefined ? { type: r.icmp.type } : {}),
        ...(r.icmp.code !== undefined ? { code: r.icmp.code } : {}),
      }
    : undefined;
  const notICMP = r.notICMP
    ? {
        ...(r.notICMP.type !== undefined ? { type: r.notICMP.type } : {}),
        ...(r.notICMP.code !== undefined ? { code: r.notICMP.code } : {}),
      }
    : undefined;
  // Plain stores in field order, not spreads of temporary objects (see wepEndpoint: spread-built
  // objects can each get a hidden class of their own, and there are 10,000 rules per 1,000 policies).
  const out = { index, action: r.action } as NRule;
  if (r.ipVersion !== undefined) out.ipVersion = r.ipVersion;
  if (r.protocol !== undefined) out.protocol = protocolNumber(r.protocol, w);
  if (r.notProtocol !== undefined) out.notProtocol = protocolNumber(r.notProtocol, w);
  if (icmp) out.icmp = icmp;
  if (notICMP) out.notICMP = notICMP;
  out.src = normEntity(r.source, policyScope, srcScope, `${w} source`);
  out.dst = normEntity(r.destination, policyScope, dstScope, `${w} destination`);
  const portsUsed = [out.src, out.dst].some(
    (e) => e.ports.length + e.namedPorts.length + e.notPorts.length + e.notNamedPorts.length > 0,
  );
  if (portsUsed && ![6, 17, 132, 136].includes(out.protocol ?? -1)) {
    throw new PolicyModelError(w, 'ports need protocol TCP, UDP, SCTP or UDPLite');
  }
  if ((icmp || notICMP) && out.protocol !== 1 && out.protocol !== 58) {
    throw new PolicyModelError(w, 'icmp/notICMP need protocol ICMP or ICMPv6');
  }
  return out;
}

/** Calico's defaulting of `types` when absent: Ingress unless only egress rules exist; Egress if any egress rule. */
export function defaultTypes(s: { ingress?: unknown[]; egress?: unknown[]; types?: string[] }): Direction[] {
  if (s.types && s.types.length > 0) return s.types.map((t) => (t === 'Egress' ? 'egress' : 'ingress'));
  const hasI = (s.ingress?.length ?? 0) > 0;
  const hasE = (s.egress?.length ?? 0) > 0;
  const out: Direction[] = [];
  if (hasI || !hasE) out.push('ingress');
  if (hasE) out.push('egress');
  return out;
}

type PolicyLike = NetworkPolicySpec | GlobalNetworkPolicySpec;

/**
 * Normalised policies by resource object. The agent keeps unchanged resources as the same objects
 * between compiles, so a one-policy change re-normalises one policy, not a thousand. Entries are
 * never mutated (see the missing-tier path) and go away with their resources.
 */
const policyCache = new WeakMap<Resource, { policy: NPolicy; problems: Problem[] }>();
/** Normalised workload endpoints by resource object, valid while their inherited labels are the same. */
const endpointCache = new WeakMap<Resource, { sig: string; ep: Endpoint }>();
/** Host endpoints likewise; network sets by resource object. */
const hostEndpointCache = new WeakMap<Resource, { sig: string; ep: Endpoint }>();
const netSetCache = new WeakMap<Resource, AddressObject>();
/** Implicit kns.<ns> profiles by namespace and labels (read-only once built). */
const knsProfileCache = new Map<string, NProfile>();

function cachedPolicy(r: Resource, make: (problems: Problem[]) => NPolicy, problems: Problem[]): NPolicy {
  let hit = policyCache.get(r);
  if (!hit) {
    const ps: Problem[] = [];
    hit = { policy: make(ps), problems: ps };
    policyCache.set(r, hit);
  }
  problems.push(...hit.problems);
  return hit.policy;
}

function normPolicy(
  kind: NPolicy['kind'],
  name: string,
  namespace: string | undefined,
  spec: PolicyLike & { namespaceSelector?: string },
  problems: Problem[],
): NPolicy {
  const id = namespace ? `${namespace}/${name}` : name;
  const where = `${kind} ${id}`;
  const scope: Scope = namespace
    ? { kind: 'ns', ns: namespace }
    : spec.namespaceSelector !== undefined
      ? { kind: 'nsSel', sel: parseSel(spec.namespaceSelector, `${where} namespaceSelector`) }
      : { kind: 'any' };
  // The policy's own selector must parse, or we cannot tell whom it protects.
  const applies = entityMatch(scope, parseSel(spec.selector, `${where} selector`));
  const base: NPolicy = {
    kind,
    name,
    ...(namespace ? { namespace } : {}),
    id,
    tier: spec.tier ?? DEFAULT_TIER,
    order: spec.order ?? Number.POSITIVE_INFINITY,
    applies,
    ingress: null,
    egress: null,
  };
  try {
    if (spec.serviceAccountSelector !== undefined) {
      base.serviceAccountSelector = parseSel(spec.serviceAccountSelector, `${where} serviceAccountSelector`);
    }
    const types = defaultTypes(spec);
    if (types.includes('ingress'))
      base.ingress = (spec.ingress ?? []).map((r, i) => normRule(r, i, 'ingress', scope, applies, where));
    if (types.includes('egress'))
      base.egress = (spec.egress ?? []).map((r, i) => normRule(r, i, 'egress', scope, applies, where));
  } catch (e) {
    if (!(e instanceof PolicyModelError)) throw e;
    // Fail closed: the endpoints this policy selects are denied in the directions it covers.
    base.broken = e.message;
    const types = defaultTypes(spec);
    base.ingress = types.includes('ingress') ? [] : null;
    base.egress = types.includes('egress') ? [] : null;
    problems.push({
      severity: 'error',
      object: where,
      message: `${e.problem}; endpoints it selects are denied until fixed`,
    });
  }
  return base;
}

function label(r: Resource): string {
  return r.metadata.namespace
    ? `${r.kind} ${r.metadata.namespace}/${r.metadata.name}`
    : `${r.kind} ${r.metadata.name}`;
}

export function isK8sNetworkPolicy(r: Resource): boolean {
  return (
    r.kind === 'K8sNetworkPolicy' ||
    (r.kind === 'NetworkPolicy' && r.apiVersion.startsWith('networking.k8s.io'))
  );
}

const V4_HOST = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;

/** Canonical text of a host address (IPv4 as is, IPv6 compressed), or null if not an address. */
export function canonicalHost(text: string): { family: Family; text: string } | null {
  if (V4_HOST.test(text)) return { family: 4, text };
  try {
    const p = parseIp(text);
    return { family: p.family, text: formatIp(p.addr, p.family) };
  } catch {
    return null;
  }
}

/** Shared empty lists (never mutated: the model is read-only once built). */
const NONE = Object.freeze([]) as unknown as string[];
const NO_NETS = Object.freeze([]) as unknown as Prefix[];
const NO_PORTS = Object.freeze([]) as unknown as NamedPort[];

/** Splits CIDRs into host addresses (fast path, no bigint) and wider networks. */
function hostsAndNets(
  cidrs: readonly string[] | undefined,
  where: string,
): { hosts4: string[]; hosts6: string[]; nets: Prefix[] } {
  let hosts4: string[] = NONE;
  let hosts6: string[] = NONE;
  let nets: Prefix[] = NO_NETS;
  // Empty lists are one shared frozen array: with 100k endpoints, most have no IPv6 and no nets.
  for (const c of cidrs ?? []) {
    const slash = c.indexOf('/');
    const addr = slash < 0 ? c : c.slice(0, slash);
    const len = slash < 0 ? null : c.slice(slash + 1);
    if (len === null || len === '32' || len === '128') {
      const h = canonicalHost(addr);
      if (h && (len === null || (h.family === 4 ? len === '32' : len === '128'))) {
        const text = h.text === addr ? addr : h.text;
        // `[text]` sizes the array for one element; `[]` + push would reserve 17 slots.
        if (h.family === 4) {
          if (hosts4 === NONE) hosts4 = [text];
          else hosts4.push(text);
        } else if (hosts6 === NONE) hosts6 = [text];
        else hosts6.push(text);
        continue;
      }
    }
    if (nets === NO_NETS) nets = [];
    nets.push(...parseNets([c], where));
  }
  return { hosts4, hosts6, nets };
}

/**
 * One WorkloadEndpoint as policy sees it: effective labels (inherited from `profs`, then its own,
 * then the projectcalico.org/* ones), addresses split into hosts and nets, named ports.
 * `intern` lets a caller share equal label maps between endpoints (the engine does: 100k endpoints
 * carry a few hundred distinct label sets). Throws PolicyModelError for bad addresses or protocols.
 */
export function wepEndpoint(
  w: Resource<WorkloadEndpointSpec>,
  profs: readonly string[],
  inherited: Readonly<Record<string, string>>,
  opts: { intern?: (labels: Record<string, string>) => Record<string, string>; slim?: boolean } = {},
): Endpoint {
  const ns = w.metadata.namespace ?? 'default';
  const s = w.spec;
  const { hosts4, hosts6, nets } = hostsAndNets(s.ipNetworks, label(w));
  // Built by plain stores, not spreads: past a few thousand endpoints V8 gave every spread-built
  // object a hidden class of its own (~200 bytes each, 20 MB per 100k endpoints).
  let labels: Record<string, string> = {};
  for (const k in inherited) labels[k] = inherited[k]!;
  const own = w.metadata.labels;
  if (own) for (const k in own) labels[k] = own[k]!;
  labels[NAMESPACE_LABEL] = ns;
  labels[ORCHESTRATOR_LABEL] = s.orchestrator ?? 'k8s';
  if (s.serviceAccountName) labels[SERVICE_ACCOUNT_LABEL] = s.serviceAccountName;
  if (opts.intern) labels = opts.intern(labels);
  const ep: Endpoint = {
    kind: 'WorkloadEndpoint',
    name: w.metadata.name,
    namespace: ns,
    labels,
    hosts4,
    hosts6,
    nets,
    ports:
      s.ports && s.ports.length > 0
        ? s.ports.map((p) => ({
            name: p.name,
            protocol: protocolNumber(p.protocol, label(w)),
            port: p.port,
          }))
        : NO_PORTS,
    node: s.node,
    ...(s.interfaceName ? { iface: s.interfaceName } : {}),
    profiles: profs as string[],
    ...(s.serviceAccountName ? { serviceAccount: s.serviceAccountName } : {}),
  };
  // The workload name serves `explain --from ns/pod`; the engine leaves it out (memory).
  if (!opts.slim) ep.workload = s.pod ?? s.workload ?? w.metadata.name;
  return ep;
}

/** Builds the model. Never throws for bad resources: it reports them in `problems` and fails closed. */
export function buildModel(input: PolicyInput): Model {
  const problems: Problem[] = [];
  const namespaces = new Map<string, Record<string, string>>();
  const tiers = new Map<string, NTier>();
  const profiles = new Map<string, NProfile>();
  const policies: NPolicy[] = [];
  const weps: Resource<WorkloadEndpointSpec>[] = [];
  const heps: Resource<HostEndpointSpec>[] = [];
  const objects: AddressObject[] = [];
  const pools: NPool[] = [];

  const guard = (r: Resource, f: () => void) => {
    try {
      f();
    } catch (e) {
      if (e instanceof PolicyModelError)
        problems.push({ severity: 'error', object: label(r), message: e.problem });
      else
        problems.push({
          severity: 'error',
          object: label(r),
          message: e instanceof Error ? e.message : String(e),
        });
    }
  };

  tiers.set(DEFAULT_TIER, {
    name: DEFAULT_TIER,
    order: DEFAULT_TIER_ORDER,
    defaultAction: 'Deny',
    policies: [],
  });

  for (const r of input.resources) {
    const ns = r.metadata.namespace;
    guard(r, () => {
      if (isK8sNetworkPolicy(r)) {
        policies.push(
          cachedPolicy(
            r,
            (ps) =>
              normPolicy(
                'K8sNetworkPolicy',
                r.metadata.name,
                ns ?? 'default',
                convertK8sNetworkPolicy(r.metadata.name, ns ?? 'default', r.spec as K8sNetworkPolicySpec),
                ps,
              ),
            problems,
          ),
        );
        return;
      }
      switch (r.kind) {
        case 'Namespace':
          namespaces.set(r.metadata.name, {
            ...(r.metadata.labels ?? {}),
            [K8S_NS_NAME_LABEL]: r.metadata.name,
          });
          break;
        case 'Tier': {
          const s = r.spec as TierSpec;
          tiers.set(r.metadata.name, {
            name: r.metadata.name,
            order:
              s?.order ?? (r.metadata.name === DEFAULT_TIER ? DEFAULT_TIER_ORDER : Number.POSITIVE_INFINITY),
            defaultAction: s?.defaultAction ?? 'Deny',
            policies: [],
          });
          break;
        }
        case 'NetworkPolicy':
          if (!ns) throw new PolicyModelError(label(r), 'a NetworkPolicy needs a namespace');
          policies.push(
            cachedPolicy(
              r,
              (ps) => normPolicy('NetworkPolicy', r.metadata.name, ns, r.spec as NetworkPolicySpec, ps),
              problems,
            ),
          );
          break;
        case 'GlobalNetworkPolicy':
          policies.push(
            cachedPolicy(
              r,
              (ps) =>
                normPolicy(
                  'GlobalNetworkPolicy',
                  r.metadata.name,
                  undefined,
                  r.spec as GlobalNetworkPolicySpec,
                  ps,
                ),
              problems,
            ),
          );
          break;
        case 'Profile': {
          const s = (r.spec ?? {}) as ProfileSpec;
          profiles.set(r.metadata.name, normProfile(r.metadata.name, s, problems));
          break;
        }
        case 'NetworkSet':
        case 'GlobalNetworkSet': {
          // Same resource object → same address object: the engine's selector index sees no change.
          let o = netSetCache.get(r);
          if (!o) {
            const s = (r.spec ?? {}) as NetworkSetSpec | GlobalNetworkSetSpec;
            const { hosts4, hosts6, nets } = hostsAndNets(s.nets, label(r));
            o = {
              kind: r.kind,
              name: r.metadata.name,
              ...(ns && r.kind === 'NetworkSet' ? { namespace: ns } : {}),
              labels: {
                ...(r.metadata.labels ?? {}),
                ...(ns && r.kind === 'NetworkSet' ? { [NAMESPACE_LABEL]: ns } : {}),
              },
              hosts4,
              hosts6,
              nets,
              ports: [],
            };
            netSetCache.set(r, o);
          }
          objects.push(o);
          break;
        }
        case 'WorkloadEndpoint':
          weps.push(r as Resource<WorkloadEndpointSpec>);
          break;
        case 'HostEndpoint':
          heps.push(r as Resource<HostEndpointSpec>);
          break;
        case 'IPPool': {
          if (input.pools) break;
          const s = r.spec as IPPoolSpec;
          pools.push({
            prefix: parsePrefix(s.cidr, { loose: true }),
            natOutgoing: !!s.natOutgoing,
            disabled: !!s.disabled,
          });
          break;
        }
      }
    });
  }
  for (const p of input.pools ?? []) {
    try {
      pools.push({
        prefix: parsePrefix(p.cidr, { loose: true }),
        natOutgoing: p.natOutgoing,
        disabled: p.disabled,
      });
    } catch {
      problems.push({ severity: 'error', object: `pool ${p.cidr}`, message: 'invalid CIDR' });
    }
  }

  // Implicit per-namespace profiles, as Calico creates them under Kubernetes: allow all, apply the
  // namespace's labels (prefixed pcns.) to its endpoints.
  const nsNames = new Set<string>([
    ...namespaces.keys(),
    ...weps.map((w) => w.metadata.namespace ?? 'default'),
    ...(input.endpointNamespaces ?? []),
  ]);
  for (const ns of nsNames) {
    const labels = namespaces.get(ns) ?? nsDefaultLabels(ns);
    if (!namespaces.has(ns)) namespaces.set(ns, labels);
    const name = `kns.${ns}`;
    if (profiles.has(name)) continue;
    // Same namespace labels → the same profile object as last build (the compiler skips it).
    const cacheKey = `${ns}\u0000${JSON.stringify(labels)}`;
    const cached = knsProfileCache.get(cacheKey);
    if (cached) {
      profiles.set(name, cached);
      continue;
    }
    const allowAll: NRule = normRule(
      { action: 'Allow' },
      0,
      'ingress',
      { kind: 'any' },
      entityMatch({ kind: 'any' }, new Selector('')),
      name,
    );
    const pr: NProfile = {
      name,
      ingress: [allowAll],
      egress: [{ ...allowAll }],
      labelsToApply: Object.fromEntries(Object.entries(labels).map(([k, v]) => [`pcns.${k}`, v])),
    };
    if (knsProfileCache.size > 10_000) knsProfileCache.clear();
    knsProfileCache.set(cacheKey, pr);
    profiles.set(name, pr);
  }

  const endpoints: Endpoint[] = [];
  // Labels inherited from a profile list, computed once per distinct list in this build.
  const inheritedBy = new Map<string, { labels: Record<string, string>; sig: string }>();
  const defaultProfilesBy = new Map<string, string[]>();
  const defaultProfiles = (ns: string) => {
    let l = defaultProfilesBy.get(ns);
    if (!l) {
      l = [`kns.${ns}`];
      defaultProfilesBy.set(ns, l);
    }
    return l;
  };
  // By list identity first: lists are shared (the agent interns them, defaults are per namespace),
  // and a join per endpoint per compile was 100k garbage strings.
  const inheritedByList = new Map<readonly string[], { labels: Record<string, string>; sig: string }>();
  const inheritedFor = (profs: readonly string[]) => {
    const same = inheritedByList.get(profs);
    if (same) return same;
    const k = profs.join('\u0000');
    let v = inheritedBy.get(k);
    if (!v) {
      v = inheritedLabels(profiles, profs);
      inheritedBy.set(k, v);
    }
    inheritedByList.set(profs, v);
    return v;
  };
  for (const w of weps) {
    guard(w, () => {
      const ns = w.metadata.namespace ?? 'default';
      const s = w.spec;
      // The resource's own list is shared, not copied (neither side mutates it); the default one is
      // shared per namespace.
      const profs = s.profiles && s.profiles.length > 0 ? s.profiles : defaultProfiles(ns);
      const inherited = inheritedFor(profs);
      // Same resource object and same inherited labels → the same Endpoint object as last build,
      // which lets the compiler re-use its sets.
      const hit = endpointCache.get(w);
      if (hit && hit.sig === inherited.sig) {
        endpoints.push(hit.ep);
        return;
      }
      const ep = wepEndpoint(w, profs, inherited.labels);
      endpointCache.set(w, { sig: inherited.sig, ep });
      endpoints.push(ep);
    });
  }
  for (const h of heps) {
    guard(h, () => {
      const s = h.spec;
      const profs = s.profiles ?? [];
      const inherited = inheritedFor(profs as string[]);
      const hit = hostEndpointCache.get(h);
      if (hit && hit.sig === inherited.sig) {
        endpoints.push(hit.ep);
        return;
      }
      const ep: Endpoint = {
        kind: 'HostEndpoint',
        name: h.metadata.name,
        labels: { ...inherited.labels, ...(h.metadata.labels ?? {}) },
        ...hostsAndNets(s.expectedIPs, label(h)),
        ports: (s.ports ?? []).map((p) => ({
          name: p.name,
          protocol: protocolNumber(p.protocol, label(h)),
          port: p.port,
        })),
        node: s.node,
        ...(s.interfaceName ? { iface: s.interfaceName } : {}),
        profiles: [...profs],
        workload: h.metadata.name,
      };
      hostEndpointCache.set(h, { sig: inherited.sig, ep });
      endpoints.push(ep);
    });
  }

  for (const p of policies) {
    const t = tiers.get(p.tier);
    if (!t) {
      // Fail closed for a reference that may appear later: the policy's endpoints are denied
      // (in the directions it covers) until the tier exists.
      problems.push({
        severity: 'error',
        object: `${p.kind} ${p.id}`,
        message: `tier "${p.tier}" does not exist; endpoints it selects are denied until it is created`,
      });
      const failed: NPolicy = {
        ...p,
        broken: `missing tier "${p.tier}"`,
        ingress: p.ingress ? [] : null,
        egress: p.egress ? [] : null,
      };
      tiers.set(p.tier, {
        name: p.tier,
        order: Number.NEGATIVE_INFINITY,
        defaultAction: 'Deny',
        policies: [failed],
      });
      continue;
    }
    t.policies.push(p);
  }
  for (const t of tiers.values()) t.policies.sort(comparePolicies);
  const sortedTiers = [...tiers.values()].sort(
    (a, b) => a.order - b.order || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0),
  );

  for (const e of endpoints) objects.push(e);
  return { node: input.node, tiers: sortedTiers, profiles, namespaces, endpoints, objects, pools, problems };
}

/** Labels an endpoint inherits from its profiles (later profiles win), and their signature. */
export function inheritedLabels(
  profiles: ReadonlyMap<string, NProfile>,
  profs: readonly string[],
): { labels: Record<string, string>; sig: string } {
  const labels: Record<string, string> = {};
  for (const p of profs) Object.assign(labels, profiles.get(p)?.labelsToApply ?? {});
  return { labels, sig: JSON.stringify(labels) };
}

function normProfile(name: string, s: ProfileSpec, problems: Problem[]): NProfile {
  const scope: Scope = { kind: 'any' };
  const applies = entityMatch(scope, new Selector(''));
  try {
    return {
      name,
      ingress: (s.ingress ?? []).map((r, i) => normRule(r, i, 'ingress', scope, applies, `Profile ${name}`)),
      egress: (s.egress ?? []).map((r, i) => normRule(r, i, 'egress', scope, applies, `Profile ${name}`)),
      labelsToApply: { ...(s.labelsToApply ?? {}) },
    };
  } catch (e) {
    if (!(e instanceof PolicyModelError)) throw e;
    problems.push({
      severity: 'error',
      object: `Profile ${name}`,
      message: `${e.problem}; its endpoints are denied until fixed`,
    });
    return {
      name,
      ingress: [],
      egress: [],
      labelsToApply: { ...(s.labelsToApply ?? {}) },
      broken: e.problem,
    };
  }
}

export function comparePolicies(a: NPolicy, b: NPolicy): number {
  if (a.order !== b.order) return a.order < b.order ? -1 : 1;
  const ka = `${a.namespace ?? ''}/${a.name}`;
  const kb = `${b.namespace ?? ''}/${b.name}`;
  return ka < kb ? -1 : ka > kb ? 1 : 0;
}

/** Does a policy apply to this endpoint in this direction? */
export function policyApplies(m: Model, p: NPolicy, e: Endpoint, dir: Direction): boolean {
  if ((dir === 'ingress' ? p.ingress : p.egress) === null) return false;
  if (!matchesEntity(p.applies, e, m.namespaces)) return false;
  if (p.serviceAccountSelector) {
    if (!e.serviceAccount) return false;
    if (!p.serviceAccountSelector.matches({ labels: { 'projectcalico.org/name': e.serviceAccount } }))
      return false;
  }
  return true;
}

/** Per tier: the policies that can apply in one namespace (its own and the global ones), in order. */
const tierNsIndex = new WeakMap<NTier, Map<string, NPolicy[]>>();

function candidatePolicies(t: NTier, ns: string | undefined): NPolicy[] {
  let idx = tierNsIndex.get(t);
  if (!idx) {
    idx = new Map();
    tierNsIndex.set(t, idx);
  }
  const k = ns ?? '\u0000global';
  let l = idx.get(k);
  if (!l) {
    l = t.policies.filter((p) => p.namespace === undefined || p.namespace === ns);
    idx.set(k, l);
  }
  return l;
}

/** Tiers with at least one policy for this endpoint and direction, in evaluation order. */
export function tiersFor(m: Model, e: Endpoint, dir: Direction): { tier: NTier; policies: NPolicy[] }[] {
  const out: { tier: NTier; policies: NPolicy[] }[] = [];
  for (const t of m.tiers) {
    const ps = candidatePolicies(t, e.namespace).filter((p) => policyApplies(m, p, e, dir));
    if (ps.length > 0) out.push({ tier: t, policies: ps });
  }
  return out;
}

export function localEndpoints(m: Model): Endpoint[] {
  return m.endpoints.filter((e) => e.node === m.node && e.iface !== undefined);
}

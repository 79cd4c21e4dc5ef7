// `gingham policy explain`: which tier, policy and rule (or profile, or default) decides a flow, in
// both directions (egress of the source, ingress of the destination). Pure: evaluates the same model
// the compiler renders, on one concrete packet.
//
// Assumptions about the packet, stated in the output: the source port is an unknown ephemeral port
// (rules on source ports do not match it, rules on notPorts do); an ICMP probe is an echo request.

import { type Family, formatIp, type Prefix, parsePrefix, prefixContains } from '../lib/ip.js';
import {
  type AddressObject,
  canonicalHost,
  type Direction,
  type Endpoint,
  type EntityMatch,
  type Model,
  matchesEntity,
  type NEntity,
  type NRule,
  PROTOCOL_NAMES,
  protocolNumber,
  tiersFor,
} from './model.js';

export interface FlowQuery {
  /** "ns/pod", a WorkloadEndpoint name "ns/<wep-name>", a HostEndpoint name, or an IP address. */
  from: string;
  to: string;
  protocol: string | number;
  port?: number;
}

export interface Party {
  query: string;
  ip: string;
  endpoint?: { kind: string; namespace?: string; name: string; workload?: string; node: string };
}

export type DecidedBy =
  | { kind: 'rule'; tier: string; policyKind: string; policy: string; rule: number; action: 'Allow' | 'Deny' }
  | { kind: 'broken-policy'; tier: string; policyKind: string; policy: string; problem: string }
  | { kind: 'tier-default'; tier: string; action: 'Deny' }
  | { kind: 'profile-rule'; profile: string; rule: number; action: 'Allow' | 'Deny' }
  | { kind: 'no-profile-allowed'; profiles: string[] }
  | { kind: 'not-policed'; reason: string };

export interface Step {
  tier?: string;
  policy?: string;
  policyKind?: string;
  profile?: string;
  outcome: 'no-match' | 'Allow' | 'Deny' | 'Pass' | 'Log' | 'skipped (passed)' | 'tier-default-pass';
  rule?: number;
}

export interface DirectionResult {
  direction: Direction;
  /** Tiers with at least one policy selecting the endpoint in this direction. */
  tiersApplied: string[];
  party: string;
  verdict: 'Allow' | 'Deny';
  decidedBy: DecidedBy;
  steps: Step[];
}

export interface Explanation {
  from: Party;
  to: Party;
  protocol: string;
  port?: number;
  egress: DirectionResult;
  ingress: DirectionResult;
  verdict: 'Allow' | 'Deny';
}

export class ExplainError extends Error {
  constructor(
    readonly what: string,
    readonly problem: string,
  ) {
    super(`${what}: ${problem}`);
    this.name = 'ExplainError';
  }
}

interface Packet {
  family: Family;
  src: Prefix;
  dst: Prefix;
  protocol: number;
  dport?: number;
}

function hostPrefix(ip: string): Prefix {
  return parsePrefix(ip, { loose: true });
}

function resolveParty(m: Model, q: string, family?: Family): { party: Party; endpoint?: Endpoint } {
  try {
    const h = canonicalHost(q);
    if (!h) throw new Error('not an address');
    const ep = m.endpoints.find((e) => (h.family === 4 ? e.hosts4 : e.hosts6).includes(h.text));
    return {
      party: { query: q, ip: h.text, ...(ep ? { endpoint: describe(ep) } : {}) },
      ...(ep ? { endpoint: ep } : {}),
    };
  } catch {
    // not an address: an endpoint name
  }
  const slash = q.indexOf('/');
  const ns = slash >= 0 ? q.slice(0, slash) : undefined;
  const name = slash >= 0 ? q.slice(slash + 1) : q;
  const candidates = m.endpoints.filter(
    (e) =>
      e.namespace === ns &&
      (e.workload === name || e.name === name) &&
      (ns !== undefined || e.kind === 'HostEndpoint'),
  );
  if (candidates.length === 0) {
    const known = m.endpoints
      .slice(0, 8)
      .map((e) => (e.namespace ? `${e.namespace}/${e.workload ?? e.name}` : e.name))
      .join(', ');
    throw new ExplainError(q, `no such endpoint (known: ${known}${m.endpoints.length > 8 ? ', …' : ''})`);
  }
  if (candidates.length > 1)
    throw new ExplainError(q, `ambiguous: ${candidates.map((c) => c.name).join(', ')}`);
  const ep = candidates[0]!;
  const ip =
    (family === 6 ? ep.hosts6[0] : family === 4 ? ep.hosts4[0] : undefined) ?? ep.hosts4[0] ?? ep.hosts6[0];
  if (!ip) throw new ExplainError(q, 'endpoint has no address');
  return { party: { query: q, ip, endpoint: describe(ep) }, endpoint: ep };
}

function describe(e: Endpoint): Party['endpoint'] {
  return {
    kind: e.kind,
    ...(e.namespace ? { namespace: e.namespace } : {}),
    name: e.name,
    ...(e.workload ? { workload: e.workload } : {}),
    node: e.node,
  };
}

function hasHost(o: AddressObject, ip: Prefix): boolean {
  const text = formatIp(ip.addr, ip.family);
  return (ip.family === 4 ? o.hosts4 : o.hosts6).includes(text) || o.nets.some((n) => prefixContains(n, ip));
}

function inMembers(m: Model, em: EntityMatch, ip: Prefix, cache: Map<string, AddressObject[]>): boolean {
  let ms = cache.get(em.key);
  if (!ms) {
    ms = m.objects.filter((o) => matchesEntity(em, o, m.namespaces));
    cache.set(em.key, ms);
  }
  return ms.some((o) => hasHost(o, ip) || o.nets.some((n) => prefixContains(n, ip)));
}

function portIn(ranges: [number, number][], port: number | undefined): boolean {
  return port !== undefined && ranges.some(([a, b]) => port >= a && port <= b);
}

function namedPortMatches(
  m: Model,
  e: NEntity,
  names: string[],
  ip: Prefix,
  pkt: Packet,
  cache: Map<string, AddressObject[]>,
): boolean {
  if (pkt.dport === undefined) return false;
  let ms = cache.get(e.portScope.key);
  if (!ms) {
    ms = m.objects.filter((o) => matchesEntity(e.portScope, o, m.namespaces));
    cache.set(e.portScope.key, ms);
  }
  return ms.some(
    (o) =>
      hasHost(o, ip) &&
      o.ports.some((p) => names.includes(p.name) && p.protocol === pkt.protocol && p.port === pkt.dport),
  );
}

export function ruleMatches(
  m: Model,
  r: NRule,
  pkt: Packet,
  cache = new Map<string, AddressObject[]>(),
): boolean {
  if (r.ipVersion && r.ipVersion !== pkt.family) return false;
  if (r.protocol !== undefined && r.protocol !== pkt.protocol) return false;
  if (r.notProtocol !== undefined && r.notProtocol === pkt.protocol) return false;
  if (r.protocol === 1 && pkt.family !== 4) return false;
  if (r.protocol === 58 && pkt.family !== 6) return false;
  const echo = pkt.family === 4 ? 8 : 128;
  if (r.icmp?.type !== undefined && r.icmp.type !== echo) return false;
  if (r.icmp?.code !== undefined && r.icmp.code !== 0) return false;
  if (
    r.notICMP?.type !== undefined &&
    r.notICMP.type === echo &&
    (r.notICMP.code === undefined || r.notICMP.code === 0)
  )
    return false;
  for (const [e, ip, port] of [
    [r.src, pkt.src, undefined],
    [r.dst, pkt.dst, pkt.dport],
  ] as const) {
    const fam = e.nets.filter((n) => n.family === pkt.family);
    if (e.nets.length > 0 && !fam.some((n) => prefixContains(n, ip))) return false;
    if (e.notNets.some((n) => prefixContains(n, ip))) return false;
    if (e.match && !inMembers(m, e.match, ip, cache)) return false;
    if (e.notMatch && inMembers(m, e.notMatch, ip, cache)) return false;
    if (e.ports.length + e.namedPorts.length > 0) {
      const ok =
        portIn(e.ports, port) ||
        (e === r.dst && e.namedPorts.length > 0 && namedPortMatches(m, e, e.namedPorts, ip, pkt, cache));
      if (!ok) return false;
    }
    if (portIn(e.notPorts, port)) return false;
    if (e === r.dst && e.notNamedPorts.length > 0 && namedPortMatches(m, e, e.notNamedPorts, ip, pkt, cache))
      return false;
  }
  return true;
}

function evaluateDirection(
  m: Model,
  ep: Endpoint | undefined,
  partyName: string,
  dir: Direction,
  pkt: Packet,
): DirectionResult {
  const steps: Step[] = [];
  const tiers = ep ? tiersFor(m, ep, dir) : [];
  const base = { direction: dir, party: partyName, steps, tiersApplied: tiers.map((t) => t.tier.name) };
  if (!ep) {
    return {
      ...base,
      verdict: 'Allow',
      decidedBy: { kind: 'not-policed', reason: 'not a Gingham endpoint (no policy applies)' },
    };
  }
  const cache = new Map<string, AddressObject[]>();
  for (const { tier, policies } of tiers) {
    let passed = false;
    for (const p of policies) {
      if (passed) {
        steps.push({ tier: tier.name, policy: p.id, policyKind: p.kind, outcome: 'skipped (passed)' });
        continue;
      }
      if (p.broken) {
        steps.push({ tier: tier.name, policy: p.id, policyKind: p.kind, outcome: 'Deny' });
        return {
          ...base,
          verdict: 'Deny',
          decidedBy: {
            kind: 'broken-policy',
            tier: tier.name,
            policyKind: p.kind,
            policy: p.id,
            problem: p.broken,
          },
        };
      }
      let decided = false;
      for (const r of (dir === 'ingress' ? p.ingress : p.egress) ?? []) {
        if (!ruleMatches(m, r, pkt, cache)) continue;
        steps.push({ tier: tier.name, policy: p.id, policyKind: p.kind, rule: r.index, outcome: r.action });
        if (r.action === 'Log') continue;
        if (r.action === 'Pass') {
          passed = true;
          decided = true;
          break;
        }
        return {
          ...base,
          verdict: r.action,
          decidedBy: {
            kind: 'rule',
            tier: tier.name,
            policyKind: p.kind,
            policy: p.id,
            rule: r.index,
            action: r.action,
          },
        };
      }
      if (!decided) steps.push({ tier: tier.name, policy: p.id, policyKind: p.kind, outcome: 'no-match' });
    }
    if (!passed) {
      if (tier.defaultAction === 'Deny')
        return {
          ...base,
          verdict: 'Deny',
          decidedBy: { kind: 'tier-default', tier: tier.name, action: 'Deny' },
        };
      steps.push({ tier: tier.name, outcome: 'tier-default-pass' });
    }
  }
  for (const name of ep.profiles) {
    const pr = m.profiles.get(name);
    if (!pr) continue;
    for (const r of dir === 'ingress' ? pr.ingress : pr.egress) {
      if (!ruleMatches(m, r, pkt, cache)) continue;
      steps.push({ profile: name, rule: r.index, outcome: r.action });
      if (r.action === 'Allow' || r.action === 'Deny') {
        return {
          ...base,
          verdict: r.action,
          decidedBy: { kind: 'profile-rule', profile: name, rule: r.index, action: r.action },
        };
      }
      if (r.action === 'Pass') break;
    }
    steps.push({ profile: name, outcome: 'no-match' });
  }
  return { ...base, verdict: 'Deny', decidedBy: { kind: 'no-profile-allowed', profiles: ep.profiles } };
}

export function explain(m: Model, q: FlowQuery): Explanation {
  const protocol = protocolNumber(
    typeof q.protocol === 'string' ? q.protocol.toUpperCase().replace('ICMPV6', 'ICMPv6') : q.protocol,
    'protocol',
  );
  const famHint: Family | undefined = protocol === 58 ? 6 : protocol === 1 ? 4 : undefined;
  const from = resolveParty(m, q.from, famHint);
  const to = resolveParty(m, q.to, famHint ?? (from.party.ip.includes(':') ? 6 : 4));
  const src = hostPrefix(from.party.ip);
  const dst = hostPrefix(to.party.ip);
  if (src.family !== dst.family)
    throw new ExplainError(`${q.from} → ${q.to}`, 'source and destination are of different IP families');
  if ((protocol === 6 || protocol === 17 || protocol === 132) && q.port === undefined) {
    throw new ExplainError('--port', `a port is needed for ${PROTOCOL_NAMES[protocol]}`);
  }
  const pkt: Packet = {
    family: src.family,
    src,
    dst,
    protocol,
    ...(q.port !== undefined ? { dport: q.port } : {}),
  };
  const name = (p: Party) =>
    p.endpoint
      ? `${p.endpoint.namespace ? `${p.endpoint.namespace}/` : ''}${p.endpoint.workload ?? p.endpoint.name}`
      : p.ip;
  const egress = evaluateDirection(m, from.endpoint, name(from.party), 'egress', pkt);
  const ingress = evaluateDirection(m, to.endpoint, name(to.party), 'ingress', pkt);
  return {
    from: from.party,
    to: to.party,
    protocol: PROTOCOL_NAMES[protocol] ?? String(protocol),
    ...(q.port !== undefined ? { port: q.port } : {}),
    egress,
    ingress,
    verdict: egress.verdict === 'Allow' && ingress.verdict === 'Allow' ? 'Allow' : 'Deny',
  };
}

function decidedText(d: DecidedBy): string {
  switch (d.kind) {
    case 'rule':
      return `${d.policyKind} ${d.policy} (tier ${d.tier}), rule ${d.rule}: ${d.action}`;
    case 'broken-policy':
      return `${d.policyKind} ${d.policy} (tier ${d.tier}) is invalid and fails closed: ${d.problem}`;
    case 'tier-default':
      return `end of tier ${d.tier}: policies applied but none allowed it (tier default action Deny)`;
    case 'profile-rule':
      return `profile ${d.profile}, rule ${d.rule}: ${d.action}`;
    case 'no-profile-allowed':
      return d.profiles.length === 0
        ? 'no policy applies and the endpoint has no profile: denied'
        : `no policy applies and no profile (${d.profiles.join(', ')}) allowed it`;
    case 'not-policed':
      return d.reason;
  }
}

function stepText(s: Step): string {
  const who = s.profile
    ? `profile ${s.profile}`
    : s.policy
      ? `${s.policyKind} ${s.policy}`
      : `tier ${s.tier}`;
  const rule = s.rule !== undefined ? ` rule ${s.rule}` : '';
  switch (s.outcome) {
    case 'no-match':
      return `  ·  ${who}: no rule matched`;
    case 'skipped (passed)':
      return `  ⤼  ${who}: skipped (an earlier policy in tier ${s.tier} passed)`;
    case 'tier-default-pass':
      return `  ⤼  end of tier ${s.tier}: default action Pass`;
    case 'Pass':
      return `  ⤼  ${who}${rule}: Pass → next tier`;
    case 'Log':
      return `  ✎  ${who}${rule}: Log (continues)`;
    case 'Allow':
      return `  ✓  ${who}${rule}: Allow`;
    case 'Deny':
      return `  ✗  ${who}${rule}: Deny`;
  }
}

export function formatExplanation(x: Explanation): string {
  const partyText = (p: Party) =>
    p.endpoint
      ? `${p.endpoint.namespace ? `${p.endpoint.namespace}/` : ''}${p.endpoint.workload ?? p.endpoint.name} (${p.ip}, node ${p.endpoint.node})`
      : `${p.ip} (not a Gingham endpoint)`;
  const lines: string[] = [];
  lines.push(`Flow:    ${partyText(x.from)}  →  ${partyText(x.to)}`);
  lines.push(
    `Packet:  ${x.protocol}${x.port !== undefined ? ` port ${x.port}` : x.protocol.startsWith('ICMP') ? ' echo request' : ''}, new connection`,
  );
  for (const d of [x.egress, x.ingress]) {
    lines.push('');
    lines.push(
      `${d.direction === 'egress' ? 'Egress of' : 'Ingress of'} ${d.party}: ${d.verdict === 'Allow' ? 'ALLOW' : 'DENY'}`,
    );
    if (d.decidedBy.kind !== 'not-policed' && d.tiersApplied.length === 0) {
      lines.push(`  (no policy selects ${d.party} for ${d.direction}: its profiles decide)`);
    }
    let lastTier: string | undefined;
    for (const s of d.steps) {
      if (s.tier && s.tier !== lastTier) {
        lines.push(`  tier ${s.tier}`);
        lastTier = s.tier;
      } else if (s.profile && lastTier !== '(profiles)') {
        lines.push('  profiles');
        lastTier = '(profiles)';
      }
      lines.push(`  ${stepText(s)}`);
    }
    lines.push(`  → decided by ${decidedText(d.decidedBy)}`);
  }
  lines.push('');
  const deny = x.egress.verdict === 'Deny' ? x.egress : x.ingress.verdict === 'Deny' ? x.ingress : undefined;
  lines.push(
    x.verdict === 'Allow'
      ? 'Verdict: ALLOWED'
      : `Verdict: DENIED by the ${deny!.direction} side (${deny!.party}): ${decidedText(deny!.decidedBy)}`,
  );
  return `${lines.join('\n')}\n`;
}

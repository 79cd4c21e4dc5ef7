// Kubernetes networking.k8s.io/v1 NetworkPolicy → Calico NetworkPolicy, the way Calico converts it
// (libcalico-go/lib/backend/k8s/conversion/conversion.go): default tier, order 1000, policyTypes
// defaulting, one Calico rule per (peer × protocol group), ipBlock.except → notNets, named ports,
// endPort → "port:endPort", namespaceSelector + podSelector in one peer. Pure.

import type { EntityRule, K8sNetworkPolicySpec, NetworkPolicySpec, Rule } from '../store/schemas/index.js';

export const K8S_POLICY_ORDER = 1000;

type LabelSelector = K8sNetworkPolicySpec['podSelector'];
type Peer = NonNullable<NonNullable<K8sNetworkPolicySpec['ingress']>[number]['from']>[number];
type NpPort = NonNullable<NonNullable<K8sNetworkPolicySpec['ingress']>[number]['ports']>[number];

function q(s: string): string {
  return s.includes("'") ? `"${s}"` : `'${s}'`;
}

/** A Kubernetes LabelSelector as a Calico selector ("" = everything). */
export function labelSelectorToCalico(ls: LabelSelector | undefined): string {
  if (!ls) return '';
  const parts: string[] = [];
  for (const [k, v] of Object.entries(ls.matchLabels ?? {}).sort()) parts.push(`${k} == ${q(v)}`);
  for (const e of ls.matchExpressions ?? []) {
    const vs = (e.values ?? []).map(q).join(', ');
    switch (e.operator) {
      case 'In':
        parts.push(`${e.key} in { ${vs} }`);
        break;
      case 'NotIn':
        parts.push(`${e.key} not in { ${vs} }`);
        break;
      case 'Exists':
        parts.push(`has(${e.key})`);
        break;
      case 'DoesNotExist':
        parts.push(`! has(${e.key})`);
        break;
    }
  }
  return parts.length === 0 ? 'all()' : parts.join(' && ');
}

function peerToEntity(p: Peer): EntityRule {
  if (p.ipBlock) {
    return {
      nets: [p.ipBlock.cidr],
      ...(p.ipBlock.except?.length ? { notNets: [...p.ipBlock.except] } : {}),
    };
  }
  const e: EntityRule = {};
  if (p.podSelector) e.selector = labelSelectorToCalico(p.podSelector);
  if (p.namespaceSelector) {
    e.namespaceSelector = labelSelectorToCalico(p.namespaceSelector);
    e.selector ??= 'all()';
  }
  return e;
}

/** Ports grouped by protocol, since a Calico rule has one protocol. */
function portGroups(
  ports: readonly NpPort[] | undefined,
): { protocol?: 'TCP' | 'UDP' | 'SCTP'; ports?: (string | number)[] }[] {
  if (!ports || ports.length === 0) return [{}];
  const by = new Map<string, (string | number)[]>();
  const all = new Set<string>();
  for (const p of ports) {
    const proto = p.protocol ?? 'TCP';
    if (!by.has(proto)) by.set(proto, []);
    if (p.port === undefined) {
      all.add(proto); // every port of that protocol
      continue;
    }
    by.get(proto)!.push(
      p.endPort !== undefined && typeof p.port === 'number' ? `${p.port}:${p.endPort}` : p.port,
    );
  }
  return [...by.entries()].map(([proto, ps]) =>
    all.has(proto) ? { protocol: proto as 'TCP' } : { protocol: proto as 'TCP', ports: ps },
  );
}

function convertRules(
  rules: readonly { peers?: Peer[]; ports?: NpPort[] }[] | undefined,
  side: 'source' | 'destination',
): Rule[] {
  const out: Rule[] = [];
  for (const r of rules ?? []) {
    const peers: (EntityRule | undefined)[] =
      r.peers && r.peers.length > 0 ? r.peers.map(peerToEntity) : [undefined];
    for (const peer of peers) {
      for (const g of portGroups(r.ports)) {
        const rule: Rule = { action: 'Allow' };
        if (g.protocol) rule.protocol = g.protocol;
        const portSide: EntityRule | undefined = g.ports ? { ports: g.ports } : undefined;
        if (side === 'source') {
          if (peer) rule.source = peer;
          if (portSide) rule.destination = portSide;
        } else {
          rule.destination = { ...(peer ?? {}), ...(portSide ?? {}) };
        }
        out.push(rule);
      }
    }
  }
  return out;
}

export function convertK8sNetworkPolicy(
  name: string,
  namespace: string,
  s: K8sNetworkPolicySpec,
): NetworkPolicySpec {
  // Defaulting (k8s API): Ingress always, Egress when egress rules are present.
  const types: ('Ingress' | 'Egress')[] =
    s.policyTypes && s.policyTypes.length > 0
      ? [...s.policyTypes]
      : s.egress && s.egress.length > 0
        ? ['Ingress', 'Egress']
        : ['Ingress'];
  void name;
  void namespace;
  return {
    tier: 'default',
    order: K8S_POLICY_ORDER,
    selector: labelSelectorToCalico(s.podSelector),
    types,
    ingress: convertRules(
      (s.ingress ?? []).map((r) => ({
        ...(r.from ? { peers: r.from } : {}),
        ...(r.ports ? { ports: r.ports } : {}),
      })),
      'source',
    ),
    egress: convertRules(
      (s.egress ?? []).map((r) => ({
        ...(r.to ? { peers: r.to } : {}),
        ...(r.ports ? { ports: r.ports } : {}),
      })),
      'destination',
    ),
  } as NetworkPolicySpec;
}

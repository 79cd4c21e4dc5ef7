// Policy kinds (Calico v3 policy_common.go, networkpolicy.go, globalnetworkpolicy.go, profile.go,
// tier.go, networkset.go, globalnetworkset.go). Selectors are strings here; policy/ parses them.
import { z } from 'zod';
import { cidr, labelMap, namespaceName, port, protocol, selector, stringMap } from './common.js';

const icmpFields = z
  .strictObject({
    type: z.number().int().min(0).max(254).optional(),
    code: z.number().int().min(0).max(255).optional(),
  })
  .refine((v) => v.code === undefined || v.type !== undefined, {
    message: 'type when code is set',
    path: ['code'],
  });

export const entityRule = z.strictObject({
  nets: z.array(cidr).optional(),
  notNets: z.array(cidr).optional(),
  selector: selector.optional(),
  notSelector: selector.optional(),
  namespaceSelector: selector.optional(),
  ports: z.array(port).optional(),
  notPorts: z.array(port).optional(),
  serviceAccounts: z
    .strictObject({ names: z.array(z.string()).optional(), selector: selector.optional() })
    .optional(),
  services: z.strictObject({ name: z.string().min(1), namespace: namespaceName.optional() }).optional(),
});

const PORT_PROTOCOLS = new Set<unknown>(['TCP', 'UDP', 'SCTP', 'UDPLite', 6, 17, 132, 136]);

export const rule = z
  .strictObject({
    action: z.enum(['Allow', 'Deny', 'Log', 'Pass']),
    ipVersion: z.union([z.literal(4), z.literal(6)]).optional(),
    protocol: protocol.optional(),
    notProtocol: protocol.optional(),
    icmp: icmpFields.optional(),
    notICMP: icmpFields.optional(),
    source: entityRule.optional(),
    destination: entityRule.optional(),
    metadata: z.strictObject({ annotations: stringMap.optional() }).optional(),
  })
  .superRefine((r, ctx) => {
    // Calico: ports are only meaningful (and only allowed) with a port-carrying protocol.
    for (const side of ['source', 'destination'] as const) {
      const e = r[side];
      if (!e) continue;
      for (const f of ['ports', 'notPorts'] as const) {
        if (e[f]?.length && !PORT_PROTOCOLS.has(r.protocol)) {
          ctx.addIssue({
            code: 'custom',
            path: [side, f],
            message: 'protocol TCP, UDP or SCTP when ports are set',
          });
        }
      }
    }
    if (
      (r.icmp || r.notICMP) &&
      r.protocol !== 'ICMP' &&
      r.protocol !== 'ICMPv6' &&
      r.protocol !== 1 &&
      r.protocol !== 58
    ) {
      ctx.addIssue({ code: 'custom', path: ['icmp'], message: 'protocol ICMP or ICMPv6 when icmp is set' });
    }
  });

const policyType = z.enum(['Ingress', 'Egress']);

const policyCommon = {
  tier: z.string().default('default'),
  /** Lower orders apply first; unset = after every ordered policy. */
  order: z.number().optional(),
  selector: selector.optional(),
  serviceAccountSelector: selector.optional(),
  ingress: z.array(rule).optional(),
  egress: z.array(rule).optional(),
  types: z.array(policyType).min(1).optional(),
  performanceHints: z.array(z.enum(['AssumeNeededOnEveryNode'])).optional(),
};

/** Calico's rule: types = [Ingress] unless there are only egress rules, plus Egress if there are egress rules. */
function defaultTypes<
  T extends { ingress?: unknown[]; egress?: unknown[]; types?: ('Ingress' | 'Egress')[] },
>(s: T): T & { types: ('Ingress' | 'Egress')[] } {
  if (s.types) return s as T & { types: ('Ingress' | 'Egress')[] };
  const hasE = (s.egress?.length ?? 0) > 0;
  const hasI = (s.ingress?.length ?? 0) > 0;
  const types: ('Ingress' | 'Egress')[] = [];
  if (hasI || !hasE) types.push('Ingress');
  if (hasE) types.push('Egress');
  return { ...s, types };
}

export const networkPolicySpec = z.strictObject(policyCommon).transform(defaultTypes);

export const globalNetworkPolicySpec = z
  .strictObject({
    ...policyCommon,
    namespaceSelector: selector.optional(),
    doNotTrack: z.boolean().optional(),
    preDNAT: z.boolean().optional(),
    applyOnForward: z.boolean().optional(),
  })
  .superRefine((s, ctx) => {
    if (s.doNotTrack && s.preDNAT)
      ctx.addIssue({ code: 'custom', path: ['preDNAT'], message: 'not both doNotTrack and preDNAT' });
    if ((s.doNotTrack || s.preDNAT) && !s.applyOnForward) {
      ctx.addIssue({
        code: 'custom',
        path: ['applyOnForward'],
        message: 'true when doNotTrack or preDNAT is set',
      });
    }
    if (s.preDNAT && s.egress?.length)
      ctx.addIssue({ code: 'custom', path: ['egress'], message: 'no egress rules with preDNAT' });
  })
  .transform(defaultTypes);

export const profileSpec = z.strictObject({
  ingress: z.array(rule).optional(),
  egress: z.array(rule).optional(),
  labelsToApply: labelMap.optional(),
});

export const tierSpec = z.strictObject({
  order: z.number().optional(),
  defaultAction: z.enum(['Deny', 'Pass']).default('Deny'),
});

export const networkSetSpec = z.strictObject({ nets: z.array(cidr).default(() => []) });
export const globalNetworkSetSpec = z.strictObject({
  nets: z.array(cidr).default(() => []),
  allowedEgressDomains: z.array(z.string()).optional(),
});

// Kubernetes kinds Gingham accepts: v1 Namespace (labels feed namespaceSelector) and
// networking.k8s.io/v1 NetworkPolicy (stored as is; policy/ converts it to Calico rules).
import { z } from 'zod';
import { cidr } from './common.js';

export const labelSelector = z.strictObject({
  matchLabels: z.record(z.string(), z.string()).optional(),
  matchExpressions: z
    .array(
      z
        .strictObject({
          key: z.string().min(1),
          operator: z.enum(['In', 'NotIn', 'Exists', 'DoesNotExist']),
          values: z.array(z.string()).optional(),
        })
        .refine(
          (e) =>
            e.operator === 'In' || e.operator === 'NotIn'
              ? (e.values?.length ?? 0) > 0
              : (e.values?.length ?? 0) === 0,
          { message: 'values for In/NotIn, and none for Exists/DoesNotExist', path: ['values'] },
        ),
    )
    .optional(),
});

export const namespaceSpec = z.strictObject({ finalizers: z.array(z.string()).optional() });
export const namespaceStatus = z.strictObject({ phase: z.enum(['Active', 'Terminating']).optional() });

const peer = z.strictObject({
  podSelector: labelSelector.optional(),
  namespaceSelector: labelSelector.optional(),
  ipBlock: z.strictObject({ cidr: cidr, except: z.array(cidr).optional() }).optional(),
});
const npPort = z
  .strictObject({
    protocol: z.enum(['TCP', 'UDP', 'SCTP']).default('TCP'),
    port: z.union([z.number().int().min(1).max(65535), z.string().min(1)]).optional(),
    endPort: z.number().int().min(1).max(65535).optional(),
  })
  .refine((p) => p.endPort === undefined || (typeof p.port === 'number' && p.endPort >= p.port), {
    message: 'a numeric port ≤ endPort when endPort is set',
    path: ['endPort'],
  });

export const k8sNetworkPolicySpec = z.strictObject({
  podSelector: labelSelector,
  policyTypes: z.array(z.enum(['Ingress', 'Egress'])).optional(),
  ingress: z
    .array(z.strictObject({ from: z.array(peer).optional(), ports: z.array(npPort).optional() }))
    .optional(),
  egress: z
    .array(z.strictObject({ to: z.array(peer).optional(), ports: z.array(npPort).optional() }))
    .optional(),
});

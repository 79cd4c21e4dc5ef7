// Building blocks shared by the per-kind schemas: metadata, addresses, ports, durations.
// Field names follow Calico's v3 API (api/pkg/apis/projectcalico/v3); unknown fields are errors
// (every object schema here is strict).
import { z } from 'zod';
import { ipFamily, parsePrefix } from '../../lib/ip.js';

/** A label/annotation map. */
export const stringMap = z.record(z.string(), z.string());

/** Kubernetes-style label key: optional DNS prefix, then a name of at most 63 chars. */
const LABEL_KEY =
  /^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/;
const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9])?$/;

export const labelMap = z.record(
  z.string().regex(LABEL_KEY, 'a label key: [prefix/]name, name ≤ 63 chars of [A-Za-z0-9_.-]'),
  z.string().regex(LABEL_VALUE, 'a label value: ≤ 63 chars of [A-Za-z0-9_.-], alphanumeric at both ends'),
);

/** Names: DNS-subdomain-like, dots allowed (Calico uses `node.<name>`, `tier.policy`). */
export const RESOURCE_NAME = /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/;
export const resourceName = z
  .string()
  .max(253)
  .regex(RESOURCE_NAME, 'a lower-case name of [a-z0-9.-], alphanumeric at both ends, ≤ 253 chars');

export const namespaceName = z
  .string()
  .max(63)
  .regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/, 'a namespace name (DNS label, ≤ 63 chars)');

export const objectMeta = z.strictObject({
  name: resourceName,
  namespace: namespaceName.optional(),
  labels: labelMap.optional(),
  annotations: stringMap.optional(),
  resourceVersion: z.string().regex(/^\d+$/, 'a decimal revision').optional(),
  uid: z.string().optional(),
  creationTimestamp: z.string().optional(),
  generation: z.number().int().optional(),
});

export const ipAddress = z.string().refine((s) => ipFamily(s) !== null, 'an IPv4 or IPv6 address');
export const ipv4Address = z.string().refine((s) => ipFamily(s) === 4, 'an IPv4 address');
export const ipv6Address = z.string().refine((s) => ipFamily(s) === 6, 'an IPv6 address');

function isCidr(s: string, loose: boolean): boolean {
  try {
    parsePrefix(s, { loose });
    return s.includes('/') || loose;
  } catch {
    return false;
  }
}

/** A CIDR with host bits clear, e.g. 10.65.0.0/16 (a bare address is read as /32 or /128). */
export const cidr = z
  .string()
  .refine((s) => isCidr(s, false) || ipFamily(s) !== null, 'a CIDR such as 10.65.0.0/16 (host bits clear)');
/** An interface address with its subnet, e.g. 192.168.100.10/24 (Node.spec.bgp.ipv4Address). */
export const addressWithPrefix = z
  .string()
  .refine((s) => isCidr(s, true), 'an address with prefix length, e.g. 192.168.1.10/24');
export const ipv4AddressWithPrefix = addressWithPrefix.refine(
  (s) => ipFamily(s.split('/')[0]!) === 4,
  'an IPv4 address/prefix',
);
export const ipv6AddressWithPrefix = addressWithPrefix.refine(
  (s) => ipFamily(s.split('/')[0]!) === 6,
  'an IPv6 address/prefix',
);

/** Go duration text as Calico writes it: "90s", "1m30s", "500ms". */
export const duration = z
  .string()
  .regex(/^(\d+(\.\d+)?(ns|us|µs|ms|s|m|h))+$/, 'a duration such as "90s", "1m30s" or "500ms"');

/** Parses a Go-style duration into milliseconds (for consumers of `duration` fields). */
export function durationMs(text: string): number {
  const unit: Record<string, number> = {
    ns: 1e-6,
    us: 1e-3,
    µs: 1e-3,
    ms: 1,
    s: 1000,
    m: 60_000,
    h: 3_600_000,
  };
  let total = 0;
  for (const m of text.matchAll(/(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)/g)) total += Number(m[1]) * unit[m[2]!]!;
  return total;
}

/** AS number: 0..4294967295, or Calico's dotted "asdot" form "1.10" (= 65546). Stored as a number. */
export const asNumber = z.union([
  z.number().int().min(0).max(4294967295),
  z
    .string()
    .regex(/^\d{1,5}(\.\d{1,5})?$/, 'an AS number (e.g. 64512 or "1.10")')
    .transform((s, ctx) => {
      const [hi, lo] = s.includes('.') ? s.split('.').map(Number) : [0, Number(s)];
      if (hi! > 65535 || lo! > 65535) {
        ctx.issues.push({ code: 'custom', message: 'an AS number ≤ 4294967295', input: s });
        return z.NEVER;
      }
      return hi! * 65536 + lo!;
    }),
]);

/** A port: number, "first:last" range, or a named port. */
export const port = z.union([
  z.number().int().min(0).max(65535),
  z
    .string()
    .regex(
      /^(\d{1,5}:\d{1,5}|[a-z0-9]([-a-z0-9]*[a-z0-9])?)$/,
      'a port number, a range "first:last" or a port name',
    )
    .refine((s) => {
      const m = /^(\d+):(\d+)$/.exec(s);
      return !m || (Number(m[1]) <= Number(m[2]) && Number(m[2]) <= 65535);
    }, 'a port range "first:last" with first ≤ last ≤ 65535'),
]);

/** Protocol by name or number (Calico numorstring.Protocol). */
export const protocol = z.union([
  z.enum(['TCP', 'UDP', 'ICMP', 'ICMPv6', 'SCTP', 'UDPLite']),
  z.number().int().min(1).max(255),
]);

export const secretKeyRef = z.strictObject({
  secretKeyRef: z.strictObject({ name: z.string().min(1), key: z.string().min(1) }),
});

/** A selector expression. Parsed (and its grammar checked) by policy/; here only a string. */
export const selector = z.string();

export const endpointPort = z.strictObject({
  name: z.string().min(1),
  protocol: protocol,
  port: z.number().int().min(1).max(65535),
  hostPort: z.number().int().min(0).max(65535).optional(),
  hostIP: ipAddress.optional(),
});

// IPPool and IPAMConfiguration (Calico v3 ippool.go, ipamconfig.go).
import { z } from 'zod';
import { parsePrefix } from '../../lib/ip.js';
import { cidr, selector } from './common.js';

const allowedUse = z.enum(['Workload', 'Tunnel', 'LoadBalancer']);

export const encapMode = z.enum(['Never', 'Always', 'CrossSubnet']);

export const ipPoolSpec = z
  .strictObject({
    cidr: cidr,
    vxlanMode: encapMode.default('Never'),
    ipipMode: encapMode.default('Never'),
    natOutgoing: z.boolean().default(false),
    disabled: z.boolean().default(false),
    disableBGPExport: z.boolean().default(false),
    nodeSelector: selector.default('all()'),
    namespaceSelector: selector.optional(),
    /** Defaults to 26 (IPv4) or 122 (IPv6); immutable after creation. */
    blockSize: z.number().int().optional(),
    allowedUses: z
      .array(allowedUse)
      .min(1)
      .default((): z.output<typeof allowedUse>[] => ['Workload', 'Tunnel']),
    assignmentMode: z.enum(['Automatic', 'Manual']).default('Automatic'),
  })
  .superRefine((s, ctx) => {
    let family: 4 | 6;
    let len: number;
    try {
      const p = parsePrefix(s.cidr);
      family = p.family;
      len = p.len;
    } catch {
      return; // already reported by `cidr`
    }
    const [min, max] = family === 4 ? [20, 32] : [116, 128];
    const bs = s.blockSize ?? (family === 4 ? 26 : 122);
    if (bs < min || bs > max) {
      ctx.addIssue({
        code: 'custom',
        path: ['blockSize'],
        message: `a block size in ${min}..${max} for an IPv${family} pool`,
      });
    }
    if (len > bs) {
      ctx.addIssue({
        code: 'custom',
        path: ['cidr'],
        message: `a prefix length ≤ blockSize ${bs} (the pool must hold at least one block)`,
      });
    }
    if (family === 6 && s.ipipMode !== 'Never') {
      ctx.addIssue({ code: 'custom', path: ['ipipMode'], message: '"Never": IPIP is IPv4 only' });
    }
    if (s.ipipMode !== 'Never' && s.vxlanMode !== 'Never') {
      ctx.addIssue({
        code: 'custom',
        path: ['vxlanMode'],
        message: '"Never" when ipipMode is set (one encapsulation per pool)',
      });
    }
  })
  .transform((s) => ({ ...s, blockSize: s.blockSize ?? (s.cidr.includes(':') ? 122 : 26) }));

export const ipPoolStatus = z.strictObject({
  conditions: z.array(z.record(z.string(), z.unknown())).optional(),
});

export const ipamConfigurationSpec = z.strictObject({
  strictAffinity: z.boolean().default(false),
  autoAllocateBlocks: z.boolean().default(true),
  /** 0 = unlimited. */
  maxBlocksPerHost: z.number().int().min(0).default(0),
});

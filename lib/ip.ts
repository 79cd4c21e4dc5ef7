// IP address and prefix arithmetic shared by bgp/, ipam/, policy/ and agent/.
// Pure: no I/O. Addresses are held as bigint for arithmetic and as bytes on the wire.
import { isIPv4, isIPv6 } from 'node:net';

export type Family = 4 | 6;

export interface Prefix {
  family: Family;
  /** The network address (host bits cleared). */
  addr: bigint;
  len: number;
}

export class IpParseError extends Error {
  constructor(
    readonly input: string,
    readonly expected: string,
  ) {
    super(`invalid ${expected}: "${input}"`);
    this.name = 'IpParseError';
  }
}

export function familyBits(family: Family): number {
  return family === 4 ? 32 : 128;
}

export function ipFamily(text: string): Family | null {
  if (isIPv4(text)) return 4;
  if (isIPv6(text)) return 6;
  return null;
}

export function parseIp(text: string): { family: Family; addr: bigint } {
  if (isIPv4(text)) {
    const p = text.split('.').map(Number);
    return { family: 4, addr: BigInt((((p[0]! << 24) >>> 0) + (p[1]! << 16) + (p[2]! << 8) + p[3]!) >>> 0) };
  }
  if (isIPv6(text)) return { family: 6, addr: bytesToBigint(ipv6ToBytes(text)) };
  throw new IpParseError(text, 'IP address');
}

function ipv6ToBytes(text: string): Uint8Array {
  let s = text;
  const out = new Uint8Array(16);
  // An embedded IPv4 tail (::ffff:1.2.3.4) becomes two hextets.
  const lastColon = s.lastIndexOf(':');
  const tail = s.slice(lastColon + 1);
  if (tail.includes('.')) {
    const v4 = Number(parseIp(tail).addr);
    s = `${s.slice(0, lastColon + 1)}${((v4 >>> 16) & 0xffff).toString(16)}:${(v4 & 0xffff).toString(16)}`;
  }
  const [head, rest] = s.split('::') as [string, string | undefined];
  const h = head === '' ? [] : head.split(':');
  const t = rest === undefined || rest === '' ? [] : rest.split(':');
  const groups = rest === undefined ? h : [...h, ...Array(8 - h.length - t.length).fill('0'), ...t];
  groups.forEach((g, i) => {
    const v = Number.parseInt(g, 16);
    out[i * 2] = v >> 8;
    out[i * 2 + 1] = v & 0xff;
  });
  return out;
}

export function bytesToBigint(b: Uint8Array): bigint {
  let v = 0n;
  for (const x of b) v = (v << 8n) | BigInt(x);
  return v;
}

export function bigintToBytes(v: bigint, family: Family): Uint8Array {
  const n = family === 4 ? 4 : 16;
  const out = new Uint8Array(n);
  let x = v;
  for (let i = n - 1; i >= 0; i--) {
    out[i] = Number(x & 0xffn);
    x >>= 8n;
  }
  return out;
}

export function ipToBytes(text: string): Uint8Array {
  const { family, addr } = parseIp(text);
  return bigintToBytes(addr, family);
}

export function formatIp(addr: bigint, family: Family): string {
  if (family === 4) {
    const n = Number(addr);
    return `${(n >>> 24) & 255}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;
  }
  const groups: number[] = [];
  for (let i = 7; i >= 0; i--) groups.push(Number((addr >> BigInt(i * 16)) & 0xffffn));
  // RFC 5952: compress the longest run (≥2) of zero groups, leftmost on ties.
  let bestStart = -1;
  let bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen && j - i >= 2) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (bestStart < 0) return hex.join(':');
  return `${hex.slice(0, bestStart).join(':')}::${hex.slice(bestStart + bestLen).join(':')}`;
}

export function bytesToIp(b: Uint8Array): string {
  if (b.length !== 4 && b.length !== 16) throw new IpParseError(`<${b.length} bytes>`, 'address bytes');
  return formatIp(bytesToBigint(b), b.length === 4 ? 4 : 6);
}

export function hostMask(family: Family, len: number): bigint {
  return (1n << BigInt(familyBits(family) - len)) - 1n;
}

/** Parses "10.65.0.0/26" (or a bare address as a host prefix). Host bits must be clear unless `loose`. */
export function parsePrefix(text: string, opts: { loose?: boolean } = {}): Prefix {
  const slash = text.indexOf('/');
  const ipText = slash < 0 ? text : text.slice(0, slash);
  const fam = ipFamily(ipText);
  if (fam === null) throw new IpParseError(text, 'CIDR');
  const lenText = slash < 0 ? String(familyBits(fam)) : text.slice(slash + 1);
  if (!/^\d{1,3}$/.test(lenText)) throw new IpParseError(text, 'CIDR');
  const len = Number(lenText);
  if (len > familyBits(fam)) throw new IpParseError(text, 'CIDR');
  const { addr } = parseIp(ipText);
  const net = addr & ~hostMask(fam, len);
  if (net !== addr && !opts.loose) throw new IpParseError(text, 'CIDR with host bits clear');
  return { family: fam, addr: net, len };
}

export function formatPrefix(p: Prefix): string {
  return `${formatIp(p.addr, p.family)}/${p.len}`;
}

export function prefixContains(outer: Prefix, inner: Prefix): boolean {
  return (
    outer.family === inner.family &&
    outer.len <= inner.len &&
    (inner.addr & ~hostMask(outer.family, outer.len)) === outer.addr
  );
}

export function prefixContainsIp(p: Prefix, addr: bigint, family: Family): boolean {
  return p.family === family && (addr & ~hostMask(family, p.len)) === p.addr;
}

export function prefixSize(p: Prefix): bigint {
  return 1n << BigInt(familyBits(p.family) - p.len);
}

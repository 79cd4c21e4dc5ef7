// NLRI prefix encoding (RFC 4271 §4.3, RFC 4760 §5, RFC 7911 path identifiers).
// <length in bits, 1 octet><just enough octets of prefix>; with ADD-PATH a 4-octet path id first.
import { formatIp, parseIp } from '../../lib/ip.js';
import { BgpEncodeError } from './errors.js';
import type { Family, Nlri } from './types.js';

/** Thrown inside the codec only; converted to a DecodeResult before leaving decodeMessage(). */
export class NlriParseError extends Error {
  constructor(
    readonly family: Family,
    readonly reason: string,
  ) {
    super(`IPv${family} NLRI: ${reason}`);
    this.name = 'NlriParseError';
  }
}

/** Decodes a run of prefixes occupying exactly buf[start, end). Throws NlriParseError on overrun. */
export function decodePrefixes(
  buf: Uint8Array,
  start: number,
  end: number,
  family: Family,
  addPath: boolean,
): Nlri[] {
  const out: Nlri[] = [];
  const maxBits = family === 4 ? 32 : 128;
  let i = start;
  while (i < end) {
    let pathId: number | undefined;
    if (addPath) {
      if (i + 4 > end) throw new NlriParseError(family, 'truncated path identifier');
      pathId = ((buf[i]! << 24) | (buf[i + 1]! << 16) | (buf[i + 2]! << 8) | buf[i + 3]!) >>> 0;
      i += 4;
    }
    const bits = buf[i]!;
    i++;
    if (bits > maxBits) throw new NlriParseError(family, `prefix length ${bits} > ${maxBits}`);
    const bytes = (bits + 7) >> 3;
    if (i + bytes > end) throw new NlriParseError(family, `prefix /${bits} overruns the field`);
    const prefix = family === 4 ? v4Text(buf, i, bytes, bits) : v6Text(buf, i, bytes, bits);
    i += bytes;
    out.push(pathId === undefined ? { family, prefix } : { family, prefix, pathId });
  }
  return out;
}

/**
 * An IPv4 prefix as one number: address × 64 + length (address unsigned, host bits clear).
 * Exact in a double, ordered like (address, length), and cheap to hash.
 */
export function ipv4PrefixKey(addr: number, len: number): number {
  return addr * 64 + len;
}

/** The prefix length of an IPv4 prefix key (no `%`: on a double that is a call to fmod). */
export function ipv4KeyLength(key: number): number {
  return key - Math.floor(key / 64) * 64;
}

/** "a.b.c.d/n" of an IPv4 prefix key. */
export function ipv4KeyText(key: number): string {
  const a = Math.floor(key / 64);
  return `${OCTET[a >>> 24]}.${OCTET[(a >>> 16) & 255]}.${OCTET[(a >>> 8) & 255]}.${OCTET[a & 255]}${SLASH_LEN[key - a * 64]}`;
}

/**
 * Decodes a run of IPv4 prefixes occupying exactly buf[start, end) into prefix keys, trailing
 * bits beyond each length cleared. Throws NlriParseError on overrun or a length > 32.
 */
export function decodeIpv4Keys(buf: Uint8Array, start: number, end: number): number[] {
  const out: number[] = [];
  let i = start;
  while (i < end) {
    const bits = buf[i++]!;
    if (bits > 32) throw new NlriParseError(4, `prefix length ${bits} > 32`);
    const bytes = (bits + 7) >> 3;
    if (i + bytes > end) throw new NlriParseError(4, `prefix /${bits} overruns the field`);
    const b0 = bytes > 0 ? buf[i]! : 0;
    const b1 = bytes > 1 ? buf[i + 1]! : 0;
    const b2 = bytes > 2 ? buf[i + 2]! : 0;
    const b3 = bytes > 3 ? buf[i + 3]! : 0;
    i += bytes;
    // Trailing bits beyond the length are irrelevant (RFC 4271 §4.3): cleared.
    const mask = bits === 0 ? 0 : 0xffffffff << (32 - bits);
    out.push(((((b0 << 24) | (b1 << 16) | (b2 << 8) | b3) & mask) >>> 0) * 64 + bits);
  }
  return out;
}

/** Wire size of an IPv4 prefix key's NLRI entry. */
export function ipv4KeyWireLength(key: number): number {
  return 1 + ((ipv4KeyLength(key) + 7) >> 3);
}

/** Writes an IPv4 prefix key as an NLRI entry at `at`; returns the next offset. */
export function writeIpv4Key(out: Uint8Array, at: number, key: number): number {
  const a = Math.floor(key / 64);
  const bits = key - a * 64;
  let j = at;
  out[j++] = bits;
  const n = (bits + 7) >> 3;
  for (let k = 0; k < n; k++) out[j++] = (a >>> (24 - 8 * k)) & 255;
  return j;
}

const OCTET: readonly string[] = Array.from({ length: 256 }, (_, i) => String(i));
const SLASH_LEN: readonly string[] = Array.from({ length: 129 }, (_, i) => `/${i}`);

function v4Text(buf: Uint8Array, at: number, bytes: number, bits: number): string {
  // Hot path of ingest: table lookups instead of number formatting. Trailing bits beyond the
  // prefix length are irrelevant (RFC 4271 §4.3): cleared.
  const b0 = bytes > 0 ? buf[at]! : 0;
  const b1 = bytes > 1 ? buf[at + 1]! : 0;
  const b2 = bytes > 2 ? buf[at + 2]! : 0;
  const b3 = bytes > 3 ? buf[at + 3]! : 0;
  if (bits % 8 !== 0) {
    const keep = (0xff << (8 - (bits % 8))) & 0xff;
    const last = bytes - 1;
    const masked = [b0, b1, b2, b3];
    masked[last] = masked[last]! & keep;
    return `${OCTET[masked[0]!]}.${OCTET[masked[1]!]}.${OCTET[masked[2]!]}.${OCTET[masked[3]!]}${SLASH_LEN[bits]}`;
  }
  return `${OCTET[b0]}.${OCTET[b1]}.${OCTET[b2]}.${OCTET[b3]}${SLASH_LEN[bits]}`;
}

function v6Text(buf: Uint8Array, at: number, bytes: number, bits: number): string {
  let v = 0n;
  for (let k = 0; k < 16; k++) v = (v << 8n) | BigInt(k < bytes ? buf[at + k]! : 0);
  const host = (1n << BigInt(128 - bits)) - 1n;
  return `${formatIp(v & ~host, 6)}/${bits}`;
}

/** Parsed prefix ready for the wire. */
interface WirePrefix {
  bits: number;
  bytes: Uint8Array;
}

export function prefixToWire(nlri: Nlri): WirePrefix {
  const slash = nlri.prefix.indexOf('/');
  if (slash < 0) throw new BgpEncodeError('NLRI', `"${nlri.prefix}" has no prefix length`);
  const bits = Number(nlri.prefix.slice(slash + 1));
  const maxBits = nlri.family === 4 ? 32 : 128;
  if (!Number.isInteger(bits) || bits < 0 || bits > maxBits) {
    throw new BgpEncodeError('NLRI', `bad prefix length in "${nlri.prefix}"`);
  }
  let addr: { family: Family; addr: bigint };
  try {
    addr = parseIp(nlri.prefix.slice(0, slash));
  } catch {
    throw new BgpEncodeError('NLRI', `bad address in "${nlri.prefix}"`);
  }
  if (addr.family !== nlri.family)
    throw new BgpEncodeError('NLRI', `"${nlri.prefix}" is not IPv${nlri.family}`);
  const n = (bits + 7) >> 3;
  const bytes = new Uint8Array(n);
  const width = nlri.family === 4 ? 4 : 16;
  for (let k = 0; k < n; k++) bytes[k] = Number((addr.addr >> BigInt((width - 1 - k) * 8)) & 0xffn);
  if (n > 0 && bits % 8 !== 0) bytes[n - 1]! &= (0xff << (8 - (bits % 8))) & 0xff;
  return { bits, bytes };
}

/** Wire size of one NLRI entry. */
export function nlriWireLength(nlri: Nlri, addPath: boolean): number {
  // The length digits follow the last '/': read them without slicing.
  const t = nlri.prefix;
  let bits = 0;
  let scale = 1;
  for (let k = t.length - 1; k >= 0; k--) {
    const c = t.charCodeAt(k);
    if (c === 47) break;
    if (c < 48 || c > 57 || scale > 100) throw new BgpEncodeError('NLRI', `bad prefix "${t}"`);
    bits += (c - 48) * scale;
    scale *= 10;
  }
  return (addPath ? 4 : 0) + 1 + ((bits + 7) >> 3);
}

/** Writes one NLRI entry at `at`; returns the next offset. */
export function writeNlri(out: Uint8Array, at: number, nlri: Nlri, addPath: boolean): number {
  let i = at;
  if (addPath) {
    const id = nlri.pathId ?? 0;
    out[i++] = (id >>> 24) & 255;
    out[i++] = (id >>> 16) & 255;
    out[i++] = (id >>> 8) & 255;
    out[i++] = id & 255;
  }
  if (nlri.family === 4) {
    const fast = writeV4Fast(out, i, nlri.prefix);
    if (fast >= 0) return fast;
  }
  const w = prefixToWire(nlri);
  out[i++] = w.bits;
  out.set(w.bytes, i);
  return i + w.bytes.length;
}

/** Fast path for canonical "a.b.c.d/n" text; returns -1 to fall back to the careful parser. */
function writeV4Fast(out: Uint8Array, at: number, text: string): number {
  // No allocation: this runs once per prefix of every UPDATE we send.
  const key = ipv4PrefixKeyOfText(text);
  if (key < 0) return -1;
  const bits = ipv4KeyLength(key);
  const v = (key - bits) / 64;
  let j = at;
  out[j++] = bits;
  const n = (bits + 7) >> 3;
  for (let k = 0; k < n; k++) out[j++] = (v >>> (24 - 8 * k)) & 255;
  return j;
}

/**
 * The prefix key of canonical "a.b.c.d/n" text by a character scan, host bits cleared; -1 when
 * the text is not of that shape (the caller falls back to the careful parser).
 */
export function ipv4PrefixKeyOfText(text: string): number {
  let v = 0;
  let octet = -1;
  let dots = 0;
  let i = 0;
  for (; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c >= 48 && c <= 57) {
      octet = (octet < 0 ? 0 : octet * 10) + (c - 48);
      if (octet > 255) return -1;
    } else if (c === 46 /* . */ || c === 47 /* / */) {
      if (octet < 0) return -1;
      v = v * 256 + octet;
      octet = -1;
      if (c === 47) break;
      if (++dots > 3) return -1;
    } else return -1;
  }
  const digits = text.length - i - 1;
  if (dots !== 3 || digits < 1 || digits > 2) return -1;
  let len = 0;
  for (let k = i + 1; k < text.length; k++) {
    const c = text.charCodeAt(k);
    if (c < 48 || c > 57) return -1;
    len = len * 10 + (c - 48);
  }
  if (len > 32) return -1;
  const mask = len === 0 ? 0 : (0xffffffff << (32 - len)) >>> 0;
  return ipv4PrefixKey((v & mask) >>> 0, len);
}

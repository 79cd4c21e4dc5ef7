// Path attributes: decode with RFC 7606 revised error handling, encode (RFC 4271 §4.3, §5;
// RFC 4760 MP_REACH/MP_UNREACH; RFC 6793 AS4_PATH/AS4_AGGREGATOR; RFC 1997; RFC 8092; RFC 4456).
//
// Decoding collects AttributeProblems instead of stopping at the first one: the strongest action
// wins (session-reset > treat-as-withdraw > attribute-discard, RFC 7606 §2) and is decided by the
// caller (update.ts), which also knows whether the UPDATE carries NLRI.
import { formatIp, parseIp } from '../../lib/ip.js';
import { BgpDecodeError, BgpEncodeError } from './errors.js';
import { decodePrefixes, NlriParseError, nlriWireLength, writeNlri } from './nlri.js';
import {
  AFI_IPV4,
  AFI_IPV6,
  AS_TRANS,
  type AsPathSegment,
  type AsPathSegmentType,
  AttrFlag,
  type AttributeProblem,
  AttrType,
  type CodecOptions,
  ErrorCode,
  type FamilyKey,
  type MpReach,
  type MpUnreach,
  type Origin,
  type PathAttributes,
  SAFI_UNICAST,
  UpdateSubcode,
} from './types.js';

const SEGMENT_CODES: Record<number, AsPathSegmentType> = {
  1: 'set',
  2: 'sequence',
  3: 'confed-sequence',
  4: 'confed-set',
};
const SEGMENT_TYPES: Record<AsPathSegmentType, number> = {
  set: 1,
  sequence: 2,
  'confed-sequence': 3,
  'confed-set': 4,
};

/** Expected Optional/Transitive bits per known attribute (RFC 7606 §3 c). */
const EXPECTED_FLAGS: Record<number, number> = {
  [AttrType.Origin]: AttrFlag.Transitive,
  [AttrType.AsPath]: AttrFlag.Transitive,
  [AttrType.NextHop]: AttrFlag.Transitive,
  [AttrType.Med]: AttrFlag.Optional,
  [AttrType.LocalPref]: AttrFlag.Transitive,
  [AttrType.AtomicAggregate]: AttrFlag.Transitive,
  [AttrType.Aggregator]: AttrFlag.Optional | AttrFlag.Transitive,
  [AttrType.Communities]: AttrFlag.Optional | AttrFlag.Transitive,
  [AttrType.OriginatorId]: AttrFlag.Optional,
  [AttrType.ClusterList]: AttrFlag.Optional,
  [AttrType.MpReachNlri]: AttrFlag.Optional,
  [AttrType.MpUnreachNlri]: AttrFlag.Optional,
  [AttrType.As4Path]: AttrFlag.Optional | AttrFlag.Transitive,
  [AttrType.As4Aggregator]: AttrFlag.Optional | AttrFlag.Transitive,
  [AttrType.LargeCommunities]: AttrFlag.Optional | AttrFlag.Transitive,
};

export function familyKey(afi: number, safi: number): FamilyKey {
  return `${afi}/${safi}`;
}

function u16(b: Uint8Array, i: number): number {
  return (b[i]! << 8) | b[i + 1]!;
}
function u32(b: Uint8Array, i: number): number {
  return ((b[i]! << 24) | (b[i + 1]! << 16) | (b[i + 2]! << 8) | b[i + 3]!) >>> 0;
}
function v4(b: Uint8Array, i: number): string {
  return `${b[i]}.${b[i + 1]}.${b[i + 2]}.${b[i + 3]}`;
}

export interface DecodedAttributes {
  attributes: PathAttributes;
  problems: AttributeProblem[];
  /** Set when a session-reset problem was found: the NOTIFICATION to send. */
  reset?: BgpDecodeError;
}

function updateError(subcode: number, reason: string, where: string, data: Uint8Array): BgpDecodeError {
  return new BgpDecodeError({ code: ErrorCode.UpdateMessage, subcode, data }, reason, where);
}

/**
 * Decodes the Path Attributes field buf[start, end). Never throws: structural failures that need
 * a session reset come back in `reset`.
 */
export function decodeAttributes(
  buf: Uint8Array,
  start: number,
  end: number,
  opts: CodecOptions,
): DecodedAttributes {
  const attrs: PathAttributes = {};
  const problems: AttributeProblem[] = [];
  const out: DecodedAttributes = { attributes: attrs, problems };
  const seen = new Set<number>();
  let as4Path: AsPathSegment[] | undefined;
  let as4Aggregator: { asn: number; address: string } | undefined;

  const taw = (code: number, reason: string) => problems.push({ code, reason, action: 'treat-as-withdraw' });
  const discard = (code: number, reason: string) =>
    problems.push({ code, reason, action: 'attribute-discard' });
  const reset = (code: number, subcode: number, reason: string, data: Uint8Array) => {
    problems.push({ code, reason, action: 'session-reset' });
    out.reset ??= updateError(subcode, reason, `UPDATE attribute ${code}`, data);
  };

  let i = start;
  while (i < end && out.reset === undefined) {
    // RFC 7606 §4: too few octets left for an attribute header, or an attribute overrunning the
    // field: treat-as-withdraw, unless it is MP_REACH/MP_UNREACH (its NLRI cannot be located).
    if (end - i < 3) {
      taw(0, `${end - i} trailing octets cannot hold an attribute header`);
      break;
    }
    const flags = buf[i]!;
    const code = buf[i + 1]!;
    const ext = (flags & AttrFlag.ExtendedLength) !== 0;
    const hdr = ext ? 4 : 3;
    if (end - i < hdr) {
      taw(code, 'truncated extended-length attribute header');
      break;
    }
    const len = ext ? u16(buf, i + 2) : buf[i + 2]!;
    if (i + hdr + len > end) {
      if (code === AttrType.MpReachNlri || code === AttrType.MpUnreachNlri) {
        reset(
          code,
          UpdateSubcode.MalformedAttributeList,
          'MP attribute overruns the attribute field',
          buf.slice(i, end),
        );
      } else {
        taw(code, `attribute length ${len} overruns the attribute field`);
      }
      break;
    }
    const whole = buf.subarray(i, i + hdr + len);
    const v = buf.subarray(i + hdr, i + hdr + len);
    i += hdr + len;

    // RFC 7606 §3 g: MP_REACH/MP_UNREACH twice → reset; any other duplicate: keep the first.
    if (seen.has(code)) {
      if (code === AttrType.MpReachNlri || code === AttrType.MpUnreachNlri) {
        reset(code, UpdateSubcode.MalformedAttributeList, 'MP attribute appears twice', NO_BYTES);
        break;
      }
      discard(code, 'duplicate attribute');
      continue;
    }
    seen.add(code);

    const expected = EXPECTED_FLAGS[code];
    if (expected === undefined) {
      // Unrecognised. Well-known → reset (RFC 4271 §6.3); optional non-transitive → ignore;
      // optional transitive → carry on.
      if ((flags & AttrFlag.Optional) === 0) {
        reset(
          code,
          UpdateSubcode.UnrecognizedWellKnownAttribute,
          'unrecognised well-known attribute',
          whole.slice(),
        );
        break;
      }
      if ((flags & AttrFlag.Transitive) !== 0) {
        attrs.unknown ??= [];
        attrs.unknown.push({ flags: flags & ~AttrFlag.ExtendedLength, code, data: new Uint8Array(v) });
      }
      continue;
    }
    const flagsBad = (flags & (AttrFlag.Optional | AttrFlag.Transitive)) !== expected;
    if (flagsBad && code !== AttrType.MpReachNlri && code !== AttrType.MpUnreachNlri) {
      // §3 c: conflicting Optional/Transitive bits → treat-as-withdraw (AS4_* : discard, RFC 6793 §6).
      if (code === AttrType.As4Path || code === AttrType.As4Aggregator)
        discard(code, 'attribute flags conflict');
      else taw(code, `attribute flags 0x${flags.toString(16)} conflict with the attribute type`);
      continue;
    }

    switch (code) {
      case AttrType.Origin:
        if (len !== 1) taw(code, `ORIGIN length ${len} != 1`);
        else if (v[0]! > 2) taw(code, `undefined ORIGIN value ${v[0]}`);
        else attrs.origin = v[0] as Origin;
        break;
      case AttrType.AsPath: {
        const r = decodeAsPath(v, opts.as4 ? 4 : 2);
        if (typeof r === 'string') taw(code, `malformed AS_PATH: ${r}`);
        else if (opts.ibgp === false && r.some((s) => s.type.startsWith('confed'))) {
          taw(code, 'AS_CONFED segment from an external peer');
        } else attrs.asPath = r;
        break;
      }
      case AttrType.NextHop:
        if (len !== 4) taw(code, `NEXT_HOP length ${len} != 4`);
        else if (v[0] === 0 || v[0]! >= 224) taw(code, `NEXT_HOP ${v4(v, 0)} is not a unicast address`);
        else attrs.nextHop = v4(v, 0);
        break;
      case AttrType.Med:
        if (len !== 4) taw(code, `MULTI_EXIT_DISC length ${len} != 4`);
        else attrs.med = u32(v, 0);
        break;
      case AttrType.LocalPref:
        if (opts.ibgp === false) discard(code, 'LOCAL_PREF from an external peer');
        else if (len !== 4) taw(code, `LOCAL_PREF length ${len} != 4`);
        else attrs.localPref = u32(v, 0);
        break;
      case AttrType.AtomicAggregate:
        if (len !== 0) discard(code, `ATOMIC_AGGREGATE length ${len} != 0`);
        else attrs.atomicAggregate = true;
        break;
      case AttrType.Aggregator: {
        const want = opts.as4 ? 8 : 6;
        if (len !== want) discard(code, `AGGREGATOR length ${len} != ${want}`);
        else if (opts.as4) attrs.aggregator = { asn: u32(v, 0), address: v4(v, 4) };
        else attrs.aggregator = { asn: u16(v, 0), address: v4(v, 2) };
        break;
      }
      case AttrType.Communities:
        if (len === 0 || len % 4 !== 0)
          taw(code, `COMMUNITIES length ${len} is not a positive multiple of 4`);
        else {
          const c: number[] = [];
          for (let k = 0; k < len; k += 4) c.push(u32(v, k));
          attrs.communities = c;
        }
        break;
      case AttrType.OriginatorId:
        if (opts.ibgp === false) discard(code, 'ORIGINATOR_ID from an external peer');
        else if (len !== 4) taw(code, `ORIGINATOR_ID length ${len} != 4`);
        else attrs.originatorId = v4(v, 0);
        break;
      case AttrType.ClusterList:
        if (opts.ibgp === false) discard(code, 'CLUSTER_LIST from an external peer');
        else if (len === 0 || len % 4 !== 0)
          taw(code, `CLUSTER_LIST length ${len} is not a positive multiple of 4`);
        else {
          const c: string[] = [];
          for (let k = 0; k < len; k += 4) c.push(v4(v, k));
          attrs.clusterList = c;
        }
        break;
      case AttrType.MpReachNlri: {
        const r = decodeMpReach(v, opts);
        if (r instanceof BgpDecodeError) {
          problems.push({ code, reason: r.reason, action: 'session-reset' });
          out.reset ??= r;
        } else {
          attrs.mpReach = r.value;
          if (r.nextHopProblem) taw(code, r.nextHopProblem);
          if (flagsBad) taw(code, 'MP_REACH_NLRI flags conflict with the attribute type');
        }
        break;
      }
      case AttrType.MpUnreachNlri: {
        const r = decodeMpUnreach(v, opts);
        if (r instanceof BgpDecodeError) {
          problems.push({ code, reason: r.reason, action: 'session-reset' });
          out.reset ??= r;
        } else {
          attrs.mpUnreach = r;
          if (flagsBad) taw(code, 'MP_UNREACH_NLRI flags conflict with the attribute type');
        }
        break;
      }
      case AttrType.As4Path: {
        // RFC 6793 §6: between two NEW speakers AS4_PATH is discarded; malformed → discarded.
        if (opts.as4) {
          discard(code, 'AS4_PATH on a 4-octet session');
          break;
        }
        const r = decodeAsPath(v, 4);
        if (typeof r === 'string') discard(code, `malformed AS4_PATH: ${r}`);
        else as4Path = r.filter((s) => s.type === 'sequence' || s.type === 'set');
        break;
      }
      case AttrType.As4Aggregator:
        if (opts.as4) discard(code, 'AS4_AGGREGATOR on a 4-octet session');
        else if (len !== 8) discard(code, `AS4_AGGREGATOR length ${len} != 8`);
        else as4Aggregator = { asn: u32(v, 0), address: v4(v, 4) };
        break;
      case AttrType.LargeCommunities:
        if (len === 0 || len % 12 !== 0)
          taw(code, `LARGE_COMMUNITY length ${len} is not a positive multiple of 12`);
        else {
          const c = [];
          for (let k = 0; k < len; k += 12) {
            c.push({ globalAdmin: u32(v, k), localData1: u32(v, k + 4), localData2: u32(v, k + 8) });
          }
          attrs.largeCommunities = c;
        }
        break;
    }
  }
  // Attributes whose problems ended in discard are simply absent from `attrs`.
  if (!opts.as4) mergeAs4(attrs, as4Path, as4Aggregator);
  return out;
}

const NO_BYTES = new Uint8Array(0);

/** Returns the segments, or a reason string when malformed (RFC 7606 §7.2). */
export function decodeAsPath(v: Uint8Array, width: 2 | 4): AsPathSegment[] | string {
  const segs: AsPathSegment[] = [];
  let i = 0;
  while (i < v.length) {
    if (v.length - i < 2) return 'segment underrun';
    const type = SEGMENT_CODES[v[i]!];
    if (type === undefined) return `unknown segment type ${v[i]}`;
    const n = v[i + 1]!;
    if (n === 0) return 'zero-length segment';
    i += 2;
    if (i + n * width > v.length) return 'segment overrun';
    const asns = new Array<number>(n);
    for (let k = 0; k < n; k++) asns[k] = width === 4 ? u32(v, i + k * 4) : u16(v, i + k * 2);
    i += n * width;
    segs.push({ type, asns });
  }
  return segs;
}

/** RFC 6793 §4.2.3: rebuild the true AS path and aggregator on a 2-octet session. */
function mergeAs4(
  attrs: PathAttributes,
  as4Path: AsPathSegment[] | undefined,
  as4Aggregator: { asn: number; address: string } | undefined,
): void {
  if (attrs.aggregator !== undefined && attrs.aggregator.asn !== AS_TRANS) {
    // The aggregating speaker was NEW-unaware of our path: AS4 attributes are stale, ignore both.
    return;
  }
  if (attrs.aggregator !== undefined && as4Aggregator !== undefined) attrs.aggregator = as4Aggregator;
  if (as4Path === undefined || attrs.asPath === undefined) return;
  const n = asPathLength(attrs.asPath);
  const m = asPathLength(as4Path);
  if (n < m) return; // AS4_PATH ignored
  // Keep the leading (n - m) ASes of AS_PATH (those added by OLD speakers), then AS4_PATH.
  let keep = n - m;
  const lead: AsPathSegment[] = [];
  for (const seg of attrs.asPath) {
    if (seg.type === 'confed-sequence' || seg.type === 'confed-set') {
      lead.push(seg);
      continue;
    }
    if (keep === 0) break;
    if (seg.type === 'set') {
      lead.push(seg);
      keep -= 1;
    } else {
      const take = Math.min(keep, seg.asns.length);
      lead.push({ type: 'sequence', asns: seg.asns.slice(0, take) });
      keep -= take;
    }
  }
  attrs.asPath = joinSegments([...lead, ...as4Path]);
}

function joinSegments(segs: AsPathSegment[]): AsPathSegment[] {
  const out: AsPathSegment[] = [];
  for (const s of segs) {
    const last = out[out.length - 1];
    if (last && last.type === 'sequence' && s.type === 'sequence') last.asns = [...last.asns, ...s.asns];
    else out.push({ type: s.type, asns: [...s.asns] });
  }
  return out;
}

/** AS path length for route selection and RFC 6793 (AS_SET counts 1, confederation segments 0). */
export function asPathLength(path: AsPathSegment[]): number {
  let n = 0;
  for (const s of path) {
    if (s.type === 'sequence') n += s.asns.length;
    else if (s.type === 'set') n += 1;
  }
  return n;
}

function decodeMpReach(
  v: Uint8Array,
  opts: CodecOptions,
): { value: MpReach; nextHopProblem?: string } | BgpDecodeError {
  const bad = (reason: string) =>
    updateError(UpdateSubcode.OptionalAttributeError, reason, 'UPDATE MP_REACH_NLRI', v.slice(0, 64));
  if (v.length < 5) return bad(`length ${v.length} < 5`);
  const afi = u16(v, 0);
  const safi = v[2]!;
  const nhLen = v[3]!;
  if (4 + nhLen + 1 > v.length) return bad(`next hop length ${nhLen} overruns the attribute`);
  const nh = v.subarray(4, 4 + nhLen);
  const nlriStart = 4 + nhLen + 1; // one reserved octet (SNPA count in RFC 2858)
  const value: MpReach = { afi, safi, nextHop: '', nlri: [] };
  let nextHopProblem: string | undefined;
  const family = afi === AFI_IPV4 ? 4 : afi === AFI_IPV6 ? 6 : 0;
  if (family === 0 || safi !== SAFI_UNICAST) {
    // A family we do not speak: keep the header, skip its NLRI (RFC 4760 §7: ignore).
    return { value };
  }
  if (family === 4) {
    if (nhLen === 4) value.nextHop = v4(nh, 0);
    else nextHopProblem = `IPv4 next hop length ${nhLen} != 4`;
  } else if (nhLen === 16 || nhLen === 32) {
    value.nextHop = formatIp(bytesBig(nh, 0), 6);
    if (nhLen === 32) value.linkLocalNextHop = formatIp(bytesBig(nh, 16), 6);
  } else {
    nextHopProblem = `IPv6 next hop length ${nhLen} is neither 16 nor 32`;
  }
  try {
    value.nlri = decodePrefixes(
      v,
      nlriStart,
      v.length,
      family,
      opts.addPath?.receive?.has(familyKey(afi, safi)) ?? false,
    );
  } catch (e) {
    if (e instanceof NlriParseError) return bad(e.message);
    throw e;
  }
  return nextHopProblem === undefined ? { value } : { value, nextHopProblem };
}

function decodeMpUnreach(v: Uint8Array, opts: CodecOptions): MpUnreach | BgpDecodeError {
  const bad = (reason: string) =>
    updateError(UpdateSubcode.OptionalAttributeError, reason, 'UPDATE MP_UNREACH_NLRI', v.slice(0, 64));
  if (v.length < 3) return bad(`length ${v.length} < 3`);
  const afi = u16(v, 0);
  const safi = v[2]!;
  const family = afi === AFI_IPV4 ? 4 : afi === AFI_IPV6 ? 6 : 0;
  if (family === 0 || safi !== SAFI_UNICAST) return { afi, safi, nlri: [] };
  try {
    return {
      afi,
      safi,
      nlri: decodePrefixes(v, 3, v.length, family, opts.addPath?.receive?.has(familyKey(afi, safi)) ?? false),
    };
  } catch (e) {
    if (e instanceof NlriParseError) return bad(e.message);
    throw e;
  }
}

function bytesBig(b: Uint8Array, at: number): bigint {
  let x = 0n;
  for (let k = 0; k < 16; k++) x = (x << 8n) | BigInt(b[at + k]!);
  return x;
}

// ---- encoding -------------------------------------------------------------------------------

class Writer {
  private parts: Uint8Array[] = [];
  length = 0;
  attr(flags: number, code: number, value: Uint8Array): void {
    const ext = value.length > 255;
    const f = (ext ? flags | AttrFlag.ExtendedLength : flags & ~AttrFlag.ExtendedLength) & 0xff;
    const head = ext
      ? Uint8Array.of(f, code, value.length >> 8, value.length & 255)
      : Uint8Array.of(f, code, value.length);
    if (value.length > 0xffff)
      throw new BgpEncodeError(`attribute ${code}`, 'value longer than 65535 octets');
    this.parts.push(head, value);
    this.length += head.length + value.length;
  }
  bytes(): Uint8Array {
    const out = new Uint8Array(this.length);
    let i = 0;
    for (const p of this.parts) {
      out.set(p, i);
      i += p.length;
    }
    return out;
  }
}

function be32(n: number, out: Uint8Array, at: number): void {
  out[at] = (n >>> 24) & 255;
  out[at + 1] = (n >>> 16) & 255;
  out[at + 2] = (n >>> 8) & 255;
  out[at + 3] = n & 255;
}

function v4Bytes(text: string, where: string): Uint8Array {
  let p: ReturnType<typeof parseIp>;
  try {
    p = parseIp(text);
  } catch {
    throw new BgpEncodeError(where, `"${text}" is not an IPv4 address`);
  }
  if (p.family !== 4) throw new BgpEncodeError(where, `"${text}" is not an IPv4 address`);
  const out = new Uint8Array(4);
  be32(Number(p.addr), out, 0);
  return out;
}

function v6Bytes(text: string, where: string): Uint8Array {
  let p: ReturnType<typeof parseIp>;
  try {
    p = parseIp(text);
  } catch {
    throw new BgpEncodeError(where, `"${text}" is not an IPv6 address`);
  }
  if (p.family !== 6) throw new BgpEncodeError(where, `"${text}" is not an IPv6 address`);
  const out = new Uint8Array(16);
  let x = p.addr;
  for (let k = 15; k >= 0; k--) {
    out[k] = Number(x & 0xffn);
    x >>= 8n;
  }
  return out;
}

function encodeAsPath(segs: AsPathSegment[], width: 2 | 4): Uint8Array {
  const chunks: Array<{ type: number; asns: number[] }> = [];
  for (const s of segs) {
    // A segment holds at most 255 ASes: split longer ones.
    for (let k = 0; k < s.asns.length; k += 255) {
      chunks.push({ type: SEGMENT_TYPES[s.type], asns: s.asns.slice(k, k + 255) });
    }
  }
  const out = new Uint8Array(chunks.reduce((n, c) => n + 2 + c.asns.length * width, 0));
  let i = 0;
  for (const c of chunks) {
    out[i++] = c.type;
    out[i++] = c.asns.length;
    for (const a of c.asns) {
      if (width === 4) {
        be32(a, out, i);
        i += 4;
      } else {
        const two = a > 0xffff ? AS_TRANS : a;
        out[i++] = two >> 8;
        out[i++] = two & 255;
      }
    }
  }
  return out;
}

function u32Value(n: number): Uint8Array {
  const out = new Uint8Array(4);
  be32(n, out, 0);
  return out;
}

/**
 * Encodes the Path Attributes field (without MP_REACH/MP_UNREACH NLRI, which the caller
 * passes as `mp` because their size drives UPDATE packing). Attributes are written in type order.
 */
export function encodeAttributes(
  a: PathAttributes,
  opts: CodecOptions,
  mp: { reach?: MpReach; unreach?: MpUnreach } = { reach: a.mpReach, unreach: a.mpUnreach },
): Uint8Array {
  const w = new Writer();
  const wk = AttrFlag.Transitive;
  const optT = AttrFlag.Optional | AttrFlag.Transitive;
  const optN = AttrFlag.Optional;
  if (a.origin !== undefined) w.attr(wk, AttrType.Origin, Uint8Array.of(a.origin));
  if (a.asPath !== undefined) w.attr(wk, AttrType.AsPath, encodeAsPath(a.asPath, opts.as4 ? 4 : 2));
  if (a.nextHop !== undefined) w.attr(wk, AttrType.NextHop, v4Bytes(a.nextHop, 'NEXT_HOP'));
  if (a.med !== undefined) w.attr(optN, AttrType.Med, u32Value(a.med));
  if (a.localPref !== undefined) w.attr(wk, AttrType.LocalPref, u32Value(a.localPref));
  if (a.atomicAggregate) w.attr(wk, AttrType.AtomicAggregate, new Uint8Array(0));
  if (a.aggregator !== undefined) {
    const addr = v4Bytes(a.aggregator.address, 'AGGREGATOR');
    if (opts.as4) {
      const v = new Uint8Array(8);
      be32(a.aggregator.asn, v, 0);
      v.set(addr, 4);
      w.attr(optT, AttrType.Aggregator, v);
    } else {
      const two = a.aggregator.asn > 0xffff ? AS_TRANS : a.aggregator.asn;
      w.attr(optT, AttrType.Aggregator, Uint8Array.of(two >> 8, two & 255, ...addr));
    }
  }
  if (a.communities !== undefined && a.communities.length > 0) {
    const v = new Uint8Array(a.communities.length * 4);
    a.communities.forEach((c, k) => {
      be32(c, v, k * 4);
    });
    w.attr(optT, AttrType.Communities, v);
  }
  if (a.originatorId !== undefined)
    w.attr(optN, AttrType.OriginatorId, v4Bytes(a.originatorId, 'ORIGINATOR_ID'));
  if (a.clusterList !== undefined && a.clusterList.length > 0) {
    const v = new Uint8Array(a.clusterList.length * 4);
    a.clusterList.forEach((c, k) => {
      v.set(v4Bytes(c, 'CLUSTER_LIST'), k * 4);
    });
    w.attr(optN, AttrType.ClusterList, v);
  }
  if (mp.reach !== undefined) w.attr(optN, AttrType.MpReachNlri, encodeMpReach(mp.reach, opts));
  if (mp.unreach !== undefined) w.attr(optN, AttrType.MpUnreachNlri, encodeMpUnreach(mp.unreach, opts));
  if (!opts.as4) {
    // RFC 6793 §4.2.2: an AS path with 4-octet ASes also travels as AS4_PATH (no confed segments).
    if (a.asPath?.some((s) => s.asns.some((x) => x > 0xffff))) {
      const plain = a.asPath.filter((s) => s.type === 'sequence' || s.type === 'set');
      w.attr(optT, AttrType.As4Path, encodeAsPath(plain, 4));
    }
    if (a.aggregator !== undefined && a.aggregator.asn > 0xffff) {
      const v = new Uint8Array(8);
      be32(a.aggregator.asn, v, 0);
      v.set(v4Bytes(a.aggregator.address, 'AS4_AGGREGATOR'), 4);
      w.attr(optT, AttrType.As4Aggregator, v);
    }
  }
  if (a.largeCommunities !== undefined && a.largeCommunities.length > 0) {
    const v = new Uint8Array(a.largeCommunities.length * 12);
    a.largeCommunities.forEach((c, k) => {
      be32(c.globalAdmin, v, k * 12);
      be32(c.localData1, v, k * 12 + 4);
      be32(c.localData2, v, k * 12 + 8);
    });
    w.attr(optT, AttrType.LargeCommunities, v);
  }
  for (const u of a.unknown ?? []) {
    // RFC 4271 §5: an unrecognised optional transitive attribute is passed on with Partial set.
    const flags = (u.flags & AttrFlag.Transitive) !== 0 ? u.flags | AttrFlag.Partial : u.flags;
    w.attr(flags, u.code, u.data);
  }
  return w.bytes();
}

export function mpNextHopBytes(reach: Pick<MpReach, 'afi' | 'nextHop' | 'linkLocalNextHop'>): Uint8Array {
  if (reach.afi === AFI_IPV4) return v4Bytes(reach.nextHop, 'MP_REACH_NLRI next hop');
  const g = v6Bytes(reach.nextHop, 'MP_REACH_NLRI next hop');
  if (reach.linkLocalNextHop === undefined) return g;
  const out = new Uint8Array(32);
  out.set(g, 0);
  out.set(v6Bytes(reach.linkLocalNextHop, 'MP_REACH_NLRI link-local next hop'), 16);
  return out;
}

function encodeMpReach(r: MpReach, opts: CodecOptions): Uint8Array {
  const nh = mpNextHopBytes(r);
  const ap = opts.addPath?.send?.has(familyKey(r.afi, r.safi)) ?? false;
  const size = 5 + nh.length + r.nlri.reduce((n, x) => n + nlriWireLength(x, ap), 0);
  const out = new Uint8Array(size);
  out[0] = r.afi >> 8;
  out[1] = r.afi & 255;
  out[2] = r.safi;
  out[3] = nh.length;
  out.set(nh, 4);
  let i = 5 + nh.length;
  for (const x of r.nlri) i = writeNlri(out, i, x, ap);
  return out;
}

function encodeMpUnreach(r: MpUnreach, opts: CodecOptions): Uint8Array {
  const ap = opts.addPath?.send?.has(familyKey(r.afi, r.safi)) ?? false;
  const out = new Uint8Array(3 + r.nlri.reduce((n, x) => n + nlriWireLength(x, ap), 0));
  out[0] = r.afi >> 8;
  out[1] = r.afi & 255;
  out[2] = r.safi;
  let i = 3;
  for (const x of r.nlri) i = writeNlri(out, i, x, ap);
  return out;
}

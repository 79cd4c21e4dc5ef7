// UPDATE message (RFC 4271 §4.3) with the RFC 7606 decision of what to do with it,
// End-of-RIB markers (RFC 4724 §2) and packing of many prefixes into few UPDATEs.
import { type DecodedAttributes, decodeAttributes, encodeAttributes, familyKey } from './attributes.js';
import { BgpDecodeError, BgpEncodeError, NO_DATA } from './errors.js';
import {
  decodeIpv4Keys,
  decodePrefixes,
  ipv4KeyText,
  ipv4KeyWireLength,
  NlriParseError,
  nlriWireLength,
  writeIpv4Key,
  writeNlri,
} from './nlri.js';
import {
  AFI_IPV4,
  AFI_IPV6,
  type AfiSafi,
  type AttributeProblem,
  AttrType,
  type CodecOptions,
  ErrorCode,
  HEADER_LENGTH,
  MAX_MESSAGE_LENGTH,
  type MpReach,
  type Nlri,
  type PathAttributes,
  SAFI_UNICAST,
  type UpdateMessage,
  type UpdateOutcome,
  UpdateSubcode,
} from './types.js';

function updateError(subcode: number, reason: string, data: Uint8Array = NO_DATA): BgpDecodeError {
  return new BgpDecodeError({ code: ErrorCode.UpdateMessage, subcode, data }, reason, 'UPDATE');
}

export type UpdateDecode = { message: UpdateMessage; outcome: UpdateOutcome } | BgpDecodeError;

/** Decodes an UPDATE body (after the header) and decides its RFC 7606 outcome. Never throws. */
export function decodeUpdateBody(b: Uint8Array, opts: CodecOptions): UpdateDecode {
  if (b.length < 4)
    return updateError(UpdateSubcode.MalformedAttributeList, `body of ${b.length} octets < 4`);
  const wlen = (b[0]! << 8) | b[1]!;
  if (2 + wlen + 2 > b.length) {
    return updateError(
      UpdateSubcode.MalformedAttributeList,
      `withdrawn routes length ${wlen} overruns the message`,
    );
  }
  const alen = (b[2 + wlen]! << 8) | b[3 + wlen]!;
  const attrStart = 4 + wlen;
  if (attrStart + alen > b.length) {
    return updateError(
      UpdateSubcode.MalformedAttributeList,
      `total path attribute length ${alen} overruns the message`,
    );
  }
  const v4Rx = opts.addPath?.receive?.has(familyKey(AFI_IPV4, SAFI_UNICAST)) ?? false;
  const keyed = opts.ipv4Keys === true && !v4Rx;
  let withdrawn: Nlri[] = [];
  let nlri: Nlri[] = [];
  let withdrawnKeys: number[] | undefined;
  let nlriKeys: number[] | undefined;
  try {
    if (keyed) {
      withdrawnKeys = decodeIpv4Keys(b, 2, 2 + wlen);
      nlriKeys = decodeIpv4Keys(b, attrStart + alen, b.length);
    } else {
      withdrawn = decodePrefixes(b, 2, 2 + wlen, 4, v4Rx);
      nlri = decodePrefixes(b, attrStart + alen, b.length, 4, v4Rx);
    }
  } catch (e) {
    // RFC 7606 §5.3: NLRI that cannot be parsed leave no way to withdraw precisely → reset.
    if (e instanceof NlriParseError) return updateError(UpdateSubcode.InvalidNetworkField, e.message);
    throw e;
  }
  const d: DecodedAttributes = decodeAttributes(b, attrStart, attrStart + alen, opts);
  if (d.reset) return d.reset;
  const message: UpdateMessage = keyed
    ? { type: 'update', withdrawn, attributes: d.attributes, nlri, withdrawnKeys, nlriKeys }
    : { type: 'update', withdrawn, attributes: d.attributes, nlri };
  const problems = [...d.problems, ...missingMandatory(message, alen, opts)];
  return { message, outcome: decideOutcome(message, problems) };
}

/** RFC 7606 §3 d: well-known mandatory attributes missing from an UPDATE that carries NLRI. */
function missingMandatory(m: UpdateMessage, alen: number, opts: CodecOptions): AttributeProblem[] {
  const out: AttributeProblem[] = [];
  const v4Reach = m.nlri.length > 0 || (m.nlriKeys?.length ?? 0) > 0;
  const reach = v4Reach || (m.attributes.mpReach !== undefined && m.attributes.mpReach.nlri.length > 0);
  if (!reach) return out;
  const a = m.attributes;
  // A problem already recorded for the attribute explains its absence; do not report it twice.
  const miss = (code: number, name: string) =>
    out.push({ code, reason: `missing well-known attribute ${name}`, action: 'treat-as-withdraw' });
  if (alen === 0 || a.origin === undefined) miss(AttrType.Origin, 'ORIGIN');
  if (a.asPath === undefined) miss(AttrType.AsPath, 'AS_PATH');
  if (v4Reach && a.nextHop === undefined) miss(AttrType.NextHop, 'NEXT_HOP');
  if (opts.ibgp === true && a.localPref === undefined) miss(AttrType.LocalPref, 'LOCAL_PREF');
  return out;
}

/** Strongest action wins (RFC 7606 §2); session-reset never reaches here. */
function decideOutcome(m: UpdateMessage, problems: AttributeProblem[]): UpdateOutcome {
  if (problems.length === 0) return { kind: 'ok' };
  if (problems.some((p) => p.action === 'treat-as-withdraw')) {
    // Rare path: keyed prefixes get their text form here so that the outcome lists them all.
    const keyNlri = (key: number): Nlri => ({ family: 4, prefix: ipv4KeyText(key) });
    const withdrawn = [
      ...m.withdrawn,
      ...(m.withdrawnKeys ?? []).map(keyNlri),
      ...m.nlri,
      ...(m.nlriKeys ?? []).map(keyNlri),
      ...(m.attributes.mpReach?.nlri ?? []),
      ...(m.attributes.mpUnreach?.nlri ?? []),
    ];
    return { kind: 'treat-as-withdraw', withdrawn, problems };
  }
  const discarded = [...new Set(problems.map((p) => p.code))];
  return { kind: 'attribute-discard', discarded, problems };
}

/** Encodes an UPDATE body. Throws BgpEncodeError if it would exceed the message size limit. */
export function encodeUpdateBody(m: UpdateMessage, opts: CodecOptions): Uint8Array {
  const v4Tx = opts.addPath?.send?.has(familyKey(AFI_IPV4, SAFI_UNICAST)) ?? false;
  const attrs = encodeAttributes(m.attributes, opts);
  if (v4Tx && ((m.withdrawnKeys?.length ?? 0) > 0 || (m.nlriKeys?.length ?? 0) > 0)) {
    throw new BgpEncodeError('UPDATE', 'IPv4 prefix keys carry no ADD-PATH path identifier');
  }
  let wlen = m.withdrawn.reduce((n, x) => n + nlriWireLength(x, v4Tx), 0);
  for (const k of m.withdrawnKeys ?? []) wlen += ipv4KeyWireLength(k);
  let nlen = m.nlri.reduce((n, x) => n + nlriWireLength(x, v4Tx), 0);
  for (const k of m.nlriKeys ?? []) nlen += ipv4KeyWireLength(k);
  const total = 4 + wlen + attrs.length + nlen;
  const max = (opts.extendedMessage ? 65535 : MAX_MESSAGE_LENGTH) - HEADER_LENGTH;
  if (total > max)
    throw new BgpEncodeError('UPDATE', `${total + HEADER_LENGTH} octets exceed ${max + HEADER_LENGTH}`);
  const out = new Uint8Array(total);
  out[0] = wlen >> 8;
  out[1] = wlen & 255;
  let i = 2;
  for (const x of m.withdrawn) {
    if (x.family !== 4)
      throw new BgpEncodeError('UPDATE', `withdrawn ${x.prefix} is not IPv4 (use MP_UNREACH_NLRI)`);
    i = writeNlri(out, i, x, v4Tx);
  }
  for (const k of m.withdrawnKeys ?? []) i = writeIpv4Key(out, i, k);
  out[i++] = attrs.length >> 8;
  out[i++] = attrs.length & 255;
  out.set(attrs, i);
  i += attrs.length;
  for (const x of m.nlri) {
    if (x.family !== 4)
      throw new BgpEncodeError('UPDATE', `NLRI ${x.prefix} is not IPv4 (use MP_REACH_NLRI)`);
    i = writeNlri(out, i, x, v4Tx);
  }
  for (const k of m.nlriKeys ?? []) i = writeIpv4Key(out, i, k);
  return out;
}

// ---- End-of-RIB ---------------------------------------------------------------------------

/** The End-of-RIB marker for a family (RFC 4724 §2). */
export function endOfRib(family: AfiSafi): UpdateMessage {
  if (family.afi === AFI_IPV4 && family.safi === SAFI_UNICAST) {
    return { type: 'update', withdrawn: [], attributes: {}, nlri: [] };
  }
  return { type: 'update', withdrawn: [], attributes: { mpUnreach: { ...family, nlri: [] } }, nlri: [] };
}

/** The family this UPDATE marks End-of-RIB for, or null if it is not an End-of-RIB marker. */
export function endOfRibFamily(m: UpdateMessage): AfiSafi | null {
  if (m.withdrawn.length > 0 || m.nlri.length > 0) return null;
  if ((m.withdrawnKeys?.length ?? 0) > 0 || (m.nlriKeys?.length ?? 0) > 0) return null;
  const a = m.attributes;
  const keys = Object.keys(a).filter((k) => a[k as keyof PathAttributes] !== undefined);
  if (keys.length === 0) return { afi: AFI_IPV4, safi: SAFI_UNICAST };
  if (keys.length === 1 && a.mpUnreach !== undefined && a.mpUnreach.nlri.length === 0) {
    return { afi: a.mpUnreach.afi, safi: a.mpUnreach.safi };
  }
  return null;
}

// ---- packing ------------------------------------------------------------------------------

export interface PackInput {
  /** Attributes shared by every announced prefix (mpReach/mpUnreach ignored; next hops below). */
  attributes: PathAttributes;
  announce: Nlri[];
  withdraw: Nlri[];
  /** IPv6 next hop for announced IPv6 prefixes (MP_REACH_NLRI). IPv4 uses attributes.nextHop. */
  ipv6NextHop?: { nextHop: string; linkLocalNextHop?: string };
}

/**
 * Splits announcements and withdrawals into UPDATE messages that each fit the size limit:
 * IPv4 in the classic fields, IPv6 in MP_REACH/MP_UNREACH. Withdrawals come first so a
 * receiver never briefly holds both the old and new view of a prefix that moved.
 */
export function packUpdates(input: PackInput, opts: CodecOptions): UpdateMessage[] {
  const max = (opts.extendedMessage ? 65535 : MAX_MESSAGE_LENGTH) - HEADER_LENGTH - 4;
  const out: UpdateMessage[] = [];
  const ap = (afi: number) => opts.addPath?.send?.has(familyKey(afi, SAFI_UNICAST)) ?? false;
  const chunk = (list: Nlri[], room: number, addPath: boolean): Nlri[][] => {
    if (room <= 0) throw new BgpEncodeError('UPDATE', 'attributes leave no room for NLRI');
    const chunks: Nlri[][] = [];
    let cur: Nlri[] = [];
    let used = 0;
    for (const x of list) {
      const n = nlriWireLength(x, addPath);
      if (used + n > room && cur.length > 0) {
        chunks.push(cur);
        cur = [];
        used = 0;
      }
      cur.push(x);
      used += n;
    }
    if (cur.length > 0) chunks.push(cur);
    return chunks;
  };
  const { mpReach: _r, mpUnreach: _u, ...base } = input.attributes;
  const w4 = input.withdraw.filter((x) => x.family === 4);
  const w6 = input.withdraw.filter((x) => x.family === 6);
  const a4 = input.announce.filter((x) => x.family === 4);
  const a6 = input.announce.filter((x) => x.family === 6);
  for (const c of chunk(w4, max, ap(AFI_IPV4)))
    out.push({ type: 'update', withdrawn: c, attributes: {}, nlri: [] });
  // MP_UNREACH header: attr header (4 with extended length) + afi/safi 3.
  for (const c of chunk(w6, max - 7, ap(AFI_IPV6))) {
    out.push({
      type: 'update',
      withdrawn: [],
      attributes: { mpUnreach: { afi: AFI_IPV6, safi: SAFI_UNICAST, nlri: c } },
      nlri: [],
    });
  }
  if (a4.length > 0) {
    const attrLen = encodeAttributes(base, opts, {}).length;
    for (const c of chunk(a4, max - attrLen, ap(AFI_IPV4))) {
      out.push({ type: 'update', withdrawn: [], attributes: base, nlri: c });
    }
  }
  if (a6.length > 0) {
    if (input.ipv6NextHop === undefined)
      throw new BgpEncodeError('UPDATE', 'IPv6 NLRI without an IPv6 next hop');
    const { nextHop: _nh, ...noNh } = base;
    const nh = input.ipv6NextHop;
    const template: MpReach = { afi: AFI_IPV6, safi: SAFI_UNICAST, nextHop: nh.nextHop, nlri: [] };
    if (nh.linkLocalNextHop !== undefined) template.linkLocalNextHop = nh.linkLocalNextHop;
    const overhead = encodeAttributes(noNh, opts, { reach: template }).length + 1; // +1: extended length
    for (const c of chunk(a6, max - overhead, ap(AFI_IPV6))) {
      out.push({
        type: 'update',
        withdrawn: [],
        attributes: { ...noNh, mpReach: { ...template, nlri: c } },
        nlri: [],
      });
    }
  }
  return out;
}

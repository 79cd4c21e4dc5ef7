// OPEN message (RFC 4271 §4.2), capabilities (RFC 5492) and extended optional
// parameters (RFC 9072); OPEN validation per RFC 4271 §6.2.
import { BgpDecodeError, BgpEncodeError, NO_DATA } from './errors.js';
import {
  type AddPathMode,
  AS_TRANS,
  type Capability,
  CapabilityCode,
  ErrorCode,
  type NotificationSpec,
  type OpenMessage,
  OpenSubcode,
} from './types.js';

const PARAM_CAPABILITIES = 2;
/** RFC 9072: Non-Ext OP Type value marking the extended format. */
const PARAM_EXTENDED = 255;

const ADD_PATH_MODES: Record<number, AddPathMode> = { 1: 'receive', 2: 'send', 3: 'both' };
const ADD_PATH_CODES: Record<AddPathMode, number> = { receive: 1, send: 2, both: 3 };

function openError(subcode: number, reason: string, data: Uint8Array = NO_DATA): BgpDecodeError {
  return new BgpDecodeError({ code: ErrorCode.OpenMessage, subcode, data }, reason, 'OPEN');
}

function u16(b: Uint8Array, i: number): number {
  return (b[i]! << 8) | b[i + 1]!;
}
function u32(b: Uint8Array, i: number): number {
  return ((b[i]! << 24) | (b[i + 1]! << 16) | (b[i + 2]! << 8) | b[i + 3]!) >>> 0;
}

// ---- capabilities ---------------------------------------------------------------------------

/** Decodes one capability value. Malformed known capabilities are kept as 'unknown' only if harmless. */
export function decodeCapability(code: number, v: Uint8Array): Capability {
  const bad = (why: string) => openError(0, `capability ${code}: ${why}`);
  switch (code) {
    case CapabilityCode.Multiprotocol:
      if (v.length !== 4) throw bad(`length ${v.length} != 4`);
      return { kind: 'multiprotocol', afi: u16(v, 0), safi: v[3]! };
    case CapabilityCode.RouteRefresh:
      return { kind: 'route-refresh' };
    case CapabilityCode.EnhancedRouteRefresh:
      return { kind: 'enhanced-route-refresh' };
    case CapabilityCode.ExtendedMessage:
      return { kind: 'extended-message' };
    case CapabilityCode.FourOctetAs:
      if (v.length !== 4) throw bad(`length ${v.length} != 4`);
      return { kind: 'as4', asn: u32(v, 0) };
    case CapabilityCode.GracefulRestart: {
      if (v.length < 2 || (v.length - 2) % 4 !== 0) throw bad(`length ${v.length} is not 2 + 4n`);
      const families = [];
      for (let i = 2; i < v.length; i += 4) {
        families.push({ afi: u16(v, i), safi: v[i + 2]!, forwardingPreserved: (v[i + 3]! & 0x80) !== 0 });
      }
      return {
        kind: 'graceful-restart',
        restarting: (v[0]! & 0x80) !== 0,
        notification: (v[0]! & 0x40) !== 0,
        restartTime: u16(v, 0) & 0x0fff,
        families,
      };
    }
    case CapabilityCode.AddPath: {
      if (v.length % 4 !== 0) throw bad(`length ${v.length} is not a multiple of 4`);
      const families = [];
      for (let i = 0; i < v.length; i += 4) {
        const mode = ADD_PATH_MODES[v[i + 3]!];
        if (mode === undefined) throw bad(`send/receive value ${v[i + 3]}`);
        families.push({ afi: u16(v, i), safi: v[i + 2]!, mode });
      }
      return { kind: 'add-path', families };
    }
    default:
      return { kind: 'unknown', code, data: new Uint8Array(v) };
  }
}

export function encodeCapability(c: Capability): Uint8Array {
  const body = (code: number, data: number[] | Uint8Array): Uint8Array => {
    if (data.length > 255) throw new BgpEncodeError(`capability ${code}`, 'value longer than 255 octets');
    return Uint8Array.from([code, data.length, ...data]);
  };
  switch (c.kind) {
    case 'multiprotocol':
      return body(CapabilityCode.Multiprotocol, [c.afi >> 8, c.afi & 255, 0, c.safi]);
    case 'route-refresh':
      return body(CapabilityCode.RouteRefresh, []);
    case 'enhanced-route-refresh':
      return body(CapabilityCode.EnhancedRouteRefresh, []);
    case 'extended-message':
      return body(CapabilityCode.ExtendedMessage, []);
    case 'as4':
      return body(CapabilityCode.FourOctetAs, be32(c.asn));
    case 'graceful-restart': {
      const t = c.restartTime & 0x0fff;
      const head = [(c.restarting ? 0x80 : 0) | (c.notification ? 0x40 : 0) | (t >> 8), t & 255];
      const fams = c.families.flatMap((f) => [
        f.afi >> 8,
        f.afi & 255,
        f.safi,
        f.forwardingPreserved ? 0x80 : 0,
      ]);
      return body(CapabilityCode.GracefulRestart, [...head, ...fams]);
    }
    case 'add-path':
      return body(
        CapabilityCode.AddPath,
        c.families.flatMap((f) => [f.afi >> 8, f.afi & 255, f.safi, ADD_PATH_CODES[f.mode]]),
      );
    case 'unknown':
      return body(c.code, c.data);
  }
}

function be32(n: number): number[] {
  return [(n >>> 24) & 255, (n >>> 16) & 255, (n >>> 8) & 255, n & 255];
}

// ---- OPEN body ------------------------------------------------------------------------------

/** Decodes an OPEN body (after the 19-octet header). Throws BgpDecodeError. */
export function decodeOpenBody(b: Uint8Array): OpenMessage {
  if (b.length < 10) throw openError(0, `body of ${b.length} octets < 10`);
  const version = b[0]!;
  const myAs = u16(b, 1);
  const holdTime = u16(b, 3);
  const bgpId = `${b[5]}.${b[6]}.${b[7]}.${b[8]}`;
  let optLen = b[9]!;
  let i = 10;
  let extended = false;
  // RFC 9072: Non-Ext OP Len 255 followed by Non-Ext OP Type 255 → 2-octet lengths follow.
  if (optLen === 255 && b[10] === PARAM_EXTENDED) {
    if (b.length < 13) throw openError(0, 'truncated extended optional parameters length');
    extended = true;
    optLen = u16(b, 11);
    i = 13;
  }
  if (i + optLen !== b.length) {
    throw openError(
      0,
      `optional parameters length ${optLen} does not match the message (${b.length - i} left)`,
    );
  }
  const capabilities: Capability[] = [];
  const unknownParams: Array<{ type: number; data: Uint8Array }> = [];
  const end = i + optLen;
  while (i < end) {
    const hdr = extended ? 3 : 2;
    if (i + hdr > end) throw openError(0, 'truncated optional parameter header');
    const type = b[i]!;
    const len = extended ? u16(b, i + 1) : b[i + 1]!;
    i += hdr;
    if (i + len > end) throw openError(0, `optional parameter ${type} overruns (${len} octets)`);
    if (type === PARAM_CAPABILITIES) {
      let j = i;
      while (j < i + len) {
        if (j + 2 > i + len) throw openError(0, 'truncated capability header');
        const code = b[j]!;
        const clen = b[j + 1]!;
        if (j + 2 + clen > i + len) throw openError(0, `capability ${code} overruns its parameter`);
        capabilities.push(decodeCapability(code, b.subarray(j + 2, j + 2 + clen)));
        j += 2 + clen;
      }
    } else {
      unknownParams.push({ type, data: new Uint8Array(b.subarray(i, i + len)) });
    }
    i += len;
  }
  const open: OpenMessage = { type: 'open', version, myAs, holdTime, bgpId, capabilities };
  if (unknownParams.length > 0) open.unknownParams = unknownParams;
  return open;
}

/** Encodes an OPEN body. Uses RFC 9072 extended parameters only when they do not fit in 255 octets. */
export function encodeOpenBody(m: OpenMessage): Uint8Array {
  const id = m.bgpId.split('.').map(Number);
  if (id.length !== 4 || id.some((x) => !Number.isInteger(x) || x < 0 || x > 255)) {
    throw new BgpEncodeError('OPEN', `BGP identifier "${m.bgpId}" is not a dotted quad`);
  }
  // One capability per optional parameter would waste octets; one parameter holds them all
  // unless it exceeds 255 octets in the classic format.
  const caps = m.capabilities.map(encodeCapability);
  const capBytes = concat(caps);
  const params: Array<{ type: number; data: Uint8Array }> = [];
  if (capBytes.length > 0) params.push({ type: PARAM_CAPABILITIES, data: capBytes });
  for (const p of m.unknownParams ?? []) params.push(p);
  const classicLen = params.reduce((s, p) => s + 2 + p.data.length, 0);
  const extended = classicLen > 255 || params.some((p) => p.data.length > 255);
  const parts: Uint8Array[] = [];
  const head = [m.version, m.myAs >> 8, m.myAs & 255, m.holdTime >> 8, m.holdTime & 255, ...id];
  if (!extended) {
    parts.push(Uint8Array.from([...head, classicLen]));
    for (const p of params) parts.push(Uint8Array.from([p.type, p.data.length]), p.data);
  } else {
    const extLen = params.reduce((s, p) => s + 3 + p.data.length, 0);
    if (extLen > 0xffff) throw new BgpEncodeError('OPEN', 'optional parameters exceed 65535 octets');
    parts.push(Uint8Array.from([...head, 255, PARAM_EXTENDED, extLen >> 8, extLen & 255]));
    for (const p of params)
      parts.push(Uint8Array.from([p.type, p.data.length >> 8, p.data.length & 255]), p.data);
  }
  return concat(parts);
}

export function concat(parts: Uint8Array[]): Uint8Array {
  const n = parts.reduce((s, p) => s + p.length, 0);
  const out = new Uint8Array(n);
  let i = 0;
  for (const p of parts) {
    out.set(p, i);
    i += p.length;
  }
  return out;
}

// ---- helpers for the session ---------------------------------------------------------------

/** The speaker's real AS: the 4-octet AS capability if present, else the My AS field. */
export function openAsn(open: OpenMessage): number {
  for (const c of open.capabilities) if (c.kind === 'as4') return c.asn;
  return open.myAs;
}

/** The 2-octet My AS field for a local AS (AS_TRANS when it does not fit). */
export function myAsField(asn: number): number {
  return asn > 0xffff ? AS_TRANS : asn;
}

export interface OpenExpectations {
  /** The AS configured for this peer; undefined accepts any. */
  peerAs?: number;
  /** Our own BGP identifier: an iBGP peer using the same one is rejected (RFC 4271 §6.2). */
  localBgpId?: string;
  /** Our own AS, to know whether the peer is internal. */
  localAs?: number;
  /** Capabilities we require the peer to announce, by code (RFC 5492 §5: Unsupported Capability). */
  requiredCapabilities?: number[];
}

/**
 * RFC 4271 §6.2 OPEN checks (plus RFC 6793 / RFC 5492 / RFC 6286 refinements).
 * Returns the NOTIFICATION to send, or null when the OPEN is acceptable.
 */
export function validateOpen(open: OpenMessage, expect: OpenExpectations = {}): NotificationSpec | null {
  const n = (subcode: number, data: Uint8Array = NO_DATA): NotificationSpec => ({
    code: ErrorCode.OpenMessage,
    subcode,
    data,
  });
  // Data: the largest locally supported version, 2 octets.
  if (open.version !== 4) return n(OpenSubcode.UnsupportedVersionNumber, Uint8Array.from([0, 4]));
  if (open.unknownParams && open.unknownParams.length > 0) return n(OpenSubcode.UnsupportedOptionalParameter);
  const asn = openAsn(open);
  // RFC 6793 §4.2: a 4-octet AS that fits in 2 octets must also be in My AS; AS_TRANS itself
  // is never a valid real AS; My AS 0 is invalid.
  const as4 = open.capabilities.find((c) => c.kind === 'as4');
  if (open.myAs === 0 || asn === 0 || asn === AS_TRANS) return n(OpenSubcode.BadPeerAs);
  if (as4 && asn <= 0xffff && open.myAs !== asn) return n(OpenSubcode.BadPeerAs);
  if (as4 && asn > 0xffff && open.myAs !== AS_TRANS) return n(OpenSubcode.BadPeerAs);
  if (expect.peerAs !== undefined && asn !== expect.peerAs) return n(OpenSubcode.BadPeerAs);
  // Hold time: 0 or ≥ 3 seconds.
  if (open.holdTime === 1 || open.holdTime === 2) return n(OpenSubcode.UnacceptableHoldTime);
  // RFC 6286: any non-zero 32-bit identifier; unique within an AS.
  if (open.bgpId === '0.0.0.0') return n(OpenSubcode.BadBgpIdentifier);
  if (expect.localBgpId !== undefined && expect.localAs !== undefined && asn === expect.localAs) {
    if (open.bgpId === expect.localBgpId) return n(OpenSubcode.BadBgpIdentifier);
  }
  for (const code of expect.requiredCapabilities ?? []) {
    if (!open.capabilities.some((c) => capabilityCode(c) === code)) {
      return n(OpenSubcode.UnsupportedCapability, Uint8Array.from([code, 0]));
    }
  }
  return null;
}

export function capabilityCode(c: Capability): number {
  switch (c.kind) {
    case 'multiprotocol':
      return CapabilityCode.Multiprotocol;
    case 'route-refresh':
      return CapabilityCode.RouteRefresh;
    case 'enhanced-route-refresh':
      return CapabilityCode.EnhancedRouteRefresh;
    case 'extended-message':
      return CapabilityCode.ExtendedMessage;
    case 'as4':
      return CapabilityCode.FourOctetAs;
    case 'graceful-restart':
      return CapabilityCode.GracefulRestart;
    case 'add-path':
      return CapabilityCode.AddPath;
    case 'unknown':
      return c.code;
  }
}

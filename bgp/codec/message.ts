// Whole messages: the 19-octet header (RFC 4271 §4.1), encode/decode of every message type,
// and a streaming framer that cuts a TCP byte stream into messages.
import { BgpDecodeError, BgpEncodeError, NO_DATA } from './errors.js';
import { decodeOpenBody, encodeOpenBody } from './open.js';
import {
  type BgpMessage,
  type CodecOptions,
  ErrorCode,
  HEADER_LENGTH,
  HeaderSubcode,
  MAX_MESSAGE_LENGTH,
  MessageType,
  type UpdateOutcome,
} from './types.js';
import { decodeUpdateBody, encodeUpdateBody } from './update.js';

export type DecodeResult =
  /** `outcome` is RFC 7606's verdict for an UPDATE; { kind: 'ok' } for every other message. */
  | { ok: true; message: BgpMessage; outcome: UpdateOutcome }
  /** The session must be reset: send `error.notification`. */
  | { ok: false; error: BgpDecodeError };

const OK: UpdateOutcome = { kind: 'ok' };

/** Minimum total lengths per type (RFC 4271 §4, RFC 2918 §3). */
const MIN_LENGTH: Record<number, number> = { 1: 29, 2: 23, 3: 21, 4: 19, 5: 23 };

function headerError(subcode: number, reason: string, data: Uint8Array = NO_DATA): BgpDecodeError {
  return new BgpDecodeError({ code: ErrorCode.MessageHeader, subcode, data }, reason, 'message header');
}

function lengthData(len: number): Uint8Array {
  return Uint8Array.of(len >> 8, len & 255);
}

/** Checks a header at buf[0..19). Returns the total length, or the error. */
export function checkHeader(
  buf: Uint8Array,
  opts: Pick<CodecOptions, 'extendedMessage'>,
): number | BgpDecodeError {
  for (let i = 0; i < 16; i++) {
    if (buf[i] !== 0xff)
      return headerError(HeaderSubcode.ConnectionNotSynchronized, 'marker is not all ones');
  }
  const len = (buf[16]! << 8) | buf[17]!;
  const type = buf[18]!;
  // RFC 8654: OPEN and KEEPALIVE stay ≤ 4096 even when extended messages are negotiated.
  const max =
    opts.extendedMessage && type !== MessageType.Open && type !== MessageType.Keepalive
      ? 65535
      : MAX_MESSAGE_LENGTH;
  if (len < HEADER_LENGTH || len > max) {
    return headerError(
      HeaderSubcode.BadMessageLength,
      `length ${len} outside ${HEADER_LENGTH}..${max}`,
      lengthData(len),
    );
  }
  const min = MIN_LENGTH[type];
  if (min === undefined)
    return headerError(HeaderSubcode.BadMessageType, `unknown type ${type}`, Uint8Array.of(type));
  if (len < min || (type === MessageType.Keepalive && len !== HEADER_LENGTH)) {
    return headerError(
      HeaderSubcode.BadMessageLength,
      `length ${len} invalid for type ${type}`,
      lengthData(len),
    );
  }
  return len;
}

/** Decodes one whole message (header included). Never throws. */
export function decodeMessage(buf: Uint8Array, opts: CodecOptions): DecodeResult {
  try {
    return decodeUnsafe(buf, opts);
  } catch (e) {
    // Defence in depth: a bug in a decoder must cost one session, never the process.
    if (e instanceof BgpDecodeError) return { ok: false, error: e };
    const reason = e instanceof Error ? e.message : String(e);
    return {
      ok: false,
      error: new BgpDecodeError(
        { code: ErrorCode.MessageHeader, subcode: 0, data: NO_DATA },
        `internal decoder error: ${reason}`,
        'message',
      ),
    };
  }
}

function decodeUnsafe(buf: Uint8Array, opts: CodecOptions): DecodeResult {
  if (buf.length < HEADER_LENGTH) {
    return {
      ok: false,
      error: headerError(HeaderSubcode.BadMessageLength, `only ${buf.length} octets`, lengthData(buf.length)),
    };
  }
  const len = checkHeader(buf, opts);
  if (len instanceof BgpDecodeError) return { ok: false, error: len };
  if (len !== buf.length) {
    return {
      ok: false,
      error: headerError(
        HeaderSubcode.BadMessageLength,
        `header says ${len}, buffer holds ${buf.length}`,
        lengthData(len),
      ),
    };
  }
  const body = buf.subarray(HEADER_LENGTH);
  switch (buf[18]) {
    case MessageType.Open:
      return { ok: true, message: decodeOpenBody(body), outcome: OK };
    case MessageType.Update: {
      const r = decodeUpdateBody(body, opts);
      if (r instanceof BgpDecodeError) return { ok: false, error: r };
      return { ok: true, message: r.message, outcome: r.outcome };
    }
    case MessageType.Notification:
      return {
        ok: true,
        message: {
          type: 'notification',
          code: body[0]!,
          subcode: body[1]!,
          data: new Uint8Array(body.subarray(2)),
        },
        outcome: OK,
      };
    case MessageType.Keepalive:
      return { ok: true, message: { type: 'keepalive' }, outcome: OK };
    default: {
      // ROUTE-REFRESH: exactly 4 octets of body (RFC 7313 §5: otherwise error code 7, subcode 1).
      if (body.length !== 4) {
        return {
          ok: false,
          error: new BgpDecodeError(
            { code: ErrorCode.RouteRefreshMessage, subcode: 1, data: buf.slice(0, Math.min(buf.length, 64)) },
            `length ${buf.length} != 23`,
            'ROUTE-REFRESH',
          ),
        };
      }
      return {
        ok: true,
        message: {
          type: 'route-refresh',
          afi: (body[0]! << 8) | body[1]!,
          subtype: body[2]!,
          safi: body[3]!,
        },
        outcome: OK,
      };
    }
  }
}

/** Encodes a message with its header. Throws BgpEncodeError on values that cannot be encoded. */
export function encodeMessage(msg: BgpMessage, opts: CodecOptions): Buffer {
  let type: number;
  let body: Uint8Array;
  switch (msg.type) {
    case 'open':
      type = MessageType.Open;
      body = encodeOpenBody(msg);
      break;
    case 'update':
      type = MessageType.Update;
      body = encodeUpdateBody(msg, opts);
      break;
    case 'notification':
      type = MessageType.Notification;
      body = new Uint8Array(2 + msg.data.length);
      body[0] = msg.code;
      body[1] = msg.subcode;
      body.set(msg.data, 2);
      break;
    case 'keepalive':
      type = MessageType.Keepalive;
      body = NO_DATA;
      break;
    case 'route-refresh':
      type = MessageType.RouteRefresh;
      body = Uint8Array.of(msg.afi >> 8, msg.afi & 255, msg.subtype, msg.safi);
      break;
  }
  const len = HEADER_LENGTH + body.length;
  const max =
    opts.extendedMessage && type !== MessageType.Open && type !== MessageType.Keepalive
      ? 65535
      : MAX_MESSAGE_LENGTH;
  if (len > max) throw new BgpEncodeError(msg.type, `${len} octets exceed ${max}`);
  const out = Buffer.allocUnsafe(len);
  out.fill(0xff, 0, 16);
  out[16] = len >> 8;
  out[17] = len & 255;
  out[18] = type;
  out.set(body, HEADER_LENGTH);
  return out;
}

export type Frame = { ok: true; bytes: Buffer } | { ok: false; error: BgpDecodeError };

/**
 * Cuts a TCP byte stream into whole messages. Feed it chunks as they arrive; it yields each
 * complete message (header checked) and keeps the remainder. Messages that lie inside one chunk
 * are yielded as views of it (no copy); only a message cut across chunks is copied together, so
 * a fast stream costs no per-chunk concatenation. After a header error the stream cannot be
 * resynchronised: the framer yields that error and then nothing more.
 */
export class MessageFramer {
  /** Pieces of the message cut at the end of the last chunk (views of earlier chunks). */
  private pieces: Buffer[] = [];
  private buffered = 0;
  private failed = false;

  constructor(private readonly opts: Pick<CodecOptions, 'extendedMessage'> = {}) {}

  /** Octets held waiting for the rest of a message. */
  get pending(): number {
    return this.buffered;
  }

  *push(chunk: Buffer): Generator<Frame> {
    if (this.failed) return;
    let at = 0;
    if (this.buffered > 0) {
      // Complete the cut message: first its header (for the length), then the rest.
      const wantHeader = Math.max(0, HEADER_LENGTH - this.buffered);
      if (wantHeader > 0) {
        const take = Math.min(wantHeader, chunk.length);
        this.hold(chunk.subarray(0, take));
        at = take;
        if (this.buffered < HEADER_LENGTH) return;
      }
      const joined = this.pieces.length === 1 ? this.pieces[0]! : Buffer.concat(this.pieces, this.buffered);
      const len = checkHeader(joined, this.opts);
      if (len instanceof BgpDecodeError) {
        yield this.fail(len);
        return;
      }
      const take = Math.min(len - this.buffered, chunk.length - at);
      const tail = chunk.subarray(at, at + take);
      at += take;
      if (this.buffered + take < len) {
        this.pieces = [joined];
        this.hold(tail);
        return;
      }
      const bytes = Buffer.concat([joined, tail], len);
      this.pieces = [];
      this.buffered = 0;
      yield { ok: true, bytes };
    }
    while (chunk.length - at >= HEADER_LENGTH) {
      const len = checkHeader(chunk.subarray(at, at + HEADER_LENGTH), this.opts);
      if (len instanceof BgpDecodeError) {
        yield this.fail(len);
        return;
      }
      if (chunk.length - at < len) break;
      const bytes = chunk.subarray(at, at + len);
      at += len;
      yield { ok: true, bytes };
      if (this.failed) return;
    }
    if (at < chunk.length) this.hold(chunk.subarray(at));
  }

  private hold(piece: Buffer): void {
    if (piece.length === 0) return;
    this.pieces.push(piece);
    this.buffered += piece.length;
  }

  private fail(e: BgpDecodeError): Frame {
    this.failed = true;
    this.pieces = [];
    this.buffered = 0;
    return { ok: false, error: e };
  }
}

// NOTIFICATION helpers: the Shutdown Communication of RFC 9003 (updates RFC 8203), a short
// UTF-8 reason an operator attaches to Cease / Administrative Shutdown or Reset.
import { BgpEncodeError } from './errors.js';
import { CeaseSubcode, ErrorCode, type NotificationMessage } from './types.js';

const MAX_SHUTDOWN_OCTETS = 255;

function carriesShutdownText(code: number, subcode: number): boolean {
  return (
    code === ErrorCode.Cease &&
    (subcode === CeaseSubcode.AdministrativeShutdown || subcode === CeaseSubcode.AdministrativeReset)
  );
}

/** A Cease NOTIFICATION with an optional shutdown communication. */
export function shutdownNotification(
  subcode: typeof CeaseSubcode.AdministrativeShutdown | typeof CeaseSubcode.AdministrativeReset,
  text = '',
): NotificationMessage {
  const utf8 = Buffer.from(text, 'utf8');
  if (utf8.length > MAX_SHUTDOWN_OCTETS) {
    throw new BgpEncodeError('shutdown communication', `${utf8.length} octets > ${MAX_SHUTDOWN_OCTETS}`);
  }
  const data = new Uint8Array(text === '' ? 0 : 1 + utf8.length);
  if (text !== '') {
    data[0] = utf8.length;
    data.set(utf8, 1);
  }
  return { type: 'notification', code: ErrorCode.Cease, subcode, data };
}

/**
 * The shutdown communication of a received NOTIFICATION, or null when it has none or it is
 * malformed (RFC 9003 §3: a bad one is ignored, never an error).
 */
export function shutdownCommunication(
  n: Pick<NotificationMessage, 'code' | 'subcode' | 'data'>,
): string | null {
  if (!carriesShutdownText(n.code, n.subcode) || n.data.length === 0) return null;
  const len = n.data[0]!;
  if (len === 0 || 1 + len > n.data.length) return null;
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(n.data.subarray(1, 1 + len));
  } catch {
    return null;
  }
}

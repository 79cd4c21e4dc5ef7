// Typed codec errors. Decoding never throws these out of decodeMessage(): it returns them
// inside a DecodeResult. Encoding throws BgpEncodeError for values that cannot go on the wire
// (our own bug or bad caller input, never peer input).
import type { NotificationMessage, NotificationSpec } from './types.js';

const CODE_NAMES: Record<number, string> = {
  1: 'Message Header Error',
  2: 'OPEN Message Error',
  3: 'UPDATE Message Error',
  4: 'Hold Timer Expired',
  5: 'Finite State Machine Error',
  6: 'Cease',
  7: 'ROUTE-REFRESH Message Error',
};

export function notificationName(code: number, subcode: number): string {
  return `${CODE_NAMES[code] ?? `code ${code}`}/${subcode}`;
}

/** A peer's message was bad enough that the session must be reset with `notification`. */
export class BgpDecodeError extends Error {
  readonly notification: NotificationMessage;
  constructor(
    spec: NotificationSpec,
    /** What was wrong, for logs. */
    readonly reason: string,
    /** Where: message type and, for attributes, the attribute code. */
    readonly where: string,
  ) {
    super(`${where}: ${reason} (${notificationName(spec.code, spec.subcode)})`);
    this.name = 'BgpDecodeError';
    this.notification = { type: 'notification', code: spec.code, subcode: spec.subcode, data: spec.data };
  }
}

export class BgpEncodeError extends Error {
  constructor(
    readonly where: string,
    readonly reason: string,
  ) {
    super(`cannot encode ${where}: ${reason}`);
    this.name = 'BgpEncodeError';
  }
}

export const NO_DATA: Uint8Array = new Uint8Array(0);

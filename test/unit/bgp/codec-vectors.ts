// Shared helpers for the codec tests: hex literals and hand-assembled UPDATEs.
export const MARKER = 'ff'.repeat(16);

/** Hex with spaces/newlines/comments ("# ..." to end of line) removed. */
export function h(text: string): Buffer {
  return Buffer.from(text.replace(/#[^\n]*/g, '').replace(/\s+/g, ''), 'hex');
}

/** A whole message from type and body hex, computing the header length. */
export function msg(type: number, bodyHex: string): Buffer {
  const body = h(bodyHex);
  const len = 19 + body.length;
  return Buffer.concat([h(MARKER), Buffer.from([len >> 8, len & 255, type]), body]);
}

/** An UPDATE from withdrawn, attributes and NLRI hex (lengths computed). */
export function update(withdrawnHex: string, attrsHex: string, nlriHex = ''): Buffer {
  const w = h(withdrawnHex);
  const a = h(attrsHex);
  const n = h(nlriHex);
  const body = Buffer.concat([
    Buffer.from([w.length >> 8, w.length & 255]),
    w,
    Buffer.from([a.length >> 8, a.length & 255]),
    a,
    n,
  ]);
  return msg(2, body.toString('hex'));
}

// Well-formed attributes for a 4-octet session, reused by the RFC 7606 cases.
export const ORIGIN_IGP = '40 01 01 00';
export const AS_PATH_65001 = '40 02 06 02 01 0000fde9';
export const NEXT_HOP_10_0_0_1 = '40 03 04 0a000001';
export const BASE_ATTRS = `${ORIGIN_IGP} ${AS_PATH_65001} ${NEXT_HOP_10_0_0_1}`;
export const NLRI_192_0_2 = '18 c00002';

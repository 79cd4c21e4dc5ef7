// The BGP wire codec: pure, stateless encode/decode of BGP-4 messages. Negotiated facts
// (4-octet AS, ADD-PATH, extended messages, iBGP/eBGP) come in through CodecOptions.
export { asPathLength, decodeAsPath, familyKey } from './attributes.js';
export { BgpDecodeError, BgpEncodeError, notificationName } from './errors.js';
export {
  checkHeader,
  type DecodeResult,
  decodeMessage,
  encodeMessage,
  type Frame,
  MessageFramer,
} from './message.js';
export { ipv4KeyLength, ipv4KeyText, ipv4PrefixKey, ipv4PrefixKeyOfText } from './nlri.js';
export { shutdownCommunication, shutdownNotification } from './notification.js';
export {
  capabilityCode,
  myAsField,
  type OpenExpectations,
  openAsn,
  validateOpen,
} from './open.js';
export * from './types.js';
export { endOfRib, endOfRibFamily, type PackInput, packUpdates } from './update.js';

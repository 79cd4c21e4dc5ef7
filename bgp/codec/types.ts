// BGP-4 wire types: what the codec decodes to and encodes from.
// Pure data, no behaviour. Addresses and prefixes are text ("10.0.0.0/24", "fd00::1"),
// formatted by lib/ip.ts, so the rest of bgp/ never handles raw bytes.
// This file is a contract with bgp/session and bgp/rib: extend, do not change.
import type { Family } from '../../lib/ip.js';

export type { Family };

// ---- constants ----------------------------------------------------------------------------

export const BGP_PORT = 179;
export const HEADER_LENGTH = 19;
export const MAX_MESSAGE_LENGTH = 4096;
/** RFC 6793: the 2-octet stand-in for a 4-octet AS. */
export const AS_TRANS = 23456;

export const AFI_IPV4 = 1;
export const AFI_IPV6 = 2;
export const SAFI_UNICAST = 1;

export const MessageType = {
  Open: 1,
  Update: 2,
  Notification: 3,
  Keepalive: 4,
  RouteRefresh: 5,
} as const;

/** NOTIFICATION error codes (RFC 4271 §4.5, RFC 7313, RFC 4486). */
export const ErrorCode = {
  MessageHeader: 1,
  OpenMessage: 2,
  UpdateMessage: 3,
  HoldTimerExpired: 4,
  FsmError: 5,
  Cease: 6,
  RouteRefreshMessage: 7,
} as const;

export const HeaderSubcode = {
  ConnectionNotSynchronized: 1,
  BadMessageLength: 2,
  BadMessageType: 3,
} as const;

export const OpenSubcode = {
  UnsupportedVersionNumber: 1,
  BadPeerAs: 2,
  BadBgpIdentifier: 3,
  UnsupportedOptionalParameter: 4,
  UnacceptableHoldTime: 6,
  UnsupportedCapability: 7,
  RoleMismatch: 11,
} as const;

export const UpdateSubcode = {
  MalformedAttributeList: 1,
  UnrecognizedWellKnownAttribute: 2,
  MissingWellKnownAttribute: 3,
  AttributeFlagsError: 4,
  AttributeLengthError: 5,
  InvalidOriginAttribute: 6,
  InvalidNextHopAttribute: 8,
  OptionalAttributeError: 9,
  InvalidNetworkField: 10,
  MalformedAsPath: 11,
} as const;

/** Cease subcodes (RFC 4486, RFC 8203). */
export const CeaseSubcode = {
  MaxPrefixesReached: 1,
  AdministrativeShutdown: 2,
  PeerDeconfigured: 3,
  AdministrativeReset: 4,
  ConnectionRejected: 5,
  OtherConfigurationChange: 6,
  ConnectionCollisionResolution: 7,
  OutOfResources: 8,
  HardReset: 9,
} as const;

export const AttrType = {
  Origin: 1,
  AsPath: 2,
  NextHop: 3,
  Med: 4,
  LocalPref: 5,
  AtomicAggregate: 6,
  Aggregator: 7,
  Communities: 8,
  OriginatorId: 9,
  ClusterList: 10,
  MpReachNlri: 14,
  MpUnreachNlri: 15,
  As4Path: 17,
  As4Aggregator: 18,
  LargeCommunities: 32,
} as const;

export const AttrFlag = {
  Optional: 0x80,
  Transitive: 0x40,
  Partial: 0x20,
  ExtendedLength: 0x10,
} as const;

export const CapabilityCode = {
  Multiprotocol: 1,
  RouteRefresh: 2,
  ExtendedMessage: 6,
  GracefulRestart: 64,
  FourOctetAs: 65,
  AddPath: 69,
  EnhancedRouteRefresh: 70,
} as const;

// ---- NLRI ---------------------------------------------------------------------------------

/** One reachable or withdrawn destination. */
export interface Nlri {
  family: Family;
  /** Canonical prefix text, host bits clear: "10.0.0.0/24", "fd00::/64". */
  prefix: string;
  /** RFC 7911 path identifier, present only when ADD-PATH is negotiated for the family. */
  pathId?: number;
}

export interface AfiSafi {
  afi: number;
  safi: number;
}

// ---- OPEN and capabilities ----------------------------------------------------------------

export type AddPathMode = 'receive' | 'send' | 'both';

export type Capability =
  | { kind: 'multiprotocol'; afi: number; safi: number }
  | { kind: 'route-refresh' }
  | { kind: 'enhanced-route-refresh' }
  | { kind: 'extended-message' }
  | { kind: 'as4'; asn: number }
  | {
      kind: 'graceful-restart';
      /** R bit: the sender has restarted (its routes may be stale at the receiver). */
      restarting: boolean;
      /** N bit (RFC 8538): graceful restart also covers NOTIFICATION. */
      notification: boolean;
      /** Seconds, 12 bits. */
      restartTime: number;
      families: Array<AfiSafi & { forwardingPreserved: boolean }>;
    }
  | { kind: 'add-path'; families: Array<AfiSafi & { mode: AddPathMode }> }
  /** Any capability we do not interpret, kept verbatim. */
  | { kind: 'unknown'; code: number; data: Uint8Array };

export interface OpenMessage {
  type: 'open';
  version: number;
  /** The 2-octet "My Autonomous System" field (AS_TRANS when the real AS needs 4 octets). */
  myAs: number;
  holdTime: number;
  /** BGP identifier, dotted quad. */
  bgpId: string;
  capabilities: Capability[];
  /** Optional parameters other than capabilities (type ≠ 2), kept so OPEN validation can reject them. */
  unknownParams?: Array<{ type: number; data: Uint8Array }>;
}

// ---- UPDATE and path attributes -------------------------------------------------------------

export type Origin = 0 | 1 | 2; // IGP, EGP, INCOMPLETE

export type AsPathSegmentType = 'set' | 'sequence' | 'confed-sequence' | 'confed-set';

export interface AsPathSegment {
  type: AsPathSegmentType;
  asns: number[];
}

export interface Aggregator {
  asn: number;
  address: string;
}

export interface LargeCommunity {
  globalAdmin: number;
  localData1: number;
  localData2: number;
}

export interface MpReach {
  afi: number;
  safi: number;
  /** Global next hop. */
  nextHop: string;
  /** IPv6 only: the optional link-local next hop (32-octet next-hop field). */
  linkLocalNextHop?: string;
  nlri: Nlri[];
}

export interface MpUnreach {
  afi: number;
  safi: number;
  nlri: Nlri[];
}

/** A path attribute we carry without interpreting (optional transitive ones are passed on with Partial set). */
export interface UnknownAttribute {
  flags: number;
  code: number;
  data: Uint8Array;
}

/**
 * Decoded path attributes. AS numbers are always full 4-octet values: on a 2-octet
 * session the codec merges AS4_PATH/AS4_AGGREGATOR in on decode (RFC 6793 §4.2.3)
 * and produces them on encode, so callers never see AS_TRANS juggling.
 */
export interface PathAttributes {
  origin?: Origin;
  asPath?: AsPathSegment[];
  nextHop?: string;
  med?: number;
  localPref?: number;
  atomicAggregate?: boolean;
  aggregator?: Aggregator;
  /** RFC 1997, each a 32-bit value (high 16 bits = AS). */
  communities?: number[];
  largeCommunities?: LargeCommunity[];
  originatorId?: string;
  clusterList?: string[];
  mpReach?: MpReach;
  mpUnreach?: MpUnreach;
  unknown?: UnknownAttribute[];
}

export interface UpdateMessage {
  type: 'update';
  /** IPv4 unicast withdrawn routes (the classic field). */
  withdrawn: Nlri[];
  attributes: PathAttributes;
  /** IPv4 unicast reachable routes (the classic field). */
  nlri: Nlri[];
  /**
   * The classic fields' prefixes as IPv4 prefix keys (address × 64 + length, see
   * `ipv4PrefixKey`) instead of Nlri objects: decoded so with `CodecOptions.ipv4Keys` (then
   * `withdrawn` and `nlri` are empty); encoded after `withdrawn` / `nlri` when present.
   */
  withdrawnKeys?: number[];
  nlriKeys?: number[];
}

export interface NotificationMessage {
  type: 'notification';
  code: number;
  subcode: number;
  data: Uint8Array;
}

export interface KeepaliveMessage {
  type: 'keepalive';
}

/** RFC 2918 / RFC 7313. subtype 0 = normal request, 1 = BoRR, 2 = EoRR. */
export interface RouteRefreshMessage {
  type: 'route-refresh';
  afi: number;
  safi: number;
  subtype: number;
}

export type BgpMessage =
  | OpenMessage
  | UpdateMessage
  | NotificationMessage
  | KeepaliveMessage
  | RouteRefreshMessage;

// ---- codec options and results ---------------------------------------------------------------

/** "afi/safi", e.g. "1/1" for IPv4 unicast: the key ADD-PATH sets use. */
export type FamilyKey = `${number}/${number}`;

/** Facts negotiated by the session, passed into every call; the codec holds no state. */
export interface CodecOptions {
  /** Both sides announced the 4-octet AS capability (RFC 6793). */
  as4: boolean;
  /** RFC 7911: families for which NLRI carry a path identifier, per direction. */
  addPath?: { receive?: ReadonlySet<FamilyKey>; send?: ReadonlySet<FamilyKey> };
  /** RFC 8654 extended messages negotiated: maximum length 65535 instead of 4096. */
  extendedMessage?: boolean;
  /**
   * The peer is internal (iBGP: true) or external (eBGP: false). Enables the RFC 7606 checks
   * that depend on it (LOCAL_PREF missing on iBGP / discarded from eBGP, ORIGINATOR_ID and
   * CLUSTER_LIST discarded from eBGP, AS_CONFED segments from eBGP). Unset: those checks are skipped.
   */
  ibgp?: boolean;
  /**
   * Decode the classic IPv4 Withdrawn Routes and NLRI fields into `withdrawnKeys` / `nlriKeys`
   * (numbers: no object or text per prefix) rather than `withdrawn` / `nlri`. For receivers that
   * key their tables by number; ignored when ADD-PATH is received for IPv4 (keys carry no path id).
   */
  ipv4Keys?: boolean;
}

/**
 * RFC 7606 outcome of decoding one UPDATE (strongest wins: session-reset is a DecodeError).
 * - ok: use the UPDATE as is.
 * - attribute-discard: the listed attributes were malformed and have been removed from the
 *   returned message; use the rest.
 * - treat-as-withdraw: do not install anything from this UPDATE; withdraw every prefix it
 *   carried (`withdrawn` = its withdrawn + reachable NLRI of all families).
 */
export type UpdateOutcome =
  | { kind: 'ok' }
  | { kind: 'attribute-discard'; discarded: number[]; problems: AttributeProblem[] }
  | { kind: 'treat-as-withdraw'; withdrawn: Nlri[]; problems: AttributeProblem[] };

export interface AttributeProblem {
  /** Attribute type code (0 when the problem is not tied to one attribute). */
  code: number;
  reason: string;
  action: 'attribute-discard' | 'treat-as-withdraw' | 'session-reset';
}

export interface NotificationSpec {
  code: number;
  subcode: number;
  data: Uint8Array;
}

// What both sides agreed on in their OPENs (RFC 5492 capabilities): pure.
import {
  AFI_IPV4,
  AFI_IPV6,
  type Capability,
  type CodecOptions,
  myAsField,
  type OpenMessage,
  openAsn,
  SAFI_UNICAST,
} from '../codec/index.js';

export type FamilyName = 'ipv4-unicast' | 'ipv6-unicast';

export const FAMILY_AFI: Record<FamilyName, { afi: number; safi: number }> = {
  'ipv4-unicast': { afi: AFI_IPV4, safi: SAFI_UNICAST },
  'ipv6-unicast': { afi: AFI_IPV6, safi: SAFI_UNICAST },
};

export function familyOf(afi: number, safi: number): FamilyName | null {
  if (safi !== SAFI_UNICAST) return null;
  if (afi === AFI_IPV4) return 'ipv4-unicast';
  if (afi === AFI_IPV6) return 'ipv6-unicast';
  return null;
}

export interface LocalOpenParams {
  asn: number;
  routerId: string;
  holdTimeSec: number;
  families: readonly FamilyName[];
  gracefulRestart?: { restartTimeSec: number; restarting: boolean; forwardingPreserved: boolean };
  /** Announce the extended message capability (RFC 8654). Default true. */
  extendedMessage?: boolean;
}

export function buildOpen(p: LocalOpenParams): OpenMessage {
  const caps: Capability[] = p.families.map((f) => ({ kind: 'multiprotocol', ...FAMILY_AFI[f] }));
  caps.push({ kind: 'route-refresh' }, { kind: 'as4', asn: p.asn });
  if (p.extendedMessage !== false) caps.push({ kind: 'extended-message' });
  if (p.gracefulRestart) {
    caps.push({
      kind: 'graceful-restart',
      restarting: p.gracefulRestart.restarting,
      notification: false,
      restartTime: Math.min(4095, p.gracefulRestart.restartTimeSec),
      families: p.families.map((f) => ({
        ...FAMILY_AFI[f],
        forwardingPreserved: p.gracefulRestart!.forwardingPreserved,
      })),
    });
  }
  return {
    type: 'open',
    version: 4,
    myAs: myAsField(p.asn),
    holdTime: p.holdTimeSec,
    bgpId: p.routerId,
    capabilities: caps,
  };
}

export interface PeerGracefulRestart {
  restarting: boolean;
  restartTimeSec: number;
  families: Array<{ family: FamilyName; forwardingPreserved: boolean }>;
}

export interface Negotiated {
  peerAsn: number;
  peerRouterId: string;
  holdTimeSec: number;
  families: FamilyName[];
  routeRefresh: boolean;
  /** The peer's graceful-restart capability (null: it does not do GR). */
  peerGracefulRestart: PeerGracefulRestart | null;
  /** We announced graceful restart too. */
  localGracefulRestart: boolean;
  /**
   * RFC 8654: we may send messages up to 65535 octets when the peer announced the capability
   * (and we did: we send big messages only where we also take them); we accept them when we
   * announced it. OPEN and KEEPALIVE stay ≤ 4096 either way.
   */
  extendedMessage: { send: boolean; receive: boolean };
  /** For encoding what we send (extendedMessage = the send side). */
  codec: CodecOptions;
  /** For decoding what we receive (extendedMessage = the receive side). */
  receiveCodec: CodecOptions;
}

export function negotiate(local: OpenMessage, remote: OpenMessage, ibgp: boolean): Negotiated {
  const mp = (o: OpenMessage) =>
    o.capabilities
      .flatMap((c) => (c.kind === 'multiprotocol' ? [familyOf(c.afi, c.safi)] : []))
      .filter((f) => f !== null);
  // No multiprotocol capability at all means IPv4 unicast only (RFC 4760 §8).
  const theirs = mp(remote);
  const theirSet = new Set(
    theirs.length > 0 || remote.capabilities.some((c) => c.kind === 'multiprotocol')
      ? theirs
      : ['ipv4-unicast'],
  );
  const ours = mp(local);
  const families = ours.filter((f) => theirSet.has(f));
  const has = (o: OpenMessage, k: Capability['kind']) => o.capabilities.some((c) => c.kind === k);
  const gr = remote.capabilities.find((c) => c.kind === 'graceful-restart');
  const as4 = has(local, 'as4') && has(remote, 'as4');
  const extReceive = has(local, 'extended-message');
  const extSend = extReceive && has(remote, 'extended-message');
  return {
    peerAsn: openAsn(remote),
    peerRouterId: remote.bgpId,
    holdTimeSec: Math.min(local.holdTime, remote.holdTime),
    families,
    routeRefresh: has(remote, 'route-refresh') || has(remote, 'enhanced-route-refresh'),
    peerGracefulRestart:
      gr && gr.kind === 'graceful-restart'
        ? {
            restarting: gr.restarting,
            restartTimeSec: gr.restartTime,
            families: gr.families.flatMap((f) => {
              const fam = familyOf(f.afi, f.safi);
              return fam ? [{ family: fam, forwardingPreserved: f.forwardingPreserved }] : [];
            }),
          }
        : null,
    localGracefulRestart: has(local, 'graceful-restart'),
    extendedMessage: { send: extSend, receive: extReceive },
    codec: { as4, ibgp, extendedMessage: extSend },
    receiveCodec: { as4, ibgp, extendedMessage: extReceive },
  };
}

// Config text for the interop scenarios: short timers (hold 9 / keepalive 3 / connect retry 1).
import type { PeerConfig } from '../../../bgp/speaker.js';

export const TIMERS = {
  holdTimeSec: 9,
  keepaliveSec: 3,
  connectRetrySec: 1,
  idleHoldMinSec: 1,
  idleHoldMaxSec: 2,
};

export function speakerPeer(address: string, asn: number, extra: Partial<PeerConfig> = {}): PeerConfig {
  return { address, asn, ...TIMERS, ...extra };
}

export interface BirdPeer {
  name: string;
  address: string;
  asn: number;
  /** Extra lines inside the protocol block (e.g. "rr client;"). */
  extra?: string;
  ipv6?: boolean;
  /** Override the import/export clause of the channels. */
  channel?: string;
}

export function birdConfig(o: {
  routerId: string;
  asn: number;
  localAddress: string;
  static4?: string[];
  static6?: string[];
  peers: BirdPeer[];
  global?: string;
}): string {
  const st4 = (o.static4 ?? []).map((p) => `  route ${p} blackhole;`).join('\n');
  const st6 = (o.static6 ?? []).map((p) => `  route ${p} blackhole;`).join('\n');
  const peers = o.peers
    .map(
      (p) => `protocol bgp ${p.name} {
  local ${o.localAddress} as ${o.asn};
  neighbor ${p.address} as ${p.asn};
  hold time 9; keepalive time 3; connect retry time 1; error wait time 1,2;
  ${p.extra ?? ''}
  ipv4 { ${p.channel ?? 'import all; export where proto = "st4" || source = RTS_BGP;'} };
  ${p.ipv6 ? `ipv6 { ${p.channel ?? 'import all; export where proto = "st6" || source = RTS_BGP;'} };` : ''}
}`,
    )
    .join('\n');
  return `log stderr all;
router id ${o.routerId};
${o.global ?? ''}
protocol device { }
protocol direct { ipv4; ipv6; }
protocol static st4 { ipv4;
${st4}
}
protocol static st6 { ipv6;
${st6}
}
${peers}
`;
}

export function gobgpConfig(o: {
  routerId: string;
  asn: number;
  peers: Array<{ address: string; asn: number; ipv6?: boolean; gracefulRestart?: boolean }>;
}): string {
  const peers = o.peers
    .map(
      (p) => `[[neighbors]]
  [neighbors.config]
    neighbor-address = "${p.address}"
    peer-as = ${p.asn}
  [neighbors.timers.config]
    hold-time = 9
    keepalive-interval = 3
    connect-retry = 1
    idle-hold-time-after-reset = 1
  [neighbors.transport.config]
    local-address = "${o.routerId}"
${
  p.gracefulRestart
    ? `  [neighbors.graceful-restart.config]
    enabled = true
    restart-time = 60
`
    : ''
}  [[neighbors.afi-safis]]
    [neighbors.afi-safis.config]
      afi-safi-name = "ipv4-unicast"
${
  p.gracefulRestart
    ? `    [neighbors.afi-safis.mp-graceful-restart.config]
      enabled = true
`
    : ''
}${
  p.ipv6
    ? `  [[neighbors.afi-safis]]
    [neighbors.afi-safis.config]
      afi-safi-name = "ipv6-unicast"
`
    : ''
}`,
    )
    .join('\n');
  return `[global.config]
  as = ${o.asn}
  router-id = "${o.routerId}"
  local-address-list = ["${o.routerId}"]
${peers}`;
}

export function frrConfig(o: {
  routerId: string;
  asn: number;
  networks4?: string[];
  networks6?: string[];
  peers: Array<{
    address: string;
    asn: number;
    ipv6?: boolean;
    extra4?: string[];
    extra?: string[];
    /** Keep an Adj-RIB-In copy (default true); without it `clear … soft in` sends ROUTE-REFRESH. */
    softReconfig?: boolean;
  }>;
}): string {
  const nb = o.peers
    .map((p) =>
      [
        ` neighbor ${p.address} remote-as ${p.asn}`,
        ` neighbor ${p.address} timers connect 1`,
        ...(p.extra ?? []),
      ].join('\n'),
    )
    .join('\n');
  const af4 = [
    ...(o.networks4 ?? []).map((n) => `  network ${n}`),
    ...o.peers.flatMap((p) => [
      ...(p.softReconfig === false ? [] : [`  neighbor ${p.address} soft-reconfiguration inbound`]),
      ...(p.extra4 ?? []),
    ]),
  ].join('\n');
  const af6 = [
    ...(o.networks6 ?? []).map((n) => `  network ${n}`),
    ...o.peers.filter((p) => p.ipv6).map((p) => `  neighbor ${p.address} activate`),
  ].join('\n');
  return `frr defaults traditional
hostname frr
log stdout
router bgp ${o.asn}
 bgp router-id ${o.routerId}
 no bgp ebgp-requires-policy
 no bgp network import-check
 timers bgp 3 9
${nb}
 address-family ipv4 unicast
${af4}
 exit-address-family
 address-family ipv6 unicast
${af6}
 exit-address-family
`;
}

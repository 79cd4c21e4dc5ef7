// Where a path came from: a peer session, or this speaker itself (announce()).
import { parseIp } from '../../lib/ip.js';

export interface RouteSource {
  /** Stable identity: the peer address, or "local". */
  readonly id: string;
  readonly address: string;
  readonly asn: number;
  /** The peer's BGP identifier (from its OPEN), dotted quad. */
  readonly routerId: string;
  readonly ibgp: boolean;
  readonly rrClient: boolean;
  readonly local: boolean;
  /** Numeric forms for the tie-breakers. */
  readonly routerIdNum: number;
  readonly addressNum: bigint;
}

export function ipv4ToNumber(text: string): number {
  const p = parseIp(text);
  return p.family === 4 ? Number(p.addr) : 0;
}

export function makeSource(s: {
  id: string;
  address: string;
  asn: number;
  routerId: string;
  ibgp: boolean;
  rrClient?: boolean;
  local?: boolean;
}): RouteSource {
  return Object.freeze({
    id: s.id,
    address: s.address,
    asn: s.asn,
    routerId: s.routerId,
    ibgp: s.ibgp,
    rrClient: s.rrClient ?? false,
    local: s.local ?? false,
    routerIdNum: ipv4ToNumber(s.routerId),
    addressNum: s.address ? parseIp(s.address).addr : 0n,
  });
}

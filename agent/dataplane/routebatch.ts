// Bulk route writes over one netlink socket, many messages per sendmsg (the initial sync of
// thousands of routes). The kernel processes every message of a sendmsg synchronously, in order;
// messages are sent without NLM_F_ACK so only failures come back, and a final acknowledged request
// is the barrier that tells us every earlier reply has arrived. Messages are encoded here directly
// (rtmsg + 3–4 attributes): the package's generic formatter costs more than the kernel's insert.
import { createRtNetlink, type NetlinkMessage, type RtNetlinkSocket } from 'netlink';
import { GINGHAM_ROUTE_PROTOCOL } from '../../lib/constants.js';
import { bytesToIp, ipToBytes } from '../../lib/ip.js';
import type { RouteSpec } from '../calc/model.js';

const RTM_NEWROUTE = 24;
const RTM_DELROUTE = 25;
const NLMSG_ERROR = 2;
const ESRCH = 3;
const NLM_F_REQUEST = 0x1;
const NLM_F_REPLACE = 0x100;
const NLM_F_CREATE = 0x400;
const RTA_DST = 1;
const RTA_OIF = 4;
const RTA_GATEWAY = 5;
const RTA_MULTIPATH = 9;
const RTNH_F_ONLINK = 4;
const RT_TABLE_MAIN = 254;
const RTN_UNICAST = 1;
const RTN_BLACKHOLE = 6;
const RT_SCOPE_UNIVERSE = 0;
const RT_SCOPE_LINK = 253;
const RT_SCOPE_NOWHERE = 255;
/** Messages per sendmsg: ~60 KB per send, well under the socket buffers. */
const PER_SEND = 800;

export interface BatchOp {
  op: 'replace' | 'delete';
  route: Pick<RouteSpec, 'family' | 'dst' | 'type' | 'via' | 'onlink' | 'scope' | 'multipath'>;
  oif?: number;
  /** Resolved next hops of a multipath route (RTA_MULTIPATH instead of RTA_OIF/RTA_GATEWAY). */
  hops?: readonly KernelHop[];
}

/** One next hop as the kernel holds it: gateway, output interface index, onlink flag. */
export interface KernelHop {
  via?: string;
  oif: number;
  onlink: boolean;
}

/** The canonical order of kernel next hops (by address, then interface), so sets compare by value. */
export function sortHops<T extends KernelHop>(hops: readonly T[]): T[] {
  return [...hops].sort((a, b) =>
    (a.via ?? '') !== (b.via ?? '') ? ((a.via ?? '') < (b.via ?? '') ? -1 : 1) : a.oif - b.oif,
  );
}

/**
 * The RTA_MULTIPATH payload: one `struct rtnexthop` {len u16, flags u8, hops u8 (weight − 1),
 * ifindex s32} per hop, each followed by its RTA_GATEWAY. Weight 1 for every hop (equal cost).
 */
export function encodeMultipath(hops: readonly KernelHop[]): Buffer {
  const parts = hops.map((h) => {
    const gw = h.via ? addrBytes(h.via) : null;
    const b = Buffer.alloc(8 + (gw ? 4 + gw.length : 0));
    b.writeUInt16LE(b.length, 0);
    b[2] = h.onlink ? RTNH_F_ONLINK : 0;
    b[3] = 0;
    b.writeInt32LE(h.oif, 4);
    if (gw) {
      b.writeUInt16LE(4 + gw.length, 8);
      b.writeUInt16LE(RTA_GATEWAY, 10);
      b.set(gw, 12);
    }
    return b;
  });
  return Buffer.concat(parts);
}

/** Parses an RTA_MULTIPATH payload (from a route dump) into hops, in canonical order. */
export function decodeMultipath(buf: Uint8Array): KernelHop[] {
  const b = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  const hops: KernelHop[] = [];
  let o = 0;
  while (o + 8 <= b.length) {
    const len = b.readUInt16LE(o);
    if (len < 8 || o + len > b.length) break;
    const hop: KernelHop = { oif: b.readInt32LE(o + 4), onlink: (b[o + 2]! & RTNH_F_ONLINK) !== 0 };
    let a = o + 8;
    while (a + 4 <= o + len) {
      const alen = b.readUInt16LE(a);
      if (alen < 4 || a + alen > o + len) break;
      if (b.readUInt16LE(a + 2) === RTA_GATEWAY) hop.via = bytesToIp(b.subarray(a + 4, a + alen));
      a += (alen + 3) & ~3;
    }
    hops.push(hop);
    o += (len + 3) & ~3;
  }
  return sortHops(hops);
}

/** Address bytes without BigInt for the common IPv4 case (this loop runs 10k+ times per sync). */
function addrBytes(text: string): Uint8Array {
  if (text.includes('.') && !text.includes(':')) {
    const p = text.split('.');
    return Uint8Array.of(+p[0]!, +p[1]!, +p[2]!, +p[3]!);
  }
  return ipToBytes(text);
}

/** Encodes one RTM_NEWROUTE (replace) or RTM_DELROUTE for the main table, protocol 80. */
export function encodeRouteMessage(op: BatchOp, seq: number): Buffer {
  const r = op.route;
  const slash = r.dst.indexOf('/');
  const dst = addrBytes(r.dst.slice(0, slash));
  const len = Number(r.dst.slice(slash + 1));
  const unicast = op.op === 'replace' && r.type === 'unicast';
  const mp = unicast && op.hops && op.hops.length > 0 ? encodeMultipath(op.hops) : null;
  const gw = unicast && !mp && r.via ? addrBytes(r.via) : null;
  const withOif = unicast && !mp && op.oif !== undefined;
  const total =
    16 + 12 + (4 + dst.length) + (withOif ? 8 : 0) + (gw ? 4 + gw.length : 0) + (mp ? 4 + mp.length : 0);
  const b = Buffer.alloc(total);
  // nlmsghdr
  b.writeUInt32LE(total, 0);
  b.writeUInt16LE(op.op === 'delete' ? RTM_DELROUTE : RTM_NEWROUTE, 4);
  b.writeUInt16LE(op.op === 'delete' ? NLM_F_REQUEST : NLM_F_REQUEST | NLM_F_CREATE | NLM_F_REPLACE, 6);
  b.writeUInt32LE(seq >>> 0, 8);
  // rtmsg
  b[16] = r.family === 4 ? 2 : 10;
  b[17] = len;
  b[20] = RT_TABLE_MAIN;
  b[21] = GINGHAM_ROUTE_PROTOCOL;
  if (op.op === 'delete') {
    // type 0 matches any type; protocol 80 makes the kernel refuse to delete others' routes.
    b[22] = RT_SCOPE_NOWHERE;
  } else {
    b[22] = r.type === 'unicast' && r.family === 4 && r.scope === 'link' ? RT_SCOPE_LINK : RT_SCOPE_UNIVERSE;
    b[23] = r.type === 'blackhole' ? RTN_BLACKHOLE : RTN_UNICAST;
    // A multipath route carries onlink per hop (rtnh_flags), not in rtm_flags.
    if (unicast && !mp && r.onlink) b.writeUInt32LE(RTNH_F_ONLINK, 24);
  }
  // attributes (addresses are 4 or 16 bytes: always 4-aligned)
  let o = 28;
  const attr = (type: number, payload: Uint8Array): void => {
    b.writeUInt16LE(4 + payload.length, o);
    b.writeUInt16LE(type, o + 2);
    b.set(payload, o + 4);
    o += 4 + payload.length;
  };
  attr(RTA_DST, dst);
  if (withOif) {
    b.writeUInt16LE(8, o);
    b.writeUInt16LE(RTA_OIF, o + 2);
    b.writeUInt32LE(op.oif!, o + 4);
    o += 8;
  }
  if (gw) attr(RTA_GATEWAY, gw);
  if (mp) attr(RTA_MULTIPATH, mp);
  return b;
}

export class RouteBatchError extends Error {
  constructor(
    readonly failures: Array<{ dst: string; op: string; errno: number }>,
    readonly total: number,
  ) {
    super(
      `${failures.length} of ${total} route writes failed: ${failures
        .slice(0, 5)
        .map((f) => `${f.op} ${f.dst} errno ${f.errno}`)
        .join('; ')}`,
    );
    this.name = 'RouteBatchError';
  }
}

/**
 * Sends all ops; resolves when the kernel has processed them. Rejects with RouteBatchError listing
 * the failed ones (the rest are applied), or with a socket error (the caller re-dumps either way).
 */
export async function writeRouteBatch(ops: readonly BatchOp[]): Promise<void> {
  if (ops.length === 0) return;
  const s: RtNetlinkSocket = createRtNetlink({
    ref: true,
    recvBufferSize: 4 * 1024 * 1024,
    sendBufferSize: 4 * 1024 * 1024,
  });
  const failures: Array<{ dst: string; op: string; errno: number }> = [];
  const base = (s.socket.generateSeq() + 1_000_000) >>> 0;
  const bySeq = (seq: number): BatchOp | undefined => ops[(seq - base) >>> 0];
  let socketError: Error | null = null;
  s.socket.on('message', (msgs: NetlinkMessage[]) => {
    for (const m of msgs) {
      if (m.type !== NLMSG_ERROR) continue;
      const errno = -m.data.readInt32LE(0);
      const op = bySeq(m.seq);
      // ESRCH on a delete: already gone (with its device), which is what the delete wanted.
      if (errno !== 0 && op && !(errno === ESRCH && op.op === 'delete'))
        failures.push({ dst: op.route.dst, op: op.op, errno });
    }
  });
  s.socket.on('error', (e) => {
    socketError = e instanceof Error ? e : new Error(String(e));
  });
  s.on('invalid', () => undefined);
  try {
    for (let i = 0; i < ops.length; i += PER_SEND) {
      const chunk: Buffer[] = [];
      for (let j = i; j < Math.min(ops.length, i + PER_SEND); j++)
        chunk.push(encodeRouteMessage(ops[j]!, (base + j) >>> 0));
      await new Promise<void>((resolve, reject) =>
        s.socket.socket.send(Buffer.concat(chunk), {}, (err) => (err ? reject(err) : resolve())),
      );
    }
    // Barrier: an acknowledged request answered after every reply to the messages above.
    await s.getLink({ index: 1 }, undefined, { timeout: 5000 });
  } finally {
    s.socket.close();
  }
  if (socketError) throw socketError;
  if (failures.length > 0) throw new RouteBatchError(failures, ops.length);
}

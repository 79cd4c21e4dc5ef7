// BGP UPDATE blaster for the ingest benchmark: pre-encodes N IPv4 /24 announcements into
// UPDATEs (packed ~1000 prefixes each), connects to the device under test, completes the OPEN
// exchange, then writes them all as fast as TCP allows, followed by End-of-RIB.
// Usage (inside a namespace): node --import tsx bench/bgp-sender.ts HOST ASN ROUTER_ID COUNT [PORT]
// stdout: {"event":"encoded",...} {"event":"established"} {"event":"start","t":ms} {"event":"sent","t":ms,...}
import net from 'node:net';
import { createInterface } from 'node:readline';
import {
  decodeMessage,
  encodeMessage,
  endOfRib,
  MessageFramer,
  type Nlri,
  packUpdates,
} from '../bgp/codec/index.js';

const [host, asnText, routerId, countText, portText] = process.argv.slice(2);
if (!host || !asnText || !routerId || !countText) {
  console.error('usage: bgp-sender.ts HOST ASN ROUTER_ID COUNT [PORT]');
  process.exit(2);
}
const asn = Number(asnText);
const count = Number(countText);
const port = portText === undefined ? 179 : Number(portText);
const opts = { as4: true };
const out = (o: unknown) => process.stdout.write(`${JSON.stringify(o)}\n`);

/** The i-th /24 starting at 32.0.0.0: 1M of them span 32.0.0.0–47.255.255.0. */
function prefixes(n: number): Nlri[] {
  const list: Nlri[] = new Array(n);
  for (let i = 0; i < n; i++) {
    const a = 32 + (i >>> 16);
    list[i] = { family: 4, prefix: `${a}.${(i >>> 8) & 255}.${i & 255}.0/24` };
  }
  return list;
}

const t0 = performance.now();
const updates = packUpdates(
  {
    attributes: { origin: 0, asPath: [{ type: 'sequence', asns: [asn] }], nextHop: routerId },
    announce: prefixes(count),
    withdraw: [],
  },
  opts,
);
const stream = Buffer.concat([
  ...updates.map((u) => encodeMessage(u, opts)),
  encodeMessage(endOfRib({ afi: 1, safi: 1 }), opts),
]);
out({ event: 'encoded', updates: updates.length, bytes: stream.length, ms: performance.now() - t0 });

const sock = net.connect({ host, port });
sock.setNoDelay(true);
const framer = new MessageFramer();
let established = false;
let keepalive: NodeJS.Timeout | undefined;
sock.on('connect', () => {
  sock.write(
    encodeMessage(
      {
        type: 'open',
        version: 4,
        myAs: asn > 0xffff ? 23456 : asn,
        holdTime: 240,
        bgpId: routerId,
        capabilities: [
          { kind: 'multiprotocol', afi: 1, safi: 1 },
          { kind: 'route-refresh' },
          { kind: 'as4', asn },
        ],
      },
      opts,
    ),
  );
});
sock.on('data', (chunk) => {
  for (const f of framer.push(chunk)) {
    if (!f.ok) continue;
    const r = decodeMessage(f.bytes, opts);
    if (!r.ok) continue;
    if (r.message.type === 'open') {
      sock.write(encodeMessage({ type: 'keepalive' }, opts));
      keepalive = setInterval(() => sock.write(encodeMessage({ type: 'keepalive' }, opts)), 30_000);
    } else if (r.message.type === 'keepalive' && !established) {
      established = true;
      out({ event: 'established' });
      const start = Date.now();
      out({ event: 'start', t: start });
      sock.write(stream, () =>
        out({ event: 'sent', t: Date.now(), ms: Date.now() - start, bytes: stream.length }),
      );
    } else if (r.message.type === 'notification') {
      out({ event: 'notification', code: r.message.code, subcode: r.message.subcode });
    }
  }
});
sock.on('error', (e) => out({ event: 'error', error: e.message }));
sock.on('close', () => {
  clearInterval(keepalive);
  out({ event: 'closed' });
  process.exit(0);
});
createInterface({ input: process.stdin }).on('close', () => sock.destroy());

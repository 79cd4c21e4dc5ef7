// A peer that sends malformed messages (a raw socket speaking just enough BGP): our speaker must
// apply RFC 7606 — treat-as-withdraw and attribute-discard keep the session up; an unparsable
// message resets it with the right NOTIFICATION — and the process must survive to peer again.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { BestRoute, PeerStatus } from '../../../bgp/speaker.js';
import { isRoot } from '../../harness/netns.js';
import { Lan, RawPeer, SpeakerProc, sleep, stopEverything, waitFor } from '../../harness/routers.js';
import { speakerPeer } from './configs.js';

function hex(s: string): Buffer {
  return Buffer.from(s.replace(/\s+/g, ''), 'hex');
}
function update(attrs: string, nlri: string): Buffer {
  const a = hex(attrs);
  const n = hex(nlri);
  const len = 19 + 4 + a.length + n.length;
  return Buffer.concat([
    Buffer.alloc(16, 0xff),
    Buffer.from([len >> 8, len & 255, 2, 0, 0, a.length >> 8, a.length & 255]),
    a,
    n,
  ]);
}
const ORIGIN = '40 01 01 00';
const AS_PATH = '40 02 06 02 01 0000fdea'; // [65002]
const NEXT_HOP = '40 03 04 0a630002'; // 10.99.0.2
const P50 = '18 0a3200';
const P51 = '18 0a3300';
const P52 = '18 0a3400';

describe('interop: malformed UPDATEs from a peer', { skip: !isRoot() && 'needs root' }, () => {
  let lan: Lan;
  let spk: SpeakerProc;
  let peer: RawPeer;
  const prefixes = async () => (await spk.call<BestRoute[]>('rib')).map((r) => r.prefix).sort();
  const state = async () => (await spk.call<PeerStatus[]>('peers'))[0]!.state;

  before(async () => {
    lan = Lan.create(2);
    spk = await SpeakerProc.start(lan.host(0).ns, {
      speaker: { routerId: '10.99.0.1', asn: 65001, listen: { host: '0.0.0.0', port: 179 } },
      peers: [speakerPeer('10.99.0.2', 65002, { passive: true })],
    });
    peer = await RawPeer.connect(lan.host(1).ns, '10.99.0.1', 179, 65002, '10.99.0.2');
  });

  after(async () => {
    await stopEverything();
    lan?.destroy();
  });

  it('accepts two well-formed routes', async () => {
    peer.send(update(`${ORIGIN} ${AS_PATH} ${NEXT_HOP}`, `${P50} ${P51}`));
    assert.deepEqual(
      await waitFor('routes installed', async () =>
        (await prefixes()).length === 2 ? prefixes() : undefined,
      ),
      ['10.50.0.0/24', '10.51.0.0/24'],
    );
  });

  it('malformed ORIGIN → treat-as-withdraw: 10.50.0.0/24 withdrawn, session stays up', async () => {
    peer.send(update(`40 01 02 0000 ${AS_PATH} ${NEXT_HOP}`, P50));
    assert.deepEqual(
      await waitFor('10.50 withdrawn', async () => {
        const p = await prefixes();
        return p.includes('10.50.0.0/24') ? undefined : p;
      }),
      ['10.51.0.0/24'],
    );
    await sleep(300);
    assert.equal(await state(), 'Established');
    assert.equal(peer.received('notification').length, 0);
  });

  it('malformed ATOMIC_AGGREGATE → attribute discarded, route installed, session up', async () => {
    peer.send(update(`${ORIGIN} ${AS_PATH} ${NEXT_HOP} 40 06 01 00`, P52));
    await waitFor('10.52 installed', async () => (await prefixes()).includes('10.52.0.0/24'));
    const r = (await spk.call<BestRoute[]>('rib')).find((x) => x.prefix === '10.52.0.0/24')!;
    assert.equal(r.attrs.atomicAggregate, undefined);
    assert.equal(await state(), 'Established');
    assert.equal(peer.received('notification').length, 0);
  });

  it('unparsable NLRI → NOTIFICATION UPDATE/Invalid Network Field, session reset, routes flushed', async () => {
    peer.send(update(`${ORIGIN} ${AS_PATH} ${NEXT_HOP}`, '21 0a330000 00'));
    await waitFor('raw peer closed', () => peer.closed);
    const n = peer.received('notification');
    assert.equal(n.length, 1);
    assert.equal(n[0]!.code, 3);
    assert.equal(n[0]!.subcode, 10);
    await waitFor('routes flushed', async () => (await prefixes()).length === 0);
    assert.notEqual(await state(), 'Established');
  });

  it('the speaker survives: a new connection establishes, and a bad marker gets Header/Not Synchronized', async () => {
    await peer.stop();
    peer = await RawPeer.connect(lan.host(1).ns, '10.99.0.1', 179, 65002, '10.99.0.2');
    await waitFor('Established again', async () => (await state()) === 'Established');
    const bad = update(`${ORIGIN} ${AS_PATH} ${NEXT_HOP}`, P50);
    bad[0] = 0;
    peer.send(bad);
    await waitFor('closed after bad marker', () => peer.closed);
    const n = peer.received('notification');
    assert.equal(n[0]?.code, 1);
    assert.equal(n[0]?.subcode, 1);
    assert.ok(spk.running);
  });
});

describe('interop: a peer sending a stream of mutated UPDATEs', { skip: !isRoot() && 'needs root' }, () => {
  // The decoder fuzz, end to end: a live speaker process takes bursts of randomly corrupted
  // UPDATEs over TCP, resets sessions as it must, and is still alive and peering at the end.
  const SEED = Number(process.env.FUZZ_SEED ?? 4242);
  const CONNECTIONS = 4;
  const BURST = 300;
  let lan: Lan;
  let spk: SpeakerProc;

  before(async () => {
    lan = Lan.create(2);
    spk = await SpeakerProc.start(lan.host(0).ns, {
      speaker: { routerId: '10.99.0.1', asn: 65001, listen: { host: '0.0.0.0', port: 179 } },
      peers: [speakerPeer('10.99.0.2', 65002, { passive: true })],
    });
  });

  after(async () => {
    await stopEverything();
    lan?.destroy();
  });

  it(`survives ${CONNECTIONS} connections × ${BURST} mutated UPDATEs and still peers`, async () => {
    let x = SEED >>> 0 || 1;
    const r = () => {
      x ^= x << 13;
      x >>>= 0;
      x ^= x >>> 17;
      x ^= x << 5;
      x >>>= 0;
      return x;
    };
    const base = update(`${ORIGIN} ${AS_PATH} ${NEXT_HOP} c0 08 04 fdea0001`, `${P50} ${P51} ${P52}`);
    let resets = 0;
    for (let c = 0; c < CONNECTIONS; c++) {
      const peer = await RawPeer.connect(lan.host(1).ns, '10.99.0.1', 179, 65002, '10.99.0.2').catch(
        async (e) => {
          throw new Error(
            `connection ${c}: ${e}; speaker: ${JSON.stringify(await spk.call('peers'))}\n${spk.log().slice(-1500)}`,
          );
        },
      );
      for (let i = 0; i < BURST && !peer.closed; i++) {
        const m = Buffer.from(base);
        // Corrupt 1–3 body octets; keep the header so the body parsers are reached.
        for (let k = 0, n = 1 + (r() % 3); k < n; k++) m[19 + (r() % (m.length - 19))] = r() & 255;
        peer.send(m);
      }
      await sleep(300);
      if (peer.closed) resets++;
      await peer.stop();
      assert.ok(spk.running, 'the speaker process died');
    }
    // Whatever happened, a well-behaved peer still gets a session and its routes accepted.
    const peer = await RawPeer.connect(lan.host(1).ns, '10.99.0.1', 179, 65002, '10.99.0.2');
    peer.send(update(`${ORIGIN} ${AS_PATH} ${NEXT_HOP}`, P50));
    await waitFor('route accepted after the storm', async () =>
      (await spk.call<BestRoute[]>('rib')).some((x) => x.prefix === '10.50.0.0/24'),
    );
    assert.ok(resets > 0, 'no burst caused a reset: the mutations are not reaching the checks');
  });
});

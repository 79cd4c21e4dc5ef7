// RFC 8654 extended messages with BIRD: our speaker (AS 65001) peers with a BIRD that enables
// extended messages (65002) and one that does not (65003, which sends us nothing). We and the
// first BIRD announce 3000 /24s each with one attribute set — ≈ 12 kB of NLRI, three classic
// 4096-octet UPDATEs' worth.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { isRoot } from '../../harness/netns.js';
import { Bird, Lan, SpeakerProc, stopEverything, waitFor } from '../../harness/routers.js';
import { birdConfig, speakerPeer } from './configs.js';

const N = 3000;
const block = (second: number) =>
  Array.from({ length: N }, (_, n) => `10.${second + (n >>> 8)}.${n & 255}.0/24`);

interface PeerRow {
  address: string;
  state: string;
  prefixesAccepted: number;
  updatesOut: number;
  flaps: number;
}

describe('interop: RFC 8654 extended messages with BIRD', { skip: !isRoot() && 'needs root' }, () => {
  let lan: Lan;
  let spk: SpeakerProc | undefined;
  let ext: Bird | undefined;
  let plain: Bird | undefined;

  before(async () => {
    lan = Lan.create(3);
    const [s, e, p] = [lan.host(0), lan.host(1), lan.host(2)];
    [spk, ext, plain] = await Promise.all([
      SpeakerProc.start(s.ns, {
        speaker: { routerId: s.v4, asn: 65001, listen: { host: '0.0.0.0', port: 179 } },
        peers: [speakerPeer(e.v4, 65002), speakerPeer(p.v4, 65003)],
        announce: block(100).map((prefix) => ({ prefix })),
      }),
      Bird.start(
        e.ns,
        birdConfig({
          routerId: e.v4,
          asn: 65002,
          localAddress: e.v4,
          static4: block(20),
          peers: [{ name: 'spk', address: s.v4, asn: 65001, extra: 'enable extended messages on;' }],
        }),
      ),
      Bird.start(
        p.ns,
        birdConfig({
          routerId: p.v4,
          asn: 65003,
          localAddress: p.v4,
          static4: block(40),
          peers: [
            {
              name: 'spk',
              address: s.v4,
              asn: 65001,
              extra: 'enable extended messages off;',
              channel: 'import all; export none;',
            },
          ],
        }),
      ),
    ]);
  });

  after(async () => {
    await stopEverything();
    lan?.destroy();
  });

  const imported = (b: Bird) =>
    Number(/Routes:\s+(\d+) imported/.exec(b.birdc('show protocols all spk'))?.[1] ?? 0);
  const row = async (address: string) =>
    (await spk!.call<PeerRow[]>('peers')).find((r) => r.address === address)!;

  it('both BIRDs take our routes, and the sessions stay up', async () => {
    await Promise.all([ext!.waitEstablished('spk'), plain!.waitEstablished('spk')]);
    await waitFor('BIRD (extended) imports our 3000', () => imported(ext!) === N, 30_000);
    // The classic one also gets the extended BIRD's 3000 through us.
    await waitFor('BIRD (classic) imports 6000', () => imported(plain!) === 2 * N, 30_000);
    const [e, p] = [await row(lan.host(1).v4), await row(lan.host(2).v4)];
    assert.equal(e.state, 'Established');
    assert.equal(p.state, 'Established');
    assert.equal(e.flaps + p.flaps, 0);
  });

  it('BIRD with the option negotiated it (both sides announced the capability)', () => {
    const out = ext!.birdc('show protocols all spk');
    const local = /Local capabilities([\s\S]*?)Neighbor capabilities/.exec(out)?.[1] ?? '';
    const neighbor = /Neighbor capabilities([\s\S]*?)Session:/.exec(out)?.[1] ?? '';
    assert.match(local, /Extended message/, out);
    assert.match(neighbor, /Extended message/, out);
    assert.doesNotMatch(
      /Local capabilities([\s\S]*?)Neighbor capabilities/.exec(plain!.birdc('show protocols all spk'))?.[1] ??
        '',
      /Extended message/,
    );
  });

  it('our 3000 went to the extended BIRD in extended UPDATEs, and we took its routes', async () => {
    // Classic messages hold ≈ 1000 /24 each: 3000 need at least 3 UPDATEs plus End-of-RIB. Our
    // initial export goes out in chunks of 2000 prefixes: 2 extended UPDATEs plus End-of-RIB.
    const e = await waitFor('3000 from the extended BIRD', async () => {
      const r = await row(lan.host(1).v4);
      return r.prefixesAccepted === N ? r : undefined;
    });
    assert.ok(e.updatesOut <= 3, `${e.updatesOut} UPDATEs sent to the extended BIRD`);
    assert.ok((await row(lan.host(2).v4)).updatesOut >= 4, 'the classic BIRD needs more');
  });
});

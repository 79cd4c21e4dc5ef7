// Route reflection (RFC 4456) both ways round:
//  1. our speaker reflects for BIRD and FRR (clients) in AS 65000;
//  2. BIRD reflects for two of our speakers (clients).
// Reflected routes keep their next hop and carry ORIGINATOR_ID and CLUSTER_LIST.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { BestRoute } from '../../../bgp/speaker.js';
import { isRoot } from '../../harness/netns.js';
import { Bird, Frr, Lan, SpeakerProc, stopEverything, waitFor } from '../../harness/routers.js';
import { birdConfig, frrConfig, speakerPeer } from './configs.js';

interface FrrPathDetail {
  paths?: Array<{
    originatorId?: string;
    clusterList?: { list: string[] };
    nexthops?: Array<{ ip: string }>;
  }>;
}

describe('interop: our speaker as route reflector, BIRD and FRR as clients', {
  skip: !isRoot() && 'needs root',
}, () => {
  let lan: Lan;
  let rr: SpeakerProc | undefined;
  let bird: Bird | undefined;
  let frr: Frr | undefined;

  before(async () => {
    lan = Lan.create(3);
    const [s, b, f] = [lan.host(0), lan.host(1), lan.host(2)];
    [rr, bird, frr] = await Promise.all([
      SpeakerProc.start(s.ns, {
        speaker: {
          routerId: s.v4,
          asn: 65000,
          clusterId: '10.99.0.100',
          listen: { host: '0.0.0.0', port: 179 },
        },
        peers: [speakerPeer(b.v4, 65000, { rrClient: true }), speakerPeer(f.v4, 65000, { rrClient: true })],
      }),
      Bird.start(
        b.ns,
        birdConfig({
          routerId: b.v4,
          asn: 65000,
          localAddress: b.v4,
          static4: ['10.2.0.0/24'],
          peers: [{ name: 'refl', address: s.v4, asn: 65000, extra: 'direct;' }],
        }),
      ),
      Frr.start(
        f.ns,
        frrConfig({
          routerId: f.v4,
          asn: 65000,
          networks4: ['10.4.0.0/24'],
          peers: [{ address: s.v4, asn: 65000 }],
        }),
      ),
    ]);
  });

  after(async () => {
    await stopEverything();
    lan?.destroy();
  });

  it('reflects FRR’s route to BIRD with next hop, ORIGINATOR_ID and CLUSTER_LIST', async () => {
    const r = await waitFor(
      'BIRD learns 10.4.0.0/24',
      () => bird!.routes({ protocol: 'refl' }).find((x) => x.prefix === '10.4.0.0/24'),
      30_000,
    );
    assert.equal(r.nextHop, '10.99.0.3');
    assert.equal(r.originatorId, '10.99.0.3');
    assert.deepEqual(r.clusterList, ['10.99.0.100']);
    assert.equal(r.localPref, 100);
    assert.deepEqual(
      bird!.routes({ protocol: 'refl' }).map((x) => x.prefix),
      ['10.4.0.0/24'],
      'BIRD must not get its own route back',
    );
  });

  it('reflects BIRD’s route to FRR the same way', async () => {
    const d = await waitFor('FRR learns 10.2.0.0/24', () => {
      const j = frr!.json<FrrPathDetail>('show bgp ipv4 unicast 10.2.0.0/24 json');
      return j.paths?.length ? j : undefined;
    });
    const p = d.paths![0]!;
    assert.equal(p.nexthops?.[0]?.ip, '10.99.0.2');
    assert.equal(p.originatorId, '10.99.0.2');
    assert.deepEqual(p.clusterList?.list, ['10.99.0.100']);
  });

  it('the reflector itself holds both routes', async () => {
    const rib = await waitFor('RR Loc-RIB', async () => {
      const r = await rr!.call<BestRoute[]>('rib');
      return r.length === 2 ? r : undefined;
    });
    assert.deepEqual(rib.map((r) => `${r.prefix} via ${r.nextHops.join(',')}`).sort(), [
      '10.2.0.0/24 via 10.99.0.2',
      '10.4.0.0/24 via 10.99.0.3',
    ]);
  });
});

describe('interop: BIRD as route reflector, our speakers as clients', {
  skip: !isRoot() && 'needs root',
}, () => {
  let lan: Lan;
  let bird: Bird | undefined;
  let a: SpeakerProc | undefined;
  let b: SpeakerProc | undefined;

  before(async () => {
    lan = Lan.create(3);
    const [r, ha, hb] = [lan.host(0), lan.host(1), lan.host(2)];
    const client = (h: typeof ha, prefix: string) =>
      SpeakerProc.start(h.ns, {
        speaker: { routerId: h.v4, asn: 65000, listen: { host: '0.0.0.0', port: 179 } },
        peers: [speakerPeer(r.v4, 65000)],
        announce: [{ prefix, attrs: { nextHop: h.v4, communities: ['65000:1'] } }],
      });
    [bird, a, b] = await Promise.all([
      Bird.start(
        r.ns,
        birdConfig({
          routerId: r.v4,
          asn: 65000,
          localAddress: r.v4,
          global: '',
          peers: [
            {
              name: 'ca',
              address: ha.v4,
              asn: 65000,
              extra: 'rr client; rr cluster id 10.99.0.200; direct;',
            },
            {
              name: 'cb',
              address: hb.v4,
              asn: 65000,
              extra: 'rr client; rr cluster id 10.99.0.200; direct;',
            },
          ],
        }),
      ),
      client(ha, '10.65.1.0/26'),
      client(hb, '10.65.2.0/26'),
    ]);
  });

  after(async () => {
    await stopEverything();
    lan?.destroy();
  });

  it('each client learns the other’s block via the reflector, attributes intact', async () => {
    for (const [spk, prefix, origin] of [
      [a!, '10.65.2.0/26', '10.99.0.3'],
      [b!, '10.65.1.0/26', '10.99.0.2'],
    ] as const) {
      const rib = await waitFor(`client learns ${prefix}`, async () => {
        const r = await spk.call<BestRoute[]>('rib');
        return r.length === 2 ? r : undefined;
      });
      const learned = rib.find((r) => !r.local)!;
      assert.equal(learned.prefix, prefix);
      assert.deepEqual(learned.nextHops, [origin]);
      assert.equal(learned.attrs.originatorId, origin);
      assert.deepEqual(learned.attrs.clusterList, ['10.99.0.200']);
      assert.deepEqual(
        learned.attrs.communities,
        [(65000 << 16) + 1].map((x) => x >>> 0),
      );
      assert.equal(learned.attrs.localPref, 100);
    }
  });

  it('BIRD sees both client routes', async () => {
    const got = await waitFor('BIRD has both', () => {
      const r = bird!.routes().filter((x) => x.prefix.startsWith('10.65.'));
      return r.length === 2 ? r : undefined;
    });
    assert.deepEqual(got.map((r) => `${r.prefix} via ${r.nextHop}`).sort(), [
      '10.65.1.0/26 via 10.99.0.2',
      '10.65.2.0/26 via 10.99.0.3',
    ]);
  });
});

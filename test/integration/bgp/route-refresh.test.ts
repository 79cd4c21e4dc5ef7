// Route refresh (RFC 2918) both ways: we ask GoBGP and BIRD to re-send; BIRD and FRR ask us.
// (GoBGP's `softresetin` re-evaluates its own Adj-RIB-In instead of sending ROUTE-REFRESH.)
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { PeerStatus } from '../../../bgp/speaker.js';
import { isRoot } from '../../harness/netns.js';
import { Bird, Frr, Gobgp, Lan, SpeakerProc, stopEverything, waitFor } from '../../harness/routers.js';
import { birdConfig, frrConfig, gobgpConfig, speakerPeer } from './configs.js';

describe('interop: route refresh with GoBGP, BIRD and FRR', { skip: !isRoot() && 'needs root' }, () => {
  let lan: Lan;
  let spk: SpeakerProc;
  let gobgp: Gobgp;
  let bird: Bird;
  let frr: Frr;
  const peer = async (addr: string) =>
    (await spk.call<PeerStatus[]>('peers')).find((p) => p.address === addr)!;

  before(async () => {
    lan = Lan.create(4);
    [spk, gobgp, bird, frr] = await Promise.all([
      SpeakerProc.start(lan.host(0).ns, {
        speaker: { routerId: '10.99.0.1', asn: 65001, listen: { host: '0.0.0.0', port: 179 } },
        peers: [
          speakerPeer('10.99.0.2', 65002),
          speakerPeer('10.99.0.3', 65003),
          speakerPeer('10.99.0.4', 65004),
        ],
        announce: [{ prefix: '10.1.0.0/24' }],
      }),
      Gobgp.start(
        lan.host(1).ns,
        gobgpConfig({ routerId: '10.99.0.2', asn: 65002, peers: [{ address: '10.99.0.1', asn: 65001 }] }),
      ),
      Bird.start(
        lan.host(2).ns,
        birdConfig({
          routerId: '10.99.0.3',
          asn: 65003,
          localAddress: '10.99.0.3',
          static4: ['10.3.0.0/24'],
          peers: [{ name: 'spk', address: '10.99.0.1', asn: 65001 }],
        }),
      ),
      Frr.start(
        lan.host(3).ns,
        frrConfig({
          routerId: '10.99.0.4',
          asn: 65004,
          networks4: ['10.4.0.0/24'],
          peers: [{ address: '10.99.0.1', asn: 65001, softReconfig: false }],
        }),
      ),
    ]);
    await gobgp.waitEstablished('10.99.0.1');
    gobgp.addRoute('10.2.0.0/24', '10.99.0.2');
    await waitFor('routes exchanged', async () => (await spk.call<unknown[]>('rib')).length === 4);
  });

  after(async () => {
    await stopEverything();
    lan?.destroy();
  });

  it('we send ROUTE-REFRESH: GoBGP and BIRD re-send their routes', async () => {
    const before2 = (await peer('10.99.0.2')).updatesIn;
    const before3 = (await peer('10.99.0.3')).updatesIn;
    assert.equal(await spk.call('refresh', { address: '10.99.0.2' }), true);
    assert.equal(await spk.call('refresh', { address: '10.99.0.3' }), true);
    await waitFor('GoBGP re-sent', async () => (await peer('10.99.0.2')).updatesIn > before2);
    await waitFor('BIRD re-sent', async () => (await peer('10.99.0.3')).updatesIn > before3);
    assert.equal((await spk.call<unknown[]>('rib')).length, 4);
  });

  it('BIRD and FRR send ROUTE-REFRESH: we re-send our routes', async () => {
    const out3 = (await peer('10.99.0.3')).updatesOut;
    const out4 = (await peer('10.99.0.4')).updatesOut;
    const stats = () =>
      frr.json<Record<string, { messageStats: { routeRefreshSent: number } }>>(
        'show bgp neighbors 10.99.0.1 json',
      )['10.99.0.1']!.messageStats;
    const sentBefore = stats();
    bird.birdc('reload in spk');
    frr.vtysh('clear bgp ipv4 unicast 10.99.0.1 soft in');
    await waitFor('re-sent to BIRD', async () => (await peer('10.99.0.3')).updatesOut > out3);
    await waitFor('re-sent to FRR', async () => (await peer('10.99.0.4')).updatesOut > out4);
    const sentAfter = stats();
    assert.ok(
      sentAfter.routeRefreshSent > sentBefore.routeRefreshSent,
      `FRR sent no ROUTE-REFRESH: ${JSON.stringify(sentAfter)}`,
    );
    assert.ok(bird.routes({ protocol: 'spk' }).some((r) => r.prefix === '10.1.0.0/24'));
    assert.ok(frr.routes(4).some((r) => r.prefix === '10.1.0.0/24'));
  });
});

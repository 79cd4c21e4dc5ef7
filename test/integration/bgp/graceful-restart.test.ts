// Graceful restart (RFC 4724), our speaker as the restarting side: it is killed with SIGKILL (no
// NOTIFICATION), BIRD, FRR and GoBGP keep its routes (FRR and GoBGP mark them stale) until it is back, and the
// routes never disappear at any point — no churn — through the restart and End-of-RIB.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { PeerStatus } from '../../../bgp/speaker.js';
import { isRoot } from '../../harness/netns.js';
import { Bird, Frr, Gobgp, Lan, SpeakerProc, sleep, stopEverything, waitFor } from '../../harness/routers.js';
import { birdConfig, frrConfig, gobgpConfig, speakerPeer } from './configs.js';

const OURS = ['10.1.0.0/24', '10.1.1.0/24'];

describe('interop: graceful restart of our speaker (BIRD, FRR and GoBGP as helpers)', {
  skip: !isRoot() && 'needs root',
}, () => {
  let lan: Lan;
  let spk: SpeakerProc;
  let bird: Bird;
  let frr: Frr;
  let gobgp: Gobgp;
  const config = (restarting: boolean) => ({
    speaker: {
      routerId: '10.99.0.1',
      asn: 65001,
      listen: { host: '0.0.0.0', port: 179 },
      gracefulRestart: { restartTimeSec: 60, restarting },
    },
    peers: [
      speakerPeer('10.99.0.2', 65002),
      speakerPeer('10.99.0.3', 65003),
      speakerPeer('10.99.0.4', 65004),
    ],
    announce: OURS.map((prefix) => ({ prefix })),
  });
  const birdHas = () => {
    const got = bird.routes({ protocol: 'spk' }).map((r) => r.prefix);
    return OURS.every((p) => got.includes(p));
  };
  const frrRoutes = () => frr.routes(4).filter((r) => OURS.includes(r.prefix));
  const gobgpRoutes = () => gobgp.routes(4).filter((r) => OURS.includes(r.prefix));

  before(async () => {
    lan = Lan.create(4);
    [spk, bird, frr, gobgp] = await Promise.all([
      SpeakerProc.start(lan.host(0).ns, config(false)),
      Bird.start(
        lan.host(1).ns,
        birdConfig({
          routerId: '10.99.0.2',
          asn: 65002,
          localAddress: '10.99.0.2',
          static4: ['10.2.0.0/24'],
          peers: [{ name: 'spk', address: '10.99.0.1', asn: 65001, extra: 'graceful restart on;' }],
        }),
      ),
      Frr.start(
        lan.host(2).ns,
        frrConfig({
          routerId: '10.99.0.3',
          asn: 65003,
          networks4: ['10.3.0.0/24'],
          peers: [{ address: '10.99.0.1', asn: 65001, extra: [' bgp graceful-restart'].map((x) => x) }],
        }).replace(' no bgp ebgp-requires-policy', ' no bgp ebgp-requires-policy\n bgp graceful-restart'),
      ),
      Gobgp.start(
        lan.host(3).ns,
        gobgpConfig({
          routerId: '10.99.0.4',
          asn: 65004,
          peers: [{ address: '10.99.0.1', asn: 65001, gracefulRestart: true }],
        }),
      ),
    ]);
  });

  after(async () => {
    await stopEverything();
    lan?.destroy();
  });

  it('every helper learns our routes; BIRD shows graceful restart negotiated', async () => {
    await Promise.all([
      bird.waitEstablished('spk'),
      frr.waitEstablished('10.99.0.1'),
      gobgp.waitEstablished('10.99.0.1'),
    ]);
    await waitFor('BIRD has our routes', birdHas);
    await waitFor('FRR has our routes', () => frrRoutes().length === 2);
    await waitFor('GoBGP has our routes', () => gobgpRoutes().length === 2);
    assert.match(bird.birdc('show protocols all spk'), /Graceful restart/);
  });

  it('kill -9, restart: routes stay at every peer the whole time, stale while we are away', async () => {
    let gaps = 0;
    // Which peer missed our routes, and when (ms after the kill): what a failure message needs.
    const missed: string[] = [];
    let killedAt = Date.now();
    const gap = (peer: string) => {
      gaps++;
      missed.push(`${peer}@${Date.now() - killedAt}`);
    };
    let sawStale = false;
    let gobgpStale = false;
    let watching = true;
    const watcher = (async () => {
      while (watching) {
        if (!birdHas()) gap('BIRD');
        const f = frrRoutes();
        if (f.length !== 2) gap('FRR');
        if (f.some((r) => r.stale)) sawStale = true;
        const g = gobgpRoutes();
        if (g.length !== 2) gap('GoBGP');
        if (g.some((r) => r.stale)) gobgpStale = true;
        await sleep(100);
      }
    })();
    try {
      killedAt = Date.now();
      await spk.kill9();
      await waitFor(
        'FRR notices the restart (routes stale)',
        () => frrRoutes().some((r) => r.stale),
        15_000,
        100,
      );
      spk = await SpeakerProc.start(lan.host(0).ns, config(true));
      await waitFor('sessions back', async () => {
        const p = await spk.call<PeerStatus[]>('peers');
        return p.every((x) => x.state === 'Established');
      });
      // After End-of-RIB the helpers drop the stale marks; the routes are still there.
      await waitFor(
        'FRR routes fresh again',
        () => {
          const f = frrRoutes();
          return f.length === 2 && !f.some((r) => r.stale);
        },
        20_000,
      );
      await sleep(1000);
    } finally {
      watching = false;
      await watcher;
    }
    assert.ok(sawStale, 'FRR never marked our routes stale: graceful restart was not in effect');
    assert.ok(gobgpStale, 'GoBGP never marked our routes stale');
    assert.equal(gaps, 0, `our routes disappeared at a peer during the restart: ${missed.join(' ')}`);
    assert.ok(birdHas());
  });

  it('we relearn the helpers’ routes after the restart', async () => {
    const rib = await waitFor('relearned', async () => {
      const r = await spk.call<Array<{ prefix: string }>>('rib');
      return r.length === 4 ? r : undefined;
    });
    assert.deepEqual(rib.map((r) => r.prefix).sort(), [
      '10.1.0.0/24',
      '10.1.1.0/24',
      '10.2.0.0/24',
      '10.3.0.0/24',
    ]);
  });
});

describe('interop: our speaker as graceful-restart helper for a restarting FRR', {
  skip: !isRoot() && 'needs root',
}, () => {
  let lan: Lan;
  let spk: SpeakerProc;
  let frr: Frr;
  const frrRoute = async () =>
    (await spk.call<Array<{ prefix: string; stale: boolean }>>('rib')).find(
      (r) => r.prefix === '10.4.0.0/24',
    );

  before(async () => {
    lan = Lan.create(2);
    [spk, frr] = await Promise.all([
      SpeakerProc.start(lan.host(0).ns, {
        speaker: {
          routerId: '10.99.0.1',
          asn: 65001,
          listen: { host: '0.0.0.0', port: 179 },
          gracefulRestart: { restartTimeSec: 60 },
        },
        peers: [speakerPeer('10.99.0.2', 65004)],
        announce: [{ prefix: '10.1.0.0/24' }],
      }),
      Frr.start(
        lan.host(1).ns,
        frrConfig({
          routerId: '10.99.0.2',
          asn: 65004,
          networks4: ['10.4.0.0/24'],
          peers: [{ address: '10.99.0.1', asn: 65001 }],
        }).replace(
          ' no bgp ebgp-requires-policy',
          ' no bgp ebgp-requires-policy\n bgp graceful-restart\n bgp graceful-restart preserve-fw-state',
        ),
      ),
    ]);
  });

  after(async () => {
    await stopEverything();
    lan?.destroy();
  });

  it('keeps FRR’s route, marked stale, while its bgpd restarts; fresh again after, never gone', async () => {
    await frr.waitEstablished('10.99.0.1');
    await waitFor('speaker learns 10.4.0.0/24', frrRoute);
    let gaps = 0;
    let sawStale = false;
    let watching = true;
    const watcher = (async () => {
      while (watching) {
        const r = await frrRoute().catch(() => undefined);
        if (!r) gaps++;
        else if (r.stale) sawStale = true;
        await sleep(100);
      }
    })();
    try {
      await frr.crashAndRestartBgpd({ downMs: 1500 });
      await frr.waitEstablished('10.99.0.1');
      await waitFor('route fresh again', async () => (await frrRoute())?.stale === false, 30_000);
      await sleep(500);
    } finally {
      watching = false;
      await watcher;
    }
    assert.ok(sawStale, 'the route was never marked stale: we did not act as helper');
    assert.equal(gaps, 0, 'FRR’s route vanished from our Loc-RIB during its restart');
  });
});

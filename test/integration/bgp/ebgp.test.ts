// eBGP IPv4: our speaker (AS 65001) peers with BIRD (65002), GoBGP (65003) and FRR (65004) on one
// LAN. Each announces one prefix; every side must end up with exactly the expected routes,
// AS paths and next hops (the speaker also passes each router's route on to the others).
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { BestRoute } from '../../../bgp/speaker.js';
import { isRoot } from '../../harness/netns.js';
import {
  Bird,
  Frr,
  Gobgp,
  Lan,
  type RouterRoute,
  SpeakerProc,
  stopEverything,
  waitFor,
} from '../../harness/routers.js';
import { birdConfig, frrConfig, gobgpConfig, speakerPeer } from './configs.js';

const summary = (rs: RouterRoute[]) =>
  rs.map((r) => `${r.prefix} via ${r.nextHop} as [${r.asPath.join(' ')}]`).sort();

describe('interop: eBGP IPv4 with BIRD, GoBGP and FRR', { skip: !isRoot() && 'needs root' }, () => {
  let lan: Lan;
  let spk: SpeakerProc | undefined;
  let bird: Bird | undefined;
  let gobgp: Gobgp | undefined;
  let frr: Frr | undefined;

  before(async () => {
    lan = Lan.create(4);
    const [s, b, g, f] = lan.hosts as [
      (typeof lan.hosts)[0],
      (typeof lan.hosts)[0],
      (typeof lan.hosts)[0],
      (typeof lan.hosts)[0],
    ];
    [spk, bird, gobgp, frr] = await Promise.all([
      SpeakerProc.start(s.ns, {
        speaker: { routerId: s.v4, asn: 65001, listen: { host: '0.0.0.0', port: 179 } },
        peers: [speakerPeer(b.v4, 65002), speakerPeer(g.v4, 65003), speakerPeer(f.v4, 65004)],
        announce: [{ prefix: '10.1.0.0/24', attrs: { communities: ['65001:7'] } }],
      }),
      Bird.start(
        b.ns,
        birdConfig({
          routerId: b.v4,
          asn: 65002,
          localAddress: b.v4,
          static4: ['10.2.0.0/24'],
          peers: [{ name: 'spk', address: s.v4, asn: 65001 }],
        }),
      ),
      Gobgp.start(g.ns, gobgpConfig({ routerId: g.v4, asn: 65003, peers: [{ address: s.v4, asn: 65001 }] })),
      Frr.start(
        f.ns,
        frrConfig({
          routerId: f.v4,
          asn: 65004,
          networks4: ['10.4.0.0/24'],
          peers: [{ address: s.v4, asn: 65001 }],
        }),
      ),
    ]);
    gobgp!.addRoute('10.3.0.0/24', g.v4);
  });

  after(async () => {
    await stopEverything();
    lan?.destroy();
  });

  it('all three sessions reach Established', async () => {
    const s = lan.host(0).v4;
    await Promise.all([bird!.waitEstablished('spk'), gobgp!.waitEstablished(s), frr!.waitEstablished(s)]);
    await waitFor('speaker sees 3 Established', async () => {
      const peers = await spk!.call<Array<{ state: string }>>('peers');
      return peers.filter((p) => p.state === 'Established').length === 3;
    });
  });

  it('our speaker learns exactly each router’s prefix, with its AS path and next hop', async () => {
    const expected = [
      '10.1.0.0/24 local',
      '10.2.0.0/24 via 10.99.0.2 as [65002]',
      '10.3.0.0/24 via 10.99.0.3 as [65003]',
      '10.4.0.0/24 via 10.99.0.4 as [65004]',
    ];
    const got = await waitFor('speaker Loc-RIB', async () => {
      const rib = await spk!.call<BestRoute[]>('rib');
      const s = rib
        .map((r) =>
          r.local
            ? `${r.prefix} local`
            : `${r.prefix} via ${r.nextHops.join(',')} as [${r.attrs.asPath.flatMap((x) => x.asns).join(' ')}]`,
        )
        .sort();
      return s.length === expected.length ? s : undefined;
    });
    assert.deepEqual(got, expected);
  });

  it('BIRD receives ours and the others’ routes through us, next hop us, AS path prepended', async () => {
    const want = [
      '10.1.0.0/24 via 10.99.0.1 as [65001]',
      '10.3.0.0/24 via 10.99.0.1 as [65001 65003]',
      '10.4.0.0/24 via 10.99.0.1 as [65001 65004]',
    ];
    const got = await waitFor('BIRD routes', () => {
      const s = summary(bird!.routes({ protocol: 'spk' }));
      return s.length === want.length ? s : undefined;
    });
    assert.deepEqual(got, want);
    const ours = bird!.routes({ protocol: 'spk' }).find((r) => r.prefix === '10.1.0.0/24');
    assert.deepEqual(ours?.communities, ['65001:7']);
  });

  it('GoBGP receives the same set', async () => {
    const want = [
      '10.1.0.0/24 via 10.99.0.1 as [65001]',
      '10.2.0.0/24 via 10.99.0.1 as [65001 65002]',
      '10.3.0.0/24 via 10.99.0.3 as []',
      '10.4.0.0/24 via 10.99.0.1 as [65001 65004]',
    ];
    const got = await waitFor('GoBGP routes', () => {
      const s = summary(gobgp!.routes(4));
      return s.length === want.length ? s : undefined;
    });
    // GoBGP's own route shows the next hop it was added with and an empty path.
    assert.deepEqual(got, want);
  });

  it('FRR receives the same set', async () => {
    const want = [
      '10.1.0.0/24 via 10.99.0.1 as [65001]',
      '10.2.0.0/24 via 10.99.0.1 as [65001 65002]',
      '10.3.0.0/24 via 10.99.0.1 as [65001 65003]',
      '10.4.0.0/24 via 0.0.0.0 as []',
    ];
    const got = await waitFor('FRR routes', () => {
      const s = summary(frr!.routes(4));
      return s.length === want.length ? s : undefined;
    });
    assert.deepEqual(got, want);
  });

  it('a withdrawal on our side disappears everywhere', async () => {
    await spk!.call('withdraw', { prefix: '10.1.0.0/24' });
    await waitFor(
      'withdrawn at BIRD',
      () => !bird!.routes({ protocol: 'spk' }).some((r) => r.prefix === '10.1.0.0/24'),
    );
    await waitFor('withdrawn at GoBGP', () => !gobgp!.routes(4).some((r) => r.prefix === '10.1.0.0/24'));
    await waitFor('withdrawn at FRR', () => !frr!.routes(4).some((r) => r.prefix === '10.1.0.0/24'));
  });
});

describe('interop: eBGP over IPv6 transport with BIRD (IPv6 unicast)', {
  skip: !isRoot() && 'needs root',
}, () => {
  let lan: Lan;
  let spk: SpeakerProc | undefined;
  let bird: Bird | undefined;

  before(async () => {
    lan = Lan.create(2);
    const [s, b] = [lan.host(0), lan.host(1)];
    [spk, bird] = await Promise.all([
      SpeakerProc.start(s.ns, {
        speaker: { routerId: s.v4, asn: 65001, listen: { host: '::', port: 179 } },
        peers: [speakerPeer(b.v6, 65002, { families: ['ipv6-unicast'] })],
        announce: [{ prefix: 'fd01::/64' }],
      }),
      Bird.start(
        b.ns,
        birdConfig({
          routerId: b.v4,
          asn: 65002,
          localAddress: b.v6,
          static6: ['fd02::/64'],
          peers: [
            {
              name: 'spk',
              address: s.v6,
              asn: 65001,
              ipv6: true,
              channel: 'import all; export where proto = "st6";',
            },
          ],
        }).replace(/ipv4 \{[^}]*\};/, ''),
      ),
    ]);
  });

  after(async () => {
    await stopEverything();
    lan?.destroy();
  });

  it('exchanges IPv6 routes with next hops on the IPv6 session', async () => {
    await bird!.waitEstablished('spk');
    const theirs = await waitFor('BIRD learns fd01::/64', () =>
      bird!.routes({ table: 'master6', protocol: 'spk' }).find((r) => r.prefix === 'fd01::/64'),
    );
    assert.equal(theirs.nextHop, 'fd99::1');
    assert.deepEqual(theirs.asPath, [65001]);
    const ours = await waitFor('speaker learns fd02::/64', async () =>
      (await spk!.call<BestRoute[]>('rib')).find((r) => r.prefix === 'fd02::/64'),
    );
    assert.deepEqual(ours.nextHops, ['fd99::2']);
    assert.deepEqual(
      ours.attrs.asPath.flatMap((x) => x.asns),
      [65002],
    );
  });
});

describe('interop: 4-octet AS through a 2-octet BIRD (RFC 6793)', { skip: !isRoot() && 'needs root' }, () => {
  // X (AS 4200000001) — W (AS 65005) — BIRD (AS 65002, "enable as4 off": an OLD speaker) — Y (AS 65003).
  // W must send AS_TRANS + AS4_PATH to BIRD; BIRD passes AS4_PATH on; Y must rebuild the true path.
  // (BIRD cannot itself peer with a 4-octet AS with as4 off, hence W in between.)
  let lan: Lan;
  let x: SpeakerProc | undefined;
  let y: SpeakerProc | undefined;
  let bird: Bird | undefined;

  before(async () => {
    lan = Lan.create(4);
    const [hx, hw, hb, hy] = [lan.host(0), lan.host(1), lan.host(2), lan.host(3)];
    const listen = { host: '0.0.0.0', port: 179 };
    [x, , bird, y] = await Promise.all([
      SpeakerProc.start(hx.ns, {
        speaker: { routerId: hx.v4, asn: 4200000001, listen },
        peers: [speakerPeer(hw.v4, 65005)],
        announce: [{ prefix: '10.7.0.0/24' }],
      }),
      SpeakerProc.start(hw.ns, {
        speaker: { routerId: hw.v4, asn: 65005, listen },
        peers: [speakerPeer(hx.v4, 4200000001), speakerPeer(hb.v4, 65002)],
      }),
      Bird.start(
        hb.ns,
        birdConfig({
          routerId: hb.v4,
          asn: 65002,
          localAddress: hb.v4,
          peers: [
            { name: 'w', address: hw.v4, asn: 65005, extra: 'enable as4 off;' },
            { name: 'y', address: hy.v4, asn: 65003, extra: 'enable as4 off;' },
          ],
        }),
      ),
      SpeakerProc.start(hy.ns, {
        speaker: { routerId: hy.v4, asn: 65003, listen },
        peers: [speakerPeer(hb.v4, 65002)],
        announce: [{ prefix: '10.8.0.0/24' }],
      }),
    ]);
  });

  after(async () => {
    await stopEverything();
    lan?.destroy();
  });

  it('the W–BIRD session is 2-octet, and BIRD rebuilds the true path from W’s AS4_PATH', async () => {
    const r = await waitFor('BIRD learns 10.7.0.0/24', () =>
      bird!.routes({ protocol: 'w' }).find((x) => x.prefix === '10.7.0.0/24'),
    );
    // BIRD 2 merges AS4_PATH itself even with "enable as4 off" (it only stops announcing the
    // capability), so it shows the merged path: proof that W sent AS_TRANS + a correct AS4_PATH.
    assert.deepEqual(r.asPath, [65005, 4200000001]);
    const session = /Session:\s+(.*)/.exec(bird!.birdc('show protocols all w'))?.[1] ?? '';
    assert.match(session, /external/);
    assert.doesNotMatch(session, /AS4/);
  });

  it('Y rebuilds the 4-octet path from AS_PATH + AS4_PATH', async () => {
    const r = await waitFor('Y learns 10.7.0.0/24', async () =>
      (await y!.call<BestRoute[]>('rib')).find((x) => x.prefix === '10.7.0.0/24'),
    );
    assert.deepEqual(
      r.attrs.asPath.flatMap((s) => s.asns),
      [65002, 65005, 4200000001],
    );
  });

  it('X gets Y’s route with its 2-octet path intact', async () => {
    const r = await waitFor('X learns 10.8.0.0/24', async () =>
      (await x!.call<BestRoute[]>('rib')).find((x) => x.prefix === '10.8.0.0/24'),
    );
    assert.deepEqual(
      r.attrs.asPath.flatMap((s) => s.asns),
      [65005, 65002, 65003],
    );
  });
});

// iBGP IPv4 + IPv6 over MP-BGP (RFC 4760) on IPv4 sessions: our speaker (AS 65000) with BIRD,
// GoBGP and FRR in the same AS. Each side announces one IPv4 and one IPv6 prefix; each must see
// exactly the other's, with LOCAL_PREF, unchanged next hops, and no iBGP re-advertisement.
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

const FAMS = ['ipv4-unicast', 'ipv6-unicast'] as const;
const fmt = (rs: RouterRoute[]) =>
  rs.map((r) => `${r.prefix} via ${r.nextHop} lp ${r.localPref ?? '-'}`).sort();

async function settle<T>(what: string, n: number, f: () => T[] | Promise<T[]>): Promise<T[]> {
  return waitFor(what, async () => {
    const v = await f();
    return v.length === n ? v : undefined;
  });
}

describe('interop: iBGP IPv4 + IPv6 (MP-BGP)', { skip: !isRoot() && 'needs root' }, () => {
  let lan: Lan;
  let spk: SpeakerProc | undefined;
  let bird: Bird | undefined;
  let gobgp: Gobgp | undefined;
  let frr: Frr | undefined;

  before(async () => {
    lan = Lan.create(4);
    const [s, b, g, f] = [lan.host(0), lan.host(1), lan.host(2), lan.host(3)];
    [spk, bird, gobgp, frr] = await Promise.all([
      SpeakerProc.start(s.ns, {
        speaker: { routerId: s.v4, asn: 65000, listen: { host: '0.0.0.0', port: 179 }, nextHop6: s.v6 },
        peers: [b, g, f].map((h) => speakerPeer(h.v4, 65000, { families: [...FAMS] })),
        announce: [
          { prefix: '10.1.0.0/24', attrs: { nextHop: s.v4 } },
          { prefix: 'fd01::/64', attrs: { nextHop: s.v6 } },
        ],
      }),
      Bird.start(
        b.ns,
        birdConfig({
          routerId: b.v4,
          asn: 65000,
          localAddress: b.v4,
          static4: ['10.2.0.0/24'],
          static6: ['fd02::/64'],
          peers: [{ name: 'spk', address: s.v4, asn: 65000, ipv6: true, extra: 'direct;' }],
        }),
      ),
      Gobgp.start(
        g.ns,
        gobgpConfig({ routerId: g.v4, asn: 65000, peers: [{ address: s.v4, asn: 65000, ipv6: true }] }),
      ),
      Frr.start(
        f.ns,
        frrConfig({
          routerId: f.v4,
          asn: 65000,
          networks4: ['10.4.0.0/24'],
          networks6: ['fd04::/64'],
          peers: [{ address: s.v4, asn: 65000, ipv6: true }],
        }),
      ),
    ]);
    gobgp!.addRoute('10.3.0.0/24', g.v4);
    gobgp!.addRoute('fd03::/64', g.v6);
  });

  after(async () => {
    await stopEverything();
    lan?.destroy();
  });

  it('sessions come up with both families negotiated', async () => {
    const s = lan.host(0).v4;
    await Promise.all([bird!.waitEstablished('spk'), gobgp!.waitEstablished(s), frr!.waitEstablished(s)]);
    const peers = await waitFor('speaker peers Established', async () => {
      const p = await spk!.call<Array<{ state: string; families: string[] }>>('peers');
      return p.every((x) => x.state === 'Established') ? p : undefined;
    });
    for (const p of peers) assert.deepEqual([...p.families].sort(), [...FAMS]);
  });

  it('our speaker holds exactly the 8 expected routes, IPv6 next hops global', async () => {
    const rib = await settle('speaker Loc-RIB', 8, () => spk!.call<BestRoute[]>('rib'));
    const got = rib
      .map((r) => `${r.prefix} ${r.local ? 'local' : `via ${r.nextHops.join(',')} lp ${r.attrs.localPref}`}`)
      .sort();
    assert.deepEqual(got, [
      '10.1.0.0/24 local',
      '10.2.0.0/24 via 10.99.0.2 lp 100',
      '10.3.0.0/24 via 10.99.0.3 lp 100',
      '10.4.0.0/24 via 10.99.0.4 lp 100',
      'fd01::/64 local',
      'fd02::/64 via fd99::2 lp 100',
      'fd03::/64 via fd99::3 lp 100',
      'fd04::/64 via fd99::4 lp 100',
    ]);
  });

  it('BIRD gets only our two routes (iBGP split horizon), next hops ours', async () => {
    const v4 = await settle('BIRD v4', 1, () => bird!.routes({ table: 'master4', protocol: 'spk' }));
    const v6 = await settle('BIRD v6', 1, () => bird!.routes({ table: 'master6', protocol: 'spk' }));
    assert.deepEqual(fmt([...v4, ...v6]), [
      '10.1.0.0/24 via 10.99.0.1 lp 100',
      'fd01::/64 via fd99::1 lp 100',
    ]);
    assert.deepEqual(v4[0]!.asPath, []);
  });

  it('GoBGP gets only our two routes', async () => {
    const v4 = await settle('GoBGP v4', 2, () => gobgp!.routes(4));
    const v6 = await settle('GoBGP v6', 2, () => gobgp!.routes(6));
    const theirs = [...v4, ...v6].filter((r) => r.from === lan.host(0).v4);
    assert.deepEqual(fmt(theirs), ['10.1.0.0/24 via 10.99.0.1 lp 100', 'fd01::/64 via fd99::1 lp 100']);
  });

  it('FRR gets only our two routes', async () => {
    const v4 = await settle('FRR v4', 2, () => frr!.routes(4));
    const v6 = await settle('FRR v6', 2, () => frr!.routes(6));
    const theirs = [...v4, ...v6].filter((r) => r.from === lan.host(0).v4);
    assert.deepEqual(fmt(theirs), ['10.1.0.0/24 via 10.99.0.1 lp 100', 'fd01::/64 via fd99::1 lp 100']);
  });
});

// Speakers in one process exchanging routes over real TCP on 127.0.0.x.
import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import { routeCommunities, type Speaker } from '../../../bgp/speaker.js';
import { established, peerOf, route, startSpeaker, type TestSpeaker, waitFor } from './helpers.js';

const running: Speaker[] = [];
afterEach(async () => {
  await Promise.all(running.splice(0).map((s) => s.stop()));
});

async function spk(address: string, asn: number, extra: Record<string, unknown> = {}): Promise<TestSpeaker> {
  const t = await startSpeaker(address, { routerId: address.replace('127.', '10.'), asn, ...extra });
  running.push(t.speaker);
  return t;
}

describe('Speaker over loopback TCP', () => {
  it('iBGP: announces IPv4 and IPv6 (MP-BGP over an IPv4 session), withdraws', async () => {
    const a = await spk('127.0.0.1', 65000, { nextHop6: 'fd00::1' });
    const b = await spk('127.0.0.2', 65000);
    const fams = { families: ['ipv4-unicast', 'ipv6-unicast'] as ('ipv4-unicast' | 'ipv6-unicast')[] };
    a.speaker.addPeer(peerOf(a, b, 65000, { ...fams, type: 'node-to-node mesh' }));
    b.speaker.addPeer(peerOf(b, a, 65000, { ...fams, passive: true }));
    a.speaker.announce('10.65.1.0/26', { communities: ['65000:100'], largeCommunities: ['65000:1:2'] });
    a.speaker.announce('fd00:65:1::/122');
    await waitFor(
      'b learns both',
      () => route(b.speaker, '10.65.1.0/26') && route(b.speaker, 'fd00:65:1::/122'),
    );
    const r4 = route(b.speaker, '10.65.1.0/26')!;
    assert.deepEqual(r4.nextHops, ['127.0.0.1']);
    assert.equal(r4.fromPeer, '127.0.0.1');
    assert.equal(r4.attrs.localPref, 100);
    assert.deepEqual(r4.attrs.asPath, []);
    assert.deepEqual(routeCommunities(r4.attrs), ['65000:100', '65000:1:2']);
    assert.deepEqual(route(b.speaker, 'fd00:65:1::/122')!.nextHops, ['fd00::1']);
    const st = a.speaker.peers()[0]!;
    assert.equal(st.state, 'Established');
    assert.equal(st.type, 'node-to-node mesh');
    assert.equal(st.prefixesAdvertised, 2);
    assert.deepEqual(st.families, ['ipv4-unicast', 'ipv6-unicast']);
    assert.equal(b.speaker.peers()[0]!.prefixesReceived, 2);
    const changes: Array<string | null> = [];
    b.speaker.on('routeChanged', (p, best) => changes.push(best ? p : null));
    a.speaker.withdraw('10.65.1.0/26');
    await waitFor('withdrawal', () => !route(b.speaker, '10.65.1.0/26'));
    assert.deepEqual(changes, [null]);
    assert.ok(route(b.speaker, 'fd00:65:1::/122'));
  });

  it('eBGP: AS path prepended, next hop self, no LOCAL_PREF; own AS in path is rejected', async () => {
    const a = await spk('127.0.0.1', 65001);
    const b = await spk('127.0.0.2', 65002);
    a.speaker.addPeer(peerOf(a, b, 65002));
    b.speaker.addPeer(peerOf(b, a, 65001));
    a.speaker.announce('10.1.0.0/24', { nextHop: '127.0.0.9' });
    const r = await waitFor('b learns', () => route(b.speaker, '10.1.0.0/24'));
    assert.deepEqual(r.attrs.asPath, [{ type: 'sequence', asns: [65001] }]);
    assert.deepEqual(r.nextHops, ['127.0.0.1']);
    assert.equal(r.attrs.localPref, undefined);
    // b would send it back to a only via another peer; a's own path check is a unit test in rib.test.ts
    assert.equal(b.speaker.peers()[0]!.prefixesAccepted, 1);
  });

  it('route reflector: client → client with ORIGINATOR_ID and CLUSTER_LIST, not back to the sender', async () => {
    const rr = await spk('127.0.0.10', 65000, { clusterId: '1.1.1.1' });
    const c1 = await spk('127.0.0.11', 65000);
    const c2 = await spk('127.0.0.12', 65000);
    for (const c of [c1, c2]) {
      rr.speaker.addPeer(peerOf(rr, c, 65000, { rrClient: true, passive: true }));
      c.speaker.addPeer(peerOf(c, rr, 65000));
    }
    c1.speaker.announce('10.65.11.0/26');
    const r = await waitFor('c2 learns via rr', () => route(c2.speaker, '10.65.11.0/26'));
    assert.deepEqual(r.nextHops, ['127.0.0.11']);
    assert.equal(r.attrs.originatorId, '10.0.0.11');
    assert.deepEqual(r.attrs.clusterList, ['1.1.1.1']);
    assert.equal(r.fromPeer, '127.0.0.10');
    await rr.speaker.settled();
    assert.deepEqual(
      rr.speaker.adjRibOut('127.0.0.11').map((x) => x.prefix),
      [],
      'not reflected back to its originator',
    );
    assert.equal(rr.speaker.peers().find((p) => p.address === '127.0.0.11')!.prefixesReceived, 1);
  });

  it('ECMP: the same prefix from two eBGP neighbours gives two next hops; one withdrawal leaves one', async () => {
    const a = await spk('127.0.0.1', 65001);
    const b = await spk('127.0.0.2', 65002);
    const c = await spk('127.0.0.3', 65003, { ecmp: true });
    for (const [x, asn] of [
      [a, 65001],
      [b, 65002],
    ] as const) {
      x.speaker.addPeer(peerOf(x, c, 65003));
      c.speaker.addPeer(peerOf(c, x, asn, { passive: true }));
      x.speaker.announce('10.50.0.0/24');
    }
    const r = await waitFor('two paths', () => {
      const x = route(c.speaker, '10.50.0.0/24');
      return x && x.nextHops.length === 2 ? x : null;
    });
    assert.deepEqual(r.nextHops, ['127.0.0.1', '127.0.0.2']);
    b.speaker.withdraw('10.50.0.0/24');
    await waitFor('one path', () => route(c.speaker, '10.50.0.0/24')?.nextHops.length === 1);
    assert.deepEqual(route(c.speaker, '10.50.0.0/24')!.nextHops, ['127.0.0.1']);
  });

  it('session reset on NOTIFICATION: removing a peer sends Cease, the other side drops its routes', async () => {
    const a = await spk('127.0.0.1', 65000);
    const b = await spk('127.0.0.2', 65000);
    a.speaker.addPeer(peerOf(a, b, 65000));
    b.speaker.addPeer(peerOf(b, a, 65000));
    b.speaker.announce('10.2.0.0/24');
    await waitFor('a learns', () => route(a.speaker, '10.2.0.0/24'));
    b.speaker.removePeer('127.0.0.1');
    await waitFor('a drops', () => !route(a.speaker, '10.2.0.0/24'));
    const st = a.speaker.peers()[0]!;
    assert.notEqual(st.state, 'Established');
    assert.match(st.lastError, /Cease\/3/);
    assert.equal(st.flaps, 1);
  });

  it('both sides active: collision resolution leaves one stable session', async () => {
    const a = await spk('127.0.0.1', 65000);
    const b = await spk('127.0.0.2', 65000);
    a.speaker.addPeer(peerOf(a, b, 65000));
    b.speaker.addPeer(peerOf(b, a, 65000));
    await waitFor(
      'established',
      () => established(a.speaker, '127.0.0.2') && established(b.speaker, '127.0.0.1'),
    );
    a.speaker.announce('10.3.0.0/24');
    await waitFor('b learns', () => route(b.speaker, '10.3.0.0/24'));
    await new Promise((r) => setTimeout(r, 300));
    assert.ok(established(a.speaker, '127.0.0.2') && established(b.speaker, '127.0.0.1'));
    assert.equal(a.speaker.peers()[0]!.flaps, 0);
  });

  it('route refresh: the peer re-sends its Adj-RIB-Out on request', async () => {
    const a = await spk('127.0.0.1', 65000);
    const b = await spk('127.0.0.2', 65000);
    a.speaker.addPeer(peerOf(a, b, 65000));
    b.speaker.addPeer(peerOf(b, a, 65000, { passive: true }));
    b.speaker.announce('10.4.0.0/24');
    b.speaker.announce('10.4.1.0/24');
    await waitFor('a learns', () => route(a.speaker, '10.4.1.0/24'));
    const before = a.speaker.peers()[0]!.updatesIn;
    assert.equal(a.speaker.refresh('127.0.0.2'), true);
    await waitFor('re-sent', () => a.speaker.peers()[0]!.updatesIn > before);
    assert.equal(b.speaker.peers()[0]!.prefixesAdvertised, 2);
  });

  it('updatePeer: an export policy change applies without a session flap', async () => {
    const a = await spk('127.0.0.1', 65000);
    const b = await spk('127.0.0.2', 65000);
    const pa = peerOf(a, b, 65000);
    a.speaker.addPeer(pa);
    b.speaker.addPeer(peerOf(b, a, 65000, { passive: true }));
    a.speaker.announce('10.5.0.0/24');
    a.speaker.announce('10.6.0.0/24');
    await waitFor('b learns', () => route(b.speaker, '10.6.0.0/24'));
    a.speaker.updatePeer({
      ...pa,
      exportPolicy: {
        statements: [
          {
            match: { prefixes: [{ prefix: '10.5.0.0/16', maxLen: 32 }] },
            set: { addCommunities: ['65000:5'] },
            action: 'accept',
          },
        ],
        defaultAction: 'reject',
      },
    });
    await waitFor('10.6 withdrawn', () => !route(b.speaker, '10.6.0.0/24'));
    assert.deepEqual(routeCommunities(route(b.speaker, '10.5.0.0/24')!.attrs), ['65000:5']);
    assert.equal(a.speaker.peers()[0]!.flaps, 0);
    assert.equal(b.speaker.peers()[0]!.flaps, 0);
  });
});

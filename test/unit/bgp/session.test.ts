// A hand-driven raw peer (plain TCP + the codec) against a Speaker: hold timer expiry, malformed
// messages, RFC 7606 treat-as-withdraw, graceful-restart helper and restarting speaker.
import assert from 'node:assert/strict';
import net from 'node:net';
import { afterEach, describe, it } from 'node:test';
import {
  type BgpMessage,
  decodeMessage,
  encodeMessage,
  MessageFramer,
  type OpenMessage,
  packUpdates,
} from '../../../bgp/codec/index.js';
import { buildOpen, negotiate } from '../../../bgp/session/negotiate.js';
import type { Speaker } from '../../../bgp/speaker.js';
import { established, peerOf, route, startSpeaker, waitFor } from './helpers.js';

const cleanup: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
});

/** A minimal scripted BGP peer on a raw socket. */
class RawPeer {
  readonly received: BgpMessage[] = [];
  /** Octets of each message received, beside `received`. */
  readonly sizes: number[] = [];
  private readonly framer = new MessageFramer({ extendedMessage: true });
  closed = false;
  constructor(readonly sock: net.Socket) {
    sock.on('data', (d: Buffer) => {
      for (const f of this.framer.push(d)) {
        if (!f.ok) continue;
        const r = decodeMessage(f.bytes, { as4: true, extendedMessage: true });
        if (!r.ok) continue;
        this.received.push(r.message);
        this.sizes.push(f.bytes.length);
      }
    });
    sock.on('close', () => {
      this.closed = true;
    });
    sock.on('error', () => {});
  }
  static async connect(port: number, host: string, localAddress: string): Promise<RawPeer> {
    const sock = net.connect({ port, host, localAddress });
    await new Promise((r, j) => sock.once('connect', r).once('error', j));
    return new RawPeer(sock);
  }
  send(m: BgpMessage): void {
    this.sock.write(encodeMessage(m, { as4: true }));
  }
  raw(b: Uint8Array): void {
    this.sock.write(b);
  }
  has(type: BgpMessage['type']) {
    return this.received.find((m) => m.type === type);
  }
}

function openMsg(asn: number, bgpId: string, holdTime: number): OpenMessage {
  return {
    type: 'open',
    version: 4,
    myAs: asn,
    holdTime,
    bgpId,
    capabilities: [
      { kind: 'multiprotocol', afi: 1, safi: 1 },
      { kind: 'as4', asn },
      { kind: 'route-refresh' },
    ],
  };
}

async function speakerWithRawPeer(holdTimeSec: number, ext: { ours?: boolean; theirs?: boolean } = {}) {
  const t = await startSpeaker('127.0.0.1', { routerId: '10.0.0.1', asn: 65000 });
  cleanup.push(() => t.speaker.stop());
  t.speaker.addPeer({
    address: '127.0.0.5',
    asn: 65005,
    passive: true,
    holdTimeSec,
    idleHoldMinSec: 0.1,
    extendedMessage: ext.ours,
  });
  const raw = await RawPeer.connect(t.port, '127.0.0.1', '127.0.0.5');
  cleanup.push(() => {
    raw.sock.destroy();
  });
  const open = openMsg(65005, '10.0.0.5', holdTimeSec);
  if (ext.theirs) open.capabilities.push({ kind: 'extended-message' });
  raw.send(open);
  raw.send({ type: 'keepalive' });
  await waitFor('established', () => established(t.speaker, '127.0.0.5'));
  return { t, raw };
}

describe('negotiate: RFC 8654 extended messages per direction', () => {
  const open = (extendedMessage: boolean, routerId: string) =>
    buildOpen({ asn: 65000, routerId, holdTimeSec: 90, families: ['ipv4-unicast'], extendedMessage });
  for (const [ours, theirs, send, receive] of [
    [true, true, true, true],
    [true, false, false, true],
    [false, true, false, false],
    [false, false, false, false],
  ] as const) {
    it(`ours ${ours}, theirs ${theirs}: send ${send}, receive ${receive}`, () => {
      const n = negotiate(open(ours, '10.0.0.1'), open(theirs, '10.0.0.2'), true);
      assert.deepEqual(n.extendedMessage, { send, receive });
      assert.equal(n.codec.extendedMessage, send, 'encoding follows the send side');
      assert.equal(n.receiveCodec.extendedMessage, receive, 'decoding follows the receive side');
    });
  }
});

describe('session shell against a raw peer', () => {
  it('hold timer expiry: NOTIFICATION 4 and the session drops', async () => {
    const { t, raw } = await speakerWithRawPeer(3);
    // The raw peer never sends another KEEPALIVE.
    const n = await waitFor('hold timer notification', () => raw.has('notification'), 6000);
    assert.equal(n.type === 'notification' && n.code, 4);
    await waitFor('closed', () => raw.closed);
    const st = t.speaker.peers()[0]!;
    assert.notEqual(st.state, 'Established');
    assert.match(st.lastError, /hold timer expired/);
  });

  it('a big UPDATE burst does not starve keepalives or expire timers (hold 3 s, 150k prefixes)', async () => {
    const { t, raw } = await speakerWithRawPeer(3);
    const N = 150_000;
    const nlri = Array.from({ length: N }, (_, n) => ({
      family: 4 as const,
      prefix: `${20 + (n >>> 16)}.${(n >>> 8) & 255}.${n & 255}.0/24`,
    }));
    const opts = { as4: true };
    const attrs = {
      origin: 0 as const,
      asPath: [{ type: 'sequence' as const, asns: [65005] }],
      nextHop: '127.0.0.5',
    };
    const bytes = Buffer.concat(
      packUpdates({ attributes: attrs, announce: nlri, withdraw: [] }, opts).map((m) =>
        encodeMessage(m, opts),
      ),
    );
    const ka = setInterval(() => raw.send({ type: 'keepalive' }), 1000);
    try {
      const before = raw.received.filter((m) => m.type === 'keepalive').length;
      const t0 = Date.now();
      raw.raw(bytes);
      await waitFor('all prefixes in', () => t.speaker.peers()[0]!.prefixesReceived === N, 60_000);
      const took = Date.now() - t0;
      await new Promise((r) => setTimeout(r, 1200));
      const kas = raw.received.filter((m) => m.type === 'keepalive').length - before;
      assert.equal(t.speaker.peers()[0]!.state, 'Established');
      assert.equal(raw.has('notification'), undefined);
      // Keepalive interval is 1 s: at least one per elapsed second, minus slack for a loaded machine.
      assert.ok(kas >= Math.floor((took + 1200) / 1000) - 1, `${kas} keepalives in ${took + 1200} ms`);
    } finally {
      clearInterval(ka);
    }
  });

  describe('RFC 8654 extended messages', () => {
    const attrs = {
      origin: 0 as const,
      asPath: [{ type: 'sequence' as const, asns: [65005] }],
      nextHop: '127.0.0.5',
    };
    const nlri = Array.from({ length: 3000 }, (_, n) => ({
      family: 4 as const,
      prefix: `30.${n >>> 8}.${n & 255}.0/24`,
    }));
    /** 3000 /24 in one UPDATE: ≈ 12 kB, three times the classic limit. */
    const bigUpdate = () => {
      const ups = packUpdates(
        { attributes: attrs, announce: nlri, withdraw: [] },
        { as4: true, extendedMessage: true },
      );
      assert.equal(ups.length, 1);
      const bytes = encodeMessage(ups[0]!, { as4: true, extendedMessage: true });
      assert.ok(bytes.length > 4096);
      return bytes;
    };

    it('we announce it by default and take an UPDATE above 4096 octets', async () => {
      const { t, raw } = await speakerWithRawPeer(30, { theirs: true });
      const ourOpen = raw.received.find((m) => m.type === 'open');
      assert.ok(ourOpen?.type === 'open' && ourOpen.capabilities.some((c) => c.kind === 'extended-message'));
      raw.raw(bigUpdate());
      await waitFor('all 3000 in', () => t.speaker.peers()[0]!.prefixesAccepted === 3000);
      assert.equal(t.speaker.peers()[0]!.updatesIn, 1);
      assert.equal(raw.has('notification'), undefined);
    });

    it('turned off for the peer: not announced, and an UPDATE above 4096 octets is a length error (1/2)', async () => {
      const { t, raw } = await speakerWithRawPeer(30, { ours: false, theirs: true });
      const ourOpen = raw.received.find((m) => m.type === 'open');
      assert.ok(ourOpen?.type === 'open' && !ourOpen.capabilities.some((c) => c.kind === 'extended-message'));
      raw.raw(bigUpdate());
      const n = await waitFor('notification', () => raw.has('notification'));
      assert.deepEqual(n.type === 'notification' && [n.code, n.subcode], [1, 2]);
      await waitFor('closed', () => raw.closed);
      assert.equal(t.speaker.peers()[0]!.prefixesAccepted, 0);
    });

    it('we send UPDATEs above 4096 octets only to a peer that announced it', async () => {
      for (const theirs of [true, false]) {
        const { t, raw } = await speakerWithRawPeer(30, { theirs });
        for (const x of nlri) t.speaker.announce(x.prefix, { nextHop: '127.0.0.1' });
        const got = () => raw.received.flatMap((m) => (m.type === 'update' ? m.nlri : [])).length;
        await waitFor(`3000 prefixes at the raw peer (theirs: ${theirs})`, () => got() === 3000);
        const sizes = raw.sizes.filter((_, i) => raw.received[i]!.type === 'update');
        const biggest = Math.max(...sizes);
        if (theirs) assert.ok(biggest > 4096, `biggest UPDATE ${biggest} octets`);
        else assert.ok(biggest <= 4096, `biggest UPDATE ${biggest} octets`);
        await t.speaker.stop();
        raw.sock.destroy();
      }
    });
  });

  it('a bad header gets NOTIFICATION 1/1 and a reset, never an exception', async () => {
    const { t, raw } = await speakerWithRawPeer(30);
    raw.raw(Buffer.alloc(19, 0)); // marker not all ones
    const n = await waitFor('notification', () => raw.has('notification'));
    assert.deepEqual(n.type === 'notification' && [n.code, n.subcode], [1, 1]);
    await waitFor('closed', () => raw.closed);
    assert.notEqual(t.speaker.peers()[0]!.state, 'Established');
  });

  it('RFC 7606: a bad ORIGIN value is treat-as-withdraw, the session stays up', async () => {
    const { t, raw } = await speakerWithRawPeer(30);
    raw.send({
      type: 'update',
      withdrawn: [],
      attributes: { origin: 0, asPath: [{ type: 'sequence', asns: [65005] }], nextHop: '127.0.0.5' },
      nlri: [{ family: 4, prefix: '10.9.0.0/24' }],
    });
    await waitFor('route', () => route(t.speaker, '10.9.0.0/24'));
    // Same UPDATE with ORIGIN = 7 (invalid): bytes patched after encoding.
    const bytes = encodeMessage(
      {
        type: 'update',
        withdrawn: [],
        attributes: { origin: 2, asPath: [{ type: 'sequence', asns: [65005] }], nextHop: '127.0.0.5' },
        nlri: [{ family: 4, prefix: '10.9.0.0/24' }],
      },
      { as4: true },
    );
    const i = bytes.indexOf(Buffer.from([0x40, 0x01, 0x01, 0x02]));
    assert.ok(i > 0);
    bytes[i + 3] = 7;
    raw.raw(bytes);
    await waitFor('withdrawn', () => !route(t.speaker, '10.9.0.0/24'));
    assert.equal(t.speaker.peers()[0]!.state, 'Established');
    assert.equal(raw.has('notification'), undefined);
  });

  it('an own-AS loop in an eBGP path is kept in Adj-RIB-In but not accepted', async () => {
    const { t, raw } = await speakerWithRawPeer(30);
    raw.send({
      type: 'update',
      withdrawn: [],
      attributes: { origin: 0, asPath: [{ type: 'sequence', asns: [65005, 65000] }], nextHop: '127.0.0.5' },
      nlri: [{ family: 4, prefix: '10.8.0.0/24' }],
    });
    await waitFor('received', () => t.speaker.peers()[0]!.prefixesReceived === 1);
    assert.equal(t.speaker.peers()[0]!.prefixesAccepted, 0);
    assert.equal(route(t.speaker, '10.8.0.0/24'), undefined);
  });
});

describe('graceful restart (RFC 4724)', () => {
  it('helper keeps a restarting peer’s routes until its End-of-RIB, then drops what it did not resend', async () => {
    const gr = { gracefulRestart: { restartTimeSec: 30 } };
    const a = await startSpeaker('127.0.0.1', { routerId: '10.0.0.1', asn: 65000, ...gr });
    cleanup.push(() => a.speaker.stop());
    const startB = async (restarting: boolean) => {
      const b = await startSpeaker('127.0.0.2', {
        routerId: '10.0.0.2',
        asn: 65000,
        gracefulRestart: { restartTimeSec: 30, restarting },
      });
      b.speaker.addPeer(peerOf(b, a, 65000));
      return b;
    };
    let b = await startB(false);
    a.speaker.addPeer(peerOf(a, b, 65000, { passive: true }));
    b.speaker.announce('10.20.0.0/26');
    b.speaker.announce('10.20.0.64/26');
    await waitFor('a learns', () => route(a.speaker, '10.20.0.64/26'));
    const losses: string[] = [];
    a.speaker.on('routeChanged', (p, best) => {
      if (!best) losses.push(p);
    });
    await b.speaker.stop({ graceful: true }); // no NOTIFICATION: looks like a crash to a
    await waitFor('a sees the session go', () => !established(a.speaker, '127.0.0.2'));
    const r = route(a.speaker, '10.20.0.0/26');
    assert.ok(r?.stale, 'kept as stale');
    assert.equal(a.speaker.peers()[0]!.prefixesStale, 2);
    b = await startB(true);
    cleanup.push(() => b.speaker.stop());
    b.speaker.announce('10.20.0.0/26'); // the other block is gone after the restart
    let eor = false;
    a.speaker.on('endOfRib', () => {
      eor = true;
    });
    await waitFor('End-of-RIB', () => eor);
    assert.ok(route(a.speaker, '10.20.0.0/26'));
    assert.equal(route(a.speaker, '10.20.0.0/26')!.stale, false);
    assert.equal(route(a.speaker, '10.20.0.64/26'), undefined);
    assert.deepEqual(losses, ['10.20.0.64/26'], 'only the route not re-announced was ever withdrawn');
  });

  it('helper drops the stale routes when the peer does not come back within its restart time', async () => {
    const a = await startSpeaker('127.0.0.1', {
      routerId: '10.0.0.1',
      asn: 65000,
      gracefulRestart: { restartTimeSec: 1 },
    });
    const b = await startSpeaker('127.0.0.2', {
      routerId: '10.0.0.2',
      asn: 65000,
      gracefulRestart: { restartTimeSec: 1 },
    });
    cleanup.push(() => a.speaker.stop());
    a.speaker.addPeer(peerOf(a, b, 65000, { passive: true }));
    b.speaker.addPeer(peerOf(b, a, 65000));
    b.speaker.announce('10.21.0.0/26');
    await waitFor('a learns', () => route(a.speaker, '10.21.0.0/26'));
    await b.speaker.stop({ graceful: true });
    await waitFor('stale', () => route(a.speaker, '10.21.0.0/26')?.stale);
    await waitFor('swept after restart time', () => !route(a.speaker, '10.21.0.0/26'), 4000);
  });

  it('restarting speaker: R bit, routes held back until every peer sent End-of-RIB (or the deferral timer)', async () => {
    const a = await startSpeaker('127.0.0.1', {
      routerId: '10.0.0.1',
      asn: 65000,
      gracefulRestart: { restartTimeSec: 30 },
    });
    cleanup.push(() => a.speaker.stop());
    a.speaker.announce('10.31.0.0/26');
    const b = await startSpeaker('127.0.0.2', {
      routerId: '10.0.0.2',
      asn: 65000,
      gracefulRestart: { restartTimeSec: 30, restarting: true, deferralTimeSec: 1.5 },
    });
    cleanup.push(() => b.speaker.stop());
    b.speaker.announce('10.30.0.0/26');
    a.speaker.addPeer(peerOf(a, b, 65000, { passive: true }));
    b.speaker.addPeer(peerOf(b, a, 65000));
    b.speaker.addPeer({ address: '127.0.0.99', asn: 65000, passive: true }); // never comes up
    await waitFor('b learns a’s route (a is not deferring)', () => route(b.speaker, '10.31.0.0/26'));
    const t0 = Date.now();
    await new Promise((r) => setTimeout(r, 500));
    assert.equal(
      route(a.speaker, '10.30.0.0/26'),
      undefined,
      'deferred while a peer has not sent End-of-RIB',
    );
    await waitFor('advertised after the deferral timer', () => route(a.speaker, '10.30.0.0/26'), 4000);
    assert.ok(Date.now() - t0 >= 900);
  });

  it('restarting speaker with only GR peers advertises as soon as their End-of-RIBs are in', async () => {
    const a = await startSpeaker('127.0.0.1', {
      routerId: '10.0.0.1',
      asn: 65000,
      gracefulRestart: { restartTimeSec: 30 },
    });
    cleanup.push(() => a.speaker.stop());
    const b = await startSpeaker('127.0.0.2', {
      routerId: '10.0.0.2',
      asn: 65000,
      gracefulRestart: { restartTimeSec: 30, restarting: true, deferralTimeSec: 20 },
    });
    cleanup.push(() => b.speaker.stop());
    b.speaker.announce('10.32.0.0/26');
    a.speaker.addPeer(peerOf(a, b, 65000, { passive: true }));
    b.speaker.addPeer(peerOf(b, a, 65000));
    await waitFor(
      'a learns b’s route well before the deferral timer',
      () => route(a.speaker, '10.32.0.0/26'),
      5000,
    );
  });

  it('without graceful restart, a lost session withdraws at once', async () => {
    const a = await startSpeaker('127.0.0.1', { routerId: '10.0.0.1', asn: 65000 });
    const b = await startSpeaker('127.0.0.2', { routerId: '10.0.0.2', asn: 65000 });
    cleanup.push(() => a.speaker.stop());
    a.speaker.addPeer(peerOf(a, b, 65000, { passive: true }));
    b.speaker.addPeer(peerOf(b, a, 65000));
    b.speaker.announce('10.22.0.0/26');
    await waitFor('a learns', () => route(a.speaker, '10.22.0.0/26'));
    await (b.speaker as Speaker).stop({ graceful: true });
    await waitFor('withdrawn', () => !route(a.speaker, '10.22.0.0/26'));
  });
});

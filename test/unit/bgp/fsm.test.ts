import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  type FsmAction,
  type FsmConfig,
  type FsmData,
  type FsmEvent,
  fsmStep,
  idleHoldSeconds,
  initialFsm,
  keepaliveInterval,
} from '../../../bgp/session/fsm.js';

const cfg: FsmConfig = {
  passive: false,
  holdTimeSec: 9,
  keepaliveSec: 3,
  connectRetrySec: 5,
  idleHoldMinSec: 1,
  idleHoldMaxSec: 30,
  errorForgetSec: 60,
};

function run(events: FsmEvent[], c: FsmConfig = cfg, d0: FsmData = initialFsm()) {
  let d = d0;
  const all: FsmAction[][] = [];
  for (const e of events) {
    const r = fsmStep(d, e, c);
    d = r.data;
    all.push(r.actions);
  }
  return { d, all, last: all[all.length - 1]! };
}

const has = (acts: FsmAction[], type: FsmAction['type']) => acts.some((a) => a.type === type);

describe('BGP FSM (RFC 4271 §8)', () => {
  it('active peer: Idle → Connect → OpenSent → OpenConfirm → Established', () => {
    const r = run([{ type: 'ManualStart' }]);
    assert.equal(r.d.state, 'Connect');
    assert.ok(has(r.last, 'connect'));
    assert.deepEqual(
      r.last.find((a) => a.type === 'startTimer'),
      { type: 'startTimer', timer: 'connectRetry', seconds: 5 },
    );
    const r2 = run([{ type: 'TcpConnectionConfirmed' }], cfg, r.d);
    assert.equal(r2.d.state, 'OpenSent');
    assert.ok(has(r2.last, 'sendOpen'));
    const r3 = run([{ type: 'BGPOpen', holdTime: 9 }], cfg, r2.d);
    assert.equal(r3.d.state, 'OpenConfirm');
    assert.ok(has(r3.last, 'sendKeepalive'));
    assert.ok(r3.last.some((a) => a.type === 'startTimer' && a.timer === 'keepalive' && a.seconds === 3));
    assert.ok(r3.last.some((a) => a.type === 'startTimer' && a.timer === 'hold' && a.seconds === 9));
    const r4 = run([{ type: 'KeepAliveMsg' }], cfg, r3.d);
    assert.equal(r4.d.state, 'Established');
    assert.ok(has(r4.last, 'established'));
  });

  it('passive peer waits in Active and never dials', () => {
    const p = { ...cfg, passive: true };
    const r = run([{ type: 'ManualStart' }, { type: 'ConnectRetryTimerExpires' }], p);
    assert.equal(r.d.state, 'Active');
    assert.ok(!r.all.flat().some((a) => a.type === 'connect'));
    const r2 = run([{ type: 'TcpConnectionConfirmed' }], p, r.d);
    assert.equal(r2.d.state, 'OpenSent');
  });

  it('connect failure goes to Active, retry timer dials again', () => {
    const r = run([{ type: 'ManualStart' }, { type: 'TcpConnectionFails' }]);
    assert.equal(r.d.state, 'Active');
    const r2 = run([{ type: 'ConnectRetryTimerExpires' }], cfg, r.d);
    assert.equal(r2.d.state, 'Connect');
    assert.ok(has(r2.last, 'connect'));
  });

  const established = run([
    { type: 'ManualStart' },
    { type: 'TcpConnectionConfirmed' },
    { type: 'BGPOpen', holdTime: 9 },
    { type: 'KeepAliveMsg' },
  ]).d;

  it('hold timer expiry sends NOTIFICATION 4, drops the session, counts an error', () => {
    const r = run([{ type: 'HoldTimerExpires' }], cfg, established);
    assert.equal(r.d.state, 'Idle');
    assert.equal(r.d.errors, 1);
    assert.deepEqual(
      r.last.find((a) => a.type === 'sendNotification'),
      { type: 'sendNotification', notification: { code: 4, subcode: 0 } },
    );
    assert.deepEqual(
      r.last.find((a) => a.type === 'down'),
      { type: 'down', reason: 'hold timer expired', graceful: false },
    );
    assert.ok(r.last.some((a) => a.type === 'startTimer' && a.timer === 'idleHold' && a.seconds === 1));
  });

  it('keepalives and updates restart the hold timer; keepalive timer sends a KEEPALIVE', () => {
    for (const type of ['KeepAliveMsg', 'UpdateMsg', 'RouteRefreshMsg'] as const) {
      const r = run([{ type }], cfg, established);
      assert.equal(r.d.state, 'Established');
      assert.deepEqual(r.last, [{ type: 'startTimer', timer: 'hold', seconds: 9 }]);
    }
    const k = run([{ type: 'KeepaliveTimerExpires' }], cfg, established);
    assert.ok(has(k.last, 'sendKeepalive'));
  });

  it('TCP loss in Established is graceful (GR helper keeps routes); NOTIFICATION is not', () => {
    const t = run([{ type: 'TcpConnectionFails' }], cfg, established);
    assert.deepEqual(
      t.last.find((a) => a.type === 'down'),
      { type: 'down', reason: 'connection lost', graceful: true },
    );
    const n = run([{ type: 'NotifMsg' }], cfg, established);
    assert.equal(n.d.state, 'Idle');
    assert.ok(!has(n.last, 'sendNotification'));
    assert.equal((n.last.find((a) => a.type === 'down') as { graceful: boolean }).graceful, false);
  });

  it('idle hold backs off exponentially and is forgotten after a stable session', () => {
    assert.deepEqual(
      [0, 1, 2, 3, 4, 5, 6, 7].map((e) => idleHoldSeconds(e, cfg)),
      [0, 1, 2, 4, 8, 16, 30, 30],
    );
    let d = established;
    for (let i = 0; i < 3; i++) {
      d = run([{ type: 'UpdateMsgErr', notification: { code: 3, subcode: 1 } }], cfg, d).d;
      assert.equal(d.errors, i + 1);
      const r = run([{ type: 'IdleHoldTimerExpires' }, { type: 'TcpConnectionConfirmed' }], cfg, d);
      d = run([{ type: 'BGPOpen', holdTime: 9 }, { type: 'KeepAliveMsg' }], cfg, r.d).d;
      assert.equal(d.state, 'Established');
    }
    assert.equal(d.errors, 3);
    assert.equal(run([{ type: 'ErrorForgetTimerExpires' }], cfg, d).d.errors, 0);
  });

  it('ManualStart in Idle does not wait for the backoff; ManualStop sends Cease', () => {
    const r = run([{ type: 'ManualStop' }], cfg, established);
    assert.equal(r.d.state, 'Idle');
    assert.deepEqual(
      r.last.find((a) => a.type === 'sendNotification'),
      { type: 'sendNotification', notification: { code: 6, subcode: 2 } },
    );
    assert.equal(run([{ type: 'ManualStart' }], cfg, { ...r.d, errors: 4 }).d.state, 'Connect');
  });

  it('an UPDATE before Established is an FSM error', () => {
    const r = run([{ type: 'ManualStart' }, { type: 'TcpConnectionConfirmed' }, { type: 'UpdateMsg' }]);
    assert.equal(r.d.state, 'Idle');
    assert.deepEqual(
      r.last.find((a) => a.type === 'sendNotification'),
      { type: 'sendNotification', notification: { code: 5, subcode: 0 } },
    );
  });

  it('collision dump sends Cease/7; collision win keeps OpenConfirm with the new hold time', () => {
    const os = run([{ type: 'ManualStart' }, { type: 'TcpConnectionConfirmed' }]).d;
    const dump = run([{ type: 'OpenCollisionDump' }], cfg, os);
    assert.equal(dump.d.state, 'Idle');
    assert.deepEqual(
      dump.last.find((a) => a.type === 'sendNotification'),
      { type: 'sendNotification', notification: { code: 6, subcode: 7 } },
    );
    const won = run([{ type: 'CollisionWon', holdTime: 30 }], cfg, os);
    assert.equal(won.d.state, 'OpenConfirm');
    assert.equal(won.d.holdTimeSec, 30);
  });

  it('hold time 0 means no keepalives; keepalive is capped at hold/3', () => {
    assert.equal(keepaliveInterval(0, cfg), 0);
    assert.equal(keepaliveInterval(90, cfg), 3);
    assert.equal(keepaliveInterval(6, { ...cfg, keepaliveSec: 60 }), 2);
    const r = run([
      { type: 'ManualStart' },
      { type: 'TcpConnectionConfirmed' },
      { type: 'BGPOpen', holdTime: 0 },
    ]);
    assert.ok(!r.last.some((a) => a.type === 'startTimer'));
  });
});

describe('PeerSession with a fake clock', () => {
  it('arms the connect-retry timer after a refused dial and dials again when it fires', async () => {
    const { PeerSession } = await import('../../../bgp/session/peer.js');
    const { freePort } = await import('../../harness/etcd.js');
    const timers: Array<{ fn: () => void; ms: number; live: boolean }> = [];
    const clock = {
      set: (fn: () => void, ms: number) => {
        const t = { fn, ms, live: true };
        timers.push(t);
        return t;
      },
      clear: (h: unknown) => {
        (h as { live: boolean }).live = false;
      },
      now: () => 0,
    };
    const port = await freePort(); // nothing listens there
    const s = new PeerSession(
      {
        ...cfg,
        address: '127.0.0.1',
        port,
        peerAsn: 65001,
        localAsn: 65000,
        routerId: '10.0.0.1',
        families: ['ipv4-unicast'],
      },
      clock,
    );
    const states: string[] = [];
    s.on('state', (_from, to) => states.push(to));
    const state = (): string => s.state;
    s.start();
    assert.equal(state(), 'Connect');
    const deadline = Date.now() + 5000;
    while (state() !== 'Active' && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    assert.equal(state(), 'Active');
    const retry = timers.filter((t) => t.live && t.ms === 5000);
    assert.equal(retry.length, 1, 'one live connect-retry timer of 5 s');
    retry[0]!.live = false;
    retry[0]!.fn();
    assert.equal(state(), 'Connect');
    assert.deepEqual(states.slice(0, 3), ['Connect', 'Active', 'Connect']);
    s.stop();
    assert.equal(state(), 'Idle');
    assert.ok(
      timers.every((t) => !t.live),
      'stop clears every timer',
    );
  });
});

// The BGP finite state machine of RFC 4271 §8 as a pure transition function. The session shell
// (peer.ts) turns socket happenings and timer expiries into events, calls `fsmStep`, and carries
// out the returned actions. No I/O and no clock here, so every transition is unit-testable.
//
// Simplifications, all allowed by §8.1 as optional attributes left off: no DelayOpen, no
// DampPeerOscillations beyond the idle-hold backoff below, the collision check is done by the
// shell (it owns both connections) and reported as CollisionWon / OpenCollisionDump.
import { CeaseSubcode, ErrorCode } from '../codec/types.js';

export type FsmState = 'Idle' | 'Connect' | 'Active' | 'OpenSent' | 'OpenConfirm' | 'Established';

export type TimerName = 'connectRetry' | 'hold' | 'keepalive' | 'idleHold' | 'errorForget';

export interface Notification {
  code: number;
  subcode: number;
  data?: Uint8Array;
}

export type FsmEvent =
  | { type: 'ManualStart' }
  | { type: 'ManualStop'; notification?: Notification }
  | { type: 'IdleHoldTimerExpires' }
  | { type: 'ConnectRetryTimerExpires' }
  | { type: 'HoldTimerExpires' }
  | { type: 'KeepaliveTimerExpires' }
  | { type: 'ErrorForgetTimerExpires' }
  /** A TCP connection is up (ours completed, or the peer's accepted). */
  | { type: 'TcpConnectionConfirmed' }
  | { type: 'TcpConnectionFails' }
  /** A valid OPEN; `holdTime` = the negotiated hold time (min of both, RFC 4271 §4.2). */
  | { type: 'BGPOpen'; holdTime: number }
  /** A bad OPEN or message header: the shell already chose the NOTIFICATION. */
  | { type: 'MessageError'; notification: Notification }
  | { type: 'NotifMsg' }
  | { type: 'KeepAliveMsg' }
  | { type: 'UpdateMsg' }
  | { type: 'RouteRefreshMsg' }
  | { type: 'UpdateMsgErr'; notification: Notification }
  /** Collision: this session's connection lost to the other one (RFC 4271 §6.8). */
  | { type: 'OpenCollisionDump' }
  /** Collision: the peer's incoming connection (already OPENed, hold negotiated) replaces ours. */
  | { type: 'CollisionWon'; holdTime: number };

export type FsmAction =
  | { type: 'connect' }
  | { type: 'close' }
  | { type: 'sendOpen' }
  | { type: 'sendKeepalive' }
  | { type: 'sendNotification'; notification: Notification }
  | { type: 'startTimer'; timer: TimerName; seconds: number }
  | { type: 'stopTimer'; timer: TimerName }
  | { type: 'established' }
  /**
   * The session left Established. `graceful`: it ended without a NOTIFICATION either way
   * (TCP loss), so a graceful-restart helper keeps the peer's routes (RFC 4724 §4.2).
   */
  | { type: 'down'; reason: string; graceful: boolean };

export interface FsmConfig {
  passive: boolean;
  /** Hold time we offer in OPEN (0 = no keepalives). */
  holdTimeSec: number;
  /** Keepalive interval we want; capped at a third of the negotiated hold time. */
  keepaliveSec: number;
  connectRetrySec: number;
  /** Idle-hold backoff after errors: min * 2^(errors-1), capped at max. */
  idleHoldMinSec: number;
  idleHoldMaxSec: number;
  /** Established this long without trouble forgets past errors (BIRD's "error forget time"). */
  errorForgetSec: number;
}

export interface FsmData {
  state: FsmState;
  /** Consecutive failed sessions/attempts, for the idle-hold backoff. */
  errors: number;
  /** Negotiated hold time, valid from OpenConfirm on. */
  holdTimeSec: number;
  lastError: string;
}

export interface FsmResult {
  data: FsmData;
  actions: FsmAction[];
}

/** Hold time while waiting for the peer's OPEN (RFC 4271 §8.2.2 suggests 4 minutes). */
export const LARGE_HOLD_SEC = 240;

export function initialFsm(): FsmData {
  return { state: 'Idle', errors: 0, holdTimeSec: 0, lastError: '' };
}

export function idleHoldSeconds(errors: number, cfg: FsmConfig): number {
  if (errors <= 0) return 0;
  return Math.min(cfg.idleHoldMaxSec, cfg.idleHoldMinSec * 2 ** Math.min(errors - 1, 20));
}

export function keepaliveInterval(holdSec: number, cfg: FsmConfig): number {
  if (holdSec === 0) return 0;
  return Math.max(1, Math.min(cfg.keepaliveSec, Math.floor(holdSec / 3)));
}

const ALL_TIMERS: TimerName[] = ['connectRetry', 'hold', 'keepalive', 'idleHold', 'errorForget'];

const stopAll = (): FsmAction[] => ALL_TIMERS.map((timer) => ({ type: 'stopTimer', timer }));

function describe(n: Notification): string {
  return `NOTIFICATION ${n.code}/${n.subcode}`;
}

/** Leaves for Idle. `error` counts toward the backoff and arms the idle-hold timer. */
function toIdle(
  d: FsmData,
  cfg: FsmConfig,
  why: string,
  opts: { error: boolean; notify?: Notification; graceful?: boolean },
): FsmResult {
  const actions: FsmAction[] = [];
  if (opts.notify) actions.push({ type: 'sendNotification', notification: opts.notify });
  actions.push({ type: 'close' }, ...stopAll());
  if (d.state === 'Established')
    actions.push({ type: 'down', reason: why, graceful: opts.graceful ?? false });
  const errors = opts.error ? d.errors + 1 : 0;
  if (opts.error)
    actions.push({ type: 'startTimer', timer: 'idleHold', seconds: idleHoldSeconds(errors, cfg) });
  return {
    data: { state: 'Idle', errors, holdTimeSec: 0, lastError: opts.error ? why : d.lastError },
    actions,
  };
}

function start(d: FsmData, cfg: FsmConfig): FsmResult {
  if (cfg.passive) return { data: { ...d, state: 'Active' }, actions: [] };
  return {
    data: { ...d, state: 'Connect' },
    actions: [
      { type: 'connect' },
      { type: 'startTimer', timer: 'connectRetry', seconds: cfg.connectRetrySec },
    ],
  };
}

const fsmError = (): Notification => ({ code: ErrorCode.FsmError, subcode: 0 });

// Transitions that OpenSent, OpenConfirm and Established share (RFC 4271 §8.2.2).
const holdTimerExpired = (d: FsmData, cfg: FsmConfig): FsmResult =>
  toIdle(d, cfg, 'hold timer expired', {
    error: true,
    notify: { code: ErrorCode.HoldTimerExpired, subcode: 0 },
  });

const collisionDump = (d: FsmData, cfg: FsmConfig): FsmResult =>
  toIdle(d, cfg, 'connection collision', {
    error: false,
    notify: { code: ErrorCode.Cease, subcode: CeaseSubcode.ConnectionCollisionResolution },
  });

const keepaliveTick = (d: FsmData, cfg: FsmConfig): FsmAction[] => [
  { type: 'sendKeepalive' },
  { type: 'startTimer', timer: 'keepalive', seconds: keepaliveInterval(d.holdTimeSec, cfg) },
];

export function fsmStep(d: FsmData, ev: FsmEvent, cfg: FsmConfig): FsmResult {
  const same = (actions: FsmAction[] = []): FsmResult => ({ data: d, actions });
  if (ev.type === 'ManualStop') {
    if (d.state === 'Idle') return { data: { ...d, errors: 0 }, actions: stopAll() };
    const connected = d.state === 'OpenSent' || d.state === 'OpenConfirm' || d.state === 'Established';
    const notify = connected
      ? (ev.notification ?? { code: ErrorCode.Cease, subcode: CeaseSubcode.AdministrativeShutdown })
      : undefined;
    return toIdle(d, cfg, 'stopped', { error: false, notify });
  }
  switch (d.state) {
    case 'Idle':
      if (ev.type === 'ManualStart') return start({ ...d, errors: 0 }, cfg);
      if (ev.type === 'IdleHoldTimerExpires') return start(d, cfg);
      if (ev.type === 'TcpConnectionConfirmed') return same([{ type: 'close' }]); // refused while idle
      return same();

    case 'Connect':
    case 'Active':
      switch (ev.type) {
        case 'ConnectRetryTimerExpires':
          if (cfg.passive) return same();
          return {
            data: { ...d, state: 'Connect' },
            actions: [
              { type: 'close' },
              { type: 'connect' },
              { type: 'startTimer', timer: 'connectRetry', seconds: cfg.connectRetrySec },
            ],
          };
        case 'TcpConnectionConfirmed':
          return {
            data: { ...d, state: 'OpenSent' },
            actions: [
              { type: 'stopTimer', timer: 'connectRetry' },
              { type: 'sendOpen' },
              { type: 'startTimer', timer: 'hold', seconds: LARGE_HOLD_SEC },
            ],
          };
        case 'TcpConnectionFails':
          // Our dial failed: wait for the retry timer in Active (the peer may still dial us).
          return {
            data: { ...d, state: 'Active' },
            actions: cfg.passive
              ? []
              : [{ type: 'startTimer', timer: 'connectRetry', seconds: cfg.connectRetrySec }],
          };
        case 'ManualStart':
        case 'IdleHoldTimerExpires':
        case 'ErrorForgetTimerExpires':
        case 'KeepaliveTimerExpires':
        case 'HoldTimerExpires':
          return same();
        default:
          return toIdle(d, cfg, `unexpected ${ev.type} in ${d.state}`, { error: true });
      }

    case 'OpenSent':
      switch (ev.type) {
        case 'HoldTimerExpires':
          return toIdle(d, cfg, 'hold timer expired waiting for OPEN', {
            error: true,
            notify: { code: ErrorCode.HoldTimerExpired, subcode: 0 },
          });
        case 'TcpConnectionFails':
          return {
            data: { ...d, state: 'Active' },
            actions: [
              { type: 'close' },
              { type: 'stopTimer', timer: 'hold' },
              ...(cfg.passive
                ? []
                : [{ type: 'startTimer', timer: 'connectRetry', seconds: cfg.connectRetrySec } as FsmAction]),
            ],
          };
        case 'BGPOpen':
        case 'CollisionWon': {
          const ka = keepaliveInterval(ev.holdTime, cfg);
          const actions: FsmAction[] = [
            { type: 'stopTimer', timer: 'connectRetry' },
            { type: 'sendKeepalive' },
          ];
          if (ev.holdTime > 0) {
            actions.push({ type: 'startTimer', timer: 'keepalive', seconds: ka });
            actions.push({ type: 'startTimer', timer: 'hold', seconds: ev.holdTime });
          } else {
            actions.push({ type: 'stopTimer', timer: 'hold' }, { type: 'stopTimer', timer: 'keepalive' });
          }
          return { data: { ...d, state: 'OpenConfirm', holdTimeSec: ev.holdTime }, actions };
        }
        case 'MessageError':
          return toIdle(d, cfg, describe(ev.notification), { error: true, notify: ev.notification });
        case 'NotifMsg':
          return toIdle(d, cfg, 'NOTIFICATION received', { error: true });
        case 'OpenCollisionDump':
          return collisionDump(d, cfg);
        case 'ManualStart':
        case 'IdleHoldTimerExpires':
        case 'ConnectRetryTimerExpires':
        case 'KeepaliveTimerExpires':
        case 'ErrorForgetTimerExpires':
        case 'TcpConnectionConfirmed':
          return same();
        default:
          return toIdle(d, cfg, `unexpected ${ev.type} in OpenSent`, { error: true, notify: fsmError() });
      }

    case 'OpenConfirm':
      switch (ev.type) {
        case 'HoldTimerExpires':
          return holdTimerExpired(d, cfg);
        case 'KeepaliveTimerExpires':
          return same(keepaliveTick(d, cfg));
        case 'KeepAliveMsg':
          return {
            data: { ...d, state: 'Established' },
            actions: [
              ...(d.holdTimeSec > 0
                ? [{ type: 'startTimer', timer: 'hold', seconds: d.holdTimeSec } as FsmAction]
                : []),
              { type: 'startTimer', timer: 'errorForget', seconds: cfg.errorForgetSec },
              { type: 'established' },
            ],
          };
        case 'TcpConnectionFails':
          return toIdle(d, cfg, 'connection lost in OpenConfirm', { error: true });
        case 'NotifMsg':
          return toIdle(d, cfg, 'NOTIFICATION received', { error: true });
        case 'MessageError':
          return toIdle(d, cfg, describe(ev.notification), { error: true, notify: ev.notification });
        case 'OpenCollisionDump':
          return collisionDump(d, cfg);
        case 'CollisionWon':
          return {
            data: { ...d, holdTimeSec: ev.holdTime },
            actions: [
              { type: 'sendKeepalive' },
              ...(ev.holdTime > 0
                ? ([
                    { type: 'startTimer', timer: 'keepalive', seconds: keepaliveInterval(ev.holdTime, cfg) },
                    { type: 'startTimer', timer: 'hold', seconds: ev.holdTime },
                  ] as FsmAction[])
                : []),
            ],
          };
        case 'ManualStart':
        case 'IdleHoldTimerExpires':
        case 'ConnectRetryTimerExpires':
        case 'ErrorForgetTimerExpires':
        case 'TcpConnectionConfirmed':
          return same();
        default:
          return toIdle(d, cfg, `unexpected ${ev.type} in OpenConfirm`, { error: true, notify: fsmError() });
      }

    case 'Established':
      switch (ev.type) {
        case 'HoldTimerExpires':
          return holdTimerExpired(d, cfg);
        case 'KeepaliveTimerExpires':
          return same(keepaliveTick(d, cfg));
        case 'KeepAliveMsg':
        case 'UpdateMsg':
        case 'RouteRefreshMsg':
          return same(
            d.holdTimeSec > 0 ? [{ type: 'startTimer', timer: 'hold', seconds: d.holdTimeSec }] : [],
          );
        case 'ErrorForgetTimerExpires':
          return { data: { ...d, errors: 0 }, actions: [] };
        case 'UpdateMsgErr':
        case 'MessageError':
          return toIdle(d, cfg, describe(ev.notification), { error: true, notify: ev.notification });
        case 'NotifMsg':
          return toIdle(d, cfg, 'NOTIFICATION received', { error: true });
        case 'TcpConnectionFails':
          return toIdle(d, cfg, 'connection lost', { error: true, graceful: true });
        case 'ManualStart':
        case 'IdleHoldTimerExpires':
        case 'ConnectRetryTimerExpires':
        case 'TcpConnectionConfirmed':
          return same();
        default:
          return toIdle(d, cfg, `unexpected ${ev.type} in Established`, { error: true, notify: fsmError() });
      }
  }
}

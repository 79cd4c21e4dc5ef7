// One BGP peer's session: the thin shell around the pure FSM (fsm.ts). It owns the TCP
// connection(s) — ours, the peer's, and during a collision both — turns socket and timer
// happenings into FSM events and carries out the FSM's actions. Received UPDATEs are framed at
// once (so KEEPALIVEs and the hold timer are never stuck behind them) but decoded and handed to
// the owner in time-boxed chunks, yielding to the event loop between chunks.
import { EventEmitter } from 'node:events';
import net from 'node:net';
import {
  type BgpMessage,
  CeaseSubcode,
  type CodecOptions,
  decodeMessage,
  ErrorCode,
  encodeMessage,
  MessageFramer,
  MessageType,
  notificationName,
  type OpenMessage,
  type UpdateMessage,
  type UpdateOutcome,
  validateOpen,
} from '../codec/index.js';
import {
  type FsmAction,
  type FsmConfig,
  type FsmData,
  type FsmEvent,
  type FsmState,
  fsmStep,
  initialFsm,
  type Notification,
  type TimerName,
} from './fsm.js';
import { buildOpen, type FamilyName, type Negotiated, negotiate } from './negotiate.js';
import { realTimers, type TimerService } from './timers.js';

export interface PeerSessionConfig extends FsmConfig {
  address: string;
  port: number;
  localAddress?: string;
  /** Expected remote AS. */
  peerAsn: number;
  localAsn: number;
  routerId: string;
  families: readonly FamilyName[];
  gracefulRestart?: { restartTimeSec: number; restarting: boolean; forwardingPreserved: boolean };
  /**
   * Hand received UPDATEs over with the classic IPv4 fields as prefix keys (`withdrawnKeys`,
   * `nlriKeys`; see CodecOptions.ipv4Keys) instead of Nlri objects: for an owner whose RIB is
   * keyed by number, it saves an object and a string per received prefix.
   */
  ipv4Keys?: boolean;
  /** Announce the extended message capability (RFC 8654). Default true. */
  extendedMessage?: boolean;
}

export interface SessionDown {
  reason: string;
  graceful: boolean;
  negotiated: Negotiated;
}

export interface PeerSessionEvents {
  state: [from: FsmState, to: FsmState];
  established: [n: Negotiated];
  update: [msg: UpdateMessage, outcome: UpdateOutcome];
  routeRefresh: [afi: number, safi: number];
  down: [d: SessionDown];
  /** Something worth a log line (decode problems, notifications received). */
  log: [level: 'info' | 'warn', msg: string];
}

interface Conn {
  socket: net.Socket;
  outgoing: boolean;
  framer: MessageFramer;
  /** The peer's OPEN on this connection, once received. */
  open?: OpenMessage;
  /** Frames waiting to be decoded and processed (UPDATEs and everything behind them). */
  queue: Buffer[];
  /** Octets in `queue`. */
  queued: number;
  draining: boolean;
}

const ipKey = (a: string) => (a.startsWith('::ffff:') ? a.slice(7) : a);

/** Yield to the event loop after this much processing, so timers and sockets get their turn. */
const SLICE_MS = 8;
/**
 * Pause reading when this many octets of frames wait (memory bound for a fast sender; counted in
 * octets, not frames, since an RFC 8654 frame may be 16× a classic one).
 */
const QUEUE_HIGH = 64 * 1024 * 1024;

export class PeerSession extends EventEmitter<PeerSessionEvents> {
  private fsm: FsmData = initialFsm();
  private conn: Conn | null = null;
  private candidate: Conn | null = null;
  private dialing: net.Socket | null = null;
  private readonly timers = new Map<TimerName, unknown>();
  private localOpen: OpenMessage;
  private negotiated: Negotiated | null = null;
  /** Encoding what we send / decoding what we receive: they differ with RFC 8654 (see Negotiated). */
  private codec: CodecOptions = { as4: true };
  private receiveCodec: CodecOptions = { as4: true };
  private running = false;
  private silent = false;
  since = Date.now();
  lastError = '';
  updatesIn = 0;
  updatesOut = 0;

  constructor(
    private cfg: PeerSessionConfig,
    private readonly clock: TimerService = realTimers,
  ) {
    super();
    this.localOpen = this.makeOpen();
    this.since = clock.now();
  }

  get state(): FsmState {
    return this.fsm.state;
  }

  get info(): Negotiated | null {
    return this.negotiated;
  }

  get config(): PeerSessionConfig {
    return this.cfg;
  }

  /** Local address of the established connection (for next-hop-self). */
  get localAddress(): string {
    return ipKey(this.conn?.socket.localAddress ?? this.cfg.localAddress ?? '');
  }

  /** Applies settings that need no new session (timers used from the next arming on). */
  reconfigure(cfg: PeerSessionConfig): void {
    this.cfg = cfg;
    this.localOpen = this.makeOpen();
  }

  start(): void {
    this.running = true;
    this.dispatch({ type: 'ManualStart' });
  }

  stop(notification?: Notification): void {
    this.running = false;
    this.dispatch({ type: 'ManualStop', notification });
  }

  /** Stops without a NOTIFICATION: to a graceful-restart peer this looks like our restart (RFC 4724). */
  stopSilently(): void {
    this.running = false;
    this.silent = true;
    this.dispatch({ type: 'ManualStop' });
    this.silent = false;
  }

  /** Resets the session (e.g. after a change that needs a new OPEN), keeping it running. */
  reset(
    notification: Notification = { code: ErrorCode.Cease, subcode: CeaseSubcode.OtherConfigurationChange },
  ): void {
    this.dispatch({ type: 'ManualStop', notification });
    if (this.running) this.dispatch({ type: 'ManualStart' });
  }

  /** An accepted TCP connection from this peer's address. */
  incoming(socket: net.Socket): void {
    const s = this.fsm.state;
    if (!this.running || s === 'Idle') {
      socket.destroy();
      return;
    }
    if (s === 'Connect' || s === 'Active') {
      // Our own dial may still complete: it then becomes the collision candidate (§6.8).
      this.conn = this.wrap(socket, false);
      this.dispatch({ type: 'TcpConnectionConfirmed' });
      return;
    }
    if (s === 'Established') {
      // RFC 4724 §4.2: a new connection from a graceful-restart peer means it restarted.
      if (this.negotiated?.peerGracefulRestart && this.negotiated.localGracefulRestart) {
        this.emit('log', 'info', `${this.cfg.address}: new connection while Established: peer restarted`);
        this.dispatch({ type: 'TcpConnectionFails' });
        this.dispatch({ type: 'ManualStart' });
        this.incoming(socket);
        return;
      }
      this.rejectCollision(this.wrap(socket, false));
      return;
    }
    // OpenSent / OpenConfirm: keep both until the peer's OPEN on the new one decides (§6.8).
    if (this.candidate) {
      socket.destroy();
      return;
    }
    this.candidate = this.wrap(socket, false);
    this.write(this.candidate, this.localOpen);
  }

  send(msg: BgpMessage): boolean {
    if (!this.conn || this.fsm.state !== 'Established') return false;
    if (msg.type === 'update') this.updatesOut++;
    return this.write(this.conn, msg);
  }

  /** Bytes queued in the socket: callers pace big exports with this. */
  get writeBacklog(): number {
    return this.conn?.socket.writableLength ?? 0;
  }

  // ---- FSM plumbing -------------------------------------------------------------------------

  private dispatch(ev: FsmEvent): void {
    const before = this.fsm.state;
    const r = fsmStep(this.fsm, ev, this.cfg);
    this.fsm = r.data;
    if (r.data.lastError && r.data.lastError !== this.lastError) this.lastError = r.data.lastError;
    for (const a of r.actions) this.act(a);
    if (this.fsm.state !== before) {
      this.since = this.clock.now();
      this.emit('state', before, this.fsm.state);
    }
  }

  private act(a: FsmAction): void {
    switch (a.type) {
      case 'connect':
        this.dial();
        break;
      case 'close':
        this.closeAll();
        break;
      case 'sendOpen':
        if (this.conn) this.write(this.conn, this.localOpen);
        break;
      case 'sendKeepalive':
        if (this.conn) this.write(this.conn, { type: 'keepalive' });
        break;
      case 'sendNotification':
        if (this.conn && !this.silent) {
          this.write(this.conn, {
            type: 'notification',
            code: a.notification.code,
            subcode: a.notification.subcode,
            data: a.notification.data ?? new Uint8Array(0),
          });
          if (a.notification.code !== ErrorCode.Cease) {
            const sent = `sent ${notificationName(a.notification.code, a.notification.subcode)}`;
            this.lastError = this.fsm.lastError ? `${this.fsm.lastError} (${sent})` : sent;
          }
        }
        break;
      case 'startTimer':
        this.startTimer(a.timer, a.seconds);
        break;
      case 'stopTimer':
        this.stopTimer(a.timer);
        break;
      case 'established':
        if (this.negotiated) this.emit('established', this.negotiated);
        break;
      case 'down':
        if (this.negotiated)
          this.emit('down', { reason: a.reason, graceful: a.graceful, negotiated: this.negotiated });
        break;
    }
  }

  private startTimer(t: TimerName, seconds: number): void {
    this.stopTimer(t);
    const ev: Record<TimerName, FsmEvent['type']> = {
      connectRetry: 'ConnectRetryTimerExpires',
      hold: 'HoldTimerExpires',
      keepalive: 'KeepaliveTimerExpires',
      idleHold: 'IdleHoldTimerExpires',
      errorForget: 'ErrorForgetTimerExpires',
    };
    this.timers.set(
      t,
      this.clock.set(() => {
        this.timers.delete(t);
        this.dispatch({ type: ev[t] } as FsmEvent);
      }, seconds * 1000),
    );
  }

  private stopTimer(t: TimerName): void {
    const h = this.timers.get(t);
    if (h !== undefined) this.clock.clear(h);
    this.timers.delete(t);
  }

  private makeOpen(): OpenMessage {
    return buildOpen({
      asn: this.cfg.localAsn,
      routerId: this.cfg.routerId,
      holdTimeSec: this.cfg.holdTimeSec,
      families: this.cfg.families,
      gracefulRestart: this.cfg.gracefulRestart,
      extendedMessage: this.cfg.extendedMessage,
    });
  }

  // ---- sockets ------------------------------------------------------------------------------

  private dial(): void {
    this.dialing?.destroy();
    const sock = net.connect({
      host: this.cfg.address,
      port: this.cfg.port,
      localAddress: this.cfg.localAddress,
    });
    this.dialing = sock;
    sock.setNoDelay(true);
    const fail = (err?: Error) => {
      if (this.dialing !== sock) return;
      this.dialing = null;
      sock.destroy();
      if (err) this.lastError = `connect: ${err.message}`;
      this.dispatch({ type: 'TcpConnectionFails' });
    };
    sock.on('error', fail);
    sock.once('close', () => fail());
    sock.once('connect', () => {
      if (this.dialing !== sock) return;
      this.dialing = null;
      sock.removeAllListeners('error');
      sock.removeAllListeners('close');
      const s = this.fsm.state;
      if (s === 'Connect' || s === 'Active') {
        this.conn = this.wrap(sock, true);
        this.dispatch({ type: 'TcpConnectionConfirmed' });
      } else if ((s === 'OpenSent' || s === 'OpenConfirm') && !this.candidate) {
        this.candidate = this.wrap(sock, true);
        this.write(this.candidate, this.localOpen);
      } else {
        sock.destroy();
      }
    });
  }

  private wrap(socket: net.Socket, outgoing: boolean): Conn {
    socket.setNoDelay(true);
    // We announce extended messages from the first OPEN on, so the framer takes them from the
    // start (its header check still holds OPEN and KEEPALIVE to 4096 octets).
    const framer = new MessageFramer({ extendedMessage: this.cfg.extendedMessage !== false });
    const c: Conn = { socket, outgoing, framer, queue: [], queued: 0, draining: false };
    socket.on('data', (chunk: Buffer) => this.onData(c, chunk));
    socket.on('error', (e) => {
      if (c === this.conn) this.lastError = `socket: ${e.message}`;
    });
    socket.on('close', () => this.onClose(c));
    return c;
  }

  private onClose(c: Conn): void {
    if (c === this.candidate) {
      this.candidate = null;
      return;
    }
    if (c === this.conn) {
      this.conn = null;
      if (this.promoteCandidate()) return;
      this.dispatch({ type: 'TcpConnectionFails' });
    }
  }

  /**
   * The main connection died during a collision (typically the peer's Cease/7 for it arrived
   * before its OPEN on the other one): carry on with the other connection instead.
   */
  private promoteCandidate(): boolean {
    const c = this.candidate;
    if (!c || (this.fsm.state !== 'OpenSent' && this.fsm.state !== 'OpenConfirm')) return false;
    if (this.conn) this.closeConn(this.conn);
    this.conn = c;
    this.candidate = null;
    if (c.open) {
      this.adoptOpen(c.open);
      this.dispatch({ type: 'CollisionWon', holdTime: this.negotiated!.holdTimeSec });
    }
    if (c.queue.length > 0) this.drain(c);
    return true;
  }

  private closeAll(): void {
    this.dialing?.destroy();
    this.dialing = null;
    for (const c of [this.conn, this.candidate]) if (c) this.closeConn(c);
    this.conn = null;
    this.candidate = null;
  }

  /** Lets a queued NOTIFICATION go out, then closes. */
  private closeConn(c: Conn): void {
    c.queue = [];
    c.queued = 0;
    c.socket.removeAllListeners('data');
    c.socket.end();
    const t = setTimeout(() => c.socket.destroy(), 1000);
    t.unref();
    c.socket.once('close', () => clearTimeout(t));
  }

  private write(c: Conn, msg: BgpMessage): boolean {
    try {
      c.socket.write(encodeMessage(msg, this.codec));
      return true;
    } catch (e) {
      this.emit('log', 'warn', `${this.cfg.address}: cannot send ${msg.type}: ${(e as Error).message}`);
      return false;
    }
  }

  private rejectCollision(c: Conn): void {
    this.write(c, {
      type: 'notification',
      code: ErrorCode.Cease,
      subcode: CeaseSubcode.ConnectionCollisionResolution,
      data: new Uint8Array(0),
    });
    this.closeConn(c);
  }

  // ---- receiving ----------------------------------------------------------------------------

  private onData(c: Conn, chunk: Buffer): void {
    for (const f of c.framer.push(chunk)) {
      if (!f.ok) {
        this.onMessageError(c, f.error.notification, f.error.message);
        return;
      }
      const type = f.bytes[18];
      // Liveness is judged on arrival, not after processing: a slow RIB must not expire the hold timer.
      if (c === this.conn && this.fsm.state === 'Established' && type !== MessageType.Notification) {
        if (type === MessageType.Keepalive && c.queue.length === 0) {
          this.dispatch({ type: 'KeepAliveMsg' });
          continue;
        }
        this.dispatch({ type: 'KeepAliveMsg' }); // restarts the hold timer only
      }
      c.queue.push(f.bytes);
      c.queued += f.bytes.length;
    }
    if (c.queued > QUEUE_HIGH) c.socket.pause();
    this.drain(c);
  }

  private drain(c: Conn): void {
    if (c.draining) return;
    c.draining = true;
    const t0 = performance.now();
    try {
      while (c.queue.length > 0) {
        if (c !== this.conn && c !== this.candidate) {
          c.queue = [];
          c.queued = 0;
          return;
        }
        const bytes = c.queue.shift()!;
        c.queued -= bytes.length;
        try {
          this.onFrame(c, bytes);
        } catch (e) {
          // Our bug, not the peer's: keep the session and the process alive, and say so loudly.
          this.emit(
            'log',
            'warn',
            `${this.cfg.address}: internal error handling a message: ${(e as Error).stack ?? e}`,
          );
        }
        if (performance.now() - t0 > SLICE_MS && c.queue.length > 0) {
          setImmediate(() => this.drain(c));
          return;
        }
      }
      if (c.socket.isPaused()) c.socket.resume();
    } finally {
      c.draining = false;
    }
  }

  private onFrame(c: Conn, bytes: Buffer): void {
    const r = decodeMessage(bytes, this.receiveCodec);
    if (!r.ok) {
      this.onMessageError(c, r.error.notification, r.error.message);
      return;
    }
    const m = r.message;
    if (c === this.candidate) {
      this.onCandidateMessage(c, m);
      return;
    }
    switch (m.type) {
      case 'open':
        this.onOpen(c, m);
        break;
      case 'keepalive':
        if (this.fsm.state !== 'Established') this.dispatch({ type: 'KeepAliveMsg' });
        break;
      case 'notification': {
        const why = `received ${notificationName(m.code, m.subcode)}`;
        this.emit('log', 'warn', `${this.cfg.address}: ${why}`);
        if (this.promoteCandidate()) return;
        this.dispatch({ type: 'NotifMsg' });
        this.lastError = why;
        break;
      }
      case 'update':
        if (this.fsm.state !== 'Established') {
          this.dispatch({ type: 'UpdateMsg' });
          return;
        }
        this.updatesIn++;
        if (r.outcome.kind !== 'ok') {
          this.emit(
            'log',
            'warn',
            `${this.cfg.address}: UPDATE ${r.outcome.kind}: ${r.outcome.problems.map((p) => p.reason).join('; ')}`,
          );
        }
        this.emit('update', m, r.outcome);
        break;
      case 'route-refresh':
        if (this.fsm.state === 'Established') this.emit('routeRefresh', m.afi, m.safi);
        break;
    }
  }

  private checkOpen(m: OpenMessage): Notification | null {
    return validateOpen(m, {
      peerAs: this.cfg.peerAsn,
      localBgpId: this.cfg.routerId,
      localAs: this.cfg.localAsn,
    });
  }

  private onOpen(c: Conn, m: OpenMessage): void {
    if (this.fsm.state === 'OpenConfirm' && c.open === undefined) {
      // A connection promoted during a collision, its OPEN arriving now.
      const bad = this.checkOpen(m);
      if (bad) {
        this.dispatch({ type: 'MessageError', notification: bad });
        return;
      }
      c.open = m;
      this.adoptOpen(m);
      this.dispatch({ type: 'CollisionWon', holdTime: this.negotiated!.holdTimeSec });
      return;
    }
    if (this.fsm.state !== 'OpenSent') {
      this.dispatch({ type: 'MessageError', notification: { code: ErrorCode.FsmError, subcode: 0 } });
      return;
    }
    const bad = this.checkOpen(m);
    if (bad) {
      this.dispatch({ type: 'MessageError', notification: bad });
      return;
    }
    c.open = m;
    this.adoptOpen(m);
    this.dispatch({ type: 'BGPOpen', holdTime: this.negotiated!.holdTimeSec });
  }

  private adoptOpen(m: OpenMessage): void {
    this.negotiated = negotiate(this.localOpen, m, this.cfg.peerAsn === this.cfg.localAsn);
    this.codec = this.negotiated.codec;
    const rx = this.negotiated.receiveCodec;
    this.receiveCodec = this.cfg.ipv4Keys ? { ...rx, ipv4Keys: true } : rx;
  }

  private onCandidateMessage(c: Conn, m: BgpMessage): void {
    if (m.type !== 'open') {
      if (m.type === 'notification' || c.open === undefined) {
        this.candidate = null;
        this.closeConn(c);
      }
      return;
    }
    const bad = this.checkOpen(m);
    if (bad) {
      this.write(c, {
        type: 'notification',
        code: bad.code,
        subcode: bad.subcode,
        data: bad.data ?? new Uint8Array(0),
      });
      this.candidate = null;
      this.closeConn(c);
      return;
    }
    c.open = m;
    // RFC 4271 §6.8: the speaker with the higher BGP identifier keeps the connection it initiated.
    const localWins = ipNum(this.cfg.routerId) > ipNum(m.bgpId);
    const keepCandidate =
      this.fsm.state !== 'Established' &&
      (!this.conn || (c.outgoing === localWins && this.conn.outgoing !== localWins));
    if (!keepCandidate) {
      this.candidate = null;
      this.rejectCollision(c);
      return;
    }
    const old = this.conn;
    this.conn = c;
    this.candidate = null;
    if (old) this.rejectCollision(old);
    this.adoptOpen(m);
    this.dispatch({ type: 'CollisionWon', holdTime: this.negotiated!.holdTimeSec });
    if (c.queue.length > 0) this.drain(c);
  }

  private onMessageError(c: Conn, n: Notification, why: string): void {
    this.emit('log', 'warn', `${this.cfg.address}: ${why}`);
    if (c === this.candidate) {
      this.write(c, {
        type: 'notification',
        code: n.code,
        subcode: n.subcode,
        data: n.data ?? new Uint8Array(0),
      });
      this.candidate = null;
      this.closeConn(c);
      return;
    }
    if (c !== this.conn) return;
    this.lastError = why;
    this.dispatch(
      n.code === ErrorCode.UpdateMessage && this.fsm.state === 'Established'
        ? { type: 'UpdateMsgErr', notification: n }
        : { type: 'MessageError', notification: n },
    );
  }
}

function ipNum(dotted: string): number {
  const p = dotted.split('.').map(Number);
  return (((p[0]! << 24) >>> 0) + (p[1]! << 16) + (p[2]! << 8) + p[3]!) >>> 0;
}

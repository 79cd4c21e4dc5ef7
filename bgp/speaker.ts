// The Speaker: a BGP-4 router in a box. It owns the listener, one PeerSession per configured
// peer, the RIB, and the export machinery (Adj-RIB-Out per peer, UPDATE packing). This is the
// library's public face; it knows nothing of etcd, resources or the kernel.
import { EventEmitter } from 'node:events';
import net, { isIP } from 'node:net';
import { formatPrefix, parsePrefix } from '../lib/ip.js';
import {
  CeaseSubcode,
  ErrorCode,
  endOfRib,
  endOfRibFamily,
  type Nlri,
  packUpdates,
  type UpdateMessage,
  type UpdateOutcome,
} from './codec/index.js';
import { evaluatePolicy, type Policy } from './policy.js';
import {
  AttrInterner,
  asPathContains,
  formatCommunity,
  formatLargeCommunity,
  ORIGIN_IGP,
  parseCommunity,
  parseLargeCommunity,
  type RouteAttrs,
} from './rib/attrs.js';
import {
  applyExportPolicy,
  baseExportAttrs,
  type ExportTarget,
  type LocalSpeaker,
  prefixFamily,
} from './rib/export.js';
import { keyFamily, keyOfDecoded, type PrefixKey, PrefixMap, prefixKey, prefixText } from './rib/prefix.js';
import { makeSource, type RouteSource } from './rib/source.js';
import { type Path, Rib } from './rib/table.js';
import type { FsmState } from './session/fsm.js';
import { FAMILY_AFI, type FamilyName, familyOf, type Negotiated } from './session/negotiate.js';
import { PeerSession, type PeerSessionConfig, type SessionDown } from './session/peer.js';
import { realTimers, type TimerService } from './session/timers.js';

export type { FamilyName, FsmState, Policy, RouteAttrs };

export interface SpeakerLogger {
  info(obj: Record<string, unknown>, msg: string): void;
  warn(obj: Record<string, unknown>, msg: string): void;
}

export interface SpeakerConfig {
  routerId: string;
  asn: number;
  /** Where to accept sessions; false = never listen (every peer must be active). Default 0.0.0.0:179. */
  listen?: { host: string; port: number } | false;
  /** Set = this speaker is a route reflector with this cluster id (RFC 4456). */
  clusterId?: string;
  /** Announce graceful restart (RFC 4724) and act as helper for peers that do too. */
  gracefulRestart?: {
    restartTimeSec: number;
    /** How long a restarted peer's stale routes wait for its End-of-RIB. Default 360. */
    stalePathTimeSec?: number;
    /** We are coming back from a restart with forwarding state kept: set the R bit. */
    restarting?: boolean;
    /**
     * Restarting only: how long to defer sending routes while waiting for every peer's
     * End-of-RIB (RFC 4724 §4.1 selection deferral). Default: restartTimeSec.
     */
    deferralTimeSec?: number;
  };
  /** Multiple equal best paths (BIRD "merge paths"). */
  ecmp?: boolean;
  /** Next-hop-self addresses for the family the session does not run over. */
  nextHop4?: string;
  nextHop6?: string;
  logger?: SpeakerLogger;
  /** Injected clock (tests). */
  timers?: TimerService;
}

export interface PeerConfig {
  address: string;
  port?: number;
  asn: number;
  localAddress?: string;
  passive?: boolean;
  /** Offered hold time (default 90; 0 = none). */
  holdTimeSec?: number;
  /** Default hold/3 capped at 30. */
  keepaliveSec?: number;
  /** Default 5 (Calico's BIRD "connect retry time"). */
  connectRetrySec?: number;
  /** Idle-hold backoff after errors (default 1…30 s, doubling). */
  idleHoldMinSec?: number;
  idleHoldMaxSec?: number;
  /** Graceful-restart time we announce to this peer (default: the speaker's). */
  restartTimeSec?: number;
  rrClient?: boolean;
  families?: FamilyName[];
  nextHopSelf?: boolean;
  importPolicy?: Policy;
  exportPolicy?: Policy;
  /** Free label for status (e.g. "node-to-node mesh"). */
  type?: string;
  /**
   * Announce the extended message capability (RFC 8654, default true): with a peer that does too,
   * UPDATEs may be up to 65535 octets, so a big export takes ~16× fewer messages.
   */
  extendedMessage?: boolean;
}

export interface PeerStatus {
  address: string;
  asn: number;
  type: string;
  state: FsmState;
  /** ISO time of the last state change. */
  since: string;
  routerId: string;
  holdTimeSec: number;
  families: FamilyName[];
  prefixesReceived: number;
  prefixesAccepted: number;
  prefixesAdvertised: number;
  prefixesStale: number;
  updatesIn: number;
  updatesOut: number;
  flaps: number;
  lastError: string;
}

export interface BestRoute {
  prefix: string;
  family: 4 | 6;
  /** Several with ECMP. */
  nextHops: string[];
  attrs: RouteAttrs;
  /** Peer address, or "local" for announce()d routes. */
  fromPeer: string;
  local: boolean;
  stale: boolean;
}

export interface AnnounceAttrs {
  nextHop?: string;
  communities?: string[];
  largeCommunities?: string[];
  localPref?: number;
  med?: number;
}

export interface SpeakerEvents {
  routeChanged: [prefix: string, best: BestRoute | null];
  peerState: [address: string, from: FsmState, to: FsmState];
  endOfRib: [address: string, family: FamilyName];
  /** A restarting speaker's route selection deferral ended (RFC 4724 §4.1): End-of-RIB from all, or the timer. */
  selectionDeferralOver: [why: string];
}

export class SpeakerConfigError extends Error {
  constructor(
    readonly field: string,
    readonly reason: string,
  ) {
    super(`BGP speaker config ${field}: ${reason}`);
    this.name = 'SpeakerConfigError';
  }
}

interface PeerEntry {
  cfg: PeerConfig;
  session: PeerSession;
  source: RouteSource | null;
  target: ExportTarget | null;
  adjOut: PrefixMap<RouteAttrs>;
  /**
   * A FIFO of prefixes to re-evaluate for export (duplicates are harmless: a second look finds
   * Adj-RIB-Out already right). An array with a read index: a Set drained from the front costs
   * quadratic time in V8 (iteration skips the deleted entries).
   */
  pending: PrefixQueue;
  /** After a (re-)establishment: End-of-RIB still owed once the initial export is out. */
  eorOwed: FamilyName[];
  exporting: boolean;
  flaps: number;
  /** Families whose End-of-RIB arrived on the current session. */
  eorReceived: Set<FamilyName>;
  /** Graceful-restart helper timers. */
  restartTimer?: unknown;
  staleTimer?: unknown;
}

const DEFAULT_PORT = 179;
const EXPORT_CHUNK = 2000;
const WRITE_BACKLOG_HIGH = 4 * 1024 * 1024;

const noopLogger: SpeakerLogger = { info: () => {}, warn: () => {} };

const normAddr = (a: string) => (a.startsWith('::ffff:') ? a.slice(7) : a);

export class Speaker extends EventEmitter<SpeakerEvents> {
  private readonly rib: Rib;
  private readonly interner = new AttrInterner();
  private readonly peersByAddr = new Map<string, PeerEntry>();
  private readonly local: LocalSpeaker;
  private readonly localSource: RouteSource;
  private readonly log: SpeakerLogger;
  private readonly clock: TimerService;
  private server: net.Server | null = null;
  private dirty: PrefixKey[] = [];
  /** Beside each dirty prefix: the id of the source of its new best path ('' when none). */
  private dirtyFrom: string[] = [];
  private flushScheduled = false;
  private started = false;
  private restarting: boolean;
  /** Restarting speaker: routes are held back until every peer's End-of-RIB (or the deferral timer). */
  private deferring = false;
  private deferTimer: unknown;

  constructor(private readonly cfg: SpeakerConfig) {
    super();
    if (isIP(cfg.routerId) !== 4)
      throw new SpeakerConfigError('routerId', `"${cfg.routerId}" is not a dotted quad`);
    if (!Number.isInteger(cfg.asn) || cfg.asn < 1 || cfg.asn > 0xffffffff) {
      throw new SpeakerConfigError('asn', `${cfg.asn} is not an AS number`);
    }
    if (cfg.clusterId !== undefined && isIP(cfg.clusterId) !== 4) {
      throw new SpeakerConfigError('clusterId', `"${cfg.clusterId}" is not a dotted quad`);
    }
    this.log = cfg.logger ?? noopLogger;
    this.clock = cfg.timers ?? realTimers;
    this.restarting = cfg.gracefulRestart?.restarting ?? false;
    this.local = { asn: cfg.asn, routerId: cfg.routerId, clusterId: cfg.clusterId };
    this.localSource = makeSource({
      id: 'local',
      address: '',
      asn: cfg.asn,
      routerId: cfg.routerId,
      ibgp: false,
      local: true,
    });
    this.rib = new Rib({ ecmp: cfg.ecmp ?? false }, (prefix, best) => this.onBestChange(prefix, best));
  }

  // ---- lifecycle ----------------------------------------------------------------------------

  async start(): Promise<void> {
    if (this.started) return;
    this.started = true;
    const listen = this.cfg.listen === undefined ? { host: '0.0.0.0', port: DEFAULT_PORT } : this.cfg.listen;
    if (listen) {
      const server = net.createServer((sock) => this.onIncoming(sock));
      this.server = server;
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen({ host: listen.host, port: listen.port }, () => {
          server.off('error', reject);
          resolve();
        });
      });
      server.on('error', (e) => this.log.warn({ err: e.message }, 'BGP listener error'));
    }
    if (this.restarting && this.cfg.gracefulRestart) {
      this.deferring = true;
      const sec = this.cfg.gracefulRestart.deferralTimeSec ?? this.cfg.gracefulRestart.restartTimeSec;
      this.deferTimer = this.clock.set(() => this.endDeferral('deferral timer expired'), sec * 1000);
    }
    for (const p of this.peersByAddr.values()) p.session.start();
    if (this.restarting && this.cfg.gracefulRestart) {
      // The R bit belongs only to the OPENs right after a restart.
      this.clock.set(() => {
        this.restarting = false;
        for (const p of this.peersByAddr.values()) p.session.reconfigure(this.sessionConfig(p.cfg));
      }, this.cfg.gracefulRestart.restartTimeSec * 1000);
    }
  }

  /** The address actually listened on (port 0 in config = a free port). */
  listenAddress(): { host: string; port: number } | null {
    const a = this.server?.address();
    return a && typeof a === 'object' ? { host: a.address, port: a.port } : null;
  }

  /**
   * Stops every session and the listener. `graceful`: close connections without a NOTIFICATION,
   * so graceful-restart peers keep our routes while we are away (RFC 4724).
   */
  async stop(opts: { graceful?: boolean } = {}): Promise<void> {
    this.started = false;
    if (this.deferTimer !== undefined) this.clock.clear(this.deferTimer);
    this.deferring = false;
    for (const p of this.peersByAddr.values()) this.stopPeer(p, opts.graceful ?? false);
    const server = this.server;
    this.server = null;
    if (server) await new Promise<void>((r) => server.close(() => r()));
  }

  // ---- peers --------------------------------------------------------------------------------

  addPeer(cfg: PeerConfig): void {
    const address = normAddr(cfg.address);
    if (!isIP(address)) throw new SpeakerConfigError('peer.address', `"${cfg.address}" is not an IP address`);
    if (this.peersByAddr.has(address))
      throw new SpeakerConfigError('peer.address', `${address} is already a peer`);
    const c = { ...cfg, address };
    const session = new PeerSession(this.sessionConfig(c), this.clock);
    const p: PeerEntry = {
      cfg: c,
      session,
      source: null,
      target: null,
      adjOut: new PrefixMap(),
      pending: new PrefixQueue(),
      eorOwed: [],
      eorReceived: new Set(),
      exporting: false,
      flaps: 0,
    };
    this.peersByAddr.set(address, p);
    session.on('state', (from, to) => {
      this.log.info({ peer: address, from, to }, 'BGP session state');
      this.emit('peerState', address, from, to);
    });
    session.on('established', (n) => this.onEstablished(p, n));
    session.on('down', (d) => this.onDown(p, d));
    session.on('update', (m, o) => this.onUpdate(p, m, o));
    session.on('routeRefresh', (afi, safi) => this.onRouteRefresh(p, afi, safi));
    session.on('log', (level, msg) => this.log[level]({ peer: address }, msg));
    if (this.started) session.start();
  }

  /**
   * Applies a changed peer config. Only changes that alter the OPEN or the session's identity
   * (AS, port, addresses, passive, hold time, families, reflector client) reset the session;
   * policies, next-hop handling, timers and labels apply in place.
   */
  updatePeer(cfg: PeerConfig): void {
    const address = normAddr(cfg.address);
    const p = this.peersByAddr.get(address);
    if (!p) {
      this.addPeer(cfg);
      return;
    }
    const old = p.cfg;
    const next = { ...cfg, address };
    p.cfg = next;
    const resetNeeded =
      old.asn !== next.asn ||
      (old.port ?? DEFAULT_PORT) !== (next.port ?? DEFAULT_PORT) ||
      old.localAddress !== next.localAddress ||
      (old.passive ?? false) !== (next.passive ?? false) ||
      old.holdTimeSec !== next.holdTimeSec ||
      old.restartTimeSec !== next.restartTimeSec ||
      (old.rrClient ?? false) !== (next.rrClient ?? false) ||
      (old.extendedMessage ?? true) !== (next.extendedMessage ?? true) ||
      famKey(old.families) !== famKey(next.families);
    p.session.reconfigure(this.sessionConfig(next));
    if (resetNeeded) {
      this.log.info({ peer: address }, 'BGP peer changed: resetting session');
      p.session.reset();
      return;
    }
    if (old.importPolicy !== next.importPolicy && p.source) {
      const src = p.source;
      this.rib.reimport(src.id, (prefix, raw) => this.importAttrs(p, src, prefix, raw));
    }
    if ((old.exportPolicy !== next.exportPolicy || old.nextHopSelf !== next.nextHopSelf) && p.target) {
      p.target = this.exportTarget(p, p.session.info!);
      this.queueFullExport(p);
    }
  }

  removePeer(address: string): void {
    const p = this.peersByAddr.get(normAddr(address));
    if (!p) return;
    this.stopPeer(p, false, { code: ErrorCode.Cease, subcode: CeaseSubcode.PeerDeconfigured });
    this.peersByAddr.delete(p.cfg.address);
    this.rib.removeSource(p.cfg.address);
  }

  /** Asks the peer to re-send its routes (RFC 2918). False when it cannot (not established / no capability). */
  refresh(address: string): boolean {
    const p = this.peersByAddr.get(normAddr(address));
    const n = p?.session.info;
    if (!p || !n || p.session.state !== 'Established' || !n.routeRefresh) return false;
    for (const f of n.families) p.session.send({ type: 'route-refresh', ...FAMILY_AFI[f], subtype: 0 });
    return true;
  }

  peers(): PeerStatus[] {
    return [...this.peersByAddr.values()].map((p) => {
      const n = p.session.info;
      const counts = this.rib.countsOf(p.cfg.address);
      let stale = 0;
      if (p.restartTimer !== undefined || p.staleTimer !== undefined) {
        for (const [, path] of this.rib.adjRibIn(p.cfg.address)) if (path.stale) stale++;
      }
      return {
        address: p.cfg.address,
        asn: p.cfg.asn,
        type: p.cfg.type ?? '',
        state: p.session.state,
        since: new Date(p.session.since).toISOString(),
        routerId: n?.peerRouterId ?? '',
        holdTimeSec: p.session.state === 'Established' ? (n?.holdTimeSec ?? 0) : 0,
        families: p.session.state === 'Established' ? (n?.families ?? []) : [],
        prefixesReceived: counts.received,
        prefixesAccepted: counts.accepted,
        prefixesAdvertised: p.adjOut.size,
        prefixesStale: stale,
        updatesIn: p.session.updatesIn,
        updatesOut: p.session.updatesOut,
        flaps: p.flaps,
        lastError: p.session.lastError,
      };
    });
  }

  // ---- routes -------------------------------------------------------------------------------

  /** Originates `prefix` (replacing an earlier announcement of it). */
  announce(prefix: string, attrs: AnnounceAttrs = {}): void {
    const a: { -readonly [K in keyof RouteAttrs]: RouteAttrs[K] } = {
      origin: ORIGIN_IGP,
      asPath: [],
      nextHop: attrs.nextHop ?? '',
    };
    if (attrs.communities?.length) a.communities = attrs.communities.map(parseCommunity);
    if (attrs.largeCommunities?.length) a.largeCommunities = attrs.largeCommunities.map(parseLargeCommunity);
    if (attrs.localPref !== undefined) a.localPref = attrs.localPref;
    if (attrs.med !== undefined) a.med = attrs.med;
    const key = prefixKey(canonicalPrefix(prefix));
    const interned = this.interner.intern(a);
    this.rib.set(this.localSource, key, interned, interned);
  }

  withdraw(prefix: string): void {
    this.rib.remove('local', prefixKey(canonicalPrefix(prefix)));
  }

  /** Every announced prefix. */
  announced(): string[] {
    return [...this.rib.adjRibIn('local')].map(([p]) => prefixText(p));
  }

  locRib(): BestRoute[] {
    const out: BestRoute[] = [];
    for (const [prefix, best] of this.rib.bestRoutes()) out.push(toBestRoute(prefixText(prefix), best));
    return out;
  }

  /** Number of prefixes with a best path. */
  locRibSize(): number {
    return this.rib.bestCount;
  }

  /** One peer's Adj-RIB-In (pre-policy) with acceptance. */
  adjRibIn(address: string): Array<{ prefix: string; attrs: RouteAttrs; accepted: boolean; stale: boolean }> {
    return [...this.rib.adjRibIn(normAddr(address))].map(([prefix, p]) => ({
      prefix: prefixText(prefix),
      attrs: p.raw,
      accepted: p.attrs !== null,
      stale: p.stale,
    }));
  }

  /** What we advertised to one peer. */
  adjRibOut(address: string): Array<{ prefix: string; attrs: RouteAttrs }> {
    const p = this.peersByAddr.get(normAddr(address));
    return p ? [...p.adjOut].map(([prefix, attrs]) => ({ prefix: prefixText(prefix), attrs })) : [];
  }

  /** Resolves when every queued export has been handed to the sockets (tests, benchmarks). */
  async settled(): Promise<void> {
    for (;;) {
      const busy =
        (this.flushScheduled && !this.deferring) ||
        this.dirty.length > 0 ||
        [...this.peersByAddr.values()].some((p) => p.exporting || (!this.deferring && p.pending.size > 0));
      if (!busy) return;
      await new Promise((r) => setTimeout(r, 5));
    }
  }

  // ---- internals: sessions ------------------------------------------------------------------

  private sessionConfig(c: PeerConfig): PeerSessionConfig {
    const hold = c.holdTimeSec ?? 90;
    const gr = this.cfg.gracefulRestart;
    return {
      address: c.address,
      port: c.port ?? DEFAULT_PORT,
      localAddress: c.localAddress,
      peerAsn: c.asn,
      localAsn: this.cfg.asn,
      routerId: this.cfg.routerId,
      families: c.families ?? defaultFamilies(c.address),
      passive: c.passive ?? false,
      holdTimeSec: hold,
      keepaliveSec: c.keepaliveSec ?? Math.min(30, Math.max(1, Math.floor(hold / 3))),
      connectRetrySec: c.connectRetrySec ?? 5,
      idleHoldMinSec: c.idleHoldMinSec ?? 1,
      idleHoldMaxSec: c.idleHoldMaxSec ?? 30,
      errorForgetSec: 60,
      ipv4Keys: true,
      extendedMessage: c.extendedMessage ?? true,
      gracefulRestart: gr
        ? {
            restartTimeSec: c.restartTimeSec ?? gr.restartTimeSec,
            restarting: this.restarting,
            forwardingPreserved: true,
          }
        : undefined,
    };
  }

  private stopPeer(p: PeerEntry, graceful: boolean, notification?: { code: number; subcode: number }): void {
    this.clearGrTimers(p);
    if (graceful) p.session.stopSilently();
    else p.session.stop(notification);
  }

  private onIncoming(sock: net.Socket): void {
    sock.on('error', () => {}); // a reset before we look at it must not crash the process
    const p = this.peersByAddr.get(normAddr(sock.remoteAddress ?? ''));
    if (!p) {
      this.log.info({ from: sock.remoteAddress }, 'BGP connection from an unknown address refused');
      sock.destroy();
      return;
    }
    p.session.incoming(sock);
  }

  private exportTarget(p: PeerEntry, n: Negotiated): ExportTarget {
    const la = p.session.localAddress;
    const fam = isIP(la);
    return {
      id: p.cfg.address,
      asn: n.peerAsn,
      ibgp: n.peerAsn === this.cfg.asn,
      rrClient: p.cfg.rrClient ?? false,
      routerId: n.peerRouterId,
      nextHopSelf: p.cfg.nextHopSelf ?? false,
      selfNextHop4: fam === 4 ? la : (this.cfg.nextHop4 ?? ''),
      selfNextHop6: fam === 6 ? la : (this.cfg.nextHop6 ?? ''),
      policy: p.cfg.exportPolicy,
    };
  }

  private onEstablished(p: PeerEntry, n: Negotiated): void {
    this.log.info(
      { peer: p.cfg.address, routerId: n.peerRouterId, hold: n.holdTimeSec, families: n.families },
      'BGP session established',
    );
    p.source = makeSource({
      id: p.cfg.address,
      address: p.cfg.address,
      asn: n.peerAsn,
      routerId: n.peerRouterId,
      ibgp: n.peerAsn === this.cfg.asn,
      rrClient: p.cfg.rrClient ?? false,
    });
    p.target = this.exportTarget(p, n);
    p.adjOut.clear();
    // Graceful restart helper: the peer is back. Families it no longer preserves go now; the
    // rest wait for its End-of-RIB (or the stale timer).
    if (p.restartTimer !== undefined) {
      this.clock.clear(p.restartTimer);
      p.restartTimer = undefined;
      const kept = new Set(
        (n.peerGracefulRestart?.families ?? []).filter((f) => f.forwardingPreserved).map((f) => f.family),
      );
      this.rib.sweepStale(p.cfg.address, (prefix) => !kept.has(familyOfKey(prefix)));
      const staleSec = this.cfg.gracefulRestart?.stalePathTimeSec ?? 360;
      p.staleTimer = this.clock.set(() => {
        p.staleTimer = undefined;
        const n2 = this.rib.sweepStale(p.cfg.address);
        if (n2 > 0)
          this.log.info({ peer: p.cfg.address, routes: n2 }, 'stale routes dropped: no End-of-RIB in time');
      }, staleSec * 1000);
    }
    p.eorOwed = [...n.families];
    p.eorReceived.clear();
    this.queueFullExport(p);
    this.checkDeferral();
  }

  /** Selection deferral ends when every peer has sent End-of-RIB (peers without GR send none). */
  private checkDeferral(): void {
    if (!this.deferring) return;
    for (const p of this.peersByAddr.values()) {
      const n = p.session.info;
      if (p.session.state !== 'Established' || !n) return;
      if (n.peerGracefulRestart && n.families.some((f) => !p.eorReceived.has(f))) return;
    }
    this.endDeferral('End-of-RIB from every peer');
  }

  private endDeferral(why: string): void {
    if (!this.deferring) return;
    this.deferring = false;
    if (this.deferTimer !== undefined) this.clock.clear(this.deferTimer);
    this.deferTimer = undefined;
    this.log.info({ why }, 'graceful restart: route selection deferral over, advertising');
    this.emit('selectionDeferralOver', why);
    for (const p of this.peersByAddr.values()) if (p.target) this.runExport(p);
  }

  private onDown(p: PeerEntry, d: SessionDown): void {
    p.flaps++;
    p.source = null;
    p.target = null;
    p.adjOut.clear();
    p.pending.clear();
    p.eorOwed = [];
    this.log.warn({ peer: p.cfg.address, reason: d.reason, graceful: d.graceful }, 'BGP session down');
    const gr = d.negotiated.peerGracefulRestart;
    if (d.graceful && gr && d.negotiated.localGracefulRestart && this.started) {
      const kept = new Set(gr.families.map((f) => f.family));
      this.rib.removeSource(p.cfg.address, (prefix) => !kept.has(familyOfKey(prefix)));
      if (p.staleTimer !== undefined) this.clock.clear(p.staleTimer);
      p.staleTimer = undefined;
      const n = this.rib.markStale(p.cfg.address);
      this.log.info(
        { peer: p.cfg.address, routes: n, restartTimeSec: gr.restartTimeSec },
        'graceful restart: keeping routes as stale',
      );
      if (p.restartTimer !== undefined) this.clock.clear(p.restartTimer);
      p.restartTimer = this.clock.set(() => {
        p.restartTimer = undefined;
        const m = this.rib.sweepStale(p.cfg.address);
        this.log.info({ peer: p.cfg.address, routes: m }, 'graceful restart: peer did not come back in time');
      }, gr.restartTimeSec * 1000);
      return;
    }
    this.clearGrTimers(p);
    this.rib.removeSource(p.cfg.address);
  }

  private clearGrTimers(p: PeerEntry): void {
    if (p.restartTimer !== undefined) this.clock.clear(p.restartTimer);
    if (p.staleTimer !== undefined) this.clock.clear(p.staleTimer);
    p.restartTimer = undefined;
    p.staleTimer = undefined;
  }

  // ---- internals: receiving -----------------------------------------------------------------

  private importAttrs(p: PeerEntry, src: RouteSource, prefix: PrefixKey, raw: RouteAttrs): RouteAttrs | null {
    // Loop checks: our AS in an eBGP path (RFC 4271 §9.1.2), our router id as ORIGINATOR_ID or
    // our cluster id in CLUSTER_LIST on iBGP (RFC 4456 §8).
    if (!src.ibgp && asPathContains(raw.asPath, this.cfg.asn)) return null;
    if (src.ibgp) {
      if (raw.originatorId === this.cfg.routerId) return null;
      if (this.cfg.clusterId && raw.clusterList?.includes(this.cfg.clusterId)) return null;
    }
    if (p.cfg.importPolicy === undefined) return raw;
    const out = evaluatePolicy(p.cfg.importPolicy, prefixText(prefix), raw, {
      family: keyFamily(prefix),
      peerIbgp: src.ibgp,
      local: false,
      selfNextHop: '',
      originalNextHop: raw.nextHop,
    });
    if (out === null || out === raw) return out;
    return this.interner.intern(out);
  }

  private onUpdate(p: PeerEntry, m: UpdateMessage, outcome: UpdateOutcome): void {
    const src = p.source;
    if (!src) return;
    const id = p.cfg.address;
    const eor = endOfRibFamily(m);
    if (eor) {
      const fam = familyOf(eor.afi, eor.safi);
      if (fam) {
        const n = this.rib.sweepStale(id, (prefix) => familyOfKey(prefix) === fam);
        if (n > 0) this.log.info({ peer: id, family: fam, routes: n }, 'End-of-RIB: stale routes dropped');
        p.eorReceived.add(fam);
        this.emit('endOfRib', id, fam);
        this.checkDeferral();
      }
      return;
    }
    if (outcome.kind === 'treat-as-withdraw') {
      for (const x of outcome.withdrawn) this.rib.remove(id, keyOfDecoded(x.family, x.prefix));
      return;
    }
    const a = m.attributes;
    // The session decodes the classic IPv4 fields as prefix keys (ipv4Keys); Nlri objects come
    // in MP_REACH / MP_UNREACH, and in the classic fields only when ADD-PATH is received.
    for (const k of m.withdrawnKeys ?? []) this.rib.remove(id, k);
    for (const x of m.withdrawn) this.rib.remove(id, keyOfDecoded(x.family, x.prefix));
    if (a.mpUnreach) for (const x of a.mpUnreach.nlri) this.rib.remove(id, keyOfDecoded(x.family, x.prefix));
    const { mpReach, mpUnreach: _u, ...rest } = a;
    const base = { ...rest, origin: a.origin ?? ORIGIN_IGP, asPath: a.asPath ?? [] };
    const v4 = m.nlriKeys ?? keysOf(m.nlri);
    if (v4.length > 0) this.install(p, src, 4, v4, { ...base, nextHop: a.nextHop ?? '' });
    if (mpReach && mpReach.nlri.length > 0) {
      const family = mpReach.nlri[0]!.family;
      this.install(p, src, family, keysOf(mpReach.nlri), { ...base, nextHop: mpReach.nextHop });
    }
  }

  /** Installs one UPDATE field's prefixes (all of `family`) with one attribute set. */
  private install(
    p: PeerEntry,
    src: RouteSource,
    family: 4 | 6,
    prefixes: readonly PrefixKey[],
    attrs: RouteAttrs,
  ): void {
    // One field carries one family: check negotiation once, not per prefix.
    const negotiated = p.session.info?.families ?? [];
    if (!negotiated.includes(family === 4 ? 'ipv4-unicast' : 'ipv6-unicast')) return;
    const raw = this.interner.intern(attrs);
    if (p.cfg.importPolicy === undefined) {
      // Without an import policy the result depends only on the attributes (loop checks): decide
      // it once for the whole UPDATE.
      const accepted = this.importAttrs(p, src, prefixes[0]!, raw);
      this.rib.setMany(src, prefixes, raw, () => accepted);
      return;
    }
    this.rib.setMany(src, prefixes, raw, (prefix) => this.importAttrs(p, src, prefix, raw));
  }

  private onRouteRefresh(p: PeerEntry, afi: number, safi: number): void {
    const fam = familyOf(afi, safi);
    if (!fam || !p.target) return;
    this.log.info({ peer: p.cfg.address, family: fam }, 'route refresh requested: re-sending Adj-RIB-Out');
    for (const prefix of [...p.adjOut.keys()]) {
      if (familyOfKey(prefix) === fam) {
        p.adjOut.delete(prefix);
        p.pending.push(prefix);
      }
    }
    this.runExport(p);
  }

  // ---- internals: exporting -----------------------------------------------------------------

  private onBestChange(prefix: PrefixKey, best: readonly Path[]): void {
    if (this.listenerCount('routeChanged') > 0) {
      const text = prefixText(prefix);
      this.emit('routeChanged', text, best.length > 0 ? toBestRoute(text, best) : null);
    }
    // Only peers being exported to care (a peer that comes up later gets a full export anyway),
    // and not the peer the new best came from unless we had advertised the prefix to it.
    const from = best[0]?.source.id ?? '';
    if (!this.exportWanted(prefix, from)) return;
    this.dirty.push(prefix);
    this.dirtyFrom.push(from);
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(() => this.flush());
    }
  }

  /** Whether a best-path change (new best from `from`) may change what some peer is sent. */
  private exportWanted(prefix: PrefixKey, from: string): boolean {
    for (const p of this.peersByAddr.values()) {
      if (p.target && (p.cfg.address !== from || p.adjOut.has(prefix))) return true;
    }
    return false;
  }

  private flush(): void {
    this.flushScheduled = false;
    const dirty = this.dirty;
    const from = this.dirtyFrom;
    this.dirty = [];
    this.dirtyFrom = [];
    for (const p of this.peersByAddr.values()) {
      if (!p.target) continue;
      // A best path learned from this very peer is never sent back to it (RFC 4271 §9.1.3); if we
      // have not advertised the prefix to it either, there is nothing to do. That skips the
      // whole table for the peer a full feed comes from.
      const self = p.cfg.address;
      const none = p.adjOut.size === 0;
      for (let i = 0; i < dirty.length; i++) {
        const prefix = dirty[i]!;
        if (from[i] === self && (none || !p.adjOut.has(prefix))) continue;
        p.pending.push(prefix);
      }
      this.runExport(p);
    }
  }

  private queueFullExport(p: PeerEntry): void {
    for (const prefix of this.rib.bestPrefixes()) p.pending.push(prefix);
    for (const prefix of p.adjOut.keys()) p.pending.push(prefix);
    this.runExport(p);
  }

  /** Works through a peer's pending prefixes in chunks, packing UPDATEs by shared attributes. */
  private runExport(p: PeerEntry): void {
    if (p.exporting || this.deferring) return;
    p.exporting = true;
    setImmediate(() => this.exportChunk(p));
  }

  private exportChunk(p: PeerEntry): void {
    const target = p.target;
    const n = p.session.info;
    if (!target || !n || p.session.state !== 'Established') {
      p.exporting = false;
      return;
    }
    if (p.session.writeBacklog > WRITE_BACKLOG_HIGH) {
      this.clock.set(() => this.exportChunk(p), 5);
      return;
    }
    const families = new Set(n.families);
    const groups = new Map<RouteAttrs, Nlri[]>();
    const withdraw: Nlri[] = [];
    const memo = new Map<RouteAttrs, Map<string, RouteAttrs | null>>();
    let done = 0;
    for (let prefix = p.pending.shift(); prefix !== undefined; prefix = p.pending.shift()) {
      const family = keyFamily(prefix);
      if (!families.has(family === 4 ? 'ipv4-unicast' : 'ipv6-unicast')) continue;
      const best = this.rib.bestPath(prefix);
      let out: RouteAttrs | null = null;
      if (best?.attrs) {
        // Memoised per (attributes, source, family): interning is the costly part.
        let bySource = memo.get(best.attrs);
        if (!bySource) {
          bySource = new Map();
          memo.set(best.attrs, bySource);
        }
        const k = `${best.source.id}|${family}`;
        let base = bySource.get(k);
        if (base === undefined) {
          const b = baseExportAttrs(family, best, target, this.local);
          base = b === null ? null : this.interner.intern(b);
          bySource.set(k, base);
        }
        if (base !== null) {
          out = applyExportPolicy(prefixText(prefix), base, best, target);
          if (out !== null && out !== base) out = this.interner.intern(out);
        }
      }
      const had = p.adjOut.get(prefix);
      if (out === (had ?? null)) {
        if (++done >= EXPORT_CHUNK) break;
        continue;
      }
      if (out) {
        p.adjOut.set(prefix, out);
        let g = groups.get(out);
        if (!g) {
          g = [];
          groups.set(out, g);
        }
        g.push({ family, prefix: prefixText(prefix) });
      } else {
        p.adjOut.delete(prefix);
        withdraw.push({ family, prefix: prefixText(prefix) });
      }
      if (++done >= EXPORT_CHUNK) break;
    }
    try {
      const codec = n.codec;
      if (withdraw.length > 0) {
        for (const m of packUpdates({ attributes: {}, announce: [], withdraw }, codec)) p.session.send(m);
      }
      for (const [attrs, nlri] of groups) {
        const v6 = nlri[0]!.family === 6;
        const { nextHop, ...rest } = attrs;
        const msgs = v6
          ? packUpdates({ attributes: rest, announce: nlri, withdraw: [], ipv6NextHop: { nextHop } }, codec)
          : packUpdates({ attributes: attrs, announce: nlri, withdraw: [] }, codec);
        for (const m of msgs) p.session.send(m);
      }
    } catch (e) {
      this.log.warn({ peer: p.cfg.address, err: (e as Error).message }, 'cannot encode UPDATE');
    }
    if (p.pending.size > 0) {
      setImmediate(() => this.exportChunk(p));
      return;
    }
    for (const f of p.eorOwed) p.session.send(endOfRib(FAMILY_AFI[f]));
    p.eorOwed = [];
    p.exporting = false;
  }
}

class PrefixQueue {
  private items: PrefixKey[] = [];
  private head = 0;

  get size(): number {
    return this.items.length - this.head;
  }

  push(p: PrefixKey): void {
    this.items.push(p);
  }

  shift(): PrefixKey | undefined {
    if (this.head >= this.items.length) {
      if (this.items.length > 0) this.clear();
      return undefined;
    }
    const p = this.items[this.head++];
    // Drop the consumed front now and then so the array does not grow forever.
    if (this.head > 4096 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    return p;
  }

  clear(): void {
    this.items = [];
    this.head = 0;
  }
}

function famKey(f: FamilyName[] | undefined): string {
  return f ? [...f].sort().join(',') : '';
}

function defaultFamilies(address: string): FamilyName[] {
  return isIP(address) === 6 ? ['ipv6-unicast'] : ['ipv4-unicast'];
}

function keysOf(nlri: readonly Nlri[]): PrefixKey[] {
  return nlri.map((x) => keyOfDecoded(x.family, x.prefix));
}

function familyOfKey(prefix: PrefixKey): FamilyName {
  return keyFamily(prefix) === 4 ? 'ipv4-unicast' : 'ipv6-unicast';
}

export class PrefixError extends Error {
  constructor(readonly input: string) {
    super(`invalid prefix "${input}"`);
    this.name = 'PrefixError';
  }
}

/** Canonical text of a prefix (host bits must be clear), RFC 5952 form for IPv6. */
function canonicalPrefix(text: string): string {
  try {
    return formatPrefix(parsePrefix(text));
  } catch {
    throw new PrefixError(text);
  }
}

function toBestRoute(prefix: string, best: readonly Path[]): BestRoute {
  const b = best[0]!;
  return {
    prefix,
    family: prefixFamily(prefix),
    nextHops: best.map((p) => p.attrs!.nextHop),
    attrs: b.attrs!,
    fromPeer: b.source.id,
    local: b.source.local,
    stale: b.stale,
  };
}

/** Communities of a route in text form (for status / tests). */
export function routeCommunities(a: RouteAttrs): string[] {
  return [
    ...(a.communities ?? []).map(formatCommunity),
    ...(a.largeCommunities ?? []).map(formatLargeCommunity),
  ];
}

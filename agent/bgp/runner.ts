// Runs this node's BGP speaker from the store: watches Node / BGPConfiguration / BGPPeer / IPPool
// resources and the IPAM blocks, computes the desired peers and announcements (config.ts, pure),
// and applies the difference to a running Speaker — unaffected sessions are never restarted.
// It publishes the speaker's status to the store (`gingham node status` reads it from anywhere),
// exports per-peer Prometheus metrics, and hands learned best routes to the agent's route driver.
import { Gauge, type Registry } from 'prom-client';
import { type PeerConfig, type PeerStatus, Speaker, type SpeakerLogger } from '../../bgp/index.js';
import { blockPrefix } from '../../ipam/model.js';
import type {
  KvEvent,
  KvWatchHandlers,
  ResourceEvent,
  WatchHandle,
  WatchHandlers,
} from '../../store/index.js';
import { blockInput } from '../calc/inputs.js';
import type { LearnedRoute } from '../calc/model.js';
import {
  BgpConfigError,
  type BgpConfigSpec,
  type BgpNode,
  type BgpPeerSpec,
  type BgpPool,
  type BlockInfo,
  computeAnnouncements,
  computeBgpConfig,
  type DesiredSpeaker,
} from './config.js';

export const BGP_STATUS_PREFIX = '/gingham/status/bgp/';
export const bgpStatusKey = (node: string): string => `${BGP_STATUS_PREFIX}${node}`;

/** What the runner needs of the store (EtcdStore satisfies it). */
export interface BgpStore {
  watch(
    kinds: Array<'Node' | 'BGPConfiguration' | 'BGPPeer' | 'IPPool'>,
    handlers: WatchHandlers,
  ): WatchHandle;
  kvWatch(prefix: string, handlers: KvWatchHandlers): WatchHandle;
  kvPut(key: string, value: string): Promise<bigint>;
}

export interface BgpLogger extends SpeakerLogger {
  error(obj: Record<string, unknown>, msg: string): void;
}

export interface BgpRunnerOptions {
  nodeName: string;
  store: BgpStore;
  logger: BgpLogger;
  /** Per-peer metrics are registered here. */
  registry?: Registry;
  /** Learned best routes (not our own), whenever they change. */
  onLearned?: (routes: LearnedRoute[]) => void;
  /**
   * After a graceful restart: every peer has sent End-of-RIB (or the deferral timer ran out), and
   * onLearned has been called with the re-learned set.
   */
  onRelearned?: () => void;
  /** A dedicated route reflector: announces nothing, reports no learned routes. */
  reflectorOnly?: boolean;
  /** Listen address (default: all addresses, like BIRD without bindMode). */
  listenHost?: string;
  /** Status refresh period (default 10 s; changes of session state are published at once). */
  statusIntervalMs?: number;
  /** Announce graceful restart; `restarting` sets the R bit after an agent restart. */
  gracefulRestart?: { restartTimeSec: number; restarting?: boolean };
}

/** What `/gingham/status/bgp/<node>` holds. The CLI projects the documented JSON shape from it. */
export interface BgpStatusDoc {
  node: string;
  updated: string;
  routerId: string;
  asn: number;
  peers: Array<
    Pick<
      PeerStatus,
      | 'address'
      | 'asn'
      | 'state'
      | 'since'
      | 'prefixesReceived'
      | 'prefixesAccepted'
      | 'prefixesAdvertised'
      | 'lastError'
      | 'flaps'
    > & { type: string }
  >;
}

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);
const str = (v: unknown): string | undefined => (typeof v === 'string' && v !== '' ? v : undefined);
const num = (v: unknown): number | undefined => (typeof v === 'number' ? v : undefined);
const noSlash = (a: string | undefined) => a?.split('/')[0];

export function nodeFromResource(
  name: string,
  labels: Record<string, string> | undefined,
  spec: unknown,
): BgpNode {
  const s = isObj(spec) ? spec : {};
  const bgp = isObj(s.bgp) ? s.bgp : {};
  return {
    name,
    labels: labels ?? {},
    ipv4: noSlash(str(bgp.ipv4Address)),
    ipv6: noSlash(str(bgp.ipv6Address)),
    asNumber: num(bgp.asNumber),
    routeReflectorClusterID: str(bgp.routeReflectorClusterID),
  };
}

export function poolFromResource(spec: unknown): BgpPool | null {
  const s = isObj(spec) ? spec : {};
  const cidr = str(s.cidr);
  if (!cidr) return null;
  return { cidr, disabled: s.disabled === true, disableBGPExport: s.disableBGPExport === true };
}

const STATE_NUM = { Idle: 0, Connect: 1, Active: 2, OpenSent: 3, OpenConfirm: 4, Established: 5 } as const;

export class BgpRunner {
  private speaker: Speaker | null = null;
  private speakerKey = '';
  private readonly peerKeys = new Map<string, { key: string; cfg: PeerConfig }>();
  private announced = new Set<string>();
  private readonly nodes = new Map<string, BgpNode>();
  private readonly configs = new Map<string, BgpConfigSpec>();
  private readonly peers = new Map<string, BgpPeerSpec>();
  private readonly pools = new Map<string, BgpPool>();
  private readonly blocks = new Map<string, BlockInfo>();
  private resInSync = false;
  private ipamInSync = false;
  private watches: WatchHandle[] = [];
  private applyTimer: NodeJS.Timeout | null = null;
  private learnedTimer: NodeJS.Timeout | null = null;
  /**
   * A restarting speaker defers route selection (RFC 4724 §4.1) until every peer's End-of-RIB.
   * Until then its Loc-RIB is partial (one ECMP path of two, say) and must not reach the kernel,
   * which still forwards on the routes preserved across the restart.
   */
  private selectionDeferred = false;
  private statusTimer: NodeJS.Timeout | null = null;
  private statusSoon: NodeJS.Timeout | null = null;
  private applying: Promise<void> = Promise.resolve();
  private stopped = false;
  private desired: DesiredSpeaker | null = null;

  constructor(private readonly opts: BgpRunnerOptions) {
    if (opts.registry) this.registerMetrics(opts.registry);
  }

  /** The running speaker (null until the store is in sync and this node has a usable Node). */
  get current(): Speaker | null {
    return this.speaker;
  }

  start(): void {
    const res: WatchHandlers = {
      onEvents: (evs) => this.onResourceEvents(evs),
      onInSync: () => {
        this.resInSync = true;
        this.scheduleApply();
      },
      onOutOfSync: (e) =>
        this.opts.logger.warn({ err: e.message }, 'store watch lost; BGP keeps running as configured'),
    };
    this.watches.push(this.opts.store.watch(['Node', 'BGPConfiguration', 'BGPPeer', 'IPPool'], res));
    if (this.opts.reflectorOnly) this.ipamInSync = true;
    else {
      const prefix = blockPrefix(4).replace(/ipv4\/block\/$/, '');
      this.watches.push(
        this.opts.store.kvWatch(prefix, {
          onEvents: (evs) => this.onBlockEvents(evs),
          onInSync: () => {
            this.ipamInSync = true;
            this.scheduleApply();
          },
        }),
      );
    }
    this.statusTimer = setInterval(() => void this.publishStatus(), this.opts.statusIntervalMs ?? 10_000);
    this.statusTimer.unref();
  }

  /** `graceful`: drop sessions without NOTIFICATION so peers keep our routes (agent restart). */
  async stop(opts: { graceful?: boolean } = {}): Promise<void> {
    this.stopped = true;
    for (const t of [this.applyTimer, this.learnedTimer, this.statusSoon]) if (t) clearTimeout(t);
    if (this.statusTimer) clearInterval(this.statusTimer);
    await Promise.all(this.watches.splice(0).map((w) => w.close()));
    await this.applying;
    await this.speaker?.stop(opts);
    this.speaker = null;
  }

  // ---- store input ---------------------------------------------------------------------------

  private onResourceEvents(evs: ResourceEvent[]): void {
    for (const e of evs) {
      if (e.type === 'deleted') {
        const name = e.key.name;
        if (e.kind === 'Node') this.nodes.delete(name);
        else if (e.kind === 'BGPConfiguration') this.configs.delete(name);
        else if (e.kind === 'BGPPeer') this.peers.delete(name);
        else if (e.kind === 'IPPool') this.pools.delete(name);
        continue;
      }
      const r = e.resource;
      const name = r.metadata.name;
      if (e.kind === 'Node') this.nodes.set(name, nodeFromResource(name, r.metadata.labels, r.spec));
      else if (e.kind === 'BGPConfiguration')
        this.configs.set(name, (isObj(r.spec) ? r.spec : {}) as BgpConfigSpec);
      else if (e.kind === 'BGPPeer') this.peers.set(name, (isObj(r.spec) ? r.spec : {}) as BgpPeerSpec);
      else if (e.kind === 'IPPool') {
        const p = poolFromResource(r.spec);
        if (p) this.pools.set(name, p);
        else this.pools.delete(name);
      }
    }
    this.scheduleApply();
  }

  private onBlockEvents(evs: KvEvent[]): void {
    for (const e of evs) {
      if (!e.key.includes('/block/')) continue;
      if (e.type === 'delete' || !e.value) {
        this.blocks.delete(e.key);
        continue;
      }
      try {
        const b = blockInput(JSON.parse(e.value.toString('utf8')));
        if (b) this.blocks.set(e.key, b);
      } catch {
        this.opts.logger.warn({ key: e.key }, 'IPAM block is not JSON; ignored');
      }
    }
    this.scheduleApply();
  }

  private scheduleApply(): void {
    if (this.stopped || !this.resInSync || !this.ipamInSync || this.applyTimer) return;
    // Coalesce a burst of events into one apply.
    this.applyTimer = setTimeout(() => {
      this.applyTimer = null;
      this.applying = this.applying
        .then(() => this.apply())
        .catch((e: unknown) => {
          this.opts.logger.error(
            { err: (e as Error).message },
            'applying BGP configuration failed; will retry',
          );
          setTimeout(() => this.scheduleApply(), 2000).unref();
        });
    }, 20);
  }

  // ---- applying --------------------------------------------------------------------------------

  private async apply(): Promise<void> {
    if (this.stopped) return;
    let d: DesiredSpeaker;
    try {
      d = computeBgpConfig({
        nodeName: this.opts.nodeName,
        nodes: this.nodes,
        configs: this.configs,
        peers: this.peers,
        pools: [...this.pools.values()],
      });
    } catch (e) {
      if (!(e instanceof BgpConfigError)) throw e;
      // Fail static: whatever runs keeps running.
      this.opts.logger.warn({ err: e.message }, 'BGP not (re)configured');
      return;
    }
    for (const p of d.problems) this.opts.logger.warn({}, p);
    this.desired = d;
    const me = this.nodes.get(this.opts.nodeName)!;
    const key = JSON.stringify([d.speaker, me.ipv4, me.ipv6, this.opts.listenHost]);
    if (!this.speaker || key !== this.speakerKey) {
      if (this.speaker) {
        this.opts.logger.info({ speaker: d.speaker }, 'BGP identity changed: restarting the speaker');
        await this.speaker.stop();
      }
      const s = new Speaker({
        routerId: d.speaker.routerId,
        asn: d.speaker.asn,
        clusterId: d.speaker.clusterId,
        // '::' also takes IPv4 connections, but only where the kernel has IPv6.
        listen: { host: this.opts.listenHost ?? (me.ipv6 ? '::' : '0.0.0.0'), port: d.speaker.listenPort },
        gracefulRestart: this.opts.gracefulRestart,
        // The agent installs every equal-cost path as one multipath route; a reflector has no kernel.
        ecmp: !this.opts.reflectorOnly,
        nextHop4: me.ipv4,
        nextHop6: me.ipv6,
        logger: this.opts.logger,
      });
      s.on('peerState', () => this.statusChanged());
      if (!this.opts.reflectorOnly) s.on('routeChanged', () => this.learnedChanged());
      this.selectionDeferred = this.opts.gracefulRestart?.restarting === true;
      s.once('selectionDeferralOver', () => {
        this.selectionDeferred = false;
        if (this.opts.onLearned && !this.opts.reflectorOnly) this.opts.onLearned(learnedRoutes(s));
        this.opts.onRelearned?.();
      });
      this.speaker = null;
      this.peerKeys.clear();
      this.announced = new Set();
      // Announce before any session comes up, so a restarting speaker's first UPDATEs
      // (and its End-of-RIB) already carry the full set.
      this.applyAnnouncements(s);
      await s.start(); // throws when the port is taken: apply() is retried
      this.speaker = s;
      this.speakerKey = key;
    } else {
      this.applyAnnouncements(this.speaker);
    }
    this.applyPeers(this.speaker!, d.peers);
    this.statusChanged();
  }

  private applyAnnouncements(s: Speaker): void {
    if (this.opts.reflectorOnly) return;
    const want = new Set(
      computeAnnouncements(this.opts.nodeName, this.blocks.values(), [...this.pools.values()]),
    );
    for (const p of this.announced) if (!want.has(p)) s.withdraw(p);
    for (const p of want) if (!this.announced.has(p)) s.announce(p);
    this.announced = want;
  }

  private applyPeers(s: Speaker, peers: PeerConfig[]): void {
    const seen = new Set<string>();
    for (const cfg of peers) {
      seen.add(cfg.address);
      const key = JSON.stringify(cfg);
      const old = this.peerKeys.get(cfg.address);
      if (old?.key === key) continue;
      // Keep policy object identity when the content is unchanged (no needless re-export).
      const next = { ...cfg };
      if (old && JSON.stringify(old.cfg.exportPolicy) === JSON.stringify(cfg.exportPolicy))
        next.exportPolicy = old.cfg.exportPolicy;
      if (old && JSON.stringify(old.cfg.importPolicy) === JSON.stringify(cfg.importPolicy))
        next.importPolicy = old.cfg.importPolicy;
      if (old) s.updatePeer(next);
      else s.addPeer(next);
      this.peerKeys.set(cfg.address, { key, cfg: next });
    }
    for (const address of [...this.peerKeys.keys()]) {
      if (seen.has(address)) continue;
      s.removePeer(address);
      this.peerKeys.delete(address);
    }
  }

  // ---- outputs -------------------------------------------------------------------------------

  private learnedChanged(): void {
    if (!this.opts.onLearned || this.learnedTimer) return;
    this.learnedTimer = setTimeout(() => {
      this.learnedTimer = null;
      const s = this.speaker;
      if (!s || !this.opts.onLearned || this.selectionDeferred) return;
      this.opts.onLearned(learnedRoutes(s));
    }, 20);
  }

  private statusChanged(): void {
    if (this.statusSoon) return;
    this.statusSoon = setTimeout(() => {
      this.statusSoon = null;
      void this.publishStatus();
    }, 100);
  }

  statusDoc(): BgpStatusDoc | null {
    const s = this.speaker;
    const d = this.desired;
    if (!s || !d) return null;
    return {
      node: this.opts.nodeName,
      updated: new Date().toISOString(),
      routerId: d.speaker.routerId,
      asn: d.speaker.asn,
      peers: s.peers().map((p) => ({
        address: p.address,
        asn: p.asn,
        type: p.type,
        state: p.state,
        since: p.since,
        prefixesReceived: p.prefixesReceived,
        prefixesAccepted: p.prefixesAccepted,
        prefixesAdvertised: p.prefixesAdvertised,
        flaps: p.flaps,
        lastError: p.lastError,
      })),
    };
  }

  private async publishStatus(): Promise<void> {
    const doc = this.statusDoc();
    if (!doc || this.stopped) return;
    try {
      await this.opts.store.kvPut(bgpStatusKey(this.opts.nodeName), JSON.stringify(doc));
    } catch (e) {
      this.opts.logger.warn({ err: (e as Error).message }, 'cannot publish BGP status');
    }
  }

  private registerMetrics(registry: Registry): void {
    const peers = () => this.speaker?.peers() ?? [];
    const mk = (name: string, help: string, labelNames: string[], fill: (g: Gauge) => void) =>
      new Gauge({
        name,
        help,
        labelNames,
        registers: [registry],
        collect() {
          this.reset();
          fill(this);
        },
      });
    mk(
      'gingham_bgp_peer_state',
      'BGP session state: 0 Idle, 1 Connect, 2 Active, 3 OpenSent, 4 OpenConfirm, 5 Established',
      ['peer', 'type'],
      (g) => {
        for (const p of peers()) g.set({ peer: p.address, type: p.type }, STATE_NUM[p.state]);
      },
    );
    mk(
      'gingham_bgp_peer_flaps',
      'Times the session left Established since the speaker started',
      ['peer'],
      (g) => {
        for (const p of peers()) g.set({ peer: p.address }, p.flaps);
      },
    );
    mk(
      'gingham_bgp_peer_prefixes',
      'Prefixes per peer: received (Adj-RIB-In), accepted (after import policy), advertised (Adj-RIB-Out)',
      ['peer', 'kind'],
      (g) => {
        for (const p of peers()) {
          g.set({ peer: p.address, kind: 'received' }, p.prefixesReceived);
          g.set({ peer: p.address, kind: 'accepted' }, p.prefixesAccepted);
          g.set({ peer: p.address, kind: 'advertised' }, p.prefixesAdvertised);
        }
      },
    );
    mk(
      'gingham_bgp_peer_updates',
      'UPDATE messages per peer and direction (in, out) since the speaker started',
      ['peer', 'direction'],
      (g) => {
        for (const p of peers()) {
          g.set({ peer: p.address, direction: 'in' }, p.updatesIn);
          g.set({ peer: p.address, direction: 'out' }, p.updatesOut);
        }
      },
    );
    mk(
      'gingham_bgp_peer_last_error_info',
      'The last error of a peer session (value 1; the text is the error label)',
      ['peer', 'error'],
      (g) => {
        for (const p of peers()) if (p.lastError) g.set({ peer: p.address, error: p.lastError }, 1);
      },
    );
    mk('gingham_bgp_routes', 'Routes in the Loc-RIB (best paths)', [], (g) => {
      g.set(this.speaker?.locRibSize() ?? 0);
    });
  }
}

/** The speaker's learned (not locally originated) best routes as kernel route inputs. */
export function learnedRoutes(s: Speaker): LearnedRoute[] {
  return s
    .locRib()
    .filter((r) => !r.local)
    .map((r) => ({ prefix: r.prefix, nextHops: r.nextHops.map((via) => ({ via, onlink: true })) }));
}

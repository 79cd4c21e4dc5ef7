// The per-node agent (Felix's role): store watch → pure calculation → dataplane drivers.
//
//   store.watch(Node, IPPool, WorkloadEndpoint, FelixConfiguration) ─┐
//   store.kvWatch(IPAM blocks) ──────────────────────────────────────┼─► in-memory model
//   learned routes (BGP seam: setLearnedRoutes) ─────────────────────┘        │ computeDesired (pure)
//                                                                             ▼
//                            Dataplane.apply(desired, {full}) — links, sysctls, routes, neighbours
//
// Principles: the kernel is touched only after the store is in sync (never from a partial
// snapshot); losing etcd leaves the dataplane as it is (fail static) and the agent not-ready;
// every resync diffs against a dump, so a restart changes nothing that was right.
import { createHash } from 'node:crypto';
import type { Server } from 'node:http';
import type { Logger } from 'pino';
import { blockPrefix } from '../ipam/model.js';
import { WORKLOAD_GATEWAY_V4 } from '../lib/constants.js';
import {
  AlreadyExistsError,
  CALICO_API_VERSION,
  ConflictError,
  type EtcdStore,
  type ResourceEvent,
} from '../store/index.js';
import { durationMs } from '../store/schemas/common.js';
import {
  type AutodetectMethod,
  detectAddress,
  type HostAddress,
  hasGatewayRoute,
  hostAddresses,
  parseMethod,
} from './autodetect.js';
import { computeDesired, newCalcCache } from './calc/desired.js';
import { blockInput, endpointInput, endpointNode, nodeInput, poolInput } from './calc/inputs.js';
import {
  type BlockInput,
  type CalcInput,
  DEFAULT_SETTINGS,
  type DesiredState,
  type EndpointInput,
  type LearnedRoute,
  type NodeInput,
  type PoolInput,
  type Problem,
  type RemoteRouteSource,
} from './calc/model.js';
import { Dataplane } from './dataplane/index.js';
import { ipipSupported, isOwnedLink } from './dataplane/links.js';
import { LinkMonitor } from './dataplane/monitor.js';
import { POLICY_KINDS, PolicyWorker } from './dataplane/nft.js';
import type { KernelRoute } from './dataplane/routes.js';
import { serve } from './http.js';
import { AgentMetrics } from './metrics.js';

export const STATUS_PREFIX = '/gingham/status/';
export const endpointStatusKey = (node: string, wepName: string): string =>
  `${STATUS_PREFIX}endpoints/${node}/${wepName}`;
export const nodeStatusKey = (node: string): string => `${STATUS_PREFIX}nodes/${node}`;
const IPAM_ASSIGNMENT_PREFIX = blockPrefix(4).replace(/ipv4\/block\/$/, '');
const DEFAULT_REFRESH_MS = 90_000;

export interface AgentOptions {
  nodeName: string;
  store: EtcdStore;
  logger: Logger;
  /** Explicit IPv4 address (optionally with /len); otherwise autodetected. */
  ip?: string;
  ip6?: string;
  autodetect: string;
  metricsAddr: string;
  healthAddr?: string;
  remoteRoutes: RemoteRouteSource;
  /** Program policy and natOutgoing through the policy compiler's nftables table (default true). */
  policy?: boolean;
  /** Log level for the policy worker thread (the main logger is passed in). */
  logLevel?: string;
  /** Overrides FelixConfiguration routeRefreshInterval (tests). */
  routeRefreshMs?: number;
  /**
   * After a restart with BGP on: keep the gateway routes of ours already in the kernel (learned
   * before the restart) until BGP has re-learned its routes (releaseLearnedRoutes), so a restart
   * does not delete and re-add them (RFC 4724: forwarding state is retained while restarting).
   */
  holdLearnedRoutes?: boolean;
}

/** A route via a gateway (learned, static or tunnel), as opposed to a local or blackhole route. */
export function isGatewayRoute(r: KernelRoute): boolean {
  return r.type === 'unicast' && (r.via !== undefined || (r.multipath?.length ?? 0) > 0);
}

/** Deterministic locally administered VTEP MAC: stable across restarts without stored state. */
export function vtepMacFor(node: string, family: 4 | 6): string {
  const h = createHash('sha1').update(`gingham-vtep-${family}-${node}`).digest();
  h[0] = (h[0]! & 0xfe) | 0x02;
  return [...h.subarray(0, 6)].map((b) => b.toString(16).padStart(2, '0')).join(':');
}

export class Agent {
  readonly metrics = new AgentMetrics();
  private readonly log: Logger;
  private readonly store: EtcdStore;
  private readonly dataplane: Dataplane;
  private readonly monitor: LinkMonitor;
  private readonly policy: PolicyWorker | null;
  private nftTimer: NodeJS.Timeout | null = null;
  private servers: Server[] = [];
  private watches: Array<{ close(): Promise<void> }> = [];
  private refreshTimer: NodeJS.Timeout | null = null;
  private retryTimer: NodeJS.Timeout | null = null;

  // ---- model ----
  private readonly nodes = new Map<string, NodeInput>();
  private readonly pools = new Map<string, PoolInput>();
  private readonly endpoints = new Map<string, EndpointInput>();
  private readonly blocks = new Map<string, BlockInput>();
  private readonly felix = new Map<string, unknown>();
  private learned: LearnedRoute[] = [];
  private holdLearned: boolean;
  private uplink4: HostAddress | null = null;
  private uplink6: HostAddress | null = null;
  private readonly ipipOk = ipipSupported();

  // ---- sync state ----
  private resInSync = false;
  private ipamInSync = false;
  private firstSyncDone = false;
  private lastRevision = 0n;
  private applying = false;
  private scheduled = false;
  /** Something changed since the last apply started. */
  private dirty = false;
  private wantFull = true;
  private wantLinks = false;
  private errorBackoffMs = 500;
  /** Endpoint key → time its latest event arrived (for the programming-latency histogram). */
  private readonly pendingSince = new Map<string, number>();
  private readonly published = new Map<string, bigint>();
  private problems: Problem[] = [];
  private unreadyPools = new Set<string>();
  private lastDesired: DesiredState | null = null;
  /**
   * Per-endpoint and per-block memo for the calculation; remoteVersion invalidates block entries.
   * In place: an endpoint event updates the last desired state rather than copying it (no copy of
   * thousands of entries per event; lastDesired is that same object).
   */
  private readonly calcCache = newCalcCache({ inPlace: true });
  private remoteVersion = 0;
  private blocksVersion = 0;
  private stopped = false;
  private tunnelBusy = false;
  private nodeWrites: Promise<void> = Promise.resolve();

  constructor(private readonly opts: AgentOptions) {
    this.log = opts.logger;
    this.store = opts.store;
    this.holdLearned = opts.holdLearnedRoutes ?? false;
    this.dataplane = new Dataplane({
      onSocketReset: (why) => {
        this.log.warn({ err: why.message }, 'netlink socket reset; full resync');
        this.metrics.errors.inc({ driver: 'netlink' });
        this.schedule({ full: true });
      },
      onInvalid: (err) => this.log.warn({ err: String(err) }, 'netlink: invalid message or listener error'),
    });
    this.monitor = new LinkMonitor({
      onLinkChange: () => this.schedule({ links: true }),
      onLost: (why) => {
        this.log.warn({ err: why.message }, 'link monitor lost events; full resync');
        this.schedule({ full: true });
      },
      onInvalid: (err) => this.log.warn({ err: String(err) }, 'link monitor: invalid message'),
    });
    this.metrics.ipipSupported.set(this.ipipOk ? 1 : 0);
    this.policy =
      opts.policy === false
        ? null
        : new PolicyWorker(opts.nodeName, opts.logLevel ?? 'info', {
            onError: (err) => {
              this.metrics.errors.inc({ driver: 'nft' });
              this.log.error(
                { driver: 'nft', err: err.message },
                'nftables update failed; previous ruleset stays in force',
              );
            },
            onApplied: (r) => {
              if (r.mode !== 'noop') this.log.debug({ nft: r }, 'nftables applied');
            },
          });
  }

  get ready(): boolean {
    return this.firstSyncDone && this.resInSync && this.ipamInSync;
  }

  /** The BGP seam: the speaker hands over its best routes; they become kernel routes. */
  setLearnedRoutes(routes: LearnedRoute[]): void {
    if (this.log.isLevelEnabled('debug'))
      this.log.debug(
        { routes: routes.slice(0, 20).map((r) => `${r.prefix} ${r.nextHops.map((h) => h.via).join(',')}`) },
        'learned routes from BGP',
      );
    this.learned = routes;
    this.schedule({});
  }

  /** BGP has re-learned its routes after a restart: routes no longer desired may now go. */
  releaseLearnedRoutes(): void {
    if (!this.holdLearned) return;
    this.holdLearned = false;
    this.log.info('BGP routes re-learned; stale learned routes may now be removed');
    // Full: every kernel route must be compared again now that the held ones may go.
    this.schedule({ full: true });
  }

  async start(): Promise<void> {
    const health = () => ({
      live: !this.stopped,
      ready: this.ready,
      unreadyPools: [...this.unreadyPools],
      detail: {
        node: this.opts.nodeName,
        firstSyncDone: this.firstSyncDone,
        storeInSync: this.resInSync && this.ipamInSync,
        problems: this.problems,
        unreadyPools: [...this.unreadyPools],
      },
    });
    const metrics = async () => ({
      contentType: this.metrics.registry.contentType,
      body: await this.metrics.registry.metrics(),
    });
    const same = this.opts.healthAddr === undefined || this.opts.healthAddr === this.opts.metricsAddr;
    this.servers.push(await serve(this.opts.metricsAddr, same ? { metrics, health } : { metrics }));
    if (!same) this.servers.push(await serve(this.opts.healthAddr!, { health }));

    await this.detectHost();
    this.monitor.start();
    void this.registerNode();
    this.startWatches();
  }

  private async detectHost(): Promise<void> {
    const method: AutodetectMethod = this.opts.ip
      ? { kind: 'explicit', ip: this.opts.ip }
      : parseMethod(this.opts.autodetect);
    this.uplink4 = await detectAddress(method, 4);
    const m6: AutodetectMethod = this.opts.ip6
      ? { kind: 'explicit', ip: this.opts.ip6 }
      : method.kind === 'explicit'
        ? { kind: 'first-found' }
        : method;
    this.uplink6 = await detectAddress(m6, 6);
    this.remoteVersion++;
    if (!this.uplink4 && !this.uplink6) {
      this.log.error(
        { method: this.opts.ip ?? this.opts.autodetect },
        'no node address found; remote routing disabled',
      );
    } else {
      this.log.info({ ipv4: this.uplink4, ipv6: this.uplink6 }, 'node address detected');
    }
  }

  // ---- node registration ----

  private async registerNode(): Promise<void> {
    let delay = 500;
    while (!this.stopped) {
      try {
        await this.updateNode((spec) => {
          const bgp = { ...((spec.bgp as Record<string, unknown>) ?? {}) };
          if (this.uplink4) bgp.ipv4Address = this.uplink4.cidr;
          if (this.uplink6) bgp.ipv6Address = this.uplink6.cidr;
          spec.bgp = bgp;
          return spec;
        });
        this.log.info({ node: this.opts.nodeName }, 'node registered');
        return;
      } catch (e) {
        this.log.warn({ err: (e as Error).message, retryMs: delay }, 'node registration failed; retrying');
        await new Promise((r) => setTimeout(r, delay));
        delay = Math.min(delay * 2, 10_000);
      }
    }
  }

  /**
   * Read-modify-write of our Node, serialized and compare-and-swapped on its resourceVersion (two
   * writers in this process, and `gingham` users, must not overwrite each other's fields).
   */
  private updateNode(edit: (spec: Record<string, unknown>) => Record<string, unknown>): Promise<void> {
    const next = this.nodeWrites.then(() => this.updateNodeOnce(edit));
    this.nodeWrites = next.catch(() => undefined);
    return next;
  }

  private async updateNodeOnce(
    edit: (spec: Record<string, unknown>) => Record<string, unknown>,
  ): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      const cur = await this.store.tryGet('Node', this.opts.nodeName);
      const before = JSON.stringify(cur?.spec ?? null);
      const spec = edit(structuredClone((cur?.spec as Record<string, unknown>) ?? {}));
      const addrs = (await hostAddresses()).filter((a) => !isOwnedLink(a.ifname));
      spec.addresses = addrs.map((a) => ({
        address: a.cidr,
        type: a.cidr === this.uplink4?.cidr || a.cidr === this.uplink6?.cidr ? 'CalicoNodeIP' : 'InternalIP',
      }));
      if (JSON.stringify(spec) === before) return;
      try {
        if (cur) await this.store.update({ ...cur, spec });
        else
          await this.store.create({
            apiVersion: CALICO_API_VERSION,
            kind: 'Node',
            metadata: { name: this.opts.nodeName },
            spec,
          });
        return;
      } catch (e) {
        if (attempt < 5 && (e instanceof ConflictError || e instanceof AlreadyExistsError)) continue;
        throw e;
      }
    }
  }

  /**
   * VXLAN in use and our Node lacks a tunnel address/MAC for that family: allocate one through IPAM
   * from the VXLAN pools, as Calico does (handles `vxlan-tunnel-addr-<node>` and
   * `vxlan-v6-tunnel-addr-<node>`, use Tunnel), and write it with the VTEP MAC to our Node.
   */
  private async ensureTunnel(): Promise<void> {
    if (this.tunnelBusy || this.stopped) return;
    const self = this.nodes.get(this.opts.nodeName);
    if (!self) return;
    const wanted = ([4, 6] as const)
      .map((family) => ({
        family,
        pools: [...this.pools.values()].filter(
          (p) => p.vxlanMode !== 'Never' && !p.disabled && p.cidr.includes(':') === (family === 6),
        ),
        have:
          family === 4
            ? Boolean(self.ipv4VXLANTunnelAddr && self.vxlanTunnelMACAddr)
            : Boolean(self.ipv6VXLANTunnelAddr && self.vxlanTunnelMACAddrV6),
      }))
      .filter((w) => w.pools.length > 0 && !w.have);
    if (wanted.length === 0) return;
    this.tunnelBusy = true;
    try {
      for (const w of wanted) await this.allocateTunnel(w.family, self, w.pools);
    } finally {
      this.tunnelBusy = false;
    }
  }

  private async allocateTunnel(family: 4 | 6, self: NodeInput, pools: PoolInput[]): Promise<void> {
    const addrField = family === 4 ? 'ipv4VXLANTunnelAddr' : 'ipv6VXLANTunnelAddr';
    const macField = family === 4 ? 'vxlanTunnelMACAddr' : 'vxlanTunnelMACAddrV6';
    try {
      let addr = self[addrField];
      if (!addr) {
        const { EtcdLite, etcdTlsFromEnv } = await import('../ipam/etcd-lite.js');
        const { Allocator } = await import('../ipam/allocator.js');
        // The TLS files the store was opened with ($ETCD_*), for the same etcd.
        const kv = new EtcdLite(this.opts.store.endpoints, undefined, etcdTlsFromEnv());
        try {
          const alloc = new Allocator(kv, { node: this.opts.nodeName });
          const handleId = `${family === 4 ? 'vxlan-tunnel-addr' : 'vxlan-v6-tunnel-addr'}-${this.opts.nodeName}`;
          const have = await alloc.addressesOf(handleId);
          addr =
            have.find((a) => a.includes(':') === (family === 6)) ??
            (
              await alloc.assign({
                handleId,
                num4: family === 4 ? 1 : 0,
                num6: family === 6 ? 1 : 0,
                use: 'Tunnel',
                ...(family === 4
                  ? { ipv4Pools: pools.map((p) => p.name) }
                  : { ipv6Pools: pools.map((p) => p.name) }),
                attrs: { type: family === 4 ? 'vxlanTunnelAddress' : 'vxlanV6TunnelAddress' },
              })
            ).ips[0];
        } finally {
          kv.close(); // its keep-alive sockets would outlive this one-off allocation
        }
      }
      if (!addr) throw new Error('IPAM returned no address');
      const tunnelAddr = addr;
      await this.updateNode((spec) => ({
        ...spec,
        [addrField]: tunnelAddr,
        [macField]: (spec[macField] as string | undefined) ?? vtepMacFor(this.opts.nodeName, family),
      }));
      this.log.info({ family, tunnelAddr }, 'VXLAN tunnel address registered');
    } catch (e) {
      this.log.warn(
        { family, err: (e as Error).message },
        'VXLAN tunnel address allocation failed; retrying at next resync',
      );
    }
  }

  // ---- store watches ----

  private startWatches(): void {
    this.watches.push(
      this.store.watch(
        ['Node', 'IPPool', 'WorkloadEndpoint', 'FelixConfiguration', ...(this.policy ? POLICY_KINDS : [])],
        {
          onEvents: (events) => this.onResourceEvents(events),
          onInSync: (rev) => {
            this.resInSync = true;
            this.noteRevision(rev);
            this.log.info({ revision: String(rev) }, 'resources in sync');
            this.metrics.storeInSync.set(this.ipamInSync ? 1 : 0);
            this.resetRefreshTimer();
            this.schedule({ full: true });
            this.schedulePolicy(true);
            void this.ensureTunnel();
          },
          onOutOfSync: (err) => this.onOutOfSync(err),
        },
        // Nothing here reads a deleted object's previous value: do not keep 100k values for it.
        { previous: false },
      ),
      this.store.kvWatch(IPAM_ASSIGNMENT_PREFIX, {
        onEvents: (events) => {
          this.metrics.watchEvents.inc({ source: 'ipam' }, events.length);
          this.blocksVersion++;
          for (const ev of events) {
            this.noteRevision(ev.modRevision);
            if (ev.type === 'delete' || !ev.value) {
              this.blocks.delete(ev.key);
              continue;
            }
            let b: BlockInput | null = null;
            try {
              b = blockInput(JSON.parse(ev.value.toString('utf8')));
            } catch {
              b = null;
            }
            if (b) this.blocks.set(ev.key, b);
            else this.log.warn({ key: ev.key }, 'unparseable IPAM block ignored');
          }
          this.schedule({});
        },
        onInSync: (rev) => {
          this.ipamInSync = true;
          this.noteRevision(rev);
          this.metrics.storeInSync.set(this.resInSync ? 1 : 0);
          this.schedule({ full: true });
        },
        onOutOfSync: (err) => this.onOutOfSync(err),
      }),
    );
  }

  private onOutOfSync(err: Error): void {
    if (this.resInSync || this.ipamInSync) {
      this.log.warn({ err: err.message }, 'lost etcd; keeping the dataplane as it is (not ready)');
    }
    this.resInSync = false;
    this.ipamInSync = false;
    this.metrics.storeInSync.set(0);
    this.updateReadyMetric();
  }

  private noteRevision(rev: bigint): void {
    if (rev > this.lastRevision) this.lastRevision = rev;
  }

  private onResourceEvents(events: ResourceEvent[]): void {
    this.metrics.watchEvents.inc({ source: 'resources' }, events.length);
    const now = performance.now();
    let selfChanged = false;
    let poolsChanged = false;
    for (const ev of events) {
      this.noteRevision(ev.revision);
      const name = ev.type === 'deleted' ? ev.key.name : ev.resource.metadata.name;
      switch (ev.kind) {
        case 'Node':
          this.remoteVersion++;
          if (ev.type === 'deleted') this.nodes.delete(name);
          else this.nodes.set(name, nodeInput(name, ev.resource.spec));
          if (name === this.opts.nodeName) selfChanged = true;
          break;
        case 'IPPool': {
          const p = ev.type === 'deleted' ? null : poolInput(name, ev.resource.spec);
          if (p) this.pools.set(name, p);
          else this.pools.delete(name);
          poolsChanged = true;
          this.remoteVersion++;
          break;
        }
        case 'FelixConfiguration':
          if (ev.type === 'deleted') this.felix.delete(name);
          else this.felix.set(name, ev.resource.spec);
          this.remoteVersion++;
          this.resetRefreshTimer();
          break;
        case 'WorkloadEndpoint': {
          const ns = (ev.type === 'deleted' ? ev.key.namespace : ev.resource.metadata.namespace) ?? '';
          const key = `${ns}/${name}`;
          if (ev.type === 'deleted') {
            if (this.endpoints.delete(key)) this.pendingSince.set(key, now);
            break;
          }
          // Only this node's endpoints are kept: with 100k remote endpoints the rest is dropped here.
          if (endpointNode(ev.resource.spec) !== this.opts.nodeName) {
            if (this.endpoints.delete(key)) this.pendingSince.set(key, now);
            break;
          }
          const ep = endpointInput(key, name, ns, ev.resource.spec, ev.revision);
          if (ep) {
            this.endpoints.set(key, ep);
            // Latency is measured for changes, not for the snapshot at start (that is the resync time).
            this.pendingSince.set(key, this.firstSyncDone ? now : Number.NaN);
          }
          break;
        }
        default:
          break;
      }
    }
    if ((selfChanged || poolsChanged) && this.resInSync) void this.ensureTunnel();
    this.schedule({});
    if (this.policy?.onEvents(events) || poolsChanged) this.schedulePolicy(false);
  }

  /** Policy follows the store only when in sync: a partial snapshot could be more open than the truth. */
  private schedulePolicy(full: boolean): void {
    if (!this.policy || !this.resInSync || this.stopped) return;
    this.policy.setPools([...this.pools.values()]);
    this.policy.schedule(full);
  }

  private settings(): { refreshMs: number; calc: CalcInput['settings'] } {
    const global = (this.felix.get('default') ?? {}) as Record<string, unknown>;
    const perNode = (this.felix.get(`node.${this.opts.nodeName}`) ?? {}) as Record<string, unknown>;
    const get = <T>(k: string): T | undefined => (perNode[k] ?? global[k]) as T | undefined;
    const refresh = get<string>('routeRefreshInterval');
    let refreshMs = this.opts.routeRefreshMs ?? DEFAULT_REFRESH_MS;
    if (this.opts.routeRefreshMs === undefined && refresh) {
      try {
        refreshMs = durationMs(refresh);
      } catch {
        refreshMs = DEFAULT_REFRESH_MS;
      }
    }
    return {
      refreshMs: Math.max(refreshMs, 1000),
      calc: {
        ...DEFAULT_SETTINGS,
        vxlanVNI: get<number>('vxlanVNI') ?? DEFAULT_SETTINGS.vxlanVNI,
        vxlanPort: get<number>('vxlanPort') ?? DEFAULT_SETTINGS.vxlanPort,
        vxlanMTU: get<number>('vxlanMTU') ?? DEFAULT_SETTINGS.vxlanMTU,
        vxlanMTUV6: get<number>('vxlanMTUV6') ?? DEFAULT_SETTINGS.vxlanMTUV6,
        remoteRouteSource: this.opts.remoteRoutes,
      },
    };
  }

  private resetRefreshTimer(): void {
    if (this.refreshTimer) clearInterval(this.refreshTimer);
    const { refreshMs } = this.settings();
    this.refreshTimer = setInterval(() => this.schedule({ full: true }), refreshMs);
    this.refreshTimer.unref();
    if (this.nftTimer) clearInterval(this.nftTimer);
    this.nftTimer = setInterval(() => this.schedulePolicy(true), Math.max(refreshMs * 2, 2000));
    this.nftTimer.unref();
  }

  // ---- the apply loop ----

  /** Coalesces requests: events arriving while an apply runs are folded into the next one. */
  private schedule(what: { full?: boolean; links?: boolean }): void {
    if (what.full) this.wantFull = true;
    if (what.links) this.wantLinks = true;
    this.dirty = true;
    if (this.scheduled || this.applying || this.stopped) return;
    this.scheduled = true;
    setImmediate(() => void this.runApply());
  }

  private calcInput(): CalcInput {
    const self = this.nodes.get(this.opts.nodeName) ?? {
      name: this.opts.nodeName,
      ipv4Address: this.uplink4?.cidr,
      ipv6Address: this.uplink6?.cidr,
    };
    return {
      nodeName: this.opts.nodeName,
      self,
      nodes: this.nodes,
      pools: [...this.pools.values()],
      blocks: [...this.blocks.values()],
      endpoints: [...this.endpoints.values()],
      learned: this.learned,
      settings: this.settings().calc,
      host: { uplinkV4: this.uplink4?.ifname, uplinkV6: this.uplink6?.ifname, ipipSupported: this.ipipOk },
      remoteVersion: this.remoteVersion,
      blocksVersion: this.blocksVersion,
    };
  }

  private async runApply(): Promise<void> {
    this.scheduled = false;
    // Never program from a partial snapshot: wait until both watches are in sync.
    if (!this.resInSync || !this.ipamInSync || this.stopped || this.applying) return;
    this.dirty = false;
    this.applying = true;
    const full = this.wantFull;
    const links = this.wantLinks;
    this.wantFull = false;
    this.wantLinks = false;
    const revision = this.lastRevision;
    const started = new Map(this.pendingSince);
    try {
      if (full) {
        this.metrics.resyncs.inc();
        void this.ensureTunnel(); // retries a failed tunnel address allocation
      }
      const tCalc = performance.now();
      const desired = computeDesired(this.calcInput(), this.calcCache);
      const calcMs = performance.now() - tCalc;
      this.lastDesired = desired;
      const report = await this.dataplane.apply(desired, {
        full,
        linksChanged: links,
        ipipOk: this.ipipOk,
        keepRoute: this.holdLearned ? isGatewayRoute : undefined,
        // After an endpoint-only change the calculation knows which routes changed: an endpoint
        // add compares one route, not thousands.
        changedRoutes: this.calcCache.changedRoutes ?? undefined,
      });
      const seconds = report.durationMs / 1000;
      this.metrics.applyDuration.observe(seconds);
      if (full) this.metrics.resyncDuration.observe(seconds);
      this.recordWrites(report);
      const problems = [...desired.problems];
      if (full && this.endpoints.size > 0 && !(await hasGatewayRoute(WORKLOAD_GATEWAY_V4))) {
        problems.push({
          code: 'no-gateway-route',
          subject: WORKLOAD_GATEWAY_V4,
          message: `no route covers ${WORKLOAD_GATEWAY_V4}: proxy ARP will not answer for it and workloads cannot reach their gateway (add a default route)`,
        });
      } else if (!full) {
        problems.push(...this.problems.filter((p) => p.code === 'no-gateway-route'));
      }
      this.setProblems(problems, desired.unreadyPools);
      if (report.errors.length > 0) {
        for (const e of report.errors) {
          this.metrics.errors.inc({ driver: e.driver });
          this.log.error(
            { driver: e.driver, err: e.message },
            'dataplane apply error; full resync scheduled',
          );
        }
        const delay = this.errorBackoffMs;
        this.errorBackoffMs = Math.min(this.errorBackoffMs * 2, 30_000);
        if (this.retryTimer) clearTimeout(this.retryTimer);
        this.retryTimer = setTimeout(() => this.schedule({ full: true }), delay);
      } else {
        this.errorBackoffMs = 500;
        if (full) {
          const firstTime = !this.firstSyncDone;
          this.firstSyncDone = true;
          if (firstTime) {
            this.log.info(
              {
                durationMs: Math.round(report.durationMs),
                phaseMs: report.phaseMs,
                routes: desired.routes.size,
                usedBatch: report.routes.usedBatch,
              },
              'first full sync applied',
            );
          }
        }
        this.metrics.appliedRevision.set(Number(revision));
      }
      if (
        report.durationMs > 0 &&
        (report.routes.added + report.routes.deleted + report.linkChanges.length > 0 || full) &&
        this.log.isLevelEnabled('debug')
      ) {
        // Wall-clock marks (ms since the epoch, sub-ms) so a benchmark in another process can
        // place the event's arrival, the calculation and the route write on its own timeline.
        let arrived = Number.POSITIVE_INFINITY;
        for (const t of started.values()) if (t < arrived) arrived = t;
        const at = (t: number) => Math.round((performance.timeOrigin + t) * 1000) / 1000;
        const routesDone = tCalc + calcMs + (report.phaseMs.links ?? 0) + (report.phaseMs.routes ?? 0);
        this.log.debug(
          {
            full,
            routes: report.routes,
            links: report.linkChanges,
            ms: report.durationMs,
            calcMs,
            phaseMs: report.phaseMs,
            ...(started.size > 0 && started.size <= 4 ? { keys: [...started.keys()] } : {}),
            ...(Number.isFinite(arrived) ? { arrivedAt: at(arrived) } : {}),
            calcStartAt: at(tCalc),
            routesDoneAt: at(routesDone),
          },
          'applied',
        );
      }
      this.afterApply(desired, new Set(report.pendingRoutes), started, report.errors.length === 0);
      const byKind: Record<string, number> = {};
      for (const r of desired.routes.values()) byKind[r.kind] = (byKind[r.kind] ?? 0) + 1;
      this.metrics.routes.reset();
      for (const [kind, n] of Object.entries(byKind)) this.metrics.routes.set({ kind }, n);
      this.metrics.pendingRoutes.set(report.pendingRoutes.length);
      this.metrics.localEndpoints.set(this.endpoints.size);
    } catch (e) {
      this.metrics.errors.inc({ driver: 'agent' });
      this.log.error({ err: (e as Error).message, stack: (e as Error).stack }, 'apply failed');
      this.wantFull = true;
    } finally {
      this.applying = false;
      // Events that arrived during the apply are folded into one more pass.
      if (this.dirty && !this.scheduled && !this.stopped) {
        this.scheduled = true;
        setImmediate(() => void this.runApply());
      }
      this.updateReadyMetric();
      let oldest = Number.POSITIVE_INFINITY;
      for (const t of this.pendingSince.values()) if (t < oldest) oldest = t;
      this.metrics.watchLag.set(Number.isFinite(oldest) ? (performance.now() - oldest) / 1000 : 0);
    }
  }

  private recordWrites(r: Awaited<ReturnType<Dataplane['apply']>>): void {
    const w = this.metrics.kernelWrites;
    if (r.routes.added) w.inc({ driver: 'routes', op: 'add' }, r.routes.added);
    if (r.routes.replaced) w.inc({ driver: 'routes', op: 'replace' }, r.routes.replaced);
    if (r.routes.deleted) w.inc({ driver: 'routes', op: 'delete' }, r.routes.deleted);
    if (r.neighbours.written) w.inc({ driver: 'neighbours', op: 'replace' }, r.neighbours.written);
    if (r.neighbours.deleted) w.inc({ driver: 'neighbours', op: 'delete' }, r.neighbours.deleted);
    if (r.sysctlsWritten) w.inc({ driver: 'sysctls', op: 'write' }, r.sysctlsWritten);
    if (r.linkChanges.length) w.inc({ driver: 'links', op: 'change' }, r.linkChanges.length);
  }

  /** Latency metric and "programmed" status for endpoints whose state is now in the kernel. */
  private afterApply(
    desired: DesiredState,
    pending: Set<string>,
    started: Map<string, number>,
    ok: boolean,
  ): void {
    const now = performance.now();
    for (const [key, t] of started) {
      const ep = this.endpoints.get(key);
      if (ep) {
        if (!ok || ep.ipNetworks.some((n) => pending.has(n))) continue;
        if (!desired.workloadIfaces.has(ep.interfaceName)) continue;
      }
      if (Object.is(this.pendingSince.get(key), t)) this.pendingSince.delete(key);
      if (!Number.isNaN(t)) this.metrics.endpointLatency.observe((now - t) / 1000);
      if (ep) this.publishEndpoint(ep);
      else this.unpublishEndpoint(key);
    }
  }

  private publishEndpoint(ep: EndpointInput): void {
    if (this.published.get(ep.key) === ep.revision) return;
    this.published.set(ep.key, ep.revision);
    const body = JSON.stringify({
      programmed: true,
      namespace: ep.namespace,
      name: ep.name,
      interfaceName: ep.interfaceName,
      ipNetworks: ep.ipNetworks,
      revision: String(ep.revision),
      timestamp: new Date().toISOString(),
    });
    this.store.kvPut(endpointStatusKey(this.opts.nodeName, ep.name), body).catch((e: Error) => {
      this.published.delete(ep.key);
      this.log.warn({ endpoint: ep.key, err: e.message }, 'endpoint status publish failed');
    });
  }

  private unpublishEndpoint(key: string): void {
    if (!this.published.delete(key)) return;
    const name = key.slice(key.indexOf('/') + 1);
    this.store.kvDelete(endpointStatusKey(this.opts.nodeName, name)).catch((e: Error) => {
      this.log.warn({ endpoint: key, err: e.message }, 'endpoint status delete failed');
    });
  }

  private setProblems(problems: Problem[], unready: Set<string>): void {
    const before = JSON.stringify(this.problems);
    this.problems = problems;
    this.metrics.problems.reset();
    for (const p of problems) this.metrics.problems.inc({ code: p.code });
    this.metrics.unreadyPools.reset();
    for (const p of unready) this.metrics.unreadyPools.set({ pool: p }, 1);
    this.unreadyPools = unready;
    if (JSON.stringify(problems) !== before) {
      for (const p of problems) this.log.warn({ code: p.code, subject: p.subject }, p.message);
      this.publishNodeStatus();
    }
  }

  private publishNodeStatus(): void {
    const body = JSON.stringify({
      node: this.opts.nodeName,
      ready: this.ready,
      ipipSupported: this.ipipOk,
      problems: this.problems,
      unreadyPools: [...this.unreadyPools],
      localEndpoints: this.endpoints.size,
      routes: this.lastDesired?.routes.size ?? 0,
      timestamp: new Date().toISOString(),
    });
    this.store.kvPut(nodeStatusKey(this.opts.nodeName), body).catch((e: Error) => {
      this.log.warn({ err: e.message }, 'node status publish failed');
    });
  }

  private updateReadyMetric(): void {
    this.metrics.ready.set(this.ready ? 1 : 0);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.refreshTimer) clearInterval(this.refreshTimer);
    if (this.nftTimer) clearInterval(this.nftTimer);
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.policy?.close();
    this.monitor.close();
    await Promise.allSettled(this.watches.map((w) => w.close()));
    await Promise.allSettled(this.servers.map((s) => new Promise((r) => s.close(r))));
    this.dataplane.close();
  }
}

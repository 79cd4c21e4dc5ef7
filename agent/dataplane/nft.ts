// The nftables seam: the agent feeds the policy engineer's pure compiler (policy/) with the
// resources it watches and hands the ruleset to their applier (one `inet gingham` table, atomic
// transactions). natOutgoing masquerade is rendered there too, from the pools given here.
//
// Runs in its own coalescing loop so route programming never waits for a policy compile; a failed
// update leaves the previous ruleset in force (the applier's transactions are atomic) and is retried.
import { Worker } from 'node:worker_threads';
import type { Logger } from 'pino';
import type { Kind, Resource, ResourceEvent } from '../../store/index.js';
import type { PoolInput } from '../calc/model.js';

/** Kinds the policy compiler consumes (besides IPPool, which the agent already parses). */
export const POLICY_KINDS: Kind[] = [
  'NetworkPolicy',
  'GlobalNetworkPolicy',
  'K8sNetworkPolicy',
  'Profile',
  'Tier',
  'NetworkSet',
  'GlobalNetworkSet',
  'HostEndpoint',
  'Namespace',
];

type Obj = Record<string, unknown>;

/**
 * A WorkloadEndpoint reduced to what policy needs (labels, addresses, ports, profiles): with 100k
 * remote endpoints the agent keeps ~5× less than the full resource. Given this node's name, another
 * node's endpoint also loses its interface and pod names: only local endpoints get chains.
 */
export function slimEndpoint(r: Resource, localNode?: string): Resource {
  const s = (r.spec ?? {}) as Obj;
  const spec: Obj = { node: s.node, ipNetworks: s.ipNetworks };
  const remote = localNode !== undefined && s.node !== localNode;
  for (const k of ['interfaceName', 'profiles', 'ports', 'serviceAccountName', 'pod', 'workload']) {
    if (remote && (k === 'interfaceName' || k === 'pod' || k === 'workload')) continue;
    if (s[k] !== undefined) spec[k] = s[k];
  }
  const metadata: Resource['metadata'] = { name: r.metadata.name };
  if (r.metadata.namespace !== undefined) metadata.namespace = r.metadata.namespace;
  if (r.metadata.labels !== undefined) metadata.labels = r.metadata.labels;
  return { apiVersion: r.apiVersion, kind: r.kind, metadata, spec };
}

/**
 * Shares equal strings, label maps and profile lists between the endpoints the policy worker keeps:
 * a structured-clone copy (postMessage) gives every endpoint its own "projectcalico.org/v3", its own
 * node name, its own `{app: "web"}`. Bounded: past `limit` entries it starts over (sharing is only
 * an optimisation; nothing depends on identity).
 */
export class Interner {
  private strings = new Map<string, string>();
  private records = new Map<string, Readonly<Record<string, string>>>();
  private lists = new Map<string, readonly string[]>();

  constructor(private readonly limit = 200_000) {}

  str<T extends string | undefined>(s: T): T {
    if (s === undefined) return s;
    const hit = this.strings.get(s);
    if (hit !== undefined) return hit as T;
    if (this.strings.size >= this.limit) this.strings.clear();
    this.strings.set(s, s);
    return s;
  }

  labels(l: Record<string, string> | undefined): Record<string, string> | undefined {
    if (l === undefined) return l;
    const key = JSON.stringify(l);
    const hit = this.records.get(key);
    if (hit) return hit as Record<string, string>;
    const out: Record<string, string> = {};
    for (const [k, v] of Object.entries(l)) out[this.str(k)] = this.str(v);
    // not frozen: a frozen object gets a map of its own in V8, which costs more than it guards
    if (this.records.size >= this.limit) this.records.clear();
    this.records.set(this.str(key), out);
    return out;
  }

  list(l: unknown): unknown {
    if (!Array.isArray(l) || !l.every((x) => typeof x === 'string')) return l;
    const key = l.join('\u0000');
    const hit = this.lists.get(key);
    if (hit) return hit;
    const out = l.map((x: string) => this.str(x));
    if (this.lists.size >= this.limit) this.lists.clear();
    this.lists.set(key, out);
    return out;
  }

  /** A slim endpoint (slimEndpoint) rebuilt from shared pieces. */
  endpoint(r: Resource): Resource {
    const s = (r.spec ?? {}) as Obj;
    const spec: Obj = {};
    for (const [k, v] of Object.entries(s)) {
      if (k === 'node' || k === 'serviceAccountName') spec[k] = this.str(v as string | undefined);
      else if (k === 'profiles') spec[k] = this.list(v);
      else spec[k] = v;
    }
    const metadata: Resource['metadata'] = { name: r.metadata.name };
    if (r.metadata.namespace !== undefined) metadata.namespace = this.str(r.metadata.namespace);
    const labels = this.labels(r.metadata.labels);
    if (labels !== undefined) metadata.labels = labels;
    return { apiVersion: this.str(r.apiVersion), kind: this.str(r.kind), metadata, spec };
  }
}

export interface NftSeamHooks {
  onError(err: Error): void;
  onApplied(report: { mode: string; commands: number; durationMs: number }): void;
}

export class PolicyDataplane {
  private readonly resources = new Map<string, Resource>();
  private readonly interner = new Interner();
  private pools: PoolInput[] = [];
  private running = false;
  private again = false;
  private full = false;
  private applier: import('../../policy/index.js').NftApplier | null = null;
  private backoffMs = 500;
  private retry: NodeJS.Timeout | null = null;

  constructor(
    private readonly node: string,
    private readonly log: Logger,
    private readonly hooks: NftSeamHooks,
  ) {}

  static key(kind: string, name: string, ns?: string): string {
    return `${kind}/${ns ?? ''}/${name}`;
  }

  /** Feed store events (policy kinds and WorkloadEndpoints of every node). */
  onEvents(events: readonly ResourceEvent[]): boolean {
    let changed = false;
    for (const ev of events) {
      if (ev.kind !== 'WorkloadEndpoint' && !POLICY_KINDS.includes(ev.kind)) continue;
      if (ev.type === 'deleted') {
        changed =
          this.resources.delete(PolicyDataplane.key(ev.kind, ev.key.name, ev.key.namespace)) || changed;
      } else {
        const r =
          ev.kind === 'WorkloadEndpoint'
            ? this.interner.endpoint(slimEndpoint(ev.resource, this.node))
            : ev.resource;
        this.resources.set(PolicyDataplane.key(ev.kind, r.metadata.name, r.metadata.namespace), r);
        changed = true;
      }
    }
    return changed;
  }

  setPools(pools: readonly PoolInput[]): void {
    this.pools = pools.map((p) => ({ ...p }));
  }

  /** Schedules a compile + apply; `full` replaces the whole table (periodic resync). */
  schedule(full = false): void {
    if (full) this.full = true;
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = true;
    setImmediate(() => void this.run());
  }

  private async run(): Promise<void> {
    try {
      do {
        this.again = false;
        const full = this.full;
        this.full = false;
        const { compileRuleset, NftApplier } = await import('../../policy/index.js');
        this.applier ??= new NftApplier({ onEvent: (e, d) => this.log.warn(d, `nft: ${e}`) });
        const rs = compileRuleset({
          node: this.node,
          resources: [...this.resources.values()],
          pools: this.pools.map((p) => ({ cidr: p.cidr, natOutgoing: p.natOutgoing, disabled: p.disabled })),
        });
        const report = full ? await this.applier.applyFull(rs) : await this.applier.apply(rs);
        this.backoffMs = 500;
        this.hooks.onApplied(report);
      } while (this.again);
    } catch (e) {
      const err = e instanceof Error ? e : new Error(String(e));
      this.hooks.onError(err);
      if (this.retry) clearTimeout(this.retry);
      this.retry = setTimeout(() => this.schedule(true), this.backoffMs);
      this.backoffMs = Math.min(this.backoffMs * 2, 30_000);
    } finally {
      this.running = false;
    }
  }

  close(): void {
    if (this.retry) clearTimeout(this.retry);
    this.applier?.close(); // ends the persistent nft session
  }
}

/**
 * The same seam in a worker thread (nft-worker.ts): the agent's event loop only filters, slims and
 * forwards events. Same API as PolicyDataplane.
 */
export class PolicyWorker {
  private readonly worker: Worker;
  private readonly node: string;

  constructor(node: string, logLevel: string, hooks: NftSeamHooks) {
    // Built, the worker is nft-worker.js next to this file. Under tsx (sources), loader hooks are
    // not inherited by workers: a tiny bootstrap registers tsx in the worker, then loads the .ts.
    this.node = node;
    const workerData = { node, logLevel };
    if (import.meta.url.endsWith('.ts')) {
      const target = new URL('./nft-worker.ts', import.meta.url).href;
      const boot = `import('tsx/esm/api').then((m) => { m.register(); return import(${JSON.stringify(target)}); })`;
      this.worker = new Worker(boot, { eval: true, workerData });
    } else {
      this.worker = new Worker(new URL('./nft-worker.js', import.meta.url), { workerData });
    }
    this.worker.on('message', (m: import('./nft-worker.js').FromWorker) => {
      if (m.type === 'error') hooks.onError(new Error(m.message));
      else hooks.onApplied(m.report);
    });
    this.worker.on('error', (e) => hooks.onError(e instanceof Error ? e : new Error(String(e))));
    this.worker.unref();
  }

  onEvents(events: readonly ResourceEvent[]): boolean {
    const relevant: ResourceEvent[] = [];
    for (const ev of events) {
      if (ev.kind !== 'WorkloadEndpoint' && !POLICY_KINDS.includes(ev.kind)) continue;
      relevant.push(
        ev.type !== 'deleted' && ev.kind === 'WorkloadEndpoint'
          ? { ...ev, resource: slimEndpoint(ev.resource, this.node) }
          : ev.type === 'deleted'
            ? { ...ev, previous: null }
            : ev,
      );
    }
    if (relevant.length > 0) this.worker.postMessage({ type: 'events', events: relevant });
    return relevant.length > 0;
  }

  setPools(pools: readonly PoolInput[]): void {
    this.worker.postMessage({ type: 'pools', pools: pools.map((p) => ({ ...p })) });
  }

  schedule(full = false): void {
    this.worker.postMessage({ type: 'schedule', full });
  }

  close(): void {
    this.worker.postMessage({ type: 'close' });
    void this.worker.terminate();
  }
}

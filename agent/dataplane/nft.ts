// The nftables seam: the agent feeds the policy engineer's pure compiler (policy/) with the
// resources it watches and hands the ruleset to their applier (one `inet gingham` table, atomic
// transactions). natOutgoing masquerade is rendered there too, from the pools given here.
//
// Runs in its own coalescing loop so route programming never waits for a policy compile; a failed
// update leaves the previous ruleset in force (the applier's transactions are atomic) and is retried.
// The policy engine (policy/engine.ts) keeps the state incrementally: a remote endpoint event moves
// set elements, it does not recompile the cluster.
import { Worker } from 'node:worker_threads';
import type { Logger } from 'pino';
import { POLICY_SOURCE_KINDS } from '../../policy/kinds.js';
import type { Kind, Resource, ResourceEvent } from '../../store/index.js';
import type { PoolInput } from '../calc/model.js';
import { startWorkerWithYoungGen } from '../v8-flags.js';

/** Kinds the policy compiler consumes (besides IPPool, which the agent already parses). */
export const POLICY_KINDS: readonly Kind[] = POLICY_SOURCE_KINDS;

type Obj = Record<string, unknown>;

/**
 * Events per message to the policy worker. Small: a message is deserialised whole, and with 2,000
 * per message (~1 MB of objects) a chunk outlived the worker's young-generation collections and was
 * promoted, leaving the old generation fragmented around the engine's endpoints (+20–40 MB
 * committed). The bulk decision stays the whole batch's (`batchEndpoints`).
 */
const EVENT_CHUNK = 250;

/**
 * The policy worker's semi-space size (MB), fixed from its start (agent/v8-flags.ts). Its garbage
 * is short-lived (deserialised event chunks, per-apply rulesets): V8's default lets the young
 * generation grow to 3 × 16 MB per isolate; at 1 MB (the main thread's) the per-apply garbage is
 * promoted and the old generation doubled. Measured in docs/agent.md (Memory).
 */
export const POLICY_WORKER_SEMI_SPACE_MB = 4;

/**
 * A WorkloadEndpoint reduced to what policy needs (labels, addresses, ports, profiles): with 100k
 * remote endpoints the agent keeps ~5× less than the full resource. Given this node's name, another
 * node's endpoint also loses its interface and pod names: only local endpoints get chains.
 */
export function slimEndpoint(r: Resource, localNode?: string): Resource {
  const s = (r.spec ?? {}) as Obj;
  const spec: Obj = { node: s.node, ipNetworks: s.ipNetworks };
  const remote = localNode !== undefined && s.node !== localNode;
  for (const k of [
    'interfaceName',
    'profiles',
    'ports',
    'serviceAccountName',
    'orchestrator',
    'pod',
    'workload',
  ]) {
    if (remote && (k === 'interfaceName' || k === 'pod' || k === 'workload')) continue;
    if (s[k] !== undefined) spec[k] = s[k];
  }
  const metadata: Resource['metadata'] = { name: r.metadata.name };
  if (r.metadata.namespace !== undefined) metadata.namespace = r.metadata.namespace;
  if (r.metadata.labels !== undefined) metadata.labels = r.metadata.labels;
  return { apiVersion: r.apiVersion, kind: r.kind, metadata, spec };
}

export interface NftSeamHooks {
  onError(err: Error): void;
  onApplied(report: { mode: string; commands: number; durationMs: number }): void;
}

export class PolicyDataplane {
  /** The incremental engine: the only copy of the cluster's policy state (compact endpoints). */
  private readonly engine: import('../../policy/index.js').PolicyEngine;
  private running = false;
  private again = false;
  private full = false;
  private applier: import('../../policy/index.js').NftApplier | null = null;
  private backoffMs = 500;
  private retry: NodeJS.Timeout | null = null;

  /** `policy` is policy/index.js, passed in so the agent's main thread never loads the compiler. */
  constructor(
    node: string,
    private readonly log: Logger,
    private readonly hooks: NftSeamHooks,
    private readonly policy: typeof import('../../policy/index.js'),
  ) {
    this.engine = new policy.PolicyEngine({ node });
  }

  /**
   * Feed store events (policy kinds and WorkloadEndpoints of every node). `batchEndpoints`: the
   * endpoint count of the whole batch when these events are one part of it (see PolicyEngine.update).
   */
  onEvents(events: readonly ResourceEvent[], batchEndpoints?: number): boolean {
    const changes: import('../../policy/index.js').PolicyChange[] = [];
    for (const ev of events) {
      if (ev.kind !== 'WorkloadEndpoint' && !POLICY_KINDS.includes(ev.kind)) continue;
      const meta = ev.type === 'deleted' ? ev.key : ev.resource.metadata;
      changes.push({
        kind: ev.kind,
        name: meta.name,
        ...(meta.namespace !== undefined ? { namespace: meta.namespace } : {}),
        resource: ev.type === 'deleted' ? null : ev.resource,
      });
    }
    if (changes.length > 0) this.engine.update(changes, batchEndpoints);
    return changes.length > 0;
  }

  setPools(pools: readonly PoolInput[]): void {
    this.engine.setPools(
      pools.map((p) => ({ cidr: p.cidr, natOutgoing: p.natOutgoing, disabled: p.disabled })),
    );
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
        this.applier ??= new this.policy.NftApplier({ onEvent: (e, d) => this.log.warn(d, `nft: ${e}`) });
        const rs = this.engine.ruleset();
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
    const url = import.meta.url.endsWith('.ts') ? null : new URL('./nft-worker.js', import.meta.url);
    this.worker = startWorkerWithYoungGen(POLICY_WORKER_SEMI_SPACE_MB, (resourceLimits) => {
      if (url) return new Worker(url, { workerData, resourceLimits });
      const target = new URL('./nft-worker.ts', import.meta.url).href;
      const boot = `import('tsx/esm/api').then((m) => { m.register(); return import(${JSON.stringify(target)}); })`;
      return new Worker(boot, { eval: true, workerData, resourceLimits });
    });
    this.worker.on('message', (m: import('./nft-worker.js').FromWorker) => {
      if (m.type === 'error') hooks.onError(new Error(m.message));
      else hooks.onApplied(m.report);
    });
    this.worker.on('error', (e) => hooks.onError(e instanceof Error ? e : new Error(String(e))));
    this.worker.unref();
  }

  onEvents(events: readonly ResourceEvent[]): boolean {
    const relevant: ResourceEvent[] = [];
    let endpoints = 0;
    for (const ev of events) {
      if (ev.kind !== 'WorkloadEndpoint' && !POLICY_KINDS.includes(ev.kind)) continue;
      if (ev.kind === 'WorkloadEndpoint') endpoints++;
      relevant.push(
        ev.type !== 'deleted' && ev.kind === 'WorkloadEndpoint'
          ? { ...ev, resource: slimEndpoint(ev.resource, this.node) }
          : ev.type === 'deleted'
            ? { ...ev, previous: null }
            : ev,
      );
    }
    // In small chunks: the worker turns each into compact endpoints before the next is
    // deserialised, so a 100k-endpoint snapshot never sits in the worker's heap as resources, and a
    // chunk's events die in the young generation instead of being promoted (see EVENT_CHUNK).
    for (let i = 0; i < relevant.length; i += EVENT_CHUNK)
      this.worker.postMessage({
        type: 'events',
        events: relevant.slice(i, i + EVENT_CHUNK),
        batchEndpoints: endpoints,
      });
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

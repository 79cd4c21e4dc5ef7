// The incremental policy engine: resource changes in, the current ruleset out. Pure (no I/O).
//
// `compile()` rebuilds everything from all resources; with 100k endpoints that is hundreds of
// milliseconds and a full copy of every endpoint per call. The engine instead keeps:
//   - per WorkloadEndpoint only what policy reads (effective labels — shared between endpoints with
//     equal labels —, addresses, named ports, namespace, service account, profiles, node/interface);
//   - the few other resources (policies, tiers, profiles, namespaces, network sets, host endpoints);
//   - a selector → members index (members.ts) whose sets get element deltas per endpoint change.
// A remote endpoint change touches only the index: the next ruleset differs in the affected sets
// only. A local endpoint change, or any other resource change, runs one compile pass over the
// model, which re-uses every unchanged policy chain, endpoint chain and set (compiler.ts memos).
// The result is the same ruleset `compile()` gives for the same resources (test/unit/policy/engine).

import type { Resource } from '../store/api.js';
import type { WorkloadEndpointSpec } from '../store/schemas/index.js';
import { RulesetCompiler } from './compiler.js';
import { POLICY_SOURCE_KINDS } from './kinds.js';
import { SelectorIndex } from './members.js';
import {
  type AddressObject,
  buildModel,
  type Endpoint,
  inheritedLabels,
  isK8sNetworkPolicy,
  type Model,
  PolicyModelError,
  type PoolInput,
  type Problem,
  wepEndpoint,
} from './model.js';
import type { NftRuleset } from './nft.js';

/**
 * One resource change; `resource: null` = deleted. A Kubernetes NetworkPolicy is kind
 * `K8sNetworkPolicy` (as the store names it), also when deleted.
 */
export interface PolicyChange {
  kind: string;
  name: string;
  namespace?: string;
  resource: Resource | null;
}

export interface PolicyEngineOptions {
  /** This node's name: its endpoints are the local ones. */
  node: string;
  table?: string;
  /** Past this many endpoint changes in one update, selector members are recomputed lazily. */
  bulkThreshold?: number;
}

/**
 * What the engine keeps per WorkloadEndpoint: the model's Endpoint itself (no wrapper object: 100k
 * of them), plus what rebuilding its labels needs when a profile's or namespace's labels change.
 */
type Held = Endpoint & {
  /**
   * Own labels, kept only when one of them has the key of an inherited label (else they are
   * `labels` minus the inherited and projectcalico.org/* keys: no second copy per endpoint).
   */
  own: Readonly<Record<string, string>> | undefined;
  orchestrator: string | undefined;
  /** Signature of the inherited labels `labels` was built with (a shared string). */
  sig: string;
};

/**
 * Shares equal label maps, profile lists and node names between endpoints: 100k endpoints carry a
 * few hundred distinct ones. Bounded (sharing is an optimisation; nothing depends on identity).
 */
class Interner {
  private readonly records = new Map<string, Record<string, string>>();
  private readonly lists = new Map<string, readonly string[]>();
  private readonly strings = new Map<string, string>();

  constructor(private readonly limit = 5_000) {}

  labels = (l: Record<string, string>): Record<string, string> => {
    const key = JSON.stringify(l);
    const hit = this.records.get(key);
    if (hit) return hit;
    if (this.records.size >= this.limit) this.records.clear();
    // Plain stores into a fresh object: one hidden class for the common shapes.
    const out: Record<string, string> = {};
    for (const k in l) out[this.str(k)] = this.str(l[k]!);
    this.records.set(key, out);
    return out;
  };

  list(l: readonly string[]): readonly string[] {
    const key = l.join('\u0000');
    const hit = this.lists.get(key);
    if (hit) return hit;
    if (this.lists.size >= this.limit) this.lists.clear();
    const out = l.map((x) => this.str(x));
    this.lists.set(key, out);
    return out;
  }

  str(s: string): string {
    const hit = this.strings.get(s);
    if (hit !== undefined) return hit;
    if (this.strings.size >= this.limit) this.strings.clear();
    this.strings.set(s, s);
    return s;
  }
}

export class PolicyEngine {
  private readonly node: string;
  private readonly table: string;
  private readonly bulk: number;
  private readonly others = new Map<string, Resource>();
  /** namespace → name → endpoint (the name string is the endpoint's own: no per-endpoint key). */
  private readonly weps = new Map<string, Map<string, Held>>();
  private wepCount = 0;
  private readonly locals = new Map<string, Endpoint>();
  private readonly nsCount = new Map<string, number>();
  private readonly wepProblems = new Map<string, Problem>();
  private readonly index = new SelectorIndex();
  private readonly interner = new Interner();
  private readonly defaultProfiles = new Map<string, readonly string[]>();
  private pools: readonly PoolInput[] | undefined;
  private poolsSig = '';
  /** The model of everything but workload endpoints (rebuilt when one of those resources changes). */
  private model: Model | null = null;
  private structObjects = new Set<AddressObject>();
  private inheritedByList = new Map<readonly string[], { labels: Record<string, string>; sig: string }>();
  /** Inherited label sets by signature (few: one per distinct profile list outcome). */
  private readonly inheritedBySig = new Map<string, Record<string, string>>();
  private readonly sigs = new Map<string, string>();
  private structuralDirty = true;
  /** The model changed since the compiler last saw it. */
  private modelDirty = true;
  private localsDirty = true;
  private readonly compiler: RulesetCompiler;
  private started = false;

  constructor(opts: PolicyEngineOptions) {
    this.node = opts.node;
    this.table = opts.table ?? 'gingham';
    this.bulk = opts.bulkThreshold ?? 1000;
    this.compiler = new RulesetCompiler(this.index, this.table);
  }

  /**
   * Applies resource changes (any kinds; those policy does not read are ignored). `batchEndpoints`:
   * when a caller splits one batch into several calls (the agent's worker gets a snapshot in small
   * messages), the endpoint count of the whole batch, so the bulk decision is the batch's.
   */
  update(changes: readonly PolicyChange[], batchEndpoints?: number): void {
    let wepChanges = 0;
    for (const c of changes) if (c.kind === 'WorkloadEndpoint') wepChanges++;
    // A bulk load: recomputing the selectors' members once is cheaper than moving 100k endpoints
    // through every selector one by one.
    const track = Math.max(wepChanges, batchEndpoints ?? 0) <= this.bulk;
    if (!track) this.index.dropEntries();
    for (const c of changes) {
      if (c.kind === 'WorkloadEndpoint' || !POLICY_RESOURCE_KINDS.has(c.kind)) continue;
      // A networking.k8s.io NetworkPolicy is another object than a Calico one of the same name.
      const kind = c.resource && isK8sNetworkPolicy(c.resource) ? 'K8sNetworkPolicy' : c.kind;
      const key = `${kind}/${c.namespace ?? c.resource?.metadata.namespace ?? ''}/${c.name}`;
      if (c.resource) this.others.set(key, c.resource);
      else if (!this.others.delete(key)) continue;
      this.structuralDirty = true;
    }
    // Profiles and namespaces first, so the endpoints below get their current inherited labels.
    if (this.structuralDirty && wepChanges > 0) this.rebuildStructure();
    if (wepChanges > 0) for (const c of changes) if (c.kind === 'WorkloadEndpoint') this.updateWep(c, track);
  }

  /** IPPools for natOutgoing (the agent parses them itself). */
  setPools(pools: readonly PoolInput[]): void {
    const sig = JSON.stringify(pools);
    if (sig === this.poolsSig) return;
    this.poolsSig = sig;
    this.pools = pools.map((p) => ({ ...p }));
    this.structuralDirty = true;
  }

  /**
   * The ruleset for the current resources. Unchanged chains and sets are the same objects as in
   * the previous ruleset (the diff skips them); returned rulesets are never mutated afterwards.
   */
  ruleset(): NftRuleset {
    if (this.structuralDirty) this.rebuildStructure();
    const { sets, chainsStale } = this.index.takeChanged();
    const heps = this.model!.endpoints.filter((e) => e.node === this.node && e.iface !== undefined);
    this.compiler.update(this.model!, [...this.locals.values(), ...heps], {
      full: !this.started || chainsStale,
      model: this.modelDirty,
      locals: this.localsDirty || this.modelDirty,
      sets,
    });
    this.started = true;
    this.modelDirty = false;
    this.localsDirty = false;
    // Sets the compiler created or dropped are in the ruleset as they are now.
    this.index.takeChanged();
    this.index.publish();
    return this.compiler.ruleset();
  }

  /** Problems found in the resources (as `compile()` reports them), as of the last `ruleset()`. */
  problems(): Problem[] {
    return [...this.compiler.problems(), ...this.wepProblems.values()];
  }

  stats(): { endpoints: number; locals: number; objects: number; selectors: number } {
    const s = this.index.size;
    return { endpoints: this.wepCount, locals: this.locals.size, objects: s.objects, selectors: s.entries };
  }

  // ---- internals ------------------------------------------------------------------------------

  private updateWep(c: PolicyChange, track: boolean): void {
    const ns = c.namespace ?? c.resource?.metadata.namespace ?? 'default';
    const key = `${ns}/${c.name}`;
    let inNs = this.weps.get(ns);
    const old = inNs?.get(c.name);
    this.wepProblems.delete(key);
    let next: Held | undefined;
    if (c.resource) {
      try {
        next = this.hold(c.resource as Resource<WorkloadEndpointSpec>, ns);
      } catch (e) {
        if (!(e instanceof PolicyModelError)) throw e;
        // As compile() does: the endpoint is left out (no chain; a local one is then an unknown
        // interface and dropped), the problem reported.
        this.wepProblems.set(key, {
          severity: 'error',
          object: `WorkloadEndpoint ${key}`,
          message: e.problem,
        });
      }
    }
    if (!old && !next) return;
    if (old) {
      this.countNs(ns, -1);
      this.wepCount--;
    }
    if (next) {
      if (!inNs) {
        inNs = new Map();
        this.weps.set(ns, inNs);
      }
      inNs.set(next.name, next);
      this.countNs(ns, 1);
      this.wepCount++;
    } else {
      inNs!.delete(c.name);
      if (inNs!.size === 0) this.weps.delete(ns);
    }
    if (this.isLocal(old) || this.isLocal(next)) {
      this.localsDirty = true;
      if (next && this.isLocal(next)) this.locals.set(key, next);
      else this.locals.delete(key);
    }
    this.index.update(old, next, track);
  }

  private isLocal(e: Endpoint | undefined): boolean {
    return e !== undefined && e.node === this.node && e.iface !== undefined;
  }

  private countNs(ns: string, d: 1 | -1): void {
    const n = (this.nsCount.get(ns) ?? 0) + d;
    // A namespace seen for the first or last time adds or removes its implicit kns profile.
    if (n <= 0) {
      this.nsCount.delete(ns);
      this.structuralDirty = true;
    } else {
      if (n === 1 && d === 1) this.structuralDirty = true;
      this.nsCount.set(ns, n);
    }
  }

  private hold(w: Resource<WorkloadEndpointSpec>, ns: string): Held {
    const s = w.spec ?? ({} as WorkloadEndpointSpec);
    let profs = this.defaultProfiles.get(ns);
    if (s.profiles && s.profiles.length > 0) profs = this.interner.list(s.profiles);
    else if (!profs) {
      profs = [`kns.${ns}`];
      this.defaultProfiles.set(ns, profs);
    }
    const inherited = this.inherited(profs);
    const local = s.node === this.node;
    const slim: Resource<WorkloadEndpointSpec> = {
      apiVersion: w.apiVersion,
      kind: w.kind,
      metadata: {
        name: w.metadata.name,
        namespace: ns,
        ...(w.metadata.labels ? { labels: w.metadata.labels } : {}),
      },
      spec: {
        ...s,
        node: this.interner.str(s.node),
        // Only local endpoints get chains: another node's interface name is never read.
        ...(local ? {} : { interfaceName: undefined }),
      } as WorkloadEndpointSpec,
    };
    const ep = wepEndpoint(slim, profs, inherited.labels, {
      intern: this.interner.labels,
      slim: !local,
    }) as Held;
    const own = w.metadata.labels;
    let collides = false;
    if (own)
      for (const k in own) if (k in inherited.labels || k.startsWith('projectcalico.org/')) collides = true;
    ep.own = collides ? own : undefined;
    ep.orchestrator = s.orchestrator === undefined ? undefined : this.interner.str(s.orchestrator);
    ep.sig = inherited.sig;
    return ep;
  }

  private inherited(profs: readonly string[]): { labels: Record<string, string>; sig: string } {
    let v = this.inheritedByList.get(profs);
    if (!v) {
      v = this.model ? inheritedLabels(this.model.profiles, profs) : { labels: {}, sig: '{}' };
      // One shared sig string per distinct inherited label set; the labels it stands for are
      // remembered so an endpoint's own labels can be told apart later.
      const same = this.inheritedBySig.get(v.sig);
      if (same) v = { labels: same, sig: this.sigs.get(v.sig)! };
      else {
        this.inheritedBySig.set(v.sig, v.labels);
        this.sigs.set(v.sig, v.sig);
      }
      this.inheritedByList.set(profs, v);
    }
    return v;
  }

  /** Policies, tiers, profiles, namespaces, network sets, host endpoints, pools changed. */
  private rebuildStructure(): void {
    this.structuralDirty = false;
    this.modelDirty = true;
    const m = buildModel({
      node: this.node,
      resources: [...this.others.values()],
      ...(this.pools ? { pools: this.pools } : {}),
      endpointNamespaces: this.nsCount.keys(),
    });
    this.model = m;
    this.index.setNamespaces(m.namespaces);
    // Network sets and host endpoints: the model re-uses unchanged ones (same objects).
    const now = new Set(m.objects);
    for (const o of this.structObjects) if (!now.has(o)) this.index.update(o, undefined);
    for (const o of now) if (!this.structObjects.has(o)) this.index.update(undefined, o);
    this.structObjects = now;
    // Endpoints whose inherited labels changed (namespace labels, a profile's labelsToApply). Every
    // endpoint's profile list is a key of inheritedByList: when none of those few hundred lists
    // inherits other labels now (a policy or tier change), no endpoint needs a look.
    const before = this.inheritedByList;
    this.inheritedByList = new Map();
    let inheritedMoved = false;
    for (const [profs, was] of before) {
      if (this.inherited(profs).sig === was.sig) continue;
      inheritedMoved = true;
      break;
    }
    if (!inheritedMoved) return;
    const stale: Held[] = [];
    const used = new Set<string>();
    for (const inNs of this.weps.values()) {
      for (const h of inNs.values()) {
        const now = this.inherited(h.profiles).sig;
        used.add(now);
        if (now !== h.sig) stale.push(h);
      }
    }
    const track = stale.length <= this.bulk;
    if (!track) this.index.dropEntries();
    for (const h of stale) {
      const inherited = this.inherited(h.profiles);
      const was = this.inheritedBySig.get(h.sig) ?? {};
      const ep: Held = {
        ...h,
        labels: this.interner.labels(relabel(h, was, inherited.labels)),
        sig: inherited.sig,
      };
      const ns = h.namespace ?? 'default';
      this.weps.get(ns)!.set(h.name, ep);
      const key = `${ns}/${h.name}`;
      if (this.locals.has(key)) this.locals.set(key, ep);
      this.index.update(h, ep, track);
    }
    // Forget inherited label sets no endpoint carries any more (namespace label churn).
    for (const sig of this.sigs.keys()) {
      if (used.has(sig)) continue;
      this.sigs.delete(sig);
      this.inheritedBySig.delete(sig);
    }
  }
}

/** Kinds besides WorkloadEndpoint that the model reads. */
const POLICY_RESOURCE_KINDS = new Set<string>([...POLICY_SOURCE_KINDS, 'IPPool']);

/** An endpoint's labels with `inherited` in place of `was` (the inherited labels it was built with). */
function relabel(
  e: Held,
  was: Readonly<Record<string, string>>,
  inherited: Readonly<Record<string, string>>,
): Record<string, string> {
  const labels: Record<string, string> = {};
  for (const k in inherited) labels[k] = inherited[k]!;
  if (e.own) for (const k in e.own) labels[k] = e.own[k]!;
  else
    for (const k in e.labels)
      if (!(k in was) && !k.startsWith('projectcalico.org/')) labels[k] = e.labels[k]!;
  const h = e;
  labels['projectcalico.org/namespace'] = e.namespace ?? 'default';
  labels['projectcalico.org/orchestrator'] = h.orchestrator ?? 'k8s';
  if (e.serviceAccount) labels['projectcalico.org/serviceaccount'] = e.serviceAccount;
  return labels;
}

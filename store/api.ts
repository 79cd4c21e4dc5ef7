// The store's public contract: what the CLI, IPAM, the agent and the BGP wiring consume.
// Implementations: store/etcd.ts (etcd v3). Nothing here knows about etcd.

export const CALICO_API_VERSION = 'projectcalico.org/v3';

/** Every kind the store accepts. */
export type Kind =
  | 'Node'
  | 'IPPool'
  | 'IPAMConfiguration'
  | 'BGPConfiguration'
  | 'BGPPeer'
  | 'WorkloadEndpoint'
  | 'HostEndpoint'
  | 'NetworkPolicy'
  | 'GlobalNetworkPolicy'
  | 'Profile'
  | 'Tier'
  | 'NetworkSet'
  | 'GlobalNetworkSet'
  | 'FelixConfiguration'
  | 'Namespace'
  | 'K8sNetworkPolicy';

export interface ObjectMeta {
  name: string;
  namespace?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  /** etcd mod revision of the stored object, as a decimal string (Kubernetes style). */
  resourceVersion?: string;
  uid?: string;
  creationTimestamp?: string;
}

/**
 * A stored object. `spec` is typed per kind by the schemas in store/schemas/;
 * consumers narrow with the helpers there. K8s kinds keep their own apiVersion
 * (`v1` Namespace, `networking.k8s.io/v1` NetworkPolicy: kind "NetworkPolicy" on the wire,
 * Kind "K8sNetworkPolicy" inside the store).
 */
export interface Resource<S = unknown> {
  apiVersion: string;
  kind: string;
  metadata: ObjectMeta;
  spec: S;
  status?: unknown;
}

export interface ResourceKey {
  kind: Kind;
  name: string;
  namespace?: string;
}

export interface ListOptions {
  /** Only this namespace (namespaced kinds); undefined = all namespaces. */
  namespace?: string;
  /** Page size for etcd range requests (default 1000). */
  pageSize?: number;
}

export interface ListResult<S = unknown> {
  items: Resource<S>[];
  /** The etcd revision the list was read at. */
  revision: bigint;
}

/** A raw key/value event: used by IPAM data (blocks, affinities, handles) and status keys. */
export interface KvEvent {
  type: 'put' | 'delete';
  key: string;
  value: Buffer | null;
  modRevision: bigint;
}

/** Typed resource events delivered by a watch. */
export type ResourceEvent =
  | { type: 'added' | 'modified'; kind: Kind; resource: Resource; revision: bigint }
  | { type: 'deleted'; kind: Kind; key: ResourceKey; previous: Resource | null; revision: bigint };

/**
 * Snapshot-then-deltas: a watcher first emits every existing object as `added`,
 * then `inSync`, then deltas. After a resync (compaction, watch error, reconnect)
 * it emits only the differences against what it had emitted (including `deleted`
 * for vanished keys), then `inSync` again.
 */
export interface WatchHandlers {
  onEvents(events: ResourceEvent[]): void;
  onInSync(revision: bigint): void;
  /** The watch lost contact (etcd down) and is retrying; the consumer keeps its state. */
  onOutOfSync?(reason: Error): void;
}

export interface WatchHandle {
  close(): Promise<void>;
}

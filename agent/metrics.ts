// The agent's Prometheus metrics (prom-client, own registry). Names `gingham_agent_…`, units in
// the name (seconds, total) as Prometheus conventions ask.
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';

export class AgentMetrics {
  readonly registry = new Registry();
  constructor() {
    // process_resident_memory_bytes, nodejs_heap_size_used_bytes, event loop lag, GC…
    collectDefaultMetrics({ register: this.registry, prefix: 'gingham_agent_' });
  }
  readonly localEndpoints = new Gauge({
    name: 'gingham_agent_local_endpoints',
    help: 'WorkloadEndpoints on this node',
    registers: [this.registry],
  });
  readonly routes = new Gauge({
    name: 'gingham_agent_routes',
    help: 'Desired routes by kind (workload, blackhole, vxlan, ipip, static, crosssubnet, learned)',
    labelNames: ['kind'],
    registers: [this.registry],
  });
  readonly pendingRoutes = new Gauge({
    name: 'gingham_agent_pending_routes',
    help: 'Desired routes whose device does not exist yet',
    registers: [this.registry],
  });
  readonly resyncs = new Counter({
    name: 'gingham_agent_resyncs_total',
    help: 'Full dataplane resyncs started',
    registers: [this.registry],
  });
  readonly resyncDuration = new Histogram({
    name: 'gingham_agent_resync_duration_seconds',
    help: 'Duration of full dataplane resyncs (dump + diff + apply)',
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [this.registry],
  });
  readonly applyDuration = new Histogram({
    name: 'gingham_agent_apply_duration_seconds',
    help: 'Duration of one dataplane apply (incremental or full)',
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5],
    registers: [this.registry],
  });
  readonly errors = new Counter({
    name: 'gingham_agent_dataplane_errors_total',
    help: 'Dataplane driver errors by driver (routes, neighbours, links, sysctls, nft, netlink)',
    labelNames: ['driver'],
    registers: [this.registry],
  });
  readonly kernelWrites = new Counter({
    name: 'gingham_agent_kernel_writes_total',
    help: 'Kernel objects written or deleted, by driver and operation',
    labelNames: ['driver', 'op'],
    registers: [this.registry],
  });
  readonly watchEvents = new Counter({
    name: 'gingham_agent_watch_events_total',
    help: 'Store watch events received, by source (resources, ipam)',
    labelNames: ['source'],
    registers: [this.registry],
  });
  readonly watchLag = new Gauge({
    name: 'gingham_agent_watch_lag_seconds',
    help: 'Age of the oldest store event received but not yet applied to the kernel (0 when caught up)',
    registers: [this.registry],
  });
  readonly appliedRevision = new Gauge({
    name: 'gingham_agent_applied_revision',
    help: 'Highest etcd revision whose effects are in the kernel',
    registers: [this.registry],
  });
  readonly endpointLatency = new Histogram({
    name: 'gingham_agent_endpoint_programming_latency_seconds',
    help: 'WorkloadEndpoint event received from etcd → its routes/neighbours/sysctls applied in the kernel',
    buckets: [0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5],
    registers: [this.registry],
  });
  readonly ready = new Gauge({
    name: 'gingham_agent_ready',
    help: '1 when the first full sync has been applied and etcd is in sync',
    registers: [this.registry],
  });
  readonly storeInSync = new Gauge({
    name: 'gingham_agent_store_in_sync',
    help: '1 while the store watch is in sync',
    registers: [this.registry],
  });
  readonly problems = new Gauge({
    name: 'gingham_agent_problems',
    help: 'Conditions the agent cannot satisfy, by code (ipip-unsupported, no-gateway-route, …)',
    labelNames: ['code'],
    registers: [this.registry],
  });
  readonly ipipSupported = new Gauge({
    name: 'gingham_agent_ipip_supported',
    help: '1 when the kernel can create IPIP tunnels',
    registers: [this.registry],
  });
  readonly unreadyPools = new Gauge({
    name: 'gingham_agent_pool_unready',
    help: '1 for each IP pool this node cannot serve (e.g. IPIP without kernel support)',
    labelNames: ['pool'],
    registers: [this.registry],
  });
}

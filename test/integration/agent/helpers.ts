// Helpers for the agent's integration tests: a reachable etcd inside node namespaces, workloads
// wired the way the CNI plugin wires them, the agent process, and polling.
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { newBlock } from '../../../ipam/block.js';
import { affinityFor, affinityKey, blockKey, serializeBlock } from '../../../ipam/model.js';
import { HOST_SIDE_MAC, hostVethName } from '../../../lib/constants.js';
import { type EtcdStore, openStore, type Resource } from '../../../store/index.js';
import { type EtcdInstance, startEtcd } from '../../harness/etcd.js';
import { Netns, uniqueName, vethBetween } from '../../harness/netns.js';

const here = fileURLToPath(new URL('.', import.meta.url));
export const repoRoot = join(here, '../../..');
/** The same forwarder `make demo` uses (scripts/ns-forward.mjs). */
const forwarder = join(repoRoot, 'scripts/ns-forward.mjs');

/** Host side: a unix socket forwarding to etcd's TCP port on the host loopback (its own process). */
export async function etcdSocket(etcdEndpoint: string): Promise<{ path: string; close(): Promise<void> }> {
  const dir = mkdtempSync(join(tmpdir(), 'gh-agent-'));
  const path = join(dir, 'etcd.sock');
  const u = new URL(etcdEndpoint);
  const p = spawn(process.execPath, [forwarder, `unix:${path}`, `${u.hostname}:${u.port}`], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  await new Promise<void>((resolve, reject) => {
    p.stdout!.once('data', () => resolve());
    p.once('exit', (c) => reject(new Error(`host forwarder exited ${c}`)));
  });
  return {
    path,
    close: async () => {
      if (p.exitCode === null && p.signalCode === null) {
        await new Promise<void>((resolve) => {
          p.once('exit', () => resolve());
          p.kill();
        });
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Inside `ns`: 127.0.0.1:port → the unix socket. Returns the process (kill by PID). */
export async function etcdInNetns(ns: Netns, sockPath: string, port = 2379): Promise<ChildProcess> {
  const p = spawn(
    'ip',
    ['netns', 'exec', ns.name, process.execPath, forwarder, `127.0.0.1:${port}`, `unix:${sockPath}`],
    {
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  );
  await new Promise<void>((resolve, reject) => {
    p.stdout!.once('data', () => resolve());
    p.once('exit', (c) => reject(new Error(`forwarder exited ${c}`)));
  });
  return p;
}

export interface Workload {
  ns: Netns;
  hostIf: string;
  /** IPv4 address ('' for an IPv6-only workload). */
  ip: string;
  ip6?: string;
  mac: string;
}

/** The host side's link-local address (EUI-64 of ee:ee:ee:ee:ee:ee): the IPv6 gateway, as in cni/. */
const HOST_SIDE_LINK_LOCAL = 'fe80::ecee:eeff:feee:eeee';

/**
 * Wires a workload as the CNI plugin does: veth gh…, host MAC ee:ee:…, gateway 169.254.1.1 (IPv4)
 * and the host side's link-local address (IPv6). `ip` '' = no IPv4 address.
 */
export function addWorkload(
  node: Netns,
  ws: Netns,
  id: string,
  ip: string,
  opts: { hostUp?: boolean; ip6?: string } = {},
): Workload {
  const hostIf = hostVethName(id);
  const tmp = uniqueName('wt');
  node.ip('link', 'add', hostIf, 'type', 'veth', 'peer', 'name', tmp, 'netns', ws.name);
  node.ip('link', 'set', hostIf, 'address', HOST_SIDE_MAC);
  if (opts.hostUp) node.ip('link', 'set', hostIf, 'up');
  ws.ip('link', 'set', tmp, 'name', 'eth0');
  if (ip) ws.ip('addr', 'add', `${ip}/32`, 'dev', 'eth0');
  if (opts.ip6) ws.ip('addr', 'add', `${opts.ip6}/128`, 'dev', 'eth0', 'nodad');
  ws.ip('link', 'set', 'eth0', 'up');
  if (ip) {
    ws.ip('route', 'add', '169.254.1.1', 'dev', 'eth0', 'scope', 'link');
    ws.ip('route', 'add', 'default', 'via', '169.254.1.1', 'dev', 'eth0');
  }
  if (opts.ip6) ws.ip('-6', 'route', 'add', 'default', 'via', HOST_SIDE_LINK_LOCAL, 'dev', 'eth0');
  const [info] = JSON.parse(ws.ip('-j', 'link', 'show', 'eth0')) as Array<{ address: string }>;
  return { ns: ws, hostIf, ip, ...(opts.ip6 ? { ip6: opts.ip6 } : {}), mac: info!.address };
}

export interface AgentProc {
  proc: ChildProcess;
  logs: string[];
  kill(signal?: NodeJS.Signals): Promise<void>;
}

/** argv for startAgent: the node, etcd through the in-namespace forwarder (etcdInNetns), options. */
export function agentArgs(
  node: string,
  o: {
    policy?: 'on' | 'off';
    metricsPort?: number;
    refreshSec?: number;
    debug?: boolean;
    /** Default: the forwarder's http://127.0.0.1:2379. */
    etcd?: string;
    /** Default '' (off). */
    cniSocket?: string;
  } = {},
): string[] {
  return [
    '--node',
    node,
    '--etcd-endpoints',
    o.etcd ?? 'http://127.0.0.1:2379',
    ...(o.policy ? ['--policy', o.policy] : []),
    '--metrics-addr',
    `127.0.0.1:${o.metricsPort ?? 9091}`,
    ...(o.refreshSec === undefined ? [] : ['--route-refresh', String(o.refreshSec)]),
    ...(o.debug ? ['--log-level', 'debug'] : []),
    // Several test agents run at once on this host: none may take the default /var/run socket.
    '--cni-socket',
    o.cniSocket ?? '',
  ];
}

/**
 * `nodeArgs`: flags for node itself (benchmarks: --trace-gc, --heapsnapshot-signal, heap sizes).
 * `built`: run dist/ (what operators run; benchmarks) instead of the sources through tsx, whose
 * loader costs memory in the main thread and in the policy worker.
 */
export function startAgent(
  ns: Netns,
  args: string[],
  nodeArgs: string[] = [],
  opts: { built?: boolean; env?: Record<string, string> } = {},
): AgentProc {
  const entry = opts.built
    ? [join(repoRoot, 'dist/agent/main.js')]
    : ['--import', 'tsx', join(repoRoot, 'agent/main.ts')];
  const proc = spawn('ip', ['netns', 'exec', ns.name, process.execPath, ...nodeArgs, ...entry, ...args], {
    cwd: repoRoot,
    stdio: ['ignore', 'pipe', 'pipe'],
    ...(opts.env ? { env: { ...process.env, ...opts.env } } : {}),
  });
  const logs: string[] = [];
  const lines = (stream: NodeJS.ReadableStream): void => {
    let partial = '';
    stream.on('data', (b: Buffer) => {
      const parts = (partial + b.toString()).split('\n');
      partial = parts.pop()!;
      logs.push(...parts.filter(Boolean));
    });
  };
  lines(proc.stdout!);
  lines(proc.stderr!);
  return {
    proc,
    logs,
    kill: (signal = 'SIGTERM') =>
      new Promise<void>((resolve) => {
        if (proc.exitCode !== null || proc.signalCode !== null) return resolve();
        proc.once('exit', () => resolve());
        // `ip netns exec` execs node directly, so this PID is the agent itself.
        proc.kill(signal);
        setTimeout(() => proc.kill('SIGKILL'), 5000).unref();
      }),
  };
}

export async function waitFor<T>(
  what: string,
  f: () => T | Promise<T>,
  timeoutMs = 15000,
  logs?: string[],
): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const v = await f();
      if (v) return v as NonNullable<T>;
    } catch (e) {
      last = e;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  const tail = logs ? `\nagent log tail:\n${logs.slice(-15).join('\n')}` : '';
  throw new Error(`timed out waiting for ${what}${last ? ` (last error: ${String(last)})` : ''}${tail}`);
}

/** `ip -j route show proto 80` in the namespace. */
export function ownRoutes(
  ns: Netns,
  family: 4 | 6 = 4,
): Array<{ dst: string; dev?: string; gateway?: string; type?: string; flags?: string[] }> {
  return JSON.parse(ns.ip(`-${family}`, '-j', 'route', 'show', 'proto', '80') || '[]');
}

/** Packets sent by link `dev` in `ns` (its tx counter): whether traffic went through a tunnel. */
export function txPackets(ns: Netns, dev: string): number {
  const [l] = JSON.parse(ns.ip('-j', '-s', 'link', 'show', dev)) as Array<{
    stats64: { tx: { packets: number } };
  }>;
  return l!.stats64.tx.packets;
}

export function ping(from: Netns, to: string): boolean {
  try {
    // No ping binary on these machines: a raw-socket ICMP echo in Python.
    from.exec('python3', [join(here, 'fixtures/ping.py'), to, '1']);
    return true;
  } catch {
    return false;
  }
}

/**
 * What a fixture has made, undone last-made-first by close(). Every undo runs even when an earlier
 * one throws, so one stuck piece does not leak the namespaces and processes behind it.
 */
export class Made {
  private readonly undo: Array<() => unknown> = [];

  /** Registers how to undo `x`, just made, and returns it. */
  keep<T>(x: T, undo: (x: T) => unknown): T {
    this.undo.push(() => undo(x));
    return x;
  }

  netns(prefix: string): Netns {
    return this.keep(Netns.create(prefix), (n) => n.destroy());
  }

  async close(): Promise<void> {
    const failed: unknown[] = [];
    for (const u of this.undo.splice(0).reverse()) {
      try {
        await u();
      } catch (e) {
        failed.push(e);
      }
    }
    if (failed.length > 0) throw new AggregateError(failed, 'test fixture teardown failed');
  }
}

/** Runs `build`; its result gains close(). A failure half-way undoes what was made, then rethrows. */
export async function buildFixture<T>(
  build: (made: Made) => Promise<T>,
): Promise<T & { close(): Promise<void> }> {
  const made = new Made();
  try {
    return { ...(await build(made)), close: () => made.close() };
  } catch (e) {
    try {
      await made.close();
    } catch (teardown) {
      throw new AggregateError([e, teardown], 'test fixture setup failed, and so did its teardown');
    }
    throw e;
  }
}

/**
 * etcd on the host, the unix socket that node namespaces reach it through, and a store client.
 * `tls`: etcd serves https only and wants a client certificate (the forwarders carry TLS as it is).
 */
async function startEtcdParts(made: Made, tls = false): Promise<Pick<NodeWorld, 'etcd' | 'sock' | 'store'>> {
  const etcd = made.keep(await startEtcd({ tls }), (x) => x.destroy());
  const sock = made.keep(await etcdSocket(etcd.endpoint), (x) => x.close());
  const files = etcd.tls ? { caFile: etcd.tls.ca, certFile: etcd.tls.cert, keyFile: etcd.tls.key } : {};
  const store = made.keep(await openStore({ endpoints: [etcd.endpoint], ...files }), (x) => x.close());
  return { etcd, sock, store };
}

/** etcd 127.0.0.1:2379 inside `ns` (etcdInNetns), killed on teardown. */
async function etcdInNetnsKept(made: Made, ns: Netns, sockPath: string): Promise<ChildProcess> {
  return made.keep(await etcdInNetns(ns, sockPath), (p) => p.kill());
}

/** etcd on the host, a store client, and one node namespace on a fabric that reaches that etcd. */
export interface NodeWorld {
  etcd: EtcdInstance;
  sock: Awaited<ReturnType<typeof etcdSocket>>;
  store: EtcdStore;
  /** eth0, 192.168.100.1/24 unless given. */
  node: Netns;
  /** up0, 192.168.100.254/24 unless given; the node's gateway when `defaultRoute` is asked for. */
  fabric: Netns;
  /** The forwarder that makes etcd 127.0.0.1:2379 inside the node namespace. */
  fwd: ChildProcess;
  /** Tears down all of the above (the caller stops its agent first). */
  close(): Promise<void>;
}

type NodeWorldOptions = {
  defaultRoute?: boolean;
  addresses?: { node: string; fabric: string };
  /** etcd over https with client certificates (etcd.tls names the client's files). */
  tls?: boolean;
};

async function buildNodeWorld(
  made: Made,
  names: { node: string; fabric: string },
  opts: NodeWorldOptions,
): Promise<Omit<NodeWorld, 'close'>> {
  const addr = opts.addresses ?? { node: '192.168.100.1/24', fabric: '192.168.100.254/24' };
  const parts = await startEtcdParts(made, opts.tls);
  const node = made.netns(names.node);
  const fabric = made.netns(names.fabric);
  vethBetween(node, 'eth0', fabric, 'up0');
  node.ip('addr', 'add', addr.node, 'dev', 'eth0');
  fabric.ip('addr', 'add', addr.fabric, 'dev', 'up0');
  if (opts.defaultRoute) node.ip('route', 'add', 'default', 'via', addr.fabric.split('/')[0]!);
  const fwd = await etcdInNetnsKept(made, node, parts.sock.path);
  return { ...parts, node, fabric, fwd };
}

/**
 * The single-node world most agent tests start from. `names`: prefixes of the node and fabric
 * namespaces. A failure half-way tears down what was made before it rethrows.
 */
export function startNodeWorld(
  names: { node: string; fabric: string },
  opts: NodeWorldOptions = {},
): Promise<NodeWorld> {
  return buildFixture((made) => buildNodeWorld(made, names, opts));
}

/** An IPPool resource, for store.apply. */
export function ipPool(name: string, spec: { cidr: string } & Record<string, unknown>): Resource {
  return { apiVersion: 'projectcalico.org/v3', kind: 'IPPool', metadata: { name }, spec };
}

/** A pod as the CNI plugin and IPAM leave it: wired, its node's block, its WorkloadEndpoint. */
export interface Pod {
  /** The pod's namespace. */
  ns: Netns;
  workload: Workload;
}

/**
 * Wires pod `name` (IPv4 or IPv6 `ip`) into `node` as addWorkload does, writes `block` affine to
 * `nodeName` (the block and its confirmed affinity) and the pod's WorkloadEndpoint in namespace
 * default. The pod's namespace is torn down with the fixture.
 */
async function addPod(
  made: Made,
  store: EtcdStore,
  node: { ns: Netns; name: string },
  pod: { nsPrefix: string; name: string; ip: string; block: string; profiles?: string[] },
): Promise<Pod> {
  const v6 = pod.ip.includes(':');
  const ns = made.netns(pod.nsPrefix);
  const workload = v6
    ? addWorkload(node.ns, ns, `default.${pod.name}`, '', { ip6: pod.ip })
    : addWorkload(node.ns, ns, `default.${pod.name}`, pod.ip);
  await store.kvPut(blockKey(pod.block), serializeBlock(newBlock(pod.block, affinityFor(node.name))));
  await store.kvPut(
    affinityKey(node.name, pod.block),
    JSON.stringify({ state: 'confirmed', deleted: false }),
  );
  await store.apply({
    apiVersion: 'projectcalico.org/v3',
    kind: 'WorkloadEndpoint',
    metadata: { name: pod.name, namespace: 'default' },
    spec: {
      node: node.name,
      interfaceName: workload.hostIf,
      ipNetworks: [`${pod.ip}/${v6 ? 128 : 32}`],
      mac: workload.mac,
      ...(pod.profiles ? { profiles: pod.profiles } : {}),
    },
  });
  return { ns, workload };
}

/** startNodeWorld with one pod (allowed everything by its namespace's profile) and the agent. */
export interface PodWorld extends NodeWorld {
  nodeName: string;
  pod: Pod;
  agent: AgentProc;
}

/**
 * The node world (default route via the fabric) with `pool`, the kns.default Profile allowing all,
 * one pod in `block` under that profile, and the node's agent (stopped first on close()).
 */
export function startPodWorld(
  names: { node: string; fabric: string; pod: string },
  o: {
    nodeName: string;
    pool: Resource;
    pod: { name: string; ip: string; block: string };
    agent?: Parameters<typeof agentArgs>[1];
  },
): Promise<PodWorld> {
  return buildFixture(async (made) => {
    const world = await buildNodeWorld(made, names, { defaultRoute: true });
    const { store, node } = world;
    await store.apply(o.pool);
    await store.apply({
      apiVersion: 'projectcalico.org/v3',
      kind: 'Profile',
      metadata: { name: 'kns.default' },
      spec: { ingress: [{ action: 'Allow' }], egress: [{ action: 'Allow' }] },
    });
    const pod = await addPod(
      made,
      store,
      { ns: node, name: o.nodeName },
      { nsPrefix: names.pod, ...o.pod, profiles: ['kns.default'] },
    );
    const agent = made.keep(startAgent(node, agentArgs(o.nodeName, o.agent)), (a) => a.kill());
    return { ...world, nodeName: o.nodeName, pod, agent };
  });
}

/** A node of startNodesWorld, as the test describes it. */
export interface NodeSpec {
  name: string;
  /** This node's block, affine to it; its pod's address is in it. */
  block: string;
  /** IPv4 or IPv6. */
  podIp: string;
}

/** A node of startNodesWorld as made: its namespace, its pod, its agent. */
export type WorldNode<N extends NodeSpec> = N & { ns: Netns; pod: Pod; agent: AgentProc };

/** What startNodesWorld made; close() stops the agents, then tears down the rest. */
export interface NodesWorld<N extends NodeSpec> extends Pick<NodeWorld, 'etcd' | 'sock' | 'store'> {
  nodes: Array<WorldNode<N>>;
  close(): Promise<void>;
}

/**
 * The multi-node sibling of startNodeWorld: etcd as there and `pool`; a namespace per node (prefix
 * `names.node`), joined and addressed by `wire` (which makes any other namespace it needs through
 * `netns`, torn down with the rest); then on each node etcd's forwarder, one pod `pod-<node name>`
 * in the node's affine block, and its agent (`agent` options; policy off, route refresh 5 s by
 * default). A failure half-way tears down what was made before it rethrows.
 */
export function startNodesWorld<N extends NodeSpec>(
  names: { node: string; pod: string },
  o: {
    nodes: N[];
    pool: Resource;
    wire(nodes: Array<N & { ns: Netns }>, netns: (prefix: string) => Netns): void;
    agent?: Parameters<typeof agentArgs>[1];
  },
): Promise<NodesWorld<N>> {
  return buildFixture(async (made) => {
    const parts = await startEtcdParts(made);
    await parts.store.apply(o.pool);
    const wired = o.nodes.map((n) => ({ ...n, ns: made.netns(names.node) }));
    o.wire(wired, (prefix) => made.netns(prefix));
    const withPods: Array<N & { ns: Netns; pod: Pod }> = [];
    for (const n of wired) {
      await etcdInNetnsKept(made, n.ns, parts.sock.path);
      const pod = await addPod(made, parts.store, n, {
        nsPrefix: names.pod,
        name: `pod-${n.name}`,
        ip: n.podIp,
        block: n.block,
      });
      withPods.push({ ...n, pod });
    }
    const args = { policy: 'off', refreshSec: 5, ...o.agent } as const;
    // Stopped together, before anything they use goes.
    const agents = made.keep([] as AgentProc[], (as) => Promise.all(as.map((a) => a.kill())));
    const nodes = withPods.map((n) => {
      const agent = startAgent(n.ns, agentArgs(n.name, args));
      agents.push(agent);
      return { ...n, agent };
    });
    return { ...parts, nodes };
  });
}

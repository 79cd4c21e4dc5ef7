// Helpers for the agent's integration tests: a reachable etcd inside node namespaces, workloads
// wired the way the CNI plugin wires them, the agent process, and polling.
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { HOST_SIDE_MAC, hostVethName } from '../../../lib/constants.js';
import { type EtcdStore, openStore } from '../../../store/index.js';
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
  o: { policy?: 'on' | 'off'; metricsPort?: number; refreshSec?: number; debug?: boolean } = {},
): string[] {
  return [
    '--node',
    node,
    '--etcd-endpoints',
    'http://127.0.0.1:2379',
    ...(o.policy ? ['--policy', o.policy] : []),
    '--metrics-addr',
    `127.0.0.1:${o.metricsPort ?? 9091}`,
    ...(o.refreshSec === undefined ? [] : ['--route-refresh', String(o.refreshSec)]),
    ...(o.debug ? ['--log-level', 'debug'] : []),
    // Several test agents run at once on this host: none may take the default /var/run socket.
    '--cni-socket',
    '',
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
  opts: { built?: boolean } = {},
): AgentProc {
  const entry = opts.built
    ? [join(repoRoot, 'dist/agent/main.js')]
    : ['--import', 'tsx', join(repoRoot, 'agent/main.ts')];
  const proc = spawn('ip', ['netns', 'exec', ns.name, process.execPath, ...nodeArgs, ...entry, ...args], {
    cwd: repoRoot,
    stdio: ['ignore', 'pipe', 'pipe'],
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

export function ping(from: Netns, to: string): boolean {
  try {
    // No ping binary on these machines: a raw-socket ICMP echo in Python.
    from.exec('python3', [join(here, 'fixtures/ping.py'), to, '1']);
    return true;
  } catch {
    return false;
  }
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

/**
 * The single-node world most agent tests start from. `names`: prefixes of the node and fabric
 * namespaces. A failure half-way tears down what was made before it rethrows.
 */
export async function startNodeWorld(
  names: { node: string; fabric: string },
  opts: { defaultRoute?: boolean; addresses?: { node: string; fabric: string } } = {},
): Promise<NodeWorld> {
  const addr = opts.addresses ?? { node: '192.168.100.1/24', fabric: '192.168.100.254/24' };
  const made: Partial<Omit<NodeWorld, 'close'>> = {};
  const close = async (): Promise<void> => {
    made.fwd?.kill();
    await made.store?.close();
    await made.sock?.close();
    await made.etcd?.destroy();
    for (const n of [made.node, made.fabric]) n?.destroy();
  };
  try {
    made.etcd = await startEtcd();
    made.sock = await etcdSocket(made.etcd.endpoint);
    made.store = await openStore({ endpoints: [made.etcd.endpoint] });
    const node = Netns.create(names.node);
    made.node = node;
    const fabric = Netns.create(names.fabric);
    made.fabric = fabric;
    vethBetween(node, 'eth0', fabric, 'up0');
    node.ip('addr', 'add', addr.node, 'dev', 'eth0');
    fabric.ip('addr', 'add', addr.fabric, 'dev', 'up0');
    if (opts.defaultRoute) node.ip('route', 'add', 'default', 'via', addr.fabric.split('/')[0]!);
    made.fwd = await etcdInNetns(node, made.sock.path);
    return { ...(made as Omit<NodeWorld, 'close'>), close };
  } catch (e) {
    await close();
    throw e;
  }
}

// Shared by the ipam and cni integration tests: an etcd that also listens on a unix socket (a
// plugin runs inside a node namespace, where the test's 127.0.0.1 is not reachable, but a socket
// file is), a build check for dist/, and a runner that execs the built plugins like a runtime does.
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  rmdirSync,
  rmSync,
  statSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { EtcdLite } from '../../../ipam/etcd-lite.js';
import { resourceKeyPath } from '../../../store/kinds.js';
import { freePort } from '../../harness/etcd.js';
import { type Netns, vethBetween } from '../../harness/netns.js';
import { agentArgs, buildFixture, startAgent } from '../agent/helpers.js';

export const ROOT = resolve(import.meta.dirname, '../../..');
/** What runtimes run: the C client (agent mode; direct mode it hands to NODE_PLUGIN). */
export const PLUGIN = join(ROOT, 'dist/cni/gingham-cni');
/** The Node plugin itself (both modes), as `node dist/cni/gingham-cni.cjs` runs it. */
export const NODE_PLUGIN = join(ROOT, 'dist/cni/gingham-cni.cjs');
export const IPAM_PLUGIN = join(ROOT, 'dist/cni/gingham-ipam.cjs');
export const CLI = join(ROOT, 'dist/cli/main.js');

export interface UnixEtcd {
  /** TCP endpoint for the test process. */
  endpoint: string;
  /** unix:// endpoint for plugins inside namespaces. */
  unix: string;
  kv: EtcdLite;
  stop(): Promise<void>;
  start(): Promise<void>;
  destroy(): Promise<void>;
}

const live = new Set<ChildProcess>();
process.on('exit', () => {
  for (const p of live) {
    try {
      p.kill('SIGKILL');
    } catch {}
  }
});

export async function startUnixEtcd(): Promise<UnixEtcd> {
  const dir = mkdtempSync(join(tmpdir(), 'gingham-cni-etcd-'));
  const [cp, pp, up] = [await freePort(), await freePort(), await freePort()];
  const endpoint = `http://127.0.0.1:${cp}`;
  // etcd names a unix listener's socket file after the URL's host:port, relative to its cwd.
  const unix = `unix://${dir}/localhost:${up}`;
  const args = [
    ...['--name', 'cni', '--data-dir', join(dir, 'data')],
    ...['--listen-client-urls', `${endpoint},unix://localhost:${up}`, '--advertise-client-urls', endpoint],
    ...[
      '--listen-peer-urls',
      `http://127.0.0.1:${pp}`,
      '--initial-advertise-peer-urls',
      `http://127.0.0.1:${pp}`,
    ],
    ...['--initial-cluster', `cni=http://127.0.0.1:${pp}`, '--log-level', 'error'],
  ];
  let proc: ChildProcess | undefined;
  const kv = new EtcdLite([endpoint], 2000);
  const inst: UnixEtcd = {
    endpoint,
    unix,
    kv,
    async start() {
      if (proc && proc.exitCode === null && proc.signalCode === null) return;
      // A socket file left by the previous run would make etcd fail to listen on it.
      rmSync(join(dir, `localhost:${up}`), { force: true });
      const p = spawn('etcd', args, { cwd: dir, stdio: 'ignore' });
      proc = p;
      live.add(p);
      const deadline = Date.now() + 15000;
      for (;;) {
        if (p.exitCode !== null) throw new Error(`etcd exited with ${p.exitCode}`);
        try {
          if ((await fetch(`${endpoint}/health`)).ok && existsSync(join(dir, `localhost:${up}`))) return;
        } catch {}
        if (Date.now() > deadline) throw new Error('etcd did not become healthy');
        await new Promise((r) => setTimeout(r, 50));
      }
    },
    async stop() {
      const p = proc;
      if (!p || p.exitCode !== null || p.signalCode !== null) return;
      await new Promise<void>((r) => {
        p.once('exit', () => r());
        p.kill('SIGTERM');
      });
      live.delete(p);
    },
    async destroy() {
      kv.close();
      await inst.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
  await inst.start();
  return inst;
}

function newestMtime(dir: string): number {
  let m = 0;
  for (const f of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, f.name);
    if (f.isDirectory()) m = Math.max(m, newestMtime(p));
    else if (/\.(c?ts|c)$/.test(f.name)) m = Math.max(m, statSync(p).mtimeMs);
  }
  return m;
}

/** Builds dist/ when our sources are newer than the plugin (tsc emits even if others' files have type errors). */
export function ensureBuilt(): void {
  const lock = join(tmpdir(), 'gingham-cni-build.lock');
  for (let i = 0; ; i++) {
    try {
      mkdirSync(lock);
      break;
    } catch {
      if (i > 600) throw new Error(`build lock ${lock} held too long`);
      execFileSync('sleep', ['0.2']);
    }
  }
  try {
    const src = Math.max(...['cni', 'ipam', 'lib', 'store', 'cli'].map((d) => newestMtime(join(ROOT, d))));
    const built = [PLUGIN, NODE_PLUGIN, IPAM_PLUGIN, CLI].map((f) =>
      existsSync(f) ? statSync(f).mtimeMs : 0,
    );
    if (Math.min(...built) < src) {
      try {
        execFileSync('npx', ['tsc', '-p', 'tsconfig.build.json'], { cwd: ROOT, stdio: 'ignore' });
      } catch {
        // type errors elsewhere in the tree: tsc still emitted our files
      }
      // The post-build bundling step (without it the plugins load their modules: same code, slower).
      execFileSync(process.execPath, [join(ROOT, 'dist/cni/bundle.js')], { cwd: ROOT, stdio: 'ignore' });
      execFileSync('npm', ['run', '--silent', 'build:cni-client'], { cwd: ROOT, stdio: 'ignore' });
    }
    for (const f of [PLUGIN, NODE_PLUGIN, IPAM_PLUGIN, CLI]) {
      if (!existsSync(f)) throw new Error(`${f} is missing: run npm run build`);
      chmodSync(f, 0o755);
    }
  } finally {
    rmdirSync(lock);
  }
}

export interface CniCall {
  command: string;
  containerId?: string;
  /** Path of the workload netns. */
  netns?: string;
  ifname?: string;
  args?: string;
  conf: unknown;
  /** Node namespace name the plugin runs in. */
  nodeNs?: string;
  bin?: string;
  path?: string;
  env?: Record<string, string>;
}

export interface CniOutcome {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  // biome-ignore lint/suspicious/noExplicitAny: test-only view of a JSON result
  json: any;
}

/** Execs a plugin the way a runtime does (env + stdin), inside `nodeNs` via nsenter. */
export function cniSpawn(c: CniCall): { proc: ChildProcess; done: Promise<CniOutcome> } {
  const bin = c.bin ?? PLUGIN;
  const env: Record<string, string> = {
    PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin',
    CNI_COMMAND: c.command,
    CNI_PATH: c.path ?? `${join(ROOT, 'dist/cni')}:/usr/lib/cni`,
    ...(c.containerId !== undefined ? { CNI_CONTAINERID: c.containerId } : {}),
    ...(c.netns !== undefined ? { CNI_NETNS: c.netns } : {}),
    ...(c.ifname !== undefined ? { CNI_IFNAME: c.ifname } : {}),
    ...(c.args !== undefined ? { CNI_ARGS: c.args } : {}),
    ...c.env,
  };
  const [cmd, argv] = c.nodeNs ? ['nsenter', [`--net=/var/run/netns/${c.nodeNs}`, bin]] : [bin, []];
  const proc = spawn(cmd, argv as string[], { env, stdio: ['pipe', 'pipe', 'pipe'] });
  live.add(proc);
  let stdout = '';
  let stderr = '';
  proc.stdout!.on('data', (d: Buffer) => {
    stdout += d;
  });
  proc.stderr!.on('data', (d: Buffer) => {
    stderr += d;
  });
  // A plugin may answer without reading stdin (VERSION) and be gone before the write: EPIPE is
  // not the caller's failure, the exit status and output tell.
  proc.stdin!.on('error', () => undefined);
  proc.stdin!.end(typeof c.conf === 'string' ? c.conf : JSON.stringify(c.conf));
  const done = new Promise<CniOutcome>((res) => {
    proc.on('close', (code, signal) => {
      live.delete(proc);
      let json: unknown;
      try {
        json = stdout.trim() ? JSON.parse(stdout) : undefined;
      } catch {
        json = undefined;
      }
      res({ code, signal, stdout, stderr, json });
    });
  });
  return { proc, done };
}

export function cni(c: CniCall): Promise<CniOutcome> {
  return cniSpawn(c).done;
}

/** Runs async jobs with at most `limit` in flight. */
export async function pool<T>(
  items: T[],
  limit: number,
  fn: (t: T, i: number) => Promise<void>,
): Promise<void> {
  let next = 0;
  const workers = Array.from({ length: limit }, async () => {
    while (next < items.length) {
      const i = next++;
      await fn(items[i]!, i);
    }
  });
  await Promise.all(workers);
}

export function poolResource(name: string, spec: Record<string, unknown>): string {
  return JSON.stringify({ apiVersion: 'projectcalico.org/v3', kind: 'IPPool', metadata: { name }, spec });
}

export function nodeResource(name: string, labels: Record<string, string> = {}): string {
  return JSON.stringify({
    apiVersion: 'projectcalico.org/v3',
    kind: 'Node',
    metadata: { name, labels },
    spec: {},
  });
}

export interface CniAgent {
  /** The agent's CNI socket (the configuration's `agent_socket`). */
  socket: string;
  logs: string[];
  /** Stops the agent (by PID; SIGTERM lets it remove its socket). */
  stop(signal?: NodeJS.Signals): Promise<void>;
}

/**
 * A `gingham agent` inside the node namespace `node` serving CNI calls on `socket` (a path in a
 * directory the caller owns), BGP and policy off (not what these tests are about), remote routes
 * static.
 */
export async function startCniAgent(
  node: Netns,
  nodeName: string,
  etcd: UnixEtcd,
  socket: string,
): Promise<CniAgent> {
  // etcd's own unix socket (reachable from the node namespace; gRPC and the CNI server's HTTP
  // client both speak to it), as an agent in a cluster speaks to etcd directly.
  const agent = startAgent(node, [
    ...agentArgs(nodeName, { policy: 'off', etcd: etcd.unix, cniSocket: socket }),
    ...['--bgp', 'off', '--remote-routes', 'static'],
  ]);
  const stop = async (signal: NodeJS.Signals = 'SIGTERM') => {
    await agent.kill(signal);
  };
  const deadline = Date.now() + 30_000;
  // Listening: the log line comes after the socket is bound and its mode set.
  while (!agent.logs.some((l) => l.includes('CNI server listening'))) {
    if (agent.proc.exitCode !== null || Date.now() > deadline) {
      await stop();
      throw new Error(`agent did not open ${socket}:\n${agent.logs.join('\n')}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return { socket, logs: agent.logs, stop };
}

/** The workload veths (gh + 11 hex) on `node`'s side, as `ip -o link` lines. */
export function hostLinks(node: Netns): string[] {
  return node
    .ip('-o', 'link', 'show')
    .split('\n')
    .filter((l) => / gh[0-9a-f]{11}[@:]/.test(l));
}

/** The path a runtime passes as CNI_NETNS for `ns`. */
export function netnsPath(ns: Netns): string {
  return `/var/run/netns/${ns.name}`;
}

/** What the plugin tests run against; close() removes all of it, workloads included. */
export interface CniNode {
  etcd: UnixEtcd;
  node: Netns;
  /** The other end of the node's uplink: the node's default gateway. */
  fabric: Netns;
  /** A new workload namespace (prefix `names.workload` unless given). */
  workload(prefix?: string): Netns;
  /** The node's host-side workload veths (gh + 11 hex), as `ip -o link` lines. */
  hostLinks(): string[];
  close(): Promise<void>;
}

/**
 * etcd on a unix socket holding `pools` (name → IPPool spec) and the Node `nodeName`; a node
 * namespace whose eth0 (`uplink.node`) reaches the fabric's f0 (`uplink.fabric`) and has its default
 * route through it: proxy ARP answers for 169.254.1.1 only when the host has a route to it through
 * another interface (Calico relies on the same). A failure half-way tears down what was made.
 */
export function startCniNode(
  names: { node: string; fabric: string; workload: string },
  o: {
    nodeName: string;
    pools: Record<string, Record<string, unknown>>;
    uplink: { node: string; fabric: string };
  },
): Promise<CniNode> {
  return buildFixture(async (made) => {
    const etcd = made.keep(await startUnixEtcd(), (e) => e.destroy());
    await etcd.kv.txn(
      [],
      [
        ...Object.entries(o.pools).map(([name, spec]) => ({
          put: resourceKeyPath('IPPool', name),
          value: poolResource(name, spec),
        })),
        { put: resourceKeyPath('Node', o.nodeName), value: nodeResource(o.nodeName) },
      ],
    );
    const node = made.netns(names.node);
    const fabric = made.netns(names.fabric);
    vethBetween(node, 'eth0', fabric, 'f0');
    node.ip('addr', 'add', o.uplink.node, 'dev', 'eth0');
    fabric.ip('addr', 'add', o.uplink.fabric, 'dev', 'f0');
    node.ip('route', 'add', 'default', 'via', o.uplink.fabric.split('/')[0]!);
    return {
      etcd,
      node,
      fabric,
      workload: (prefix = names.workload) => made.netns(prefix),
      hostLinks: () => hostLinks(node),
    };
  });
}

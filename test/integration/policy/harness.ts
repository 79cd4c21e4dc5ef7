// A one-node cluster for policy conformance: a node namespace routing for workload namespaces behind
// gh* veths (/32 routes + proxy ARP, as design.md describes), an "outside" namespace behind a plain
// veth, a probe agent in every workload, and our compiler + applier running nft inside the node.
import { type ChildProcess, spawn } from 'node:child_process';
import { dirname, join } from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';
import { buildModel, compile, explain, NftApplier, type Problem } from '../../../policy/index.js';
import type { Resource } from '../../../store/api.js';
import { Netns, vethBetween } from '../../harness/netns.js';
import { ipPool, NODE, namespace, pod } from '../../unit/policy/fixtures.js';

const here = dirname(fileURLToPath(import.meta.url));
export const NAMESPACES = ['x', 'y', 'z'] as const;
export const PODS = ['a', 'b', 'c'] as const;
export const SERVED_PORTS = [80, 81];
export const OUTSIDE_IP = '192.168.200.2';
export const NODE_OUTSIDE_IP = '192.168.200.1';
export type Proto = 'tcp' | 'udp' | 'ping';

export interface Workload {
  id: string; // "x/a"
  ns: string;
  pod: string;
  ip: string;
  iface: string;
  netns: Netns;
  agent: Agent;
  labels: Record<string, string>;
}

export class Agent {
  private next = 0;
  private readonly waiting = new Map<number, (r: { ok: boolean; peer?: string }) => void>();
  private readyResolve!: () => void;
  readonly ready: Promise<void>;

  constructor(readonly proc: ChildProcess) {
    this.ready = new Promise((r) => {
      this.readyResolve = r;
    });
    readline.createInterface({ input: proc.stdout! }).on('line', (line) => {
      const msg = JSON.parse(line) as { ready?: boolean; id?: number; ok?: boolean; peer?: string };
      if (msg.ready) this.readyResolve();
      else if (msg.id !== undefined) {
        this.waiting.get(msg.id)?.({ ok: !!msg.ok, ...(msg.peer ? { peer: msg.peer } : {}) });
        this.waiting.delete(msg.id);
      }
    });
  }

  probe(kind: Proto, host: string, port: number, timeoutMs: number): Promise<{ ok: boolean; peer?: string }> {
    const id = this.next++;
    return new Promise((resolve) => {
      this.waiting.set(id, resolve);
      this.proc.stdin!.write(`${JSON.stringify({ id, kind, host, port, timeoutMs })}\n`);
    });
  }

  stop(): void {
    if (this.proc.exitCode === null && this.proc.pid) {
      this.proc.stdin?.end();
      try {
        process.kill(this.proc.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  }
}

export function startAgent(ns: Netns): Agent {
  const [cmd, args] = ns.wrap(process.execPath, [join(here, 'probe-agent.mjs'), ...SERVED_PORTS.map(String)]);
  return new Agent(spawn(cmd, args, { stdio: ['pipe', 'pipe', 'inherit'] }));
}

export const PORT_DEFS = [
  { name: 'serve-80-tcp', protocol: 'TCP' as const, port: 80 },
  { name: 'serve-81-tcp', protocol: 'TCP' as const, port: 81 },
  { name: 'serve-80-udp', protocol: 'UDP' as const, port: 80 },
  { name: 'serve-81-udp', protocol: 'UDP' as const, port: 81 },
];

export class Cluster {
  readonly node: Netns;
  readonly outside: Netns;
  readonly workloads: Workload[] = [];
  readonly outsideAgent: Agent;
  readonly applier: NftApplier;
  nsLabels: Record<string, Record<string, string>> = {};
  podLabels: Record<string, Record<string, string>> = {};
  lastProblems: Problem[] = [];
  lastResources: Resource[] = [];

  private constructor() {
    this.node = Netns.create('gpn');
    this.outside = Netns.create('gpo');
    this.applier = new NftApplier({ prefix: ['ip', 'netns', 'exec', this.node.name] });
    this.outsideAgent = undefined as unknown as Agent;
  }

  static async create(): Promise<Cluster> {
    const c = new Cluster();
    try {
      await c.setup();
    } catch (e) {
      c.destroy();
      throw e;
    }
    return c;
  }

  private async setup(): Promise<void> {
    const n = this.node;
    n.exec('sysctl', ['-q', '-w', 'net.ipv4.ip_forward=1']);
    // The outside world: a plain veth (not gh*), its own subnet, no route back to the pools.
    vethBetween(n, 'ext0', this.outside, 'eth0');
    n.ip('addr', 'add', `${NODE_OUTSIDE_IP}/24`, 'dev', 'ext0');
    this.outside.ip('addr', 'add', `${OUTSIDE_IP}/24`, 'dev', 'eth0');
    // Proxy ARP answers for 169.254.1.1 only if the node can route it elsewhere: give the node a
    // default route (as any real host has), towards the outside.
    n.ip('route', 'add', 'default', 'via', OUTSIDE_IP, 'dev', 'ext0');
    (this as { outsideAgent: Agent }).outsideAgent = startAgent(this.outside);
    let i = 0;
    for (const [ni, ns] of NAMESPACES.entries()) {
      this.nsLabels[ns] = { ns };
      for (const [pi, p] of PODS.entries()) {
        const w = Netns.create('gpw');
        const iface = `gh${ns}${p}${i++}`;
        const ip = `10.65.0.${(ni + 1) * 10 + pi + 1}`;
        vethBetween(n, iface, w, 'eth0');
        w.ip('addr', 'add', `${ip}/32`, 'dev', 'eth0');
        w.ip('route', 'add', '169.254.1.1', 'dev', 'eth0', 'scope', 'link');
        w.ip('route', 'add', 'default', 'via', '169.254.1.1', 'dev', 'eth0');
        n.exec('sysctl', [
          '-q',
          '-w',
          `net.ipv4.conf.${iface}.proxy_arp=1`,
          `net.ipv4.neigh.${iface}.proxy_delay=0`,
        ]);
        n.ip('route', 'add', `${ip}/32`, 'dev', iface, 'scope', 'link');
        const id = `${ns}/${p}`;
        this.podLabels[id] = { pod: p };
        this.workloads.push({
          id,
          ns,
          pod: p,
          ip,
          iface,
          netns: w,
          agent: startAgent(w),
          labels: this.podLabels[id]!,
        });
      }
    }
    await Promise.all([this.outsideAgent.ready, ...this.workloads.map((w) => w.agent.ready)]);
    // Warm up neighbour entries (proxy ARP) so the first truth table does not race ARP resolution.
    await Promise.all(this.workloads.map((w) => w.agent.probe('ping', NODE_OUTSIDE_IP, 0, 2000)));
    await Promise.all(
      this.workloads.flatMap((a) => this.workloads.map((b) => a.agent.probe('tcp', b.ip, 80, 3000))),
    );
  }

  w(id: string): Workload {
    const w = this.workloads.find((x) => x.id === id);
    if (!w) throw new Error(`no workload ${id}`);
    return w;
  }

  baseResources(natOutgoing = false): Resource[] {
    return [
      ipPool('pool1', '10.65.0.0/16', natOutgoing),
      ...NAMESPACES.map((ns) => namespace(ns, this.nsLabels[ns])),
      ...this.workloads.map((w) =>
        pod(w.ns, w.pod, { ip: w.ip, iface: w.iface, labels: this.podLabels[w.id], ports: PORT_DEFS }),
      ),
    ];
  }

  /** Compiles base resources + extra and applies the difference inside the node namespace. */
  async enforce(extra: Resource[], opts: { natOutgoing?: boolean; full?: boolean } = {}): Promise<Problem[]> {
    this.lastResources = [...this.baseResources(opts.natOutgoing), ...extra];
    const r = compile({ node: NODE, resources: this.lastResources });
    this.lastProblems = r.problems;
    if (opts.full) await this.applier.applyFull(r.ruleset);
    else await this.applier.apply(r.ruleset);
    return r.problems;
  }

  /**
   * A short first try; a failure is retried once with a long timeout, so a busy machine (2 shared
   * cores) cannot turn a slow allowed connection into a "denied".
   */
  async probe(from: string, to: string, kind: Proto, port: number): Promise<boolean> {
    const a = this.w(from).agent;
    const ip = this.w(to).ip;
    if ((await a.probe(kind, ip, port, 700)).ok) return true;
    return (await a.probe(kind, ip, port, 2000)).ok;
  }

  /** Probes every ordered pair of distinct workloads; returns "from→to" → reachable. */
  async matrix(kind: Proto, port: number): Promise<Map<string, boolean>> {
    const out = new Map<string, boolean>();
    const jobs: Promise<void>[] = [];
    for (const a of this.workloads) {
      for (const b of this.workloads) {
        if (a === b) continue;
        jobs.push(this.probe(a.id, b.id, kind, port).then((ok) => void out.set(`${a.id}→${b.id}`, ok)));
      }
    }
    await Promise.all(jobs);
    return out;
  }

  destroy(): void {
    this.outsideAgent?.stop();
    for (const w of this.workloads) {
      w.agent.stop();
      w.netns.destroy();
    }
    this.outside.destroy();
    this.node.destroy();
    this.applier.close();
  }
}

export type Expect = (from: Workload, to: Workload) => boolean;

/** Renders a truth table (rows: from, columns: to) with mismatches marked, like the upstream e2e tests. */
export function truthTable(
  c: Cluster,
  got: Map<string, boolean>,
  want: Expect,
): { ok: boolean; text: string } {
  const ids = c.workloads.map((w) => w.id);
  let ok = true;
  const lines = [`        ${ids.map((i) => i.padEnd(4)).join(' ')}`];
  for (const a of c.workloads) {
    const cells = c.workloads.map((b) => {
      if (a === b) return '-   ';
      const g = got.get(`${a.id}→${b.id}`)!;
      const w = want(a, b);
      if (g !== w) ok = false;
      return (g === w ? (g ? '.' : 'X') : g ? '!o' : '!x').padEnd(4);
    });
    lines.push(`${a.id.padEnd(7)} ${cells.join(' ')}`);
  }
  lines.push('(. allowed, X denied as expected; !o open but expected denied, !x denied but expected open)');
  return { ok, text: lines.join('\n') };
}

/** Probes the full matrix and fails with the truth table when it differs from `want`. */
export async function expectMatrix(
  c: Cluster,
  kind: Proto,
  port: number,
  want: Expect,
  label: string,
): Promise<void> {
  const got = await c.matrix(kind, port);
  const t = truthTable(c, got, want);
  if (!t.ok) throw new Error(`${label}: ${kind}/${port} reachability differs\n${t.text}`);
  // `gingham policy explain` evaluates the same model without the kernel: it must agree with traffic.
  const model = buildModel({ node: NODE, resources: c.lastResources });
  const protocol = kind === 'ping' ? 'ICMP' : kind.toUpperCase();
  const disagree: string[] = [];
  for (const [pair, ok] of got) {
    const [from, to] = pair.split('→') as [string, string];
    const x = explain(model, { from, to, protocol, ...(kind === 'ping' ? {} : { port }) });
    if ((x.verdict === 'Allow') !== ok)
      disagree.push(`${pair}: traffic ${ok ? 'passed' : 'blocked'}, explain says ${x.verdict}`);
  }
  if (disagree.length > 0)
    throw new Error(
      `${label}: explain disagrees with the kernel on ${kind}/${port}:\n${disagree.join('\n')}`,
    );
}

export const all: Expect = () => true;

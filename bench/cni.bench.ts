// CNI benchmarks: ADD and DEL latency (p50/p99) and sustained ADD+DEL pairs/s of gingham-cni in
// both modes — direct (the Node plugin with in-process gingham-ipam, etcd on a unix socket) and
// agent mode (the C client, cni/gingham-cni.c, handing the call to a `gingham agent` running in
// the node namespace; and, for comparison, the Node launcher doing the same) — next to Debian's
// bridge + host-local doing the same in the same run, all interleaved call by call so that the
// machine's load drifts over all of them alike; allocator throughput over 4 concurrent
// processes; and where an ADD's time goes (process start, module load, IPAM, kernel, endpoint).
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { resourceKeyPath } from '../store/kinds.js';
import { isRoot, Netns } from '../test/harness/netns.js';
import {
  cni,
  ensureBuilt,
  NODE_PLUGIN,
  nodeResource,
  PLUGIN,
  poolResource,
  ROOT,
  startCniAgent,
  startUnixEtcd,
} from '../test/integration/cni/helpers.js';
import type { BenchRow } from './types.js';

const ITER = Number(process.env.CNI_BENCH_ITER ?? 25);
const SUSTAIN_MS = Number(process.env.CNI_BENCH_SUSTAIN_MS ?? 5000);

function pct(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
}

interface PluginUnderTest {
  label: string;
  bin: string;
  conf: Record<string, unknown>;
  /** What VERSION (the exec floor) runs, when not `bin`: the executable that starts the work. */
  floorBin?: string;
}

interface Timings {
  add: number[];
  del: number[];
  /** VERSION through the same spawn path: the executable's start and exit, no work. */
  floor: number[];
}

/**
 * n ADD+DEL rounds; in each round every plugin does one ADD, one DEL and one VERSION (its exec
 * floor), interleaved, so that the floors are taken under the same load as the calls.
 */
async function timeAddDel(node: Netns, plugins: PluginUnderTest[], n: number): Promise<Timings[]> {
  const out = plugins.map((): Timings => ({ add: [], del: [], floor: [] }));
  for (let i = 0; i < n; i++) {
    for (const [k, p] of plugins.entries()) {
      const w = Netns.create('bw');
      try {
        const call = {
          bin: p.bin,
          containerId: `b${i}`,
          netns: `/var/run/netns/${w.name}`,
          ifname: 'eth0',
          conf: p.conf,
          nodeNs: node.name,
        };
        let t = performance.now();
        const a = await cni({ ...call, command: 'ADD' });
        out[k]!.add.push(performance.now() - t);
        if (a.code !== 0) throw new Error(`${p.label} ADD failed: ${a.stdout}${a.stderr}`);
        t = performance.now();
        const d = await cni({ ...call, command: 'DEL' });
        out[k]!.del.push(performance.now() - t);
        if (d.code !== 0) throw new Error(`${p.label} DEL failed: ${d.stdout}`);
        t = performance.now();
        const v = await cni({ bin: p.floorBin ?? p.bin, command: 'VERSION', conf: '', nodeNs: node.name });
        out[k]!.floor.push(performance.now() - t);
        if (v.code !== 0) throw new Error(`${p.label} VERSION failed: ${v.stdout}`);
      } finally {
        w.destroy();
      }
    }
  }
  return out;
}

async function sustainedPairs(node: Netns, p: PluginUnderTest, ms: number): Promise<number> {
  // Netns creation is the runtime's cost, not the plugin's: make them up front.
  const spare = Array.from({ length: 60 }, () => Netns.create('bs'));
  let pairs = 0;
  const t0 = performance.now();
  try {
    while (performance.now() - t0 < ms && pairs < spare.length) {
      const call = {
        bin: p.bin,
        containerId: `s${pairs}`,
        netns: `/var/run/netns/${spare[pairs]!.name}`,
        ifname: 'eth0',
        conf: p.conf,
        nodeNs: node.name,
      };
      if ((await cni({ ...call, command: 'ADD' })).code !== 0) throw new Error(`${p.label} ADD failed`);
      if ((await cni({ ...call, command: 'DEL' })).code !== 0) throw new Error(`${p.label} DEL failed`);
      pairs++;
    }
    return pairs / ((performance.now() - t0) / 1000);
  } finally {
    for (const s of spare) s.destroy();
  }
}

/** 4 processes (one per node), each allocating `per` addresses one after another. */
async function allocatorThroughput(endpoint: string, per: number): Promise<number> {
  const driver = `
    const { Allocator } = await import(${JSON.stringify(join(ROOT, 'dist/ipam/allocator.js'))});
    const { EtcdLite } = await import(${JSON.stringify(join(ROOT, 'dist/ipam/etcd-lite.js'))});
    const node = process.argv[1];
    const kv = new EtcdLite([${JSON.stringify(endpoint)}], 20000);
    const a = new Allocator(kv, { node });
    await a.usablePools(4, 'Workload');
    const t0 = Date.now();
    for (let i = 0; i < ${per}; i++) await a.assign({ handleId: node + '.' + i, num4: 1, num6: 0 });
    const t1 = Date.now();
    for (let i = 0; i < ${per}; i++) await a.releaseHandle(node + '.' + i);
    kv.close();
    console.log(JSON.stringify([t0, t1]));`;
  const spans = await Promise.all(
    ['b1', 'b2', 'b3', 'b4'].map(
      (n) =>
        new Promise<[number, number]>((resolve, reject) => {
          const p = spawn(process.execPath, ['--input-type=module', '-e', driver, n], {
            stdio: ['ignore', 'pipe', 'pipe'],
          });
          let out = '';
          let err = '';
          p.stdout.on('data', (d) => (out += d));
          p.stderr.on('data', (d) => (err += d));
          p.on('close', (c) => (c === 0 ? resolve(JSON.parse(out)) : reject(new Error(err))));
        }),
    ),
  );
  const start = Math.min(...spans.map((s) => s[0]));
  const end = Math.max(...spans.map((s) => s[1]));
  return (4 * per) / ((end - start) / 1000);
}

function startupMs(cmd: string, args: string[], env: NodeJS.ProcessEnv, n = 15): number {
  const xs: number[] = [];
  for (let i = 0; i < n; i++) {
    const t = performance.now();
    spawnSync(cmd, args, { env, stdio: 'ignore' });
    xs.push(performance.now() - t);
  }
  return pct(xs, 50);
}

/** Median of each ADD phase from GINGHAM_CNI_TRACE output. */
async function addPhases(
  node: Netns,
  conf: Record<string, unknown>,
  n: number,
): Promise<Record<string, number>> {
  const phases: Record<string, number[]> = {};
  for (let i = 0; i < n; i++) {
    const w = Netns.create('bt');
    try {
      const call = {
        containerId: `t${i}`,
        netns: `/var/run/netns/${w.name}`,
        ifname: 'eth0',
        conf,
        nodeNs: node.name,
      };
      // Epoch times, to compare with the ones the thin client prints (same clock).
      const spawnedAt = performance.timeOrigin + performance.now();
      const a = await cni({ ...call, command: 'ADD', env: { GINGHAM_CNI_TRACE: '1' } });
      const closedAt = performance.timeOrigin + performance.now();
      const seen = (key: string, ms: string) => {
        const list = phases[key] ?? [];
        list.push(Number(ms));
        phases[key] = list;
      };
      // Direct: "modules loaded: +X ms (at T ms …)", "add: ipam: +X ms (at …)". Agent mode (the C
      // client): "[gingham-cni agent] add: ipam: +X ms", "total in agent: X ms", "agent answered:
      // +X ms" (from the client's start to the answer); "process started at E" and "answer
      // printed at E" (epoch ms): the exec before the client runs (nsenter) and the exit after
      // the answer, until this process sees it closed.
      const patterns: [RegExp, (m: RegExpExecArray) => [string, string]][] = [
        [
          /process started at ([\d.]+) \(epoch/,
          (m) => ['exec before the client runs (nsenter)', String(Number(m[1]) - spawnedAt)],
        ],
        [
          /answer printed at ([\d.]+) \(epoch/,
          (m) => ['exit after the answer', String(closedAt - Number(m[1]))],
        ],
        [/modules loaded: \+[\d.]+ ms \(at ([\d.]+) ms/, (m) => ['process start + module load', m[1]!]],
        [/\] add: ([\w ]+): \+([\d.]+) ms/, (m) => [m[1]!, m[2]!]],
        [/total in agent: ([\d.]+) ms/, (m) => ['in the agent (total)', m[1]!]],
        [/agent answered: \+([\d.]+) ms/, (m) => ['socket call (client side)', m[1]!]],
      ];
      for (const line of a.stderr.split('\n')) {
        for (const [re, key] of patterns) {
          const m = re.exec(line);
          if (m) {
            seen(...key(m));
            break;
          }
        }
      }
      seen('wall (the traced ADD)', String(closedAt - spawnedAt));
      await cni({ ...call, command: 'DEL' });
    } finally {
      w.destroy();
    }
  }
  return Object.fromEntries(Object.entries(phases).map(([k, v]) => [k, pct(v, 50)]));
}

export async function run(): Promise<BenchRow[]> {
  if (!isRoot()) return [];
  ensureBuilt();
  const etcd = await startUnixEtcd();
  const node = Netns.create('bn');
  const tmp = mkdtempSync(join(tmpdir(), 'gingham-cni-bench-'));
  const rows: BenchRow[] = [];
  const B = 'cni';
  let stopAgent = async (): Promise<void> => undefined;
  try {
    await etcd.kv.txn(
      [],
      [
        { put: resourceKeyPath('IPPool', 'bench'), value: poolResource('bench', { cidr: '10.100.0.0/16' }) },
        { put: resourceKeyPath('Node', 'bench-node'), value: nodeResource('bench-node') },
      ],
    );
    const gingham: PluginUnderTest = {
      label: 'gingham-cni',
      bin: PLUGIN,
      // Direct mode's work starts in Node (the C client execs it): Node's start is its floor.
      floorBin: NODE_PLUGIN,
      conf: {
        cniVersion: '1.0.0',
        name: 'bnet',
        type: 'gingham-cni',
        nodename: 'bench-node',
        etcd_endpoints: etcd.unix,
        ipam: { type: 'gingham-ipam', assign_ipv6: 'false' },
      },
    };
    const debian: PluginUnderTest = {
      label: 'bridge+host-local',
      bin: '/usr/lib/cni/bridge',
      conf: {
        cniVersion: '1.0.0',
        name: 'dnet',
        type: 'bridge',
        bridge: 'cnibench0',
        isGateway: true,
        ipam: { type: 'host-local', subnet: '10.101.0.0/16', dataDir: join(tmp, 'hl') },
      },
    };
    const agent = await startCniAgent(node, 'bench-node', etcd, join(tmp, 'cni.sock'));
    stopAgent = () => agent.stop();
    const viaAgent: PluginUnderTest = {
      label: 'gingham-cni (agent mode)',
      bin: PLUGIN,
      conf: {
        cniVersion: '1.0.0',
        name: 'anet',
        type: 'gingham-cni',
        agent_socket: agent.socket,
        ipam: { type: 'gingham-ipam', assign_ipv6: 'false' },
      },
    };
    const viaNodeLauncher: PluginUnderTest = {
      ...viaAgent,
      label: 'gingham-cni (agent mode, Node launcher)',
      bin: NODE_PLUGIN,
    };
    const all = [gingham, viaAgent, viaNodeLauncher, debian];
    // Warm-up (first block claim, page cache, the agent's first calls).
    await timeAddDel(node, all, 2);
    const [g, a, nl, d] = (await timeAddDel(node, all, ITER)) as [Timings, Timings, Timings, Timings];
    const goalAdd = 'p50 ≤ 100 ms and ≤ 2× Debian';
    const vsDebian = { baselineLabel: 'bridge+host-local' };
    for (const [prefix, m, goal] of [
      ['', g, undefined],
      ['agent mode: ', a, goalAdd],
      ['agent mode, Node launcher: ', nl, undefined],
    ] as const) {
      rows.push(
        {
          bench: B,
          metric: `${prefix}ADD p50`,
          value: pct(m.add, 50),
          unit: 'ms',
          baseline: pct(d.add, 50),
          ...vsDebian,
          ...(goal ? { goal } : {}),
        },
        {
          bench: B,
          metric: `${prefix}ADD p99`,
          value: pct(m.add, 99),
          unit: 'ms',
          baseline: pct(d.add, 99),
          ...vsDebian,
        },
        {
          // What the plugin adds to its executable's own start and exit (VERSION through the same
          // nsenter path, same round), against Debian's ADD above bridge's VERSION: the part that
          // is the plugin's work rather than its language's start.
          bench: B,
          metric: `${prefix}ADD p50 − exec floor`,
          value: pct(m.add, 50) - pct(m.floor, 50),
          unit: 'ms',
          baseline: pct(d.add, 50) - pct(d.floor, 50),
          ...vsDebian,
        },
        {
          bench: B,
          metric: `${prefix}DEL p50`,
          value: pct(m.del, 50),
          unit: 'ms',
          baseline: pct(d.del, 50),
          ...vsDebian,
        },
        {
          bench: B,
          metric: `${prefix}DEL p99`,
          value: pct(m.del, 99),
          unit: 'ms',
          baseline: pct(d.del, 99),
          ...vsDebian,
        },
      );
    }
    rows.push(
      {
        bench: B,
        metric: 'exec floor: VERSION p50 via nsenter (C client)',
        value: pct(a.floor, 50),
        unit: 'ms',
        baseline: pct(d.floor, 50),
        ...vsDebian,
      },
      {
        bench: B,
        metric: 'exec floor: VERSION p50 via nsenter (Node launcher)',
        value: pct(g.floor, 50),
        unit: 'ms',
        baseline: pct(d.floor, 50),
        ...vsDebian,
      },
    );
    const gp = await sustainedPairs(node, gingham, SUSTAIN_MS);
    const ap = await sustainedPairs(node, viaAgent, SUSTAIN_MS);
    const dp = await sustainedPairs(node, debian, SUSTAIN_MS);
    rows.push(
      {
        bench: B,
        metric: 'sustained ADD+DEL pairs (1 runtime)',
        value: gp,
        unit: 'pairs/s',
        baseline: dp,
        ...vsDebian,
      },
      {
        bench: B,
        metric: 'agent mode: sustained ADD+DEL pairs (1 runtime)',
        value: ap,
        unit: 'pairs/s',
        baseline: dp,
        ...vsDebian,
      },
    );
    const alloc = await allocatorThroughput(etcd.endpoint, 100);
    rows.push({
      bench: B,
      metric: 'allocations, 4 concurrent processes',
      value: alloc,
      unit: 'allocs/s',
      goal: '≥ 200/s',
    });
    // Where the time goes.
    const phases = await addPhases(node, gingham.conf, 9);
    for (const [k, v] of Object.entries(phases))
      rows.push({ bench: B, metric: `ADD phase: ${k}`, value: v, unit: 'ms' });
    const agentPhases = await addPhases(node, viaAgent.conf, 9);
    for (const [k, v] of Object.entries(agentPhases))
      rows.push({ bench: B, metric: `agent mode: ADD phase: ${k}`, value: v, unit: 'ms' });
    const bare = { ...process.env };
    delete bare.NODE_EXTRA_CA_CERTS;
    const hostLocalStart = startupMs('/usr/lib/cni/host-local', [], { CNI_COMMAND: 'VERSION' });
    rows.push(
      {
        bench: B,
        metric: 'plugin start (VERSION): the C client',
        value: startupMs(PLUGIN, [], { ...process.env, CNI_COMMAND: 'VERSION' }),
        unit: 'ms',
        baseline: hostLocalStart,
        baselineLabel: 'host-local VERSION',
      },
      {
        bench: B,
        metric: 'plugin start (VERSION): the Node launcher',
        value: startupMs(NODE_PLUGIN, [], { ...process.env, CNI_COMMAND: 'VERSION' }),
        unit: 'ms',
        baseline: startupMs(process.execPath, ['-e', '0'], bare),
        baselineLabel: 'node -e 0',
      },
    );
    rows.push({
      bench: B,
      metric: 'node -e 0 with NODE_EXTRA_CA_CERTS',
      value: startupMs(process.execPath, ['-e', '0'], process.env),
      unit: 'ms',
      baseline: hostLocalStart,
      baselineLabel: 'host-local VERSION',
    });
    return rows;
  } finally {
    await stopAgent();
    spawnSync('ip', ['-n', node.name, 'link', 'del', 'cnibench0']);
    node.destroy();
    await etcd.destroy();
    rmSync(tmp, { recursive: true, force: true });
  }
}

// BGP ingest benchmark: a sender replays pre-encoded UPDATEs (bench/bgp-sender.ts) as fast as
// TCP allows into our Speaker and into BIRD 2, in the same run, inside namespaces this bench
// creates and removes. Measures time until the device holds every route (for us: the peer's
// accepted prefixes, each in the RIB with its best path selected; for BIRD: "Routes: N imported"),
// the CPU time the device used meanwhile, and RSS growth per route.
// Sizes: BENCH_BGP_SIZES="100000,1000000" (default).
// Also convergence: a block announced on one speaker, installed on another via a route reflector
// (ours, then BIRD in its place); BENCH_BGP_CONVERGENCE_RUNS announcements each (default 20).
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { isRoot } from '../test/harness/netns.js';
import { Bird, Lan, SpeakerProc, sleep, stopEverything, waitFor } from '../test/harness/routers.js';
import type { BenchRow } from './types.js';

const SIZES = (process.env.BENCH_BGP_SIZES ?? '100000,1000000').split(',').filter(Boolean).map(Number);
const CONVERGENCE_RUNS = Number(process.env.BENCH_BGP_CONVERGENCE_RUNS ?? 20);

/** CPU time (user + system) a process has used, seconds: a load-independent cost of the ingest. */
function cpuOf(pid: number): number {
  // /proc/PID/stat: fields after the ")" that ends the command name; utime and stime are 14 and 15.
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) / CLOCK_TICKS;
}
/** USER_HZ: 100 on every Linux build we run on. */
const CLOCK_TICKS = 100;

function rssOf(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) * 1024 : 0;
}

/** Children of `ip netns exec` exec in place, so the spawned PID is the daemon itself. */
interface Dut {
  label: string;
  pid: number;
  routes(): Promise<number>;
  stop(): Promise<void>;
}

async function startSender(lan: Lan, count: number): Promise<{ start: Promise<number>; stop: () => void }> {
  const h = lan.host(1);
  const child = spawn(
    'ip',
    [
      'netns',
      'exec',
      h.ns.name,
      process.execPath,
      '--import',
      'tsx',
      'bench/bgp-sender.ts',
      lan.host(0).v4,
      '65002',
      h.v4,
      String(count),
    ],
    { stdio: ['pipe', 'pipe', 'inherit'] },
  );
  const start = new Promise<number>((resolve, reject) => {
    createInterface({ input: child.stdout! }).on('line', (line) => {
      const e = JSON.parse(line) as { event: string; t?: number; error?: string };
      if (e.event === 'start') resolve(e.t!);
      if (e.event === 'error' || e.event === 'notification') reject(new Error(line));
    });
    child.once('exit', () => reject(new Error('sender exited before starting')));
  });
  return {
    start,
    stop: () => {
      try {
        process.kill(child.pid!, 'SIGTERM');
      } catch {}
    },
  };
}

async function startOurs(lan: Lan): Promise<Dut> {
  const spk = await SpeakerProc.start(lan.host(0).ns, {
    speaker: { routerId: lan.host(0).v4, asn: 65001, listen: { host: '0.0.0.0', port: 179 } },
    peers: [{ address: lan.host(1).v4, asn: 65002, passive: true, holdTimeSec: 240 }],
  });
  return {
    label: 'gingham',
    pid: spk.pid,
    routes: async () => {
      const p = await spk.call<Array<{ prefixesAccepted: number }>>('peers');
      return p[0]?.prefixesAccepted ?? 0;
    },
    stop: () => spk.stop(),
  };
}

async function startBird(lan: Lan): Promise<Dut> {
  const h = lan.host(0);
  const bird = await Bird.start(
    h.ns,
    `router id ${h.v4};
protocol device { }
protocol bgp sender {
  local ${h.v4} as 65001; neighbor ${lan.host(1).v4} as 65002; passive on;
  hold time 240;
  ipv4 { import all; export none; };
}
`,
  );
  return {
    label: 'BIRD 2',
    pid: bird.pid,
    routes: async () => {
      const m = /Routes:\s+(\d+) imported/.exec(bird.birdc('show protocols all sender'));
      return m ? Number(m[1]) : 0;
    },
    stop: () => bird.stop(),
  };
}

interface Measured {
  seconds: number;
  /** CPU seconds the device used from just before the sender starts (session setup included, negligible) to "done". */
  cpu: number;
  /** RSS after − RSS before the ingest, bytes. */
  growth: number;
  bytesPerRoute: number;
  rss: number;
}

async function measure(startDut: (lan: Lan) => Promise<Dut>, count: number): Promise<Measured> {
  const lan = Lan.create(2);
  let sender: Awaited<ReturnType<typeof startSender>> | undefined;
  try {
    const dut = await startDut(lan);
    await sleep(500);
    const rss0 = rssOf(dut.pid);
    const cpu0 = cpuOf(dut.pid);
    sender = await startSender(lan, count);
    const t0 = await sender.start;
    await waitFor(
      `${dut.label} holds ${count} routes`,
      async () => (await dut.routes()) >= count,
      600_000,
      20,
    );
    const seconds = (Date.now() - t0) / 1000;
    const cpu = cpuOf(dut.pid) - cpu0;
    await sleep(1000);
    const rss = rssOf(dut.pid);
    return { seconds, cpu, growth: rss - rss0, bytesPerRoute: (rss - rss0) / count, rss };
  } finally {
    sender?.stop();
    await stopEverything();
    lan.destroy();
  }
}

/** Announce on A, time until B's Loc-RIB has it, with A and B as clients of a reflector. */
async function convergence(reflector: 'ours' | 'bird', runs: number): Promise<number[]> {
  const lan = Lan.create(3);
  try {
    const [a, r, b] = [lan.host(0), lan.host(1), lan.host(2)];
    const client = (h: typeof a) =>
      SpeakerProc.start(h.ns, {
        speaker: { routerId: h.v4, asn: 65000, listen: { host: '0.0.0.0', port: 179 } },
        peers: [{ address: r.v4, asn: 65000, holdTimeSec: 9, keepaliveSec: 3, connectRetrySec: 1 }],
      });
    const rr =
      reflector === 'ours'
        ? SpeakerProc.start(r.ns, {
            speaker: { routerId: r.v4, asn: 65000, clusterId: r.v4, listen: { host: '0.0.0.0', port: 179 } },
            peers: [a, b].map((h) => ({
              address: h.v4,
              asn: 65000,
              rrClient: true,
              holdTimeSec: 9,
              keepaliveSec: 3,
              connectRetrySec: 1,
            })),
          })
        : Bird.start(
            r.ns,
            `router id ${r.v4};
protocol device { }
protocol direct { ipv4; }
${[a, b]
  .map(
    (h, i) => `protocol bgp c${i} {
  local ${r.v4} as 65000; neighbor ${h.v4} as 65000; rr client; rr cluster id ${r.v4}; direct;
  hold time 9; keepalive time 3; connect retry time 1;
  ipv4 { import all; export all; };
}`,
  )
  .join('\n')}
`,
          );
    const [spkA, , spkB] = await Promise.all([client(a), rr, client(b)]);
    const up = async (s: SpeakerProc) =>
      waitFor(
        'client Established',
        async () => (await s.call<Array<{ state: string }>>('peers'))[0]?.state === 'Established',
        30_000,
        50,
      );
    await Promise.all([up(spkA), up(spkB)]);
    const out: number[] = [];
    for (let i = 0; i < runs; i++) {
      const prefix = `10.65.${i}.0/26`;
      const seen = spkB.call<number>('waitRoute', { prefix });
      const t0 = Date.now();
      await spkA.call('announce', { prefix, attrs: { nextHop: a.v4 } });
      out.push((await seen) - t0);
    }
    return out;
  } finally {
    await stopEverything();
    lan.destroy();
  }
}

function sizeLabel(n: number): string {
  return n >= 1e6 ? `${n / 1e6}M` : `${n / 1e3}k`;
}

function median(xs: number[]): number {
  const s = [...xs].sort((x, y) => x - y);
  return s[Math.floor(s.length / 2)] ?? Number.NaN;
}

export async function run(): Promise<BenchRow[]> {
  if (!isRoot()) throw new Error('bgp bench needs root (network namespaces)');
  const rows: BenchRow[] = [];
  const results: Array<{ n: number; ours: Measured; bird: Measured }> = [];
  for (const n of SIZES) {
    const label = sizeLabel(n);
    const bird = await measure(startBird, n);
    const ours = await measure(startOurs, n);
    results.push({ n, ours, bird });
    rows.push(
      {
        bench: 'bgp',
        metric: `ingest ${label} IPv4 prefixes`,
        value: ours.seconds,
        unit: 's',
        baseline: bird.seconds,
        baselineLabel: 'BIRD 2',
        goal: '≤ 2× BIRD',
      },
      {
        // CPU used by the device while ingesting: on a shared, loaded machine the wall time swings
        // with everyone else's work, this much less.
        bench: 'bgp',
        metric: `ingest CPU time ${label}`,
        value: ours.cpu,
        unit: 's',
        baseline: bird.cpu,
        baselineLabel: 'BIRD 2',
      },
      {
        bench: 'bgp',
        metric: `ingest rate ${label}`,
        value: n / ours.seconds,
        unit: 'routes/s',
        baseline: n / bird.seconds,
        baselineLabel: 'BIRD 2',
      },
      {
        // Gross: (RSS after − RSS before) / routes. At small sizes this is dominated by fixed costs
        // (V8 growing its young generation and code space once), so the goal is judged on the
        // marginal figure below, which subtracts them.
        bench: 'bgp',
        metric: `RSS growth per route (${label}, gross incl. fixed overhead)`,
        value: ours.bytesPerRoute,
        unit: 'B/route',
        baseline: bird.bytesPerRoute,
        baselineLabel: 'BIRD 2',
      },
      {
        bench: 'bgp',
        metric: `RSS after ${label}`,
        value: ours.rss / 2 ** 20,
        unit: 'MiB',
        baseline: bird.rss / 2 ** 20,
        baselineLabel: 'BIRD 2',
      },
    );
  }
  // Marginal memory per route between the smallest and the largest size, and the fixed part of
  // the growth it implies (growth at the smallest size minus its routes at the marginal rate).
  const lo = results[0];
  const hi = results[results.length - 1];
  if (lo && hi && hi.n > lo.n) {
    const marginal = (a: Measured, b: Measured) => (b.growth - a.growth) / (hi.n - lo.n);
    const mOurs = marginal(lo.ours, hi.ours);
    const mBird = marginal(lo.bird, hi.bird);
    rows.push(
      {
        bench: 'bgp',
        metric: `RSS per route, marginal ${sizeLabel(lo.n)}→${sizeLabel(hi.n)}`,
        value: mOurs,
        unit: 'B/route',
        baseline: mBird,
        baselineLabel: 'BIRD 2',
        goal: '≤ 500 B/route',
      },
      {
        bench: 'bgp',
        metric: `fixed RSS overhead of ingest (growth at ${sizeLabel(lo.n)} − marginal × routes)`,
        value: (lo.ours.growth - mOurs * lo.n) / 2 ** 20,
        unit: 'MiB',
        baseline: (lo.bird.growth - mBird * lo.n) / 2 ** 20,
        baselineLabel: 'BIRD 2',
      },
    );
  }
  if (CONVERGENCE_RUNS > 0) {
    const ours = await convergence('ours', CONVERGENCE_RUNS);
    const bird = await convergence('bird', CONVERGENCE_RUNS);
    rows.push(
      {
        bench: 'bgp',
        metric: `convergence via reflector, median of ${CONVERGENCE_RUNS}`,
        value: median(ours),
        unit: 'ms',
        baseline: median(bird),
        baselineLabel: 'BIRD 2 as reflector',
      },
      {
        bench: 'bgp',
        metric: 'convergence via reflector, worst',
        value: Math.max(...ours),
        unit: 'ms',
        baseline: Math.max(...bird),
        baselineLabel: 'BIRD 2 as reflector',
      },
    );
  }
  return rows;
}

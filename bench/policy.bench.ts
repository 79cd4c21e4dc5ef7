// Policy benchmark (issue 5): 1,000 policies / 10,000 rules, 500 local endpoints, 100,000 remote
// endpoint addresses in sets, all inside a network namespace this bench creates and removes.
//   1. full load (compile + atomic replace) next to `nft -j -f` of the same JSON alone  (goal ≤ 1.2×)
//   2. one policy changed → enforced, next to the minimal nft transaction alone        (goal ≤ 2×)
//   3. one remote endpoint's labels changed → set elements updated                     (goal ≤ 10 ms)
//   4. iperf3 pod-to-pod throughput with the 1,000 policies next to no policy           (goal ≥ 0.95×)
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { compile, diffRulesets, NftApplier, type NftRuleset } from '../policy/index.js';
import { fullReplaceCommands } from '../policy/nft.js';
import type { Resource } from '../store/api.js';
import type { BenchRow } from './types.js';

const NODE = 'bench-node';
const NAMESPACES = 50;
const POLICIES = 1000;
const RULES_PER_POLICY = 10;
const LOCAL_EPS = 500;
const REMOTE_EPS = 10_000;
const ADDRS_PER_REMOTE = 10;
const APPS = 100;

const ip4 = (n: number) => `10.${64 + ((n >>> 16) & 0x3f)}.${(n >>> 8) & 255}.${n & 255}`;

/** The synthetic cluster. `variant` changes one policy; `relabel` changes one remote endpoint's app. */
export function synthCluster(opts: { variant?: number; relabel?: number } = {}): Resource[] {
  const out: Resource[] = [];
  for (let n = 0; n < NAMESPACES; n++) {
    out.push({
      apiVersion: 'v1',
      kind: 'Namespace',
      metadata: { name: `ns${n}`, labels: { team: `t${n % 10}` } },
      spec: {},
    });
  }
  let addr = 1;
  for (let i = 0; i < LOCAL_EPS; i++) {
    const ns = `ns${i % NAMESPACES}`;
    out.push({
      apiVersion: 'projectcalico.org/v3',
      kind: 'WorkloadEndpoint',
      metadata: { name: `${NODE}-k8s-l${i}-eth0`, namespace: ns, labels: { app: `app${i % APPS}` } },
      spec: { node: NODE, pod: `l${i}`, interfaceName: `ghb${i}`, ipNetworks: [`${ip4(addr++)}/32`] },
    });
  }
  for (let i = 0; i < REMOTE_EPS; i++) {
    const ips: string[] = [];
    for (let k = 0; k < ADDRS_PER_REMOTE; k++) ips.push(`${ip4(addr++)}/32`);
    const app = opts.relabel === i ? `app${(i + 1) % APPS}` : `app${i % APPS}`;
    out.push({
      apiVersion: 'projectcalico.org/v3',
      kind: 'WorkloadEndpoint',
      metadata: { name: `remote-k8s-r${i}-eth0`, namespace: `ns${i % NAMESPACES}`, labels: { app } },
      spec: { node: `remote${i % 50}`, pod: `r${i}`, interfaceName: `ghr${i}`, ipNetworks: ips },
    });
  }
  for (let p = 0; p < POLICIES; p++) {
    const rules = [];
    for (let r = 0; r < RULES_PER_POLICY; r++) {
      const port =
        1000 + ((p * RULES_PER_POLICY + r) % 20_000) + (opts.variant === p && r === 0 ? 50_000 : 0);
      rules.push({
        action: r === RULES_PER_POLICY - 1 ? 'Deny' : 'Allow',
        ipVersion: 4,
        protocol: 'TCP',
        source: { selector: `app == "app${(p + r) % APPS}"`, namespaceSelector: 'all()' },
        destination: { ports: [port] },
      });
    }
    out.push({
      apiVersion: 'projectcalico.org/v3',
      kind: 'NetworkPolicy',
      metadata: { name: `p${p}`, namespace: `ns${p % NAMESPACES}` },
      spec: { order: p, selector: `app == "app${p % APPS}"`, types: ['Ingress'], ingress: rules },
    });
  }
  return out;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

async function time<T>(f: () => Promise<T>): Promise<[number, T]> {
  const t0 = performance.now();
  const r = await f();
  return [performance.now() - t0, r];
}

function sh(cmd: string, args: string[]): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

function counts(rs: NftRuleset): { rules: number; elements: number } {
  let rules = 0;
  for (const c of rs.chains.values()) rules += c.rules.length;
  let elements = 0;
  for (const s of rs.sets.values()) elements += s.elements.size;
  return { rules, elements };
}

async function iperf(ns: string, clientNs: string, server: string): Promise<number> {
  const srv: ChildProcess = spawn('ip', ['netns', 'exec', ns, 'iperf3', '-s', '-1', '-B', server], {
    stdio: 'ignore',
  });
  try {
    await new Promise((r) => setTimeout(r, 300));
    const out = sh('ip', ['netns', 'exec', clientNs, 'iperf3', '-c', server, '-t', '3', '-J']);
    const j = JSON.parse(out) as { end: { sum_received: { bits_per_second: number } } };
    return j.end.sum_received.bits_per_second / 1e9;
  } finally {
    if (srv.pid && srv.exitCode === null) process.kill(srv.pid, 'SIGKILL');
  }
}

interface Topology {
  node: string;
  client: string;
  server: string;
  serverIp: string;
}

/** A node namespace with two workloads behind gh* veths (l0 and l100: both app0, so policed). */
function makeTopology(tag: string, made: string[]): Topology {
  const node = `gpbn${tag}`;
  const wa = `gpba${tag}`;
  const wb = `gpbb${tag}`;
  for (const n of [node, wa, wb]) {
    sh('ip', ['netns', 'add', n]);
    made.push(n);
    sh('ip', ['-n', n, 'link', 'set', 'lo', 'up']);
  }
  sh('ip', ['netns', 'exec', node, 'sysctl', '-q', '-w', 'net.ipv4.ip_forward=1']);
  // An uplink (a veth pair inside the node; no dummy module here) so that the node has a default
  // route: proxy ARP answers for 169.254.1.1 only when it can route it elsewhere.
  sh('ip', ['-n', node, 'link', 'add', 'up0', 'type', 'veth', 'peer', 'name', 'up1']);
  sh('ip', ['-n', node, 'link', 'set', 'up0', 'up']);
  sh('ip', ['-n', node, 'link', 'set', 'up1', 'up']);
  sh('ip', ['-n', node, 'route', 'add', 'default', 'dev', 'up0']);
  for (const [ns, ifc, ip] of [
    [wa, 'ghb0', ip4(1)],
    [wb, 'ghb100', ip4(101)],
  ] as const) {
    sh('ip', ['-n', node, 'link', 'add', ifc, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns]);
    sh('ip', ['-n', node, 'link', 'set', ifc, 'up']);
    sh('ip', ['-n', ns, 'link', 'set', 'eth0', 'up']);
    sh('ip', ['-n', ns, 'addr', 'add', `${ip}/32`, 'dev', 'eth0']);
    sh('ip', ['-n', ns, 'route', 'add', '169.254.1.1', 'dev', 'eth0', 'scope', 'link']);
    sh('ip', ['-n', ns, 'route', 'add', 'default', 'via', '169.254.1.1', 'dev', 'eth0']);
    sh('ip', ['netns', 'exec', node, 'sysctl', '-q', '-w', `net.ipv4.conf.${ifc}.proxy_arp=1`]);
    sh('ip', ['-n', node, 'route', 'add', `${ip}/32`, 'dev', ifc, 'scope', 'link']);
  }
  return { node, client: wa, server: wb, serverIp: ip4(101) };
}

function replaceByName(rs: Resource[], kind: string, name: string, next: Resource): Resource[] {
  return rs.map((r) => (r.kind === kind && r.metadata.name === name ? next : r));
}

export async function run(): Promise<BenchRow[]> {
  const rows: BenchRow[] = [];
  const tag = Math.random().toString(16).slice(2, 8);
  const made: string[] = [];
  let applier: NftApplier | undefined;
  try {
    const policed = makeTopology(`p${tag}`, made);
    const plain = makeTopology(`n${tag}`, made);
    applier = new NftApplier({ prefix: ['ip', 'netns', 'exec', policed.node] });

    // The agent keeps unchanged resource objects between compiles; so does this bench.
    const iperfAllow: Resource = {
      apiVersion: 'projectcalico.org/v3',
      kind: 'GlobalNetworkPolicy',
      metadata: { name: 'iperf' },
      spec: {
        order: 0,
        selector: 'app == "app0"',
        ingress: [{ action: 'Allow', protocol: 'TCP', destination: { ports: [5201] } }],
      },
    };
    let resources = [...synthCluster(), iperfAllow];

    // 1. Full load: compile + atomic replace, next to nft loading the same JSON alone.
    const fullTimes: number[] = [];
    const nftTimes: number[] = [];
    const compileTimes: number[] = [];
    // Every measured load replaces a full table (as a resync does), not an empty one.
    await applier.applyFull(compile({ node: NODE, resources }).ruleset);
    for (let i = 0; i < 3; i++) {
      const fresh = [...synthCluster(), { ...iperfAllow }]; // new objects: no compile cache
      const [tc, r] = await time(async () => compile({ node: NODE, resources: fresh }));
      const [ta] = await time(() => applier!.applyFull(r.ruleset));
      compileTimes.push(tc);
      fullTimes.push(tc + ta);
      const cmds = fullReplaceCommands(r.ruleset);
      const [tn] = await time(() => applier!.transaction(cmds));
      nftTimes.push(tn);
    }
    const rs = compile({ node: NODE, resources }).ruleset;
    await applier.applyFull(rs);
    const c = counts(rs);
    rows.push({
      bench: 'policy',
      metric: `full load (${POLICIES} policies, ${c.rules} nft rules, ${c.elements} set elements, ${LOCAL_EPS} local eps)`,
      value: median(fullTimes),
      unit: 'ms',
      baseline: median(nftTimes),
      baselineLabel: 'nft -j -f same JSON',
      goal: '≤ 1.2× nft alone',
    });
    rows.push({
      bench: 'policy',
      metric: 'full load: compile part (pure TS)',
      value: median(compileTimes),
      unit: 'ms',
    });

    // 4. iperf3 through the policed node (1,000 policies) and an identical node with no table,
    // interleaved so machine load affects both alike.
    const withP: number[] = [];
    const without: number[] = [];
    for (let i = 0; i < 3; i++) {
      without.push(await iperf(plain.server, plain.client, plain.serverIp));
      withP.push(await iperf(policed.server, policed.client, policed.serverIp));
    }
    rows.push({
      bench: 'policy',
      metric: 'iperf3 pod→pod throughput with 1,000 policies',
      value: median(withP),
      unit: 'Gbit/s',
      baseline: median(without),
      baselineLabel: 'no policy',
      goal: '≥ 0.95× no policy',
    });

    // 2. One policy changed → enforced (compile + diff + one transaction), vs that transaction alone.
    const changeTimes: number[] = [];
    const minimalTimes: number[] = [];
    const minimalSpawned: number[] = [];
    let prev = rs;
    for (let i = 0; i < 5; i++) {
      const name = `p${500 + i}`;
      const v = synthCluster({ variant: 500 + i }).find(
        (r) => r.kind === 'NetworkPolicy' && r.metadata.name === name,
      )!;
      resources = replaceByName(resources, 'NetworkPolicy', name, v);
      const [t, next] = await time(async () => {
        const n = compile({ node: NODE, resources }).ruleset;
        await applier!.apply(n);
        return n;
      });
      changeTimes.push(t);
      // The minimal transaction for the same change, replayed alone (back, then timed forward), both
      // the fastest way (the applier's persistent session) and as a freshly spawned `nft -j -f`.
      await applier.incremental(diffRulesets(next, prev)!.commands);
      const fwd = diffRulesets(prev, next)!;
      const [tm] = await time(() => applier!.incremental(fwd.commands));
      minimalTimes.push(tm);
      await applier.incremental(diffRulesets(next, prev)!.commands);
      const [ts] = await time(() => applier!.transaction(fwd.commands));
      minimalSpawned.push(ts);
      prev = next;
    }
    rows.push({
      bench: 'policy',
      metric: 'one policy changed → enforced (compile + diff + nft)',
      value: median(changeTimes),
      unit: 'ms',
      baseline: median(minimalTimes),
      baselineLabel: 'minimal nft transaction (persistent nft -i)',
      goal: '≤ 2× minimal transaction',
    });
    rows.push({
      bench: 'policy',
      metric: 'one policy changed: minimal transaction as a spawned nft -j -f',
      value: median(minimalSpawned),
      unit: 'ms',
    });

    // 3. One remote endpoint's labels changed → its 10 addresses move from one set to another.
    const relabelNft: number[] = [];
    const relabelTotal: number[] = [];
    const relabelSpawned: number[] = [];
    for (let i = 0; i < 7; i++) {
      const name = `remote-k8s-r${1000 + i}-eth0`;
      const old = resources.find((r) => r.kind === 'WorkloadEndpoint' && r.metadata.name === name)!;
      const moved: Resource = {
        ...old,
        metadata: { ...old.metadata, labels: { app: `app${(1001 + i) % APPS}` } },
      };
      resources = replaceByName(resources, 'WorkloadEndpoint', name, moved);
      const [tt, r] = await time(async () => {
        const n = compile({ node: NODE, resources }).ruleset;
        return applier!.apply(n).then((rep) => ({ n, rep }));
      });
      relabelTotal.push(tt);
      // The set-element transaction alone, replayed: as the applier sends it (persistent session),
      // and as a freshly spawned `nft -j -f` for comparison.
      await applier.incremental(diffRulesets(r.n, prev)!.commands);
      const d = diffRulesets(prev, r.n)!;
      const [tn] = await time(() => applier!.incremental(d.commands));
      relabelNft.push(tn);
      await applier.incremental(diffRulesets(r.n, prev)!.commands);
      const [ts] = await time(() => applier!.transaction(d.commands));
      relabelSpawned.push(ts);
      prev = r.n;
    }
    rows.push({
      bench: 'policy',
      metric: 'one endpoint relabelled → set elements updated (nft transaction, persistent nft -i)',
      value: median(relabelNft),
      unit: 'ms',
      goal: '≤ 10 ms',
    });
    rows.push({
      bench: 'policy',
      metric: 'one endpoint relabelled: same transaction as a spawned nft -j -f',
      value: median(relabelSpawned),
      unit: 'ms',
    });
    rows.push({
      bench: 'policy',
      metric: 'one endpoint relabelled → enforced (compile + diff + nft)',
      value: median(relabelTotal),
      unit: 'ms',
    });
  } finally {
    applier?.close();
    for (const n of made) spawnSync('ip', ['netns', 'del', n]);
  }
  return rows;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  run().then((rows) => console.log(JSON.stringify(rows, null, 2)));
}

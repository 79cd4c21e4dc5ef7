// ECMP end to end: an agent (its own process, in a node namespace, with BGP on) peers with two
// real BGP speakers (test/fixtures/bgp-speaker.ts) that both announce 10.99.0.0/24. The two equal
// paths become one multipath kernel route (proto 80, `nexthop … nexthop …`); a withdrawal on one
// peer drops it to a single-path route, a new announcement brings the multipath route back, and
// periodic resyncs (dump → diff) leave the multipath route alone.
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import { type EtcdStore, openStore } from '../../../store/index.js';
import { type EtcdInstance, freePort, startEtcd } from '../../harness/etcd.js';
import { isRoot, Netns, vethBetween } from '../../harness/netns.js';
import { SpeakerProc } from '../../harness/routers.js';
import { speakerPeer } from '../bgp/configs.js';
import { type AgentProc, agentArgs, etcdInNetns, etcdSocket, startAgent, waitFor } from './helpers.js';

const skip = !isRoot() ? 'needs root' : false;

const PREFIX = '10.99.0.0/24';
const NODE_IP = '192.168.100.1';
const PEER_A = '192.168.100.2';
const PEER_B = '192.168.100.3';

interface IpRoute {
  dst: string;
  gateway?: string;
  dev?: string;
  flags?: string[];
  nexthops?: Array<{ gateway: string; dev: string; weight: number; flags: string[] }>;
}

describe('agent: ECMP routes from two BGP peers', { skip, timeout: 120_000 }, () => {
  let etcd: EtcdInstance;
  let sock: Awaited<ReturnType<typeof etcdSocket>>;
  let store: EtcdStore;
  let node: Netns;
  let fabric: Netns;
  let fwd: ChildProcess;
  let agent: AgentProc;
  let metricsPort: number;
  const speakers: SpeakerProc[] = [];
  const nodeName = `node-${process.pid}`;

  const route = (): IpRoute | undefined =>
    (JSON.parse(node.ip('-4', '-j', 'route', 'show', 'proto', '80') || '[]') as IpRoute[]).find(
      (r) => r.dst === PREFIX,
    );
  /** The route when `ok` holds for it (a waitFor probe). */
  const routeWhen = (ok: (r: IpRoute) => boolean) => (): IpRoute | undefined => {
    const r = route();
    return r && ok(r) ? r : undefined;
  };
  /** Sum of a counter's samples whose labels contain `labels` (from the agent's /metrics). */
  const counter = (name: string, labels = ''): number => {
    const text = node.exec('curl', ['-s', `http://127.0.0.1:${metricsPort}/metrics`]);
    let sum = 0;
    for (const line of text.split('\n')) {
      if (line.startsWith(`${name}{`) && line.includes(labels)) sum += Number(line.split(' ').pop());
      else if (line.startsWith(`${name} `)) sum += Number(line.split(' ').pop());
    }
    return sum;
  };
  const hopsOf = (r: IpRoute | undefined): string[] =>
    (r?.nexthops ?? []).map((h) => `${h.gateway} ${h.dev} w${h.weight} ${h.flags.join(',')}`).sort();

  before(async () => {
    etcd = await startEtcd();
    sock = await etcdSocket(etcd.endpoint);
    store = await openStore({ endpoints: [etcd.endpoint] });
    node = Netns.create('gen');
    fabric = Netns.create('gef');
    vethBetween(node, 'eth0', fabric, 'up0');
    node.ip('addr', 'add', `${NODE_IP}/24`, 'dev', 'eth0');
    fabric.ip('addr', 'add', `${PEER_A}/24`, 'dev', 'up0');
    fabric.ip('addr', 'add', `${PEER_B}/24`, 'dev', 'up0');
    fwd = await etcdInNetns(node, sock.path);
    const res = (kind: string, name: string, spec: unknown) => ({
      apiVersion: 'projectcalico.org/v3',
      kind,
      metadata: { name },
      spec,
    });
    await store.apply(res('IPPool', 'pool1', { cidr: '10.65.0.0/16' }));
    await store.apply(res('BGPConfiguration', 'default', { nodeToNodeMeshEnabled: false }));
    await store.apply(res('BGPPeer', 'peer-a', { peerIP: PEER_A, asNumber: 65001 }));
    await store.apply(res('BGPPeer', 'peer-b', { peerIP: PEER_B, asNumber: 65002 }));
    // Two eBGP neighbours with equal-length AS paths: equal cost for the agent's decision process.
    for (const [ip, asn] of [
      [PEER_A, 65001],
      [PEER_B, 65002],
    ] as const) {
      speakers.push(
        await SpeakerProc.start(fabric, {
          // Graceful restart as the agents' own mesh peers have it: End-of-RIB tells a restarting
          // agent when it has re-learned everything.
          speaker: {
            routerId: ip,
            asn,
            listen: { host: ip, port: 179 },
            gracefulRestart: { restartTimeSec: 120 },
          },
          peers: [speakerPeer(NODE_IP, 64512, { localAddress: ip })],
          announce: [{ prefix: PREFIX }],
        }),
      );
    }
    metricsPort = await freePort();
    agent = startAgent(node, args());
  });

  const args = (): string[] =>
    agentArgs(nodeName, { policy: 'off', metricsPort, refreshSec: 1, debug: true });

  after(async () => {
    await agent?.kill();
    for (const s of speakers) await s.stop();
    fwd?.kill();
    await store?.close();
    await sock?.close();
    await etcd?.destroy();
    for (const n of [node, fabric]) n?.destroy();
  });

  it('two equal paths become one multipath kernel route', async () => {
    const r = await waitFor(
      'multipath route',
      routeWhen((r) => r.nexthops?.length === 2),
      40_000,
      agent.logs,
    );
    assert.deepEqual(hopsOf(r), [`${PEER_A} eth0 w1 onlink`, `${PEER_B} eth0 w1 onlink`]);
    assert.equal(r.gateway, undefined, 'no single gateway on a multipath route');
  });

  it('periodic resyncs see the multipath route as equal and leave it alone', async () => {
    // The agent resyncs (dump → diff) every second: no route may be rewritten, and `ip monitor`
    // (which shows deletes and changes, not identical replaces) must see nothing of ours.
    const mon = spawn('ip', ['netns', 'exec', node.name, 'ip', '-4', 'monitor', 'route'], {
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    let seen = '';
    mon.stdout!.on('data', (b: Buffer) => {
      seen += b.toString();
    });
    const resyncs0 = counter('gingham_agent_resyncs_total');
    const writes0 = counter('gingham_agent_kernel_writes_total', 'driver="routes"');
    try {
      await new Promise((r) => setTimeout(r, 3500));
    } finally {
      mon.kill();
    }
    assert.ok(counter('gingham_agent_resyncs_total') >= resyncs0 + 2, 'at least two resyncs ran');
    assert.equal(
      counter('gingham_agent_kernel_writes_total', 'driver="routes"'),
      writes0,
      'no route rewritten',
    );
    const ours = seen.split('\n').filter((l) => l.includes(PREFIX.split('/')[0]!));
    assert.deepEqual(ours, []);
    assert.equal(route()?.nexthops?.length, 2);
  });

  it('kill -9 and restart: learned routes are kept, not deleted and re-added', async () => {
    const mon = spawn('ip', ['netns', 'exec', node.name, 'ip', '-4', 'monitor', 'route'], {
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    let seen = '';
    mon.stdout.on('data', (b: Buffer) => {
      seen += b.toString();
    });
    try {
      await new Promise((r) => setTimeout(r, 300));
      await agent.kill('SIGKILL');
      agent = startAgent(node, args());
      // The restarted agent finds its routes in the kernel, restarts BGP with the R bit and keeps
      // the learned routes until both peers' End-of-RIB.
      await waitFor(
        'BGP routes re-learned after the restart',
        async () => (agent.logs.some((l) => l.includes('BGP routes re-learned')) ? true : undefined),
        40_000,
        agent.logs,
      );
      await new Promise((r) => setTimeout(r, 2500)); // two resyncs after the hold ended
    } finally {
      mon.kill();
    }
    const ours = seen.split('\n').filter((l) => l.includes(PREFIX.split('/')[0]!));
    assert.deepEqual(
      ours,
      [],
      `the learned route changed across the restart:\n${ours.join('\n')}\nagent log:\n${agent.logs
        .filter((l) => /learned|BGP|restart/i.test(l))
        .slice(-20)
        .join('\n')}`,
    );
    const r = await routeWhen((x) => x.nexthops?.length === 2)();
    assert.ok(r, 'still one multipath route');
  });

  it('a withdrawal on one peer leaves a single-path route; a new announcement restores ECMP', async () => {
    await speakers[1]!.call('withdraw', { prefix: PREFIX });
    const single = await waitFor(
      'single path',
      routeWhen((r) => r.nexthops === undefined),
      15_000,
      agent.logs,
    );
    assert.equal(single.gateway, PEER_A);
    assert.equal(single.dev, 'eth0');
    assert.ok(single.flags?.includes('onlink'));
    await speakers[1]!.call('announce', { prefix: PREFIX });
    const both = await waitFor(
      'multipath again',
      routeWhen((r) => r.nexthops?.length === 2),
      15_000,
      agent.logs,
    );
    assert.deepEqual(hopsOf(both), [`${PEER_A} eth0 w1 onlink`, `${PEER_B} eth0 w1 onlink`]);
  });

  it('the route goes when both peers withdraw', async () => {
    await speakers[0]!.call('withdraw', { prefix: PREFIX });
    await speakers[1]!.call('withdraw', { prefix: PREFIX });
    await waitFor('route removed', () => route() === undefined, 15_000, agent.logs);
  });
});

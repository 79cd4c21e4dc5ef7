// One node, two workloads: they reach each other and the node through 169.254.1.1; the agent
// programs /32 routes (proto 80), permanent neighbours and sysctls; removal cleans up; status is
// published; a node without a route for 169.254.1.1 is reported.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { endpointStatusKey, nodeStatusKey } from '../../../agent/agent.js';
import { newBlock } from '../../../ipam/block.js';
import { affinityFor, blockKey, serializeBlock } from '../../../ipam/model.js';
import type { EtcdStore } from '../../../store/index.js';
import { freePort } from '../../harness/etcd.js';
import { isRoot, Netns } from '../../harness/netns.js';
import {
  type AgentProc,
  addWorkload,
  agentArgs,
  type NodeWorld,
  ownRoutes,
  ping,
  startAgent,
  startNodeWorld,
  type Workload,
  waitFor,
} from './helpers.js';

const skip = !isRoot() ? 'needs root' : false;

describe('agent: local workloads on one node', { skip, timeout: 90_000 }, () => {
  let store: EtcdStore;
  let node: Netns;
  let world: NodeWorld | undefined;
  let agent: AgentProc;
  const nodeName = `node-${process.pid}`;
  const ws: Netns[] = [];
  let w1: Workload;
  let w2: Workload;
  let metricsPort: number;

  const wep = (name: string, w: Workload) => ({
    apiVersion: 'projectcalico.org/v3',
    kind: 'WorkloadEndpoint',
    metadata: { name, namespace: 'default' },
    spec: {
      node: nodeName,
      orchestrator: 'cni',
      interfaceName: w.hostIf,
      ipNetworks: [`${w.ip}/32`],
      mac: w.mac,
    },
  });

  before(async () => {
    world = await startNodeWorld({ node: 'gan', fabric: 'gaf' });
    ({ store, node } = world);
    ws.push(Netns.create('gaw'), Netns.create('gaw'));
    w1 = addWorkload(node, ws[0]!, 'default.w1', '10.65.0.1');
    w2 = addWorkload(node, ws[1]!, 'default.w2', '10.65.0.2', { hostUp: true });
    await store.apply({
      apiVersion: 'projectcalico.org/v3',
      kind: 'IPPool',
      metadata: { name: 'pool1' },
      spec: { cidr: '10.65.0.0/16' },
    });
    await store.kvPut(
      blockKey('10.65.0.0/26'),
      serializeBlock(newBlock('10.65.0.0/26', affinityFor(nodeName))),
    );
    await store.apply(wep('w1', w1));
    await store.apply(wep('w2', w2));
    metricsPort = await freePort();
    agent = startAgent(node, agentArgs(nodeName, { policy: 'off', metricsPort, refreshSec: 2, debug: true }));
  });

  after(async () => {
    await agent?.kill();
    await world?.close();
    for (const n of ws) n?.destroy();
  });

  it('registers the Node with its detected address', async () => {
    const n = await waitFor('Node registered', () => store.tryGet('Node', nodeName), 15000, agent.logs);
    assert.equal((n.spec as { bgp: { ipv4Address: string } }).bgp.ipv4Address, '192.168.100.1/24');
  });

  it('programs /32 routes, the blackhole, neighbours and sysctls; brings veths up', async () => {
    await waitFor('routes', () => ownRoutes(node).length === 3, 15000, agent.logs);
    const routes = ownRoutes(node);
    const r1 = routes.find((r) => r.dst === '10.65.0.1');
    assert.equal(r1?.dev, w1.hostIf);
    assert.ok(routes.some((r) => r.dst === '10.65.0.0/26' && r.type === 'blackhole'));
    const neigh = JSON.parse(node.ip('-j', 'neigh', 'show', 'dev', w1.hostIf)) as Array<{
      dst: string;
      lladdr: string;
      state: string[];
    }>;
    assert.ok(
      neigh.some((n) => n.dst === '10.65.0.1' && n.lladdr === w1.mac && n.state.includes('PERMANENT')),
    );
    assert.equal(node.exec('cat', [`/proc/sys/net/ipv4/conf/${w1.hostIf}/proxy_arp`]).trim(), '1');
    assert.equal(node.exec('cat', [`/proc/sys/net/ipv4/neigh/${w1.hostIf}/proxy_delay`]).trim(), '0');
    assert.equal(node.exec('cat', ['/proc/sys/net/ipv4/ip_forward']).trim(), '1');
    const link = JSON.parse(node.ip('-j', 'link', 'show', w1.hostIf)) as Array<{ flags: string[] }>;
    assert.ok(link[0]!.flags.includes('UP'), 'the agent brought the host veth up');
  });

  it('reports the missing route for 169.254.1.1, then workloads ping each other and the node once it exists', async () => {
    await waitFor(
      'no-gateway-route reported',
      async () => {
        const s = await store.kvGet(nodeStatusKey(nodeName));
        return (
          s &&
          (JSON.parse(s.value.toString()).problems as Array<{ code: string }>).some(
            (p) => p.code === 'no-gateway-route',
          )
        );
      },
      15000,
      agent.logs,
    );
    assert.equal(ping(w1.ns, w2.ip), false, 'without a route covering 169.254.1.1 proxy ARP does not answer');
    node.ip('route', 'add', 'default', 'via', '192.168.100.254');
    await waitFor('w1 → w2', () => ping(w1.ns, w2.ip), 10000);
    assert.ok(ping(w2.ns, w1.ip));
    assert.ok(ping(w1.ns, '192.168.100.1'), 'workload reaches the node');
    await waitFor(
      'problem cleared',
      async () => {
        const s = await store.kvGet(nodeStatusKey(nodeName));
        return s && (JSON.parse(s.value.toString()).problems as unknown[]).length === 0;
      },
      10000,
      agent.logs,
    );
  });

  it('publishes per-endpoint programmed status and readiness', async () => {
    const s = await waitFor(
      'status',
      () => store.kvGet(endpointStatusKey(nodeName, 'w1')),
      10000,
      agent.logs,
    );
    const body = JSON.parse(s.value.toString()) as {
      programmed: boolean;
      revision: string;
      interfaceName: string;
    };
    assert.equal(body.programmed, true);
    assert.equal(body.interfaceName, w1.hostIf);
    const ready = node.exec('curl', [
      '-s',
      '-o',
      '/dev/null',
      '-w',
      '%{http_code}',
      `http://127.0.0.1:${metricsPort}/readyz`,
    ]);
    assert.equal(ready, '200');
    const metrics = node.exec('curl', ['-s', `http://127.0.0.1:${metricsPort}/metrics`]);
    assert.match(metrics, /gingham_agent_local_endpoints 2/);
    assert.match(metrics, /gingham_agent_routes\{kind="workload"\} 2/);
    assert.match(metrics, /gingham_agent_endpoint_programming_latency_seconds_count \d+/);
  });

  it('removes the routes and neighbour of a deleted endpoint, and only those', async () => {
    await store.delete({ kind: 'WorkloadEndpoint', name: 'w2', namespace: 'default' });
    await waitFor(
      'w2 route gone',
      () => !ownRoutes(node).some((r) => r.dst === '10.65.0.2'),
      10000,
      agent.logs,
    );
    assert.ok(ownRoutes(node).some((r) => r.dst === '10.65.0.1'));
    assert.equal(ping(w1.ns, w2.ip), false);
    await waitFor(
      'w2 status removed',
      async () => (await store.kvGet(endpointStatusKey(nodeName, 'w2'))) === null,
      10000,
    );
    // A route that is not ours (no proto 80) survives every resync.
    node.ip('route', 'add', '10.99.0.0/24', 'via', '192.168.100.254');
    await new Promise((r) => setTimeout(r, 2500));
    assert.ok(node.ip('route', 'show', '10.99.0.0/24').includes('10.99.0.0/24'));
  });
});

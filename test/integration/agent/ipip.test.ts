// IPIP on a kernel without the ipip module (the machines these tests run on): the agent cannot
// create or use tunl0, so it must say so — a warning, metrics, the node status key and per-pool
// readiness — while the rest of the node (other pools, local routes) keeps working and nothing is
// programmed through a device that does not exist.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { nodeStatusKey } from '../../../agent/agent.js';
import { ipipSupported } from '../../../agent/dataplane/links.js';
import { newBlock } from '../../../ipam/block.js';
import { affinityFor, blockKey, serializeBlock } from '../../../ipam/model.js';
import type { EtcdStore } from '../../../store/index.js';
import { freePort } from '../../harness/etcd.js';
import { isRoot, type Netns, uniqueName } from '../../harness/netns.js';
import {
  type AgentProc,
  agentArgs,
  type NodeWorld,
  ownRoutes,
  startAgent,
  startNodeWorld,
  waitFor,
} from './helpers.js';

// tunl0 appears in every namespace once the module is loaded; the host tells us for all of them.
const skip = !isRoot()
  ? 'needs root'
  : ipipSupported()
    ? 'this kernel has the ipip module: the unsupported-IPIP report cannot be observed here'
    : false;

describe('agent: IPIP pool on a kernel without ipip', { skip, timeout: 90_000 }, () => {
  let store: EtcdStore;
  let node: Netns;
  let world: NodeWorld | undefined;
  let agent: AgentProc;
  let metricsPort: number;
  const nodeName = uniqueName('ipipn');
  const peerName = uniqueName('ipipp');

  const http = (path: string): string =>
    node.exec(
      'curl',
      ['-s', '-o', '/dev/null', '-w', '%{http_code}', `http://127.0.0.1:${metricsPort}${path}`],
      {
        allowFail: true,
      },
    );

  before(async () => {
    world = await startNodeWorld({ node: 'gin', fabric: 'gif' }, { defaultRoute: true });
    ({ store, node } = world);
    for (const [name, cidr, extra] of [
      ['ipip-pool', '10.66.0.0/16', { ipipMode: 'Always' }],
      ['plain', '10.65.0.0/16', {}],
    ] as const) {
      await store.apply({
        apiVersion: 'projectcalico.org/v3',
        kind: 'IPPool',
        metadata: { name },
        spec: { cidr, ...extra },
      });
    }
    // A peer on another subnet with a block of the IPIP pool: its route would need tunl0.
    await store.apply({
      apiVersion: 'projectcalico.org/v3',
      kind: 'Node',
      metadata: { name: peerName },
      spec: { bgp: { ipv4Address: '192.168.200.2/24', ipv4IPIPTunnelAddr: '10.66.1.1' } },
    });
    for (const [cidr, owner] of [
      ['10.66.0.0/26', nodeName],
      ['10.66.1.0/26', peerName],
      ['10.65.0.0/26', nodeName],
    ] as const) {
      await store.kvPut(blockKey(cidr), serializeBlock(newBlock(cidr, affinityFor(owner))));
    }
    metricsPort = await freePort();
    agent = startAgent(node, agentArgs(nodeName, { policy: 'off', metricsPort, refreshSec: 2 }));
  });

  after(async () => {
    await agent?.kill();
    await world?.close();
  });

  it('reports ipip-unsupported in its log, metrics and node status', async () => {
    const status = await waitFor(
      'node status with ipip-unsupported',
      async () => {
        const kv = await store.kvGet(nodeStatusKey(nodeName));
        const s = kv
          ? (JSON.parse(kv.value.toString()) as {
              ipipSupported: boolean;
              problems: Array<{ code: string; message: string }>;
              unreadyPools: string[];
            })
          : null;
        return s?.problems.some((p) => p.code === 'ipip-unsupported') ? s : null;
      },
      30000,
      agent.logs,
    );
    assert.equal(status.ipipSupported, false);
    assert.deepEqual(status.unreadyPools, ['ipip-pool']);
    const problem = status.problems.find((p) => p.code === 'ipip-unsupported')!;
    assert.match(problem.message, /ipip-pool/);
    assert.match(problem.message, /no ipip module/);
    assert.ok(
      agent.logs.some((l) => l.includes('"code":"ipip-unsupported"') && l.includes('"level":40')),
      'a warning is logged',
    );
    const metrics = node.exec('curl', ['-s', `http://127.0.0.1:${metricsPort}/metrics`]);
    assert.match(metrics, /^gingham_agent_ipip_supported 0$/m);
    assert.match(metrics, /^gingham_agent_problems\{code="ipip-unsupported"\} 1$/m);
    assert.match(metrics, /^gingham_agent_pool_unready\{pool="ipip-pool"\} 1$/m);
    assert.doesNotMatch(metrics, /gingham_agent_pool_unready\{pool="plain"\}/);
  });

  it('is ready as a node and for the other pool, not for the IPIP pool', async () => {
    await waitFor('ready', () => http('/readyz') === '200', 15000, agent.logs);
    assert.equal(http('/readyz?pool=plain'), '200');
    assert.equal(http('/readyz?pool=ipip-pool'), '503');
  });

  it('programs what does not need tunl0, and nothing through it', async () => {
    await waitFor(
      'own blocks blackholed',
      () =>
        ['10.66.0.0/26', '10.65.0.0/26'].every((b) =>
          ownRoutes(node).some((r) => r.dst === b && r.type === 'blackhole'),
        ),
      15000,
      agent.logs,
    );
    assert.equal(
      ownRoutes(node).some((r) => r.dst === '10.66.1.0/26'),
      false,
      'no route to the peer block (it would need tunl0)',
    );
    assert.equal(node.ip('link', 'show').includes('tunl0'), false, 'tunl0 was not created');
    const metrics = node.exec('curl', ['-s', `http://127.0.0.1:${metricsPort}/metrics`]);
    assert.match(metrics, /^gingham_agent_routes\{kind="ipip"\} 1$/m, 'the IPIP route is computed');
    assert.match(metrics, /^gingham_agent_pending_routes 1$/m, 'and left pending: its device does not exist');
  });
});

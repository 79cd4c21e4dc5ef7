// natOutgoing: a pod reaches an "outside" namespace that has no route back to the pool, so only
// masquerade (rendered by policy/'s compiler into the agent's `inet gingham` table) makes it work.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { EtcdStore } from '../../../store/index.js';
import { isRoot, type Netns } from '../../harness/netns.js';
import { type AgentProc, ipPool, type PodWorld, ping, startPodWorld, waitFor } from './helpers.js';

const skip = isRoot() ? false : 'needs root';

describe('agent: natOutgoing to an outside namespace', { skip, timeout: 90_000 }, () => {
  let world: PodWorld | undefined;
  let node: Netns;
  let wsNs: Netns;
  let agent: AgentProc;
  let store: EtcdStore;
  const pool = (nat: boolean) => ipPool('natpool', { cidr: '10.65.0.0/16', natOutgoing: nat });

  before(async () => {
    // The fabric is the "outside": 192.168.100.254, with no route back to the pool.
    world = await startPodWorld(
      { node: 'gnn', fabric: 'gno', pod: 'gnw' },
      {
        nodeName: `nat-${process.pid}`,
        pool: pool(false),
        pod: { name: 'natpod', ip: '10.65.0.7', block: '10.65.0.0/26' },
      },
    );
    ({ node, agent, store } = world);
    wsNs = world.pod.ns;
  });

  after(async () => {
    await world?.close();
  });

  it('without natOutgoing the outside cannot answer; with it, traffic is masqueraded', async () => {
    await waitFor('pod reaches node', () => ping(wsNs, '192.168.100.1'), 20000, agent.logs);
    assert.equal(ping(wsNs, '192.168.100.254'), false, 'no return route from outside without NAT');
    await store.apply(pool(true));
    await waitFor(
      'pod reaches outside via masquerade',
      () => ping(wsNs, '192.168.100.254'),
      15000,
      agent.logs,
    );
    assert.match(node.exec('nft', ['list', 'table', 'inet', 'gingham']), /masquerade/);
  });
});

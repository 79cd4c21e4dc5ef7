// The policy seam end to end: with --policy on, the agent runs policy/'s compiler in a worker
// thread and its NftApplier creates the `inet gingham` table in the node namespace, while routes
// are programmed as usual.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { isRoot, type Netns } from '../../harness/netns.js';
import { type AgentProc, ipPool, ownRoutes, type PodWorld, startPodWorld, waitFor } from './helpers.js';

const skip = !isRoot() ? 'needs root' : false;

describe('agent: policy seam (nftables through policy/)', { skip, timeout: 60_000 }, () => {
  let world: PodWorld | undefined;
  let node: Netns;
  let agent: AgentProc;

  before(async () => {
    world = await startPodWorld(
      { node: 'gpn', fabric: 'gpp', pod: 'gpw' },
      {
        nodeName: `pol-${process.pid}`,
        pool: ipPool('p', { cidr: '10.65.0.0/16', natOutgoing: true }),
        pod: { name: 'pw', ip: '10.65.0.9', block: '10.65.0.0/26' },
        agent: { policy: 'on' },
      },
    );
    ({ node, agent } = world);
  });

  after(async () => {
    await world?.close();
  });

  it('creates the inet gingham table from a worker thread, routes unaffected', async () => {
    await waitFor('route', () => ownRoutes(node).some((r) => r.dst === '10.65.0.9'), 20000, agent.logs);
    const table = await waitFor(
      'nft table',
      () => node.exec('nft', ['-j', 'list', 'table', 'inet', 'gingham'], { allowFail: true }),
      20000,
      agent.logs,
    );
    assert.match(table, /"table"/);
    assert.ok(
      !agent.logs.some((l) => l.includes('nftables update failed')),
      agent.logs.filter((l) => l.includes('nft')).join('\n'),
    );
  });
});

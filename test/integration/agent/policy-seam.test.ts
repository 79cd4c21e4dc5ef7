// The policy seam end to end: with --policy on, the agent runs policy/'s compiler in a worker
// thread and its NftApplier creates the `inet gingham` table in the node namespace, while routes
// are programmed as usual.
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import { newBlock } from '../../../ipam/block.js';
import { affinityFor, blockKey, serializeBlock } from '../../../ipam/model.js';
import { type EtcdStore, openStore } from '../../../store/index.js';
import { type EtcdInstance, startEtcd } from '../../harness/etcd.js';
import { isRoot, Netns, vethBetween } from '../../harness/netns.js';
import {
  type AgentProc,
  addWorkload,
  agentArgs,
  etcdInNetns,
  etcdSocket,
  ownRoutes,
  startAgent,
  waitFor,
} from './helpers.js';

const skip = !isRoot() ? 'needs root' : false;

describe('agent: policy seam (nftables through policy/)', { skip, timeout: 60_000 }, () => {
  let etcd: EtcdInstance;
  let sock: Awaited<ReturnType<typeof etcdSocket>>;
  let store: EtcdStore;
  let node: Netns;
  let peer: Netns;
  let ws: Netns;
  let fwd: ChildProcess;
  let agent: AgentProc;
  const nodeName = `pol-${process.pid}`;

  before(async () => {
    etcd = await startEtcd();
    sock = await etcdSocket(etcd.endpoint);
    store = await openStore({ endpoints: [etcd.endpoint] });
    node = Netns.create('gpn');
    peer = Netns.create('gpp');
    vethBetween(node, 'eth0', peer, 'up0');
    node.ip('addr', 'add', '192.168.100.1/24', 'dev', 'eth0');
    node.ip('route', 'add', 'default', 'via', '192.168.100.254');
    fwd = await etcdInNetns(node, sock.path);
    ws = Netns.create('gpw');
    const w = addWorkload(node, ws, 'default.pw', '10.65.0.9');
    await store.apply({
      apiVersion: 'projectcalico.org/v3',
      kind: 'IPPool',
      metadata: { name: 'p' },
      spec: { cidr: '10.65.0.0/16', natOutgoing: true },
    });
    await store.kvPut(
      blockKey('10.65.0.0/26'),
      serializeBlock(newBlock('10.65.0.0/26', affinityFor(nodeName))),
    );
    await store.apply({
      apiVersion: 'projectcalico.org/v3',
      kind: 'WorkloadEndpoint',
      metadata: { name: 'pw', namespace: 'default' },
      spec: {
        node: nodeName,
        interfaceName: w.hostIf,
        ipNetworks: [`${w.ip}/32`],
        mac: w.mac,
        profiles: ['kns.default'],
      },
    });
    agent = startAgent(node, agentArgs(nodeName, { policy: 'on' }));
  });

  after(async () => {
    await agent?.kill();
    fwd?.kill();
    await store?.close();
    await sock?.close();
    await etcd?.destroy();
    for (const n of [node, peer, ws]) n?.destroy();
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

// natOutgoing: a pod reaches an "outside" namespace that has no route back to the pool, so only
// masquerade (rendered by policy/'s compiler into the agent's `inet gingham` table) makes it work.
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
  ping,
  startAgent,
  type Workload,
  waitFor,
} from './helpers.js';

const skip = isRoot() ? false : 'needs root';

describe('agent: natOutgoing to an outside namespace', { skip, timeout: 90_000 }, () => {
  let etcd: EtcdInstance;
  let sock: Awaited<ReturnType<typeof etcdSocket>>;
  let store: EtcdStore;
  let node: Netns;
  let outside: Netns;
  let wsNs: Netns;
  let pod: Workload;
  let fwd: ChildProcess;
  let agent: AgentProc;
  const nodeName = `nat-${process.pid}`;
  const pool = (nat: boolean) => ({
    apiVersion: 'projectcalico.org/v3',
    kind: 'IPPool',
    metadata: { name: 'natpool' },
    spec: { cidr: '10.65.0.0/16', natOutgoing: nat },
  });

  before(async () => {
    etcd = await startEtcd();
    sock = await etcdSocket(etcd.endpoint);
    store = await openStore({ endpoints: [etcd.endpoint] });
    node = Netns.create('gnn');
    outside = Netns.create('gno');
    vethBetween(node, 'eth0', outside, 'up0');
    node.ip('addr', 'add', '192.168.100.1/24', 'dev', 'eth0');
    outside.ip('addr', 'add', '192.168.100.254/24', 'dev', 'up0');
    node.ip('route', 'add', 'default', 'via', '192.168.100.254');
    fwd = await etcdInNetns(node, sock.path);
    wsNs = Netns.create('gnw');
    pod = addWorkload(node, wsNs, 'default.natpod', '10.65.0.7');
    await store.apply(pool(false));
    await store.apply({
      apiVersion: 'projectcalico.org/v3',
      kind: 'Profile',
      metadata: { name: 'kns.default' },
      spec: { ingress: [{ action: 'Allow' }], egress: [{ action: 'Allow' }] },
    });
    await store.kvPut(
      blockKey('10.65.0.0/26'),
      serializeBlock(newBlock('10.65.0.0/26', affinityFor(nodeName))),
    );
    await store.apply({
      apiVersion: 'projectcalico.org/v3',
      kind: 'WorkloadEndpoint',
      metadata: { name: 'natpod', namespace: 'default' },
      spec: {
        node: nodeName,
        interfaceName: pod.hostIf,
        ipNetworks: [`${pod.ip}/32`],
        mac: pod.mac,
        profiles: ['kns.default'],
      },
    });
    agent = startAgent(node, agentArgs(nodeName));
  });

  after(async () => {
    await agent?.kill();
    fwd?.kill();
    await store?.close();
    await sock?.close();
    await etcd?.destroy();
    for (const n of [node, outside, wsNs]) n?.destroy();
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

// Hitless restart (kill -9, start again: `ip monitor` sees no change to anything the agent owns)
// and etcd loss (dataplane kept as is, not ready; resync when etcd returns).
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import { newBlock } from '../../../ipam/block.js';
import { affinityFor, blockKey, serializeBlock } from '../../../ipam/model.js';
import { type EtcdStore, openStore } from '../../../store/index.js';
import { type EtcdInstance, freePort } from '../../harness/etcd.js';
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

describe('agent: restart without churn, etcd outage', { skip, timeout: 120_000 }, () => {
  let etcd: EtcdInstance;
  let store: EtcdStore;
  let node: Netns;
  let world: NodeWorld | undefined;
  let agent: AgentProc;
  let port: number;
  const nodeName = `r-${process.pid}`;
  const ws: Netns[] = [];
  const pods: Workload[] = [];

  const args = () => agentArgs(nodeName, { policy: 'off', metricsPort: port, refreshSec: 2 });
  const readyz = (): string =>
    node.exec('curl', ['-s', '-o', '/dev/null', '-w', '%{http_code}', `http://127.0.0.1:${port}/readyz`], {
      allowFail: true,
    });
  const wep = (i: number) => ({
    apiVersion: 'projectcalico.org/v3',
    kind: 'WorkloadEndpoint',
    metadata: { name: `p${i}`, namespace: 'default' },
    spec: {
      node: nodeName,
      interfaceName: pods[i]!.hostIf,
      ipNetworks: [`${pods[i]!.ip}/32`],
      mac: pods[i]!.mac,
    },
  });

  before(async () => {
    world = await startNodeWorld({ node: 'grn', fabric: 'grf' }, { defaultRoute: true });
    ({ etcd, store, node } = world);
    for (let i = 0; i < 3; i++) {
      ws.push(Netns.create('grw'));
      pods.push(addWorkload(node, ws[i]!, `default.p${i}`, `10.65.0.${i + 1}`));
    }
    await store.apply({
      apiVersion: 'projectcalico.org/v3',
      kind: 'IPPool',
      metadata: { name: 'p' },
      spec: { cidr: '10.65.0.0/16', vxlanMode: 'Always' },
    });
    // A remote node that only exists in the store: gives the agent a VXLAN device, FDB, neighbour and route to own.
    await store.apply({
      apiVersion: 'projectcalico.org/v3',
      kind: 'Node',
      metadata: { name: 'remote' },
      spec: {
        bgp: { ipv4Address: '192.168.100.2/24' },
        ipv4VXLANTunnelAddr: '10.65.9.0',
        vxlanTunnelMACAddr: '02:aa:00:00:00:02',
      },
    });
    await store.kvPut(
      blockKey('10.65.0.0/26'),
      serializeBlock(newBlock('10.65.0.0/26', affinityFor(nodeName))),
    );
    await store.kvPut(
      blockKey('10.65.9.0/26'),
      serializeBlock(newBlock('10.65.9.0/26', affinityFor('remote'))),
    );
    for (let i = 0; i < 3; i++) await store.apply(wep(i));
    port = await freePort();
    agent = startAgent(node, args());
  });

  after(async () => {
    await agent?.kill();
    await world?.close();
    for (const n of ws) n?.destroy();
  });

  it('restarts after kill -9 without deleting or re-adding anything that was right', async () => {
    await waitFor('ready', () => readyz() === '200', 20000, agent.logs);
    await waitFor(
      'remote route',
      () => ownRoutes(node).some((r) => r.dst === '10.65.9.0/26' && r.dev === 'vxlan.gingham'),
      15000,
      agent.logs,
    );
    assert.ok(ping(ws[0]!, pods[1]!.ip));
    const before = node.ip('-d', 'link', 'show', 'vxlan.gingham');
    const routesBefore = JSON.stringify(ownRoutes(node));
    await agent.kill('SIGKILL');
    const mon = spawn('ip', ['-n', node.name, '-ts', 'monitor', 'link', 'route', 'neigh'], {
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    const seen: string[] = [];
    mon.stdout!.on('data', (b: Buffer) => seen.push(...b.toString().split('\n').filter(Boolean)));
    try {
      await new Promise((r) => setTimeout(r, 300));
      agent = startAgent(node, args());
      await waitFor('ready again', () => readyz() === '200', 20000, agent.logs);
      await new Promise((r) => setTimeout(r, 2500)); // one more periodic resync
    } finally {
      mon.kill();
    }
    // What the agent owns: proto-80 routes, permanent neighbours, its links. Kernel-originated
    // noise (IPv6 link-local routes after DAD, NUD state changes of dynamic neighbours) is not ours.
    const ours = seen.filter(
      (l) =>
        !/proto kernel/.test(l) &&
        (/proto 80|PERMANENT/.test(l) || /^\[[^\]]+\] (Deleted )?\d+: (gh|vxlan)/.test(l)),
    );
    assert.deepEqual(ours, [], `kernel churn on restart:\n${ours.join('\n')}`);
    assert.equal(node.ip('-d', 'link', 'show', 'vxlan.gingham'), before);
    assert.equal(JSON.stringify(ownRoutes(node)), routesBefore);
  });

  it('keeps the dataplane while etcd is down, reports not-ready, and resyncs when it returns', async () => {
    const routesBefore = JSON.stringify(ownRoutes(node));
    await etcd.stop();
    await waitFor('not ready', () => readyz() === '503', 20000, agent.logs);
    await new Promise((r) => setTimeout(r, 2500)); // a periodic resync fires while etcd is down
    assert.equal(JSON.stringify(ownRoutes(node)), routesBefore, 'dataplane untouched while etcd is down');
    assert.ok(ping(ws[0]!, pods[2]!.ip), 'workloads keep talking');
    await etcd.start();
    // Change made while the agent was away from etcd... then seen after its resync.
    const s2 = await openStore({ endpoints: [etcd.endpoint] });
    try {
      await s2.delete({ kind: 'WorkloadEndpoint', name: 'p2', namespace: 'default' });
    } finally {
      await s2.close();
    }
    await waitFor('ready after etcd returns', () => readyz() === '200', 30000, agent.logs);
    await waitFor(
      'p2 route removed',
      () => !ownRoutes(node).some((r) => r.dst === pods[2]!.ip),
      15000,
      agent.logs,
    );
    assert.ok(ownRoutes(node).some((r) => r.dst === pods[0]!.ip));
  });
});

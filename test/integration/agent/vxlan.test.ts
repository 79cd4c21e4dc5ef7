// Three nodes on one fabric (a bridge in its own namespace, routing between two subnets):
//   A 192.168.100.1/24, C 192.168.100.3/24 (same subnet), B 192.168.200.2/24 (other subnet).
// With vxlanMode CrossSubnet, A reaches B's pods over vxlan.gingham and C's pods directly; with
// Always, everything goes over VXLAN. Pod traffic is checked end to end and by the device counters.
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import { newBlock } from '../../../ipam/block.js';
import { affinityFor, affinityKey, blockKey, serializeBlock } from '../../../ipam/model.js';
import { type EtcdStore, openStore } from '../../../store/index.js';
import { type EtcdInstance, startEtcd } from '../../harness/etcd.js';
import { isRoot, Netns, uniqueName } from '../../harness/netns.js';
import {
  type AgentProc,
  addWorkload,
  agentArgs,
  etcdInNetns,
  etcdSocket,
  ownRoutes,
  ping,
  startAgent,
  type Workload,
  waitFor,
} from './helpers.js';

const skip = !isRoot() ? 'needs root' : false;

interface TestNode {
  name: string;
  ns: Netns;
  ip: string;
  gw: string;
  block: string;
  podIp: string;
  pod?: Workload;
  podNs?: Netns;
  fwd?: ChildProcess;
  agent?: AgentProc;
}

function vxlanTx(ns: Netns): number {
  const [l] = JSON.parse(ns.ip('-j', '-s', 'link', 'show', 'vxlan.gingham')) as Array<{
    stats64: { tx: { packets: number } };
  }>;
  return l!.stats64.tx.packets;
}

describe('agent: VXLAN between nodes, CrossSubnet and Always', { skip, timeout: 120_000 }, () => {
  let etcd: EtcdInstance;
  let sock: Awaited<ReturnType<typeof etcdSocket>>;
  let store: EtcdStore;
  let fabric: Netns;
  const tag = uniqueName('');
  const nodes: TestNode[] = [
    {
      name: `a-${tag}`,
      ns: null!,
      ip: '192.168.100.1/24',
      gw: '192.168.100.254',
      block: '10.65.1.0/26',
      podIp: '10.65.1.5',
    },
    {
      name: `b-${tag}`,
      ns: null!,
      ip: '192.168.200.2/24',
      gw: '192.168.200.254',
      block: '10.65.2.0/26',
      podIp: '10.65.2.5',
    },
    {
      name: `c-${tag}`,
      ns: null!,
      ip: '192.168.100.3/24',
      gw: '192.168.100.254',
      block: '10.65.3.0/26',
      podIp: '10.65.3.5',
    },
  ];
  const [A, B, C] = nodes as [TestNode, TestNode, TestNode];
  const pool = (mode: string) => ({
    apiVersion: 'projectcalico.org/v3',
    kind: 'IPPool',
    metadata: { name: 'vx' },
    spec: { cidr: '10.65.0.0/16', vxlanMode: mode },
  });

  before(async () => {
    etcd = await startEtcd();
    sock = await etcdSocket(etcd.endpoint);
    store = await openStore({ endpoints: [etcd.endpoint] });
    fabric = Netns.create('gxf');
    fabric.ip('link', 'add', 'br0', 'type', 'bridge');
    fabric.ip('link', 'set', 'br0', 'up');
    fabric.ip('addr', 'add', '192.168.100.254/24', 'dev', 'br0');
    fabric.ip('addr', 'add', '192.168.200.254/24', 'dev', 'br0');
    fabric.exec('sh', ['-c', 'echo 1 > /proc/sys/net/ipv4/ip_forward']);
    await store.apply(pool('CrossSubnet'));
    for (const [i, n] of nodes.entries()) {
      n.ns = Netns.create('gxn');
      const port = `p${i}${tag}`.slice(0, 15);
      n.ns.ip('link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', port, 'netns', fabric.name);
      fabric.ip('link', 'set', port, 'master', 'br0');
      fabric.ip('link', 'set', port, 'up');
      n.ns.ip('link', 'set', 'eth0', 'up');
      n.ns.ip('addr', 'add', n.ip, 'dev', 'eth0');
      n.ns.ip('route', 'add', 'default', 'via', n.gw);
      n.fwd = await etcdInNetns(n.ns, sock.path);
      n.podNs = Netns.create('gxw');
      n.pod = addWorkload(n.ns, n.podNs, `default.pod-${n.name}`, n.podIp);
      const b = newBlock(n.block, affinityFor(n.name));
      await store.kvPut(blockKey(n.block), serializeBlock(b));
      await store.kvPut(affinityKey(n.name, n.block), JSON.stringify({ state: 'confirmed', deleted: false }));
      await store.apply({
        apiVersion: 'projectcalico.org/v3',
        kind: 'WorkloadEndpoint',
        metadata: { name: `pod-${n.name}`, namespace: 'default' },
        spec: { node: n.name, interfaceName: n.pod.hostIf, ipNetworks: [`${n.podIp}/32`], mac: n.pod.mac },
      });
    }
    for (const n of nodes) {
      n.agent = startAgent(n.ns, agentArgs(n.name, { policy: 'off', refreshSec: 5 }));
    }
  });

  after(async () => {
    await Promise.all(nodes.map((n) => n.agent?.kill()));
    for (const n of nodes) n.fwd?.kill();
    await store?.close();
    await sock?.close();
    await etcd?.destroy();
    for (const n of nodes) {
      n.ns?.destroy();
      n.podNs?.destroy();
    }
    fabric?.destroy();
  });

  it('registers VXLAN tunnel addresses (IPAM, tunnel handle) and VTEP MACs', async () => {
    for (const n of nodes) {
      const node = await waitFor(
        `${n.name} tunnel address`,
        async () => {
          const r = await store.tryGet('Node', n.name);
          const s = r?.spec as { ipv4VXLANTunnelAddr?: string; vxlanTunnelMACAddr?: string } | undefined;
          return s?.ipv4VXLANTunnelAddr && s.vxlanTunnelMACAddr ? s : null;
        },
        45000, // three agents start at once on a shared 2-core machine
        n.agent!.logs,
      );
      assert.match(node.ipv4VXLANTunnelAddr!, /^10\.65\./);
    }
  });

  it('CrossSubnet: off-subnet blocks go via vxlan.gingham onlink, same-subnet blocks directly', async () => {
    await waitFor(
      'A routes B over VXLAN',
      () =>
        ownRoutes(A.ns).some(
          (r) => r.dst === B.block && r.dev === 'vxlan.gingham' && r.flags?.includes('onlink'),
        ),
      20000,
      A.agent!.logs,
    );
    await waitFor(
      'A routes C directly',
      () =>
        ownRoutes(A.ns).some((r) => r.dst === C.block && r.dev === 'eth0' && r.gateway === '192.168.100.3'),
      10000,
      A.agent!.logs,
    );
    const d = JSON.parse(A.ns.ip('-d', '-j', 'link', 'show', 'vxlan.gingham')) as Array<{
      linkinfo: { info_data: { id: number; port: number; local: string } };
    }>;
    assert.equal(d[0]!.linkinfo.info_data.id, 4096);
    assert.equal(d[0]!.linkinfo.info_data.port, 4789);
    assert.equal(d[0]!.linkinfo.info_data.local, '192.168.100.1');
    const fdb = A.ns.exec('bridge', ['fdb', 'show', 'dev', 'vxlan.gingham']);
    assert.match(fdb, /dst 192\.168\.200\.2/);

    await waitFor(
      'B routes A over VXLAN',
      () => ownRoutes(B.ns).some((r) => r.dst === A.block && r.dev === 'vxlan.gingham'),
      20000,
      B.agent!.logs,
    );
    const tx0 = vxlanTx(A.ns);
    await waitFor('pod A → pod B over VXLAN', () => ping(A.podNs!, B.podIp), 15000, A.agent!.logs);
    assert.ok(vxlanTx(A.ns) > tx0, 'traffic to B was encapsulated');
    await waitFor(
      'C routes A directly',
      () => ownRoutes(C.ns).some((r) => r.dst === A.block && r.dev === 'eth0'),
      20000,
      C.agent!.logs,
    );
    const tx1 = vxlanTx(A.ns);
    assert.ok(ping(A.podNs!, C.podIp), 'pod A → pod C directly');
    assert.equal(vxlanTx(A.ns), tx1, 'same-subnet traffic is not encapsulated');
  });

  it('Always: every remote block goes over VXLAN', async () => {
    await store.apply(pool('Always'));
    await waitFor(
      'A routes C over VXLAN',
      () => ownRoutes(A.ns).some((r) => r.dst === C.block && r.dev === 'vxlan.gingham'),
      15000,
      A.agent!.logs,
    );
    await waitFor(
      'C routes A over VXLAN',
      () => ownRoutes(C.ns).some((r) => r.dst === A.block && r.dev === 'vxlan.gingham'),
      15000,
      C.agent!.logs,
    );
    const tx = vxlanTx(A.ns);
    await waitFor('pod A → pod C', () => ping(A.podNs!, C.podIp), 10000);
    assert.ok(vxlanTx(A.ns) > tx, 'same-subnet traffic is now encapsulated');
    assert.ok(ping(A.podNs!, B.podIp));
  });
});

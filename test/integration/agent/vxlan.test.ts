// Three nodes on one fabric (a bridge in its own namespace, routing between two subnets):
//   A 192.168.100.1/24, C 192.168.100.3/24 (same subnet), B 192.168.200.2/24 (other subnet).
// With vxlanMode CrossSubnet, A reaches B's pods over vxlan.gingham and C's pods directly; with
// Always, everything goes over VXLAN. Pod traffic is checked end to end and by the device counters.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { EtcdStore } from '../../../store/index.js';
import { isRoot, uniqueName } from '../../harness/netns.js';
import { ipPool, type NodesWorld, ownRoutes, ping, startNodesWorld, txPackets, waitFor } from './helpers.js';

const skip = !isRoot() ? 'needs root' : false;

interface TestNode {
  name: string;
  ip: string;
  gw: string;
  block: string;
  podIp: string;
}

/** A node as the world made it: TestNode with its namespace, pod and agent. */
type RunningNode = NodesWorld<TestNode>['nodes'][number];

describe('agent: VXLAN between nodes, CrossSubnet and Always', { skip, timeout: 120_000 }, () => {
  let world: NodesWorld<TestNode> | undefined;
  let store: EtcdStore;
  let nodes: RunningNode[];
  let A: RunningNode;
  let B: RunningNode;
  let C: RunningNode;
  const tag = uniqueName('');
  /** Node `letter`, number i: its block 10.65.i.0/26, its pod 10.65.i.5. */
  const node = (i: number, letter: string, ip: string, gw: string): TestNode => ({
    name: `${letter}-${tag}`,
    ip,
    gw,
    block: `10.65.${i}.0/26`,
    podIp: `10.65.${i}.5`,
  });
  const pool = (mode: string) => ipPool('vx', { cidr: '10.65.0.0/16', vxlanMode: mode });

  before(async () => {
    world = await startNodesWorld<TestNode>(
      { node: 'gxn', pod: 'gxw' },
      {
        nodes: [
          node(1, 'a', '192.168.100.1/24', '192.168.100.254'),
          node(2, 'b', '192.168.200.2/24', '192.168.200.254'),
          node(3, 'c', '192.168.100.3/24', '192.168.100.254'),
        ],
        pool: pool('CrossSubnet'),
        // The fabric: a bridge routing between the two subnets, a port per node.
        wire: (wired, netns) => {
          const fabric = netns('gxf');
          fabric.ip('link', 'add', 'br0', 'type', 'bridge');
          fabric.ip('link', 'set', 'br0', 'up');
          fabric.ip('addr', 'add', '192.168.100.254/24', 'dev', 'br0');
          fabric.ip('addr', 'add', '192.168.200.254/24', 'dev', 'br0');
          fabric.exec('sh', ['-c', 'echo 1 > /proc/sys/net/ipv4/ip_forward']);
          for (const [i, n] of wired.entries()) {
            const port = `p${i}${tag}`.slice(0, 15);
            n.ns.ip('link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', port, 'netns', fabric.name);
            fabric.ip('link', 'set', port, 'master', 'br0');
            fabric.ip('link', 'set', port, 'up');
            n.ns.ip('link', 'set', 'eth0', 'up');
            n.ns.ip('addr', 'add', n.ip, 'dev', 'eth0');
            n.ns.ip('route', 'add', 'default', 'via', n.gw);
          }
        },
      },
    );
    ({ store, nodes } = world);
    [A, B, C] = nodes as [RunningNode, RunningNode, RunningNode];
  });

  after(async () => {
    await world?.close();
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
        n.agent.logs,
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
      A.agent.logs,
    );
    await waitFor(
      'A routes C directly',
      () =>
        ownRoutes(A.ns).some((r) => r.dst === C.block && r.dev === 'eth0' && r.gateway === '192.168.100.3'),
      10000,
      A.agent.logs,
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
      B.agent.logs,
    );
    const tx0 = txPackets(A.ns, 'vxlan.gingham');
    await waitFor('pod A → pod B over VXLAN', () => ping(A.pod.ns, B.podIp), 15000, A.agent.logs);
    assert.ok(txPackets(A.ns, 'vxlan.gingham') > tx0, 'traffic to B was encapsulated');
    await waitFor(
      'C routes A directly',
      () => ownRoutes(C.ns).some((r) => r.dst === A.block && r.dev === 'eth0'),
      20000,
      C.agent.logs,
    );
    const tx1 = txPackets(A.ns, 'vxlan.gingham');
    assert.ok(ping(A.pod.ns, C.podIp), 'pod A → pod C directly');
    assert.equal(txPackets(A.ns, 'vxlan.gingham'), tx1, 'same-subnet traffic is not encapsulated');
  });

  it('Always: every remote block goes over VXLAN', async () => {
    await store.apply(pool('Always'));
    await waitFor(
      'A routes C over VXLAN',
      () => ownRoutes(A.ns).some((r) => r.dst === C.block && r.dev === 'vxlan.gingham'),
      15000,
      A.agent.logs,
    );
    await waitFor(
      'C routes A over VXLAN',
      () => ownRoutes(C.ns).some((r) => r.dst === A.block && r.dev === 'vxlan.gingham'),
      15000,
      C.agent.logs,
    );
    const tx = txPackets(A.ns, 'vxlan.gingham');
    await waitFor('pod A → pod C', () => ping(A.pod.ns, C.podIp), 10000);
    assert.ok(txPackets(A.ns, 'vxlan.gingham') > tx, 'same-subnet traffic is now encapsulated');
    assert.ok(ping(A.pod.ns, B.podIp));
  });
});

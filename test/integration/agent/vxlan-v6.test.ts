// IPv6 VXLAN: two nodes joined by one link, an IPv6 pool with vxlanMode Always. Each agent
// allocates its IPv6 tunnel address from the pool through IPAM (as Calico does), creates
// vxlan6.gingham (local = its IPv6 node address), and routes the other node's IPv6 block via the
// other's tunnel address onlink, with the FDB entry and permanent neighbour for its VTEP. Pod
// traffic between the nodes is checked end to end and by the device counters.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { VXLAN_DEVICE_V6 } from '../../../agent/calc/desired.js';
import { handleKey } from '../../../ipam/model.js';
import type { EtcdStore } from '../../../store/index.js';
import { isRoot, uniqueName, vethBetween } from '../../harness/netns.js';
import { ipPool, type NodesWorld, ownRoutes, ping, startNodesWorld, txPackets, waitFor } from './helpers.js';

const skip = !isRoot() ? 'needs root' : false;

interface TestNode {
  name: string;
  ip4: string;
  ip6: string;
  block: string;
  podIp: string;
}

/** A node as the world made it: TestNode with its namespace, pod and agent. */
type RunningNode = NodesWorld<TestNode>['nodes'][number];

interface NodeSpecV6 {
  ipv6VXLANTunnelAddr?: string;
  vxlanTunnelMACAddrV6?: string;
  bgp?: { ipv6Address?: string };
}

describe('agent: IPv6 VXLAN between two nodes', { skip, timeout: 120_000 }, () => {
  let world: NodesWorld<TestNode> | undefined;
  let store: EtcdStore;
  let nodes: RunningNode[];
  let A: RunningNode;
  let B: RunningNode;
  const tag = uniqueName('');
  /** Node i on 192.168.60.i/24 and fd10:60::i/64; block fd00:65:0:i::/122, its pod ::5 in it. */
  const node = (i: number, prefix: string): TestNode => ({
    name: `${prefix}-${tag}`,
    ip4: `192.168.60.${i}/24`,
    ip6: `fd10:60::${i}/64`,
    block: `fd00:65:0:${i}::/122`,
    podIp: `fd00:65:0:${i}::5`,
  });

  before(async () => {
    world = await startNodesWorld<TestNode>(
      { node: 'g6n', pod: 'g6w' },
      {
        nodes: [node(1, 'a6'), node(2, 'b6')],
        pool: ipPool('vx6', { cidr: 'fd00:65::/48', vxlanMode: 'Always' }),
        // One link between the two nodes.
        wire: ([a, b]) => {
          vethBetween(a!.ns, 'eth0', b!.ns, 'eth0');
          for (const [n, peer] of [
            [a!, b!],
            [b!, a!],
          ] as const) {
            n.ns.ip('addr', 'add', n.ip4, 'dev', 'eth0');
            // nodad: the address is usable (and autodetected as global) at once.
            n.ns.ip('addr', 'add', n.ip6, 'dev', 'eth0', 'nodad');
            // A default route, so the proxy-ARP gateway check finds none missing.
            n.ns.ip('route', 'add', 'default', 'via', peer.ip4.split('/')[0]!);
          }
        },
      },
    );
    ({ store, nodes } = world);
    [A, B] = nodes as [RunningNode, RunningNode];
  });

  after(async () => {
    await world?.close();
  });

  it('allocates each node an IPv6 tunnel address from the pool (IPAM, tunnel handle) and a VTEP MAC', async () => {
    for (const n of nodes) {
      const spec = await waitFor(
        `${n.name} IPv6 tunnel address`,
        async () => {
          const s = (await store.tryGet('Node', n.name))?.spec as NodeSpecV6 | undefined;
          return s?.ipv6VXLANTunnelAddr && s.vxlanTunnelMACAddrV6 ? s : null;
        },
        45000,
        n.agent.logs,
      );
      // From this node's affine block of the pool (IPAM prefers it), recorded under Calico's handle.
      assert.ok(spec.ipv6VXLANTunnelAddr!.startsWith(n.block.split('::')[0]!), spec.ipv6VXLANTunnelAddr);
      assert.equal(spec.bgp?.ipv6Address, n.ip6);
      const handle = await store.kvGet(handleKey(`vxlan-v6-tunnel-addr-${n.name}`));
      assert.ok(handle, 'IPAM handle vxlan-v6-tunnel-addr-<node> exists');
      assert.equal(
        Number.parseInt(spec.vxlanTunnelMACAddrV6!.slice(0, 2), 16) & 3,
        2,
        'locally administered unicast',
      );
    }
  });

  it(`creates ${VXLAN_DEVICE_V6} and routes the other node's IPv6 block over it; pods talk through it`, async () => {
    const tunnelOf = async (n: TestNode) =>
      ((await store.get('Node', n.name)).spec as NodeSpecV6).ipv6VXLANTunnelAddr!;
    const bTunnel = await tunnelOf(B);
    await waitFor(
      "A routes B's block via B's tunnel address on the IPv6 VXLAN device",
      () =>
        ownRoutes(A.ns, 6).some(
          (r) =>
            r.dst === B.block &&
            r.dev === VXLAN_DEVICE_V6 &&
            r.gateway === bTunnel &&
            r.flags?.includes('onlink'),
        ),
      30000,
      A.agent.logs,
    );
    const [dev] = JSON.parse(A.ns.ip('-d', '-j', 'link', 'show', VXLAN_DEVICE_V6)) as Array<{
      address: string;
      linkinfo: { info_data: { id: number; port: number; local6?: string; link?: string } };
    }>;
    assert.equal(dev!.linkinfo.info_data.id, 4096);
    assert.equal(dev!.linkinfo.info_data.port, 4789);
    assert.equal(dev!.linkinfo.info_data.local6, A.ip6.split('/')[0]);
    const aSpec = (await store.get('Node', A.name)).spec as NodeSpecV6;
    assert.equal(dev!.address, aSpec.vxlanTunnelMACAddrV6);
    const bSpec = (await store.get('Node', B.name)).spec as NodeSpecV6;
    const fdb = A.ns.exec('bridge', ['fdb', 'show', 'dev', VXLAN_DEVICE_V6]);
    assert.match(fdb, new RegExp(`${bSpec.vxlanTunnelMACAddrV6} dst ${B.ip6.split('/')[0]} self permanent`));
    const neigh = A.ns.ip('-6', 'neigh', 'show', 'dev', VXLAN_DEVICE_V6);
    assert.match(neigh, new RegExp(`${bTunnel} lladdr ${bSpec.vxlanTunnelMACAddrV6} PERMANENT`));
    const addrs = A.ns.ip('-6', 'addr', 'show', 'dev', VXLAN_DEVICE_V6);
    assert.match(addrs, new RegExp(`${aSpec.ipv6VXLANTunnelAddr}/128`));

    await waitFor(
      "B routes A's block over VXLAN",
      () => ownRoutes(B.ns, 6).some((r) => r.dst === A.block && r.dev === VXLAN_DEVICE_V6),
      30000,
      B.agent.logs,
    );
    const tx = txPackets(A.ns, VXLAN_DEVICE_V6);
    await waitFor('pod A → pod B over IPv6 VXLAN', () => ping(A.pod.ns, B.podIp), 20000, A.agent.logs);
    assert.ok(txPackets(A.ns, VXLAN_DEVICE_V6) > tx, 'pod traffic to B was encapsulated by vxlan6.gingham');
    assert.ok(ping(B.pod.ns, A.podIp), 'and back');
  });
});

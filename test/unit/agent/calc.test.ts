import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import {
  computeDesired,
  IPIP_DEVICE,
  newCalcCache,
  sameSubnet,
  VXLAN_DEVICE_V4,
  VXLAN_DEVICE_V6,
} from '../../../agent/calc/desired.js';
import { blockInput, nodeInput } from '../../../agent/calc/inputs.js';
import {
  type CalcInput,
  DEFAULT_SETTINGS,
  type DesiredState,
  type EndpointInput,
  type LearnedRoute,
  type NodeInput,
  type PoolInput,
} from '../../../agent/calc/model.js';

const me: NodeInput = {
  name: 'n1',
  ipv4Address: '192.168.1.1/24',
  ipv4VXLANTunnelAddr: '10.65.0.0',
  vxlanTunnelMACAddr: '02:00:00:00:00:01',
};
const near: NodeInput = {
  name: 'n2',
  ipv4Address: '192.168.1.2/24',
  ipv4VXLANTunnelAddr: '10.65.1.0',
  vxlanTunnelMACAddr: '02:00:00:00:00:02',
};
const far: NodeInput = {
  name: 'n3',
  ipv4Address: '192.168.2.3/24',
  ipv4VXLANTunnelAddr: '10.65.2.0',
  vxlanTunnelMACAddr: '02:00:00:00:00:03',
};

function pool(over: Partial<PoolInput> = {}): PoolInput {
  return {
    name: 'p',
    cidr: '10.65.0.0/16',
    vxlanMode: 'Never',
    ipipMode: 'Never',
    natOutgoing: false,
    disabled: false,
    ...over,
  };
}

function input(over: Partial<CalcInput> = {}): CalcInput {
  return {
    nodeName: 'n1',
    self: me,
    nodes: new Map([me, near, far].map((n) => [n.name, n])),
    pools: [pool()],
    blocks: [
      { cidr: '10.65.0.0/26', affinity: 'n1', borrowed: [] },
      { cidr: '10.65.1.0/26', affinity: 'n2', borrowed: [] },
      { cidr: '10.65.2.0/26', affinity: 'n3', borrowed: [] },
    ],
    endpoints: [
      {
        key: 'ns/w1',
        name: 'w1',
        namespace: 'ns',
        interfaceName: 'gh0123456789a',
        mac: 'AA:BB:CC:00:00:01',
        ipNetworks: ['10.65.0.5/32', 'fd00::5/128'],
        revision: 7n,
      },
    ],
    learned: [],
    settings: DEFAULT_SETTINGS,
    host: { uplinkV4: 'eth0', ipipSupported: false },
    ...over,
  };
}

describe('computeDesired: local workloads', () => {
  it('routes each workload address by /32 and /128 scope link, with a permanent neighbour', () => {
    const d = computeDesired(input());
    assert.deepEqual(d.routes.get('4|10.65.0.5/32'), {
      family: 4,
      dst: '10.65.0.5/32',
      kind: 'workload',
      type: 'unicast',
      dev: 'gh0123456789a',
      onlink: false,
      scope: 'link',
    });
    assert.equal(d.routes.get('6|fd00::5/128')?.dev, 'gh0123456789a');
    assert.deepEqual(d.neighs.get('gh0123456789a|10.65.0.5'), {
      family: 4,
      dev: 'gh0123456789a',
      ip: '10.65.0.5',
      mac: 'aa:bb:cc:00:00:01',
    });
    assert.ok(d.workloadIfaces.has('gh0123456789a'));
  });
  it('sets the per-interface sysctls Felix sets, v6 ones only with a v6 address', () => {
    const d = computeDesired(input());
    for (const [p, v] of [
      ['net/ipv4/conf/gh0123456789a/proxy_arp', '1'],
      ['net/ipv4/neigh/gh0123456789a/proxy_delay', '0'],
      ['net/ipv4/conf/gh0123456789a/route_localnet', '1'],
      ['net/ipv4/conf/gh0123456789a/rp_filter', '1'],
      ['net/ipv6/conf/gh0123456789a/accept_ra', '0'],
      ['net/ipv6/conf/gh0123456789a/proxy_ndp', '1'],
      ['net/ipv4/ip_forward', '1'],
    ]) {
      assert.equal(d.sysctls.get(p!)?.value, v, p);
    }
    const v4only = computeDesired(
      input({ endpoints: [{ ...input().endpoints[0]!, ipNetworks: ['10.65.0.5/32'] }] }),
    );
    assert.equal(v4only.sysctls.has('net/ipv6/conf/gh0123456789a/proxy_ndp'), false);
  });
  it('ignores endpoints whose interface is not ours', () => {
    const d = computeDesired(input({ endpoints: [{ ...input().endpoints[0]!, interfaceName: 'eth7' }] }));
    assert.equal(d.routes.has('4|10.65.0.5/32'), false);
    assert.equal(d.workloadIfaces.size, 0);
  });
  it('blackholes own blocks', () => {
    const r = computeDesired(input()).routes.get('4|10.65.0.0/26');
    assert.equal(r?.type, 'blackhole');
    assert.equal(r?.dev, undefined);
  });
});

describe('computeDesired: remote blocks', () => {
  it('routes nothing remote without encapsulation when routes come from BGP (the default)', () => {
    const d = computeDesired(input());
    assert.equal(d.routes.has('4|10.65.1.0/26'), false);
    assert.equal(d.tunnels.size, 0);
  });
  it('static mode routes remote blocks via the node IP onlink on the uplink', () => {
    const d = computeDesired(input({ settings: { ...DEFAULT_SETTINGS, remoteRouteSource: 'static' } }));
    assert.deepEqual(d.routes.get('4|10.65.2.0/26'), {
      family: 4,
      dst: '10.65.2.0/26',
      kind: 'static',
      type: 'unicast',
      dev: 'eth0',
      via: '192.168.2.3',
      onlink: true,
      scope: 'universe',
    });
  });
  it('VXLAN Always: device, FDB and neighbour per remote VTEP, block routes via the tunnel address', () => {
    const d = computeDesired(input({ pools: [pool({ vxlanMode: 'Always' })] }));
    const t = d.tunnels.get(VXLAN_DEVICE_V4);
    assert.ok(t && t.kind === 'vxlan');
    assert.equal(t.vni, 4096);
    assert.equal(t.port, 4789);
    assert.equal(t.local, '192.168.1.1');
    assert.equal(t.address, '10.65.0.0/32');
    assert.equal(t.parent, 'eth0');
    assert.deepEqual(d.fdb.get(`${VXLAN_DEVICE_V4}|02:00:00:00:00:02`), {
      dev: VXLAN_DEVICE_V4,
      mac: '02:00:00:00:00:02',
      dst: '192.168.1.2',
    });
    assert.equal(d.neighs.get(`${VXLAN_DEVICE_V4}|10.65.2.0`)?.mac, '02:00:00:00:00:03');
    const r = d.routes.get('4|10.65.1.0/26');
    assert.equal(r?.kind, 'vxlan');
    assert.equal(r?.via, '10.65.1.0');
    assert.equal(r?.dev, VXLAN_DEVICE_V4);
    assert.equal(r?.onlink, true);
    assert.equal(d.fdb.has(`${VXLAN_DEVICE_V4}|02:00:00:00:00:01`), false, 'no FDB entry for ourselves');
  });
  it('IPv6 VXLAN: its own device, local = the IPv6 node address, block routes via the v6 tunnel address', () => {
    const v6 = (n: NodeInput, i: number): NodeInput => ({
      ...n,
      ipv6Address: `fd10::${i}/64`,
      ipv6VXLANTunnelAddr: `fd00:65:0:${i}::`,
      vxlanTunnelMACAddrV6: `02:00:00:00:06:0${i}`,
    });
    const [me6, near6] = [v6(me, 1), v6(near, 2)];
    const d = computeDesired(
      input({
        self: me6,
        nodes: new Map([me6, near6].map((n) => [n.name, n])),
        pools: [pool({ name: 'p6', cidr: 'fd00:65::/48', vxlanMode: 'Always' })],
        blocks: [
          { cidr: 'fd00:65:0:1::/122', affinity: 'n1', borrowed: [] },
          { cidr: 'fd00:65:0:2::/122', affinity: 'n2', borrowed: [] },
        ],
        host: { uplinkV4: 'eth0', uplinkV6: 'eth0', ipipSupported: false },
        settings: { ...DEFAULT_SETTINGS, vxlanMTU: 1450, vxlanMTUV6: 1430 },
      }),
    );
    assert.equal(d.tunnels.has(VXLAN_DEVICE_V4), false, 'no IPv4 VXLAN pool, no IPv4 device');
    const t = d.tunnels.get(VXLAN_DEVICE_V6);
    assert.ok(t && t.kind === 'vxlan');
    assert.equal(t.family, 6);
    assert.equal(t.local, 'fd10::1');
    assert.equal(t.parent, 'eth0');
    assert.equal(t.address, 'fd00:65:0:1::/128');
    assert.equal(t.mac, '02:00:00:00:06:01');
    assert.equal(t.mtu, 1430, 'vxlanMTUV6, not vxlanMTU');
    assert.deepEqual(d.routes.get('6|fd00:65:0:2::/122'), {
      family: 6,
      dst: 'fd00:65:0:2::/122',
      kind: 'vxlan',
      type: 'unicast',
      dev: VXLAN_DEVICE_V6,
      via: 'fd00:65:0:2::',
      onlink: true,
      scope: 'universe',
    });
    assert.equal(d.routes.get('6|fd00:65:0:1::/122')?.type, 'blackhole');
    assert.deepEqual(d.fdb.get(`${VXLAN_DEVICE_V6}|02:00:00:00:06:02`), {
      dev: VXLAN_DEVICE_V6,
      mac: '02:00:00:00:06:02',
      dst: 'fd10::2',
    });
    assert.deepEqual(d.neighs.get(`${VXLAN_DEVICE_V6}|fd00:65:0:2::`), {
      family: 6,
      dev: VXLAN_DEVICE_V6,
      ip: 'fd00:65:0:2::',
      mac: '02:00:00:00:06:02',
    });
    assert.ok(VXLAN_DEVICE_V6.length <= 15, 'fits IFNAMSIZ');
  });
  it('VXLAN CrossSubnet encapsulates only towards nodes off our subnet', () => {
    const d = computeDesired(input({ pools: [pool({ vxlanMode: 'CrossSubnet' })] }));
    assert.equal(d.routes.get('4|10.65.1.0/26')?.kind, 'crosssubnet');
    assert.equal(d.routes.get('4|10.65.1.0/26')?.via, '192.168.1.2');
    assert.equal(d.routes.get('4|10.65.1.0/26')?.dev, 'eth0');
    assert.equal(d.routes.get('4|10.65.2.0/26')?.kind, 'vxlan');
  });
  it('a remote node without a VTEP is reported and not routed', () => {
    const bare = { name: 'n2', ipv4Address: '192.168.9.2/24' };
    const d = computeDesired(
      input({
        pools: [pool({ vxlanMode: 'Always' })],
        nodes: new Map([
          ['n1', me],
          ['n2', bare],
        ]),
      }),
    );
    assert.equal(d.routes.has('4|10.65.1.0/26'), false);
    assert.ok(d.problems.some((p) => p.code === 'remote-vtep-incomplete' && p.subject === 'n2'));
  });
  it('IPIP: generates tunl0 routes, and reports the missing kernel module with the pool not ready', () => {
    const d = computeDesired(
      input({
        pools: [pool({ name: 'ipip-pool', ipipMode: 'Always' })],
        self: { ...me, ipv4IPIPTunnelAddr: '10.65.0.1' },
      }),
    );
    assert.deepEqual(d.routes.get('4|10.65.1.0/26'), {
      family: 4,
      dst: '10.65.1.0/26',
      kind: 'ipip',
      type: 'unicast',
      dev: IPIP_DEVICE,
      via: '192.168.1.2',
      onlink: true,
      scope: 'universe',
    });
    assert.deepEqual(d.tunnels.get(IPIP_DEVICE), { kind: 'ipip', name: 'tunl0', address: '10.65.0.1/32' });
    assert.ok(d.problems.some((p) => p.code === 'ipip-unsupported'));
    assert.ok(d.unreadyPools.has('ipip-pool'));
    const ok = computeDesired(
      input({ pools: [pool({ ipipMode: 'CrossSubnet' })], host: { uplinkV4: 'eth0', ipipSupported: true } }),
    );
    assert.equal(ok.unreadyPools.size, 0);
    assert.equal(ok.routes.get('4|10.65.1.0/26')?.kind, 'crosssubnet');
    assert.equal(ok.routes.get('4|10.65.2.0/26')?.kind, 'ipip');
  });
  it('borrowed addresses are routed by /32 to the borrowing node, over the block route', () => {
    const d = computeDesired(
      input({
        settings: { ...DEFAULT_SETTINGS, remoteRouteSource: 'static' },
        blocks: [
          { cidr: '10.65.0.0/26', affinity: 'n1', borrowed: [{ ip: '10.65.0.9', node: 'n3' }] },
          {
            cidr: '10.65.1.0/26',
            affinity: 'n2',
            borrowed: [
              { ip: '10.65.1.7', node: 'n1' },
              { ip: '10.65.1.8', node: 'n3' },
            ],
          },
        ],
      }),
    );
    assert.equal(d.routes.get('4|10.65.0.9/32')?.via, '192.168.2.3');
    assert.equal(d.routes.get('4|10.65.0.0/26')?.type, 'blackhole');
    assert.equal(d.routes.has('4|10.65.1.7/32'), false, 'our own borrowed address is routed by its endpoint');
    assert.equal(d.routes.get('4|10.65.1.8/32')?.via, '192.168.2.3');
  });
  it('learned routes fill gaps but never override local knowledge', () => {
    const d = computeDesired(
      input({
        learned: [
          { prefix: '10.65.0.0/26', nextHops: [{ via: '192.168.1.2' }] },
          { prefix: '10.99.0.0/24', nextHops: [{ via: '192.168.1.2' }] },
        ],
      }),
    );
    assert.equal(d.routes.get('4|10.65.0.0/26')?.kind, 'blackhole');
    assert.deepEqual(d.routes.get('4|10.99.0.0/24'), {
      family: 4,
      dst: '10.99.0.0/24',
      kind: 'learned',
      type: 'unicast',
      dev: 'eth0',
      via: '192.168.1.2',
      onlink: true,
      scope: 'universe',
    });
  });
  it('learned routes with two or more next hops become one multipath route (ECMP)', () => {
    const two = computeDesired(
      input({
        learned: [
          {
            prefix: '10.99.0.0/24',
            nextHops: [{ via: '192.168.1.9' }, { via: '192.168.1.2' }, { via: '192.168.1.9' }],
          },
        ],
      }),
    );
    assert.deepEqual(two.routes.get('4|10.99.0.0/24'), {
      family: 4,
      dst: '10.99.0.0/24',
      kind: 'learned',
      type: 'unicast',
      onlink: false,
      scope: 'universe',
      multipath: [
        { via: '192.168.1.2', dev: 'eth0', onlink: true },
        { via: '192.168.1.9', dev: 'eth0', onlink: true },
      ],
    });
    // The hop order BGP reports must not matter: equal sets give equal specs.
    const swapped = computeDesired(
      input({
        learned: [{ prefix: '10.99.0.0/24', nextHops: [{ via: '192.168.1.2' }, { via: '192.168.1.9' }] }],
      }),
    );
    assert.deepEqual(swapped.routes.get('4|10.99.0.0/24'), two.routes.get('4|10.99.0.0/24'));
    // A single hop stays a plain route (no multipath attribute).
    const one = computeDesired(
      input({ learned: [{ prefix: '10.99.0.0/24', nextHops: [{ via: '192.168.1.2', onlink: false }] }] }),
    );
    const r = one.routes.get('4|10.99.0.0/24');
    assert.equal(r?.multipath, undefined);
    assert.equal(r?.via, '192.168.1.2');
    assert.equal(r?.onlink, false);
    // Local knowledge still wins over a multipath learned route.
    const local = computeDesired(
      input({
        learned: [{ prefix: '10.65.0.0/26', nextHops: [{ via: '192.168.1.2' }, { via: '192.168.1.3' }] }],
      }),
    );
    assert.equal(local.routes.get('4|10.65.0.0/26')?.kind, 'blackhole');
  });
  it('gives the same state with a warm cache, and follows changes through remoteVersion', () => {
    const cache = newCalcCache();
    const base = input({ pools: [pool({ vxlanMode: 'CrossSubnet' })], remoteVersion: 1, blocksVersion: 1 });
    const cold = computeDesired(base);
    assert.deepEqual([...computeDesired(base, cache).routes], [...cold.routes]);
    assert.deepEqual(
      [...computeDesired(base, cache).routes],
      [...cold.routes],
      'second call served from the cache',
    );
    // A pool change with a new version must not be served stale.
    const always = { ...base, pools: [pool({ vxlanMode: 'Always' })], remoteVersion: 2 };
    assert.equal(computeDesired(always, cache).routes.get('4|10.65.1.0/26')?.kind, 'vxlan');
    assert.deepEqual([...computeDesired(always, cache).routes], [...computeDesired(always).routes]);
    // A changed endpoint is a new object: recomputed on top of the cached node-wide part.
    const moved = { ...always, endpoints: [{ ...always.endpoints[0]!, interfaceName: 'gh00000000000' }] };
    assert.equal(computeDesired(moved, cache).routes.get('4|10.65.0.5/32')?.dev, 'gh00000000000');
    assert.equal(
      computeDesired(always, cache).routes.get('4|10.65.0.5/32')?.dev,
      'gh0123456789a',
      'the cached base was not polluted',
    );
    // A block change with a new blocksVersion is seen.
    const moreBlocks = {
      ...always,
      blocks: [...always.blocks, { cidr: '10.65.7.0/26', affinity: 'n1', borrowed: [] }],
      blocksVersion: 2,
    };
    assert.equal(computeDesired(moreBlocks, cache).routes.get('4|10.65.7.0/26')?.type, 'blackhole');
    assert.deepEqual([...computeDesired(moreBlocks, cache).routes], [...computeDesired(moreBlocks).routes]);
  });
  it('is deterministic: the same input gives the same state', () => {
    const a = computeDesired(input({ pools: [pool({ vxlanMode: 'Always' })] }));
    const b = computeDesired(input({ pools: [pool({ vxlanMode: 'Always' })] }));
    assert.deepEqual([...a.routes], [...b.routes]);
    assert.deepEqual([...a.fdb], [...b.fdb]);
  });
});

describe('inputs', () => {
  it('sameSubnet uses the prefix of our address', () => {
    assert.equal(sameSubnet(me, '192.168.1.200'), true);
    assert.equal(sameSubnet(me, '192.168.2.3'), false);
  });
  it('parses a Calico-layout IPAM block and finds borrowed addresses', () => {
    const b = blockInput({
      cidr: '10.65.1.0/26',
      affinity: 'host:n2',
      allocations: [0, null, 1, ...Array(61).fill(null)],
      unallocated: [],
      attributes: [
        { handle_id: 'a', secondary: { node: 'n2' } },
        { handle_id: 'b', secondary: { node: 'n5' } },
      ],
    });
    assert.deepEqual(b, {
      cidr: '10.65.1.0/26',
      affinity: 'n2',
      borrowed: [{ ip: '10.65.1.2', node: 'n5' }],
    });
    assert.equal(blockInput({ cidr: '10.0.0.0/26', affinity: null })?.affinity, null);
  });
  it('reads Node specs', () => {
    const n = nodeInput('x', {
      bgp: { ipv4Address: '1.2.3.4/24' },
      ipv4VXLANTunnelAddr: '10.0.0.1',
      addresses: [{ address: '5.6.7.8' }],
    });
    assert.equal(n.ipv4Address, '1.2.3.4/24');
    assert.equal(n.ipv4VXLANTunnelAddr, '10.0.0.1');
    assert.deepEqual(n.addresses, ['5.6.7.8']);
  });
});

/** Everything the dataplane reads, order-independent (Maps and Sets compare unordered). */
function comparable(d: DesiredState) {
  return {
    routes: new Map(d.routes),
    neighs: new Map(d.neighs),
    fdb: new Map(d.fdb),
    tunnels: new Map(d.tunnels),
    retainTunnels: new Set(d.retainTunnels),
    workloadIfaces: new Set(d.workloadIfaces),
    sysctls: new Map(d.sysctls),
    problems: d.problems.map((p) => JSON.stringify(p)).sort(),
    unreadyPools: new Set(d.unreadyPools),
  };
}

describe('computeDesired in place (newCalcCache({ inPlace: true }))', () => {
  // Candidate endpoints share interfaces and addresses on purpose, and one address is also a
  // borrowed /32 routed to another node and one a learned prefix: the in-place path must notice
  // every collision and fall back to a fresh computation.
  const candidates: Array<Omit<EndpointInput, 'key' | 'name' | 'namespace' | 'revision'>> = [
    { interfaceName: 'gh000000000a1', mac: 'aa:00:00:00:00:01', ipNetworks: ['10.65.0.5/32'] },
    { interfaceName: 'gh000000000a2', mac: 'aa:00:00:00:00:02', ipNetworks: ['10.65.0.6/32', 'fd00::6/128'] },
    { interfaceName: 'gh000000000a3', ipNetworks: ['10.65.0.7/32'] },
    { interfaceName: 'gh000000000a1', mac: 'aa:00:00:00:00:04', ipNetworks: ['10.65.0.8/32'] },
    { interfaceName: 'gh000000000a5', mac: 'aa:00:00:00:00:05', ipNetworks: ['10.65.0.6/32'] },
    { interfaceName: 'gh000000000a6', ipNetworks: ['10.65.0.9/32'] },
    { interfaceName: 'gh000000000a7', ipNetworks: ['10.99.0.1/32'] },
    { interfaceName: 'eth9', ipNetworks: ['10.65.0.10/32'] },
  ];
  const learnedSets: LearnedRoute[][] = [
    [],
    [{ prefix: '10.99.0.1/32', nextHops: [{ via: '192.168.1.2' }] }],
    [{ prefix: '10.98.0.0/24', nextHops: [{ via: '192.168.1.3' }] }],
  ];
  const step = fc.record({
    // Which candidates are present; "fresh" ones are new objects (a modified endpoint).
    present: fc.array(fc.boolean(), { minLength: candidates.length, maxLength: candidates.length }),
    fresh: fc.array(fc.boolean(), { minLength: candidates.length, maxLength: candidates.length }),
    learned: fc.nat({ max: learnedSets.length - 1 }),
    blocksBump: fc.boolean(),
  });

  it('equals a fresh computation after every change (property)', () => {
    fc.assert(
      fc.property(fc.array(step, { minLength: 1, maxLength: 25 }), (steps) => {
        const cache = newCalcCache({ inPlace: true });
        const objects: Array<EndpointInput | undefined> = [];
        let blocksVersion = 1;
        let prevRoutes: Map<string, unknown> | null = null;
        for (const st of steps) {
          const endpoints: EndpointInput[] = [];
          candidates.forEach((c, i) => {
            if (!st.present[i]) return;
            if (!objects[i] || st.fresh[i])
              objects[i] = { ...c, key: `ns/w${i}`, name: `w${i}`, namespace: 'ns', revision: 1n };
            endpoints.push(objects[i]!);
          });
          if (st.blocksBump && st.learned === 0) blocksVersion++;
          const inp = input({
            settings: { ...DEFAULT_SETTINGS, remoteRouteSource: 'static' },
            blocks: [
              {
                cidr: '10.65.0.0/26',
                affinity: 'n1',
                borrowed: [{ ip: '10.65.0.9', node: 'n2' }],
              },
              { cidr: '10.65.1.0/26', affinity: 'n2', borrowed: [] },
            ],
            endpoints,
            learned: learnedSets[st.learned]!,
            remoteVersion: 1,
            blocksVersion,
          });
          const got = computeDesired(inp, cache);
          assert.deepStrictEqual(comparable(got), comparable(computeDesired(inp)));
          // changedRoutes (what the route driver then compares) covers every route that changed.
          if (cache.changedRoutes && prevRoutes) {
            for (const k of new Set([...prevRoutes.keys(), ...got.routes.keys()])) {
              if (prevRoutes.get(k) !== got.routes.get(k))
                assert.ok(cache.changedRoutes.has(k), `${k} changed but is not in changedRoutes`);
            }
          }
          prevRoutes = new Map(got.routes);
        }
      }),
      { numRuns: 300 },
    );
  });

  it('updates the previous result instead of copying it when only endpoints change', () => {
    const cache = newCalcCache({ inPlace: true });
    const a = input({ remoteVersion: 1, blocksVersion: 1 });
    const first = computeDesired(a, cache);
    const added: EndpointInput = {
      key: 'ns/w2',
      name: 'w2',
      namespace: 'ns',
      interfaceName: 'gh0000000000b',
      ipNetworks: ['10.65.0.6/32'],
      revision: 8n,
    };
    const second = computeDesired({ ...a, endpoints: [...a.endpoints, added] }, cache);
    assert.equal(second, first, 'same object, updated');
    assert.equal(second.routes.get('4|10.65.0.6/32')?.dev, 'gh0000000000b');
    const third = computeDesired({ ...a, endpoints: [added] }, cache);
    assert.equal(third.routes.get('4|10.65.0.5/32'), undefined, 'the removed endpoint is gone');
    assert.equal(third.sysctls.get('net/ipv4/conf/gh0123456789a/proxy_arp'), undefined);
    // The copy-per-call cache (default) still gives a new object each time.
    const copying = newCalcCache();
    assert.notEqual(computeDesired(a, copying), computeDesired(a, copying));
  });
});

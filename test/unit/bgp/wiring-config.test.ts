// The pure translation from store resources to the speaker's peers, policies and announcements.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  BgpConfigError,
  type BgpInputs,
  type BgpNode,
  type BgpPeerSpec,
  calicoExportPolicy,
  computeAnnouncements,
  computeBgpConfig,
  routerIdFromName,
} from '../../../agent/bgp/config.js';
import { evaluatePolicy, formatCommunity } from '../../../bgp/index.js';

const node = (name: string, ip: string, extra: Partial<BgpNode> = {}): BgpNode => ({
  name,
  labels: {},
  ipv4: ip,
  ...extra,
});

function inputs(nodeName: string, nodes: BgpNode[], x: Partial<BgpInputs> = {}): BgpInputs {
  return {
    nodeName,
    nodes: new Map(nodes.map((n) => [n.name, n])),
    configs: new Map(),
    peers: new Map(),
    pools: [{ cidr: '10.65.0.0/16', disabled: false, disableBGPExport: false }],
    ...x,
  };
}

const peersOf = (i: BgpInputs) =>
  computeBgpConfig(i).peers.map((p) => ({
    address: p.address,
    asn: p.asn,
    passive: p.passive,
    type: p.type,
    rrClient: p.rrClient,
    localAddress: p.localAddress,
  }));

describe('BGP wiring: peers per node', () => {
  const three = [node('a', '192.168.1.1'), node('b', '192.168.1.2'), node('c', '192.168.1.3')];

  it('full mesh by default; the higher address is passive; AS 64512; port 179', () => {
    const i = inputs('b', three);
    const d = computeBgpConfig(i);
    assert.deepEqual(d.speaker, {
      routerId: '192.168.1.2',
      asn: 64512,
      clusterId: undefined,
      listenPort: 179,
    });
    assert.deepEqual(peersOf(i), [
      {
        address: '192.168.1.1',
        asn: 64512,
        passive: true,
        type: 'node-to-node mesh',
        rrClient: false,
        localAddress: '192.168.1.2',
      },
      {
        address: '192.168.1.3',
        asn: 64512,
        passive: false,
        type: 'node-to-node mesh',
        rrClient: false,
        localAddress: '192.168.1.2',
      },
    ]);
  });

  it('mesh timers, per-node AS and listen port from BGPConfiguration; mesh off removes it', () => {
    const configs = new Map([
      [
        'default',
        {
          asNumber: 65000,
          listenPort: 1790,
          nodeMeshHoldTime: '9s',
          nodeMeshKeepaliveTime: '3s',
          nodeMeshMaxRestartTime: '2m',
        },
      ],
    ]);
    const nodes = [node('a', '192.168.1.1', { asNumber: 65001 }), node('b', '192.168.1.2')];
    const d = computeBgpConfig(inputs('b', nodes, { configs }));
    assert.equal(d.speaker.listenPort, 1790);
    assert.equal(d.speaker.asn, 65000);
    assert.deepEqual(
      d.peers.map((p) => [p.asn, p.port, p.holdTimeSec, p.keepaliveSec, p.restartTimeSec]),
      [[65001, 1790, 9, 3, 120]],
    );
    const off = new Map([['default', { nodeToNodeMeshEnabled: false }]]);
    assert.deepEqual(computeBgpConfig(inputs('b', nodes, { configs: off })).peers, []);
  });

  it('route reflectors: mesh off, global BGPPeer peerSelector has(rr) — clients peer with the RR, the RR with clients', () => {
    const nodes = [
      node('rr1', '192.168.1.10', { labels: { rr: 'true' }, routeReflectorClusterID: '1.1.1.1' }),
      node('n1', '192.168.1.1'),
      node('n2', '192.168.1.2'),
    ];
    const configs = new Map([['default', { nodeToNodeMeshEnabled: false }]]);
    const peers = new Map<string, BgpPeerSpec>([['to-rr', { peerSelector: 'has(rr)' }]]);
    const n1 = peersOf(inputs('n1', nodes, { configs, peers }));
    assert.deepEqual(n1, [
      {
        address: '192.168.1.10',
        asn: 64512,
        passive: false,
        type: 'global',
        rrClient: false,
        localAddress: '192.168.1.1',
      },
    ]);
    const rr = computeBgpConfig(inputs('rr1', nodes, { configs, peers }));
    assert.equal(rr.speaker.clusterId, '1.1.1.1');
    assert.deepEqual(
      rr.peers.map((p) => [p.address, p.rrClient, p.type, p.passive]),
      [
        ['192.168.1.1', true, 'route reflector client', true],
        ['192.168.1.2', true, 'route reflector client', true],
      ],
    );
  });

  it('a reflector skips the mesh; mesh nodes skip reflectors', () => {
    const nodes = [
      node('rr1', '192.168.1.10', { routeReflectorClusterID: '1.1.1.1' }),
      node('n1', '192.168.1.1'),
      node('n2', '192.168.1.2'),
    ];
    assert.deepEqual(computeBgpConfig(inputs('rr1', nodes)).peers, []);
    assert.deepEqual(
      computeBgpConfig(inputs('n1', nodes)).peers.map((p) => p.address),
      ['192.168.1.2'],
    );
  });

  it('BGPPeer: node-scoped peerIP with port, AS, timers; nodeSelector; global', () => {
    const nodes = [
      node('a', '192.168.1.1', { labels: { rack: 'r1' } }),
      node('b', '192.168.1.2', { labels: { rack: 'r2' } }),
    ];
    const peers = new Map<string, BgpPeerSpec>([
      [
        'tor-a',
        {
          node: 'a',
          peerIP: '192.168.1.254:1790',
          asNumber: 65100,
          keepaliveTime: '5s',
          holdTime: '15s',
          maxRestartTime: '30s',
        },
      ],
      ['rack2', { nodeSelector: "rack == 'r2'", peerIP: '192.168.2.254', asNumber: 65200 }],
      ['core', { peerIP: 'fd00::fe', asNumber: 65300 }],
    ]);
    const configs = new Map([['default', { nodeToNodeMeshEnabled: false }]]);
    const a = computeBgpConfig(inputs('a', nodes, { configs, peers })).peers;
    assert.deepEqual(
      a.map((p) => [p.address, p.port, p.asn, p.type, p.keepaliveSec, p.holdTimeSec, p.restartTimeSec]),
      [['192.168.1.254', 1790, 65100, 'node specific', 5, 15, 30]],
    );
    const b = computeBgpConfig(inputs('b', nodes, { configs, peers }));
    assert.deepEqual(
      b.peers.map((p) => [p.address, p.asn, p.type]),
      [['192.168.2.254', 65200, 'node specific']],
    );
    assert.match(b.problems[0]!, /core: no local address of fd00::fe's family/);
  });

  it('dual stack: one session per family between nodes', () => {
    const nodes = [
      node('a', '192.168.1.1', { ipv6: 'fd00::1' }),
      node('b', '192.168.1.2', { ipv6: 'fd00::2' }),
    ];
    const d = computeBgpConfig(inputs('a', nodes));
    assert.deepEqual(
      d.peers.map((p) => [p.address, p.families, p.localAddress, p.passive]),
      [
        ['192.168.1.2', ['ipv4-unicast'], '192.168.1.1', false],
        ['fd00::2', ['ipv6-unicast'], 'fd00::1', false],
      ],
    );
  });

  it('nextHopMode Self / Keep', () => {
    const nodes = [node('a', '192.168.1.1')];
    const peers = new Map<string, BgpPeerSpec>([
      ['s', { peerIP: '192.168.1.100', asNumber: 65000, nextHopMode: 'Self' }],
      ['k', { peerIP: '192.168.1.101', asNumber: 65001, nextHopMode: 'Keep' }],
    ]);
    const [s, k] = computeBgpConfig(inputs('a', nodes, { peers })).peers;
    assert.equal(s!.nextHopSelf, true);
    const kept = evaluatePolicy(
      k!.exportPolicy,
      '10.65.0.0/26',
      { origin: 0, asPath: [], nextHop: '192.168.1.1' },
      {
        family: 4,
        peerIbgp: false,
        local: false,
        selfNextHop: '192.168.1.1',
        originalNextHop: '192.168.1.7',
      },
    );
    assert.equal(kept!.nextHop, '192.168.1.7');
  });

  it('errors: unknown node, node without addresses; v6-only nodes get a name-derived router id', () => {
    assert.throws(() => computeBgpConfig(inputs('zz', [])), BgpConfigError);
    assert.throws(() => computeBgpConfig(inputs('a', [{ name: 'a', labels: {} }])), /neither/);
    const d = computeBgpConfig(inputs('a', [{ name: 'a', labels: {}, ipv6: 'fd00::1' }]));
    assert.equal(d.speaker.routerId, routerIdFromName('a'));
    assert.match(d.speaker.routerId, /^\d+\.\d+\.\d+\.\d+$/);
  });
});

describe('BGP wiring: Calico export policy and announcements', () => {
  const pools = [
    { cidr: '10.65.0.0/16', disabled: false, disableBGPExport: false },
    { cidr: '10.66.0.0/16', disabled: true, disableBGPExport: false },
    { cidr: '10.67.0.0/16', disabled: false, disableBGPExport: true },
  ];
  const attrs = { origin: 0 as const, asPath: [], nextHop: '192.168.1.1' };
  const ctx = {
    family: 4 as const,
    peerIbgp: true,
    local: true,
    selfNextHop: '192.168.1.1',
    originalNextHop: '192.168.1.1',
  };

  it('exports enabled pools with the configured communities; rejects disabled and unrelated prefixes', () => {
    const p = calicoExportPolicy(pools, {
      communities: [{ name: 'blue', value: '65000:100' }],
      prefixAdvertisements: [{ cidr: '10.65.1.0/24', communities: ['blue', '65000:1:2'] }],
      serviceClusterIPs: [{ cidr: '10.96.0.0/12' }],
    });
    const tagged = evaluatePolicy(p, '10.65.1.64/26', attrs, ctx)!;
    assert.deepEqual(tagged.communities?.map(formatCommunity), ['65000:100']);
    assert.equal(tagged.largeCommunities?.length, 1);
    assert.equal(evaluatePolicy(p, '10.65.2.0/26', attrs, ctx)!.communities, undefined);
    assert.ok(evaluatePolicy(p, '10.65.2.7/32', attrs, ctx));
    assert.ok(evaluatePolicy(p, '10.96.0.0/12', attrs, ctx));
    assert.equal(evaluatePolicy(p, '10.66.0.0/26', attrs, ctx), null);
    assert.equal(evaluatePolicy(p, '10.67.0.0/26', attrs, ctx), null);
    assert.equal(evaluatePolicy(p, '0.0.0.0/0', attrs, ctx), null);
  });

  it('announces affine blocks and borrowed /32s in exported pools only', () => {
    const got = computeAnnouncements(
      'a',
      [
        { cidr: '10.65.0.0/26', affinity: 'a', borrowed: [] },
        {
          cidr: '10.65.0.64/26',
          affinity: 'b',
          borrowed: [
            { ip: '10.65.0.70', node: 'a' },
            { ip: '10.65.0.71', node: 'c' },
          ],
        },
        { cidr: '10.66.0.0/26', affinity: 'a', borrowed: [] },
        { cidr: '10.67.0.0/26', affinity: 'a', borrowed: [] },
        { cidr: '10.65.0.128/26', affinity: null, borrowed: [] },
      ],
      pools,
    );
    assert.deepEqual(got, ['10.65.0.0/26', '10.65.0.70/32']);
  });
});

describe('gingham node status rendering', () => {
  const doc = {
    node: 'a',
    updated: '2026-11-25T14:20:00.000Z',
    routerId: '192.168.1.1',
    asn: 64512,
    peers: [
      {
        address: '192.168.1.2',
        asn: 64512,
        type: 'node-to-node mesh',
        state: 'Established' as const,
        since: '2026-11-25T14:19:58.000Z',
        prefixesReceived: 3,
        prefixesAccepted: 3,
        prefixesAdvertised: 1,
        flaps: 0,
        lastError: '',
      },
      {
        address: 'fd00::2',
        asn: 65000,
        type: 'global',
        state: 'Active' as const,
        since: '2026-11-24T10:00:00.000Z',
        prefixesReceived: 0,
        prefixesAccepted: 0,
        prefixesAdvertised: 0,
        flaps: 2,
        lastError: 'connect: ECONNREFUSED',
      },
    ],
  };

  it('JSON has exactly the documented shape', async () => {
    const { toJson } = await import('../../../cli/commands/node.js');
    assert.deepEqual(toJson(doc), {
      node: 'a',
      peers: [
        {
          address: '192.168.1.2',
          type: 'node-to-node mesh',
          state: 'Established',
          since: '2026-11-25T14:19:58.000Z',
          prefixesReceived: 3,
          prefixesAdvertised: 1,
        },
        {
          address: 'fd00::2',
          type: 'global',
          state: 'Active',
          since: '2026-11-24T10:00:00.000Z',
          prefixesReceived: 0,
          prefixesAdvertised: 0,
        },
      ],
    });
  });

  it('table: per family, up/start, info with the last error, stale warning', async () => {
    const { renderTable } = await import('../../../cli/commands/node.js');
    const out = renderTable(doc, new Date('2026-11-25T14:20:05.000Z'));
    assert.match(
      out,
      /\| 192\.168\.1\.2 +\| node-to-node mesh \| up +\| 14:19:58 \| Established +\| 3 +\| 1 +\|/,
    );
    assert.match(
      out,
      /IPv6 BGP status\n.*\n.*\n.*\n\| fd00::2 +\| global +\| start \| 2026-11-24 \| Active \(connect: ECONNREFUSED\) \|/,
    );
    assert.doesNotMatch(out, /WARNING/);
    assert.match(renderTable(doc, new Date('2026-11-25T14:30:00.000Z')), /WARNING: the report is 600 s old/);
  });
});

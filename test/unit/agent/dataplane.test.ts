import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { vtepMacFor } from '../../../agent/agent.js';
import { chooseAddress, type HostAddress, parseMethod } from '../../../agent/autodetect.js';
import type { RouteSpec } from '../../../agent/calc/model.js';
import { isOwnedLink, OWNED_TUNNELS } from '../../../agent/dataplane/links.js';
import { slimEndpoint } from '../../../agent/dataplane/nft.js';
import { decodeMultipath, encodeMultipath, encodeRouteMessage } from '../../../agent/dataplane/routebatch.js';
import { type KernelRoute, routeBatchLine, sameRoute } from '../../../agent/dataplane/routes.js';
import { errnoOf, runBounded } from '../../../agent/dataplane/rtnl.js';
import { parseHostPort } from '../../../agent/http.js';
import { INTERFACE_PREFIX } from '../../../lib/constants.js';

const wl: RouteSpec = {
  family: 4,
  dst: '10.65.0.5/32',
  kind: 'workload',
  type: 'unicast',
  dev: 'gh1',
  onlink: false,
  scope: 'link',
};
const vx: RouteSpec = {
  family: 4,
  dst: '10.65.1.0/26',
  kind: 'vxlan',
  type: 'unicast',
  dev: 'vxlan.gingham',
  via: '10.65.1.0',
  onlink: true,
  scope: 'universe',
};

describe('multipath (ECMP) routes', () => {
  const ecmp: RouteSpec = {
    family: 4,
    dst: '10.99.0.0/24',
    kind: 'learned',
    type: 'unicast',
    onlink: false,
    scope: 'universe',
    multipath: [
      { via: '192.168.1.2', dev: 'eth0', onlink: true },
      { via: '192.168.1.3', dev: 'eth0', onlink: true },
    ],
  };
  it('encodes RTA_MULTIPATH as rtnexthop + RTA_GATEWAY per hop, and decodes it back', () => {
    const hops = [
      { via: '192.168.1.2', oif: 2, onlink: true },
      { via: '192.168.1.3', oif: 2, onlink: true },
    ];
    const b = encodeMultipath(hops);
    assert.equal(b.length, 32, 'two × (8-byte rtnexthop + 8-byte RTA_GATEWAY)');
    // struct rtnexthop { len=16, flags=RTNH_F_ONLINK, hops=0 (weight 1), ifindex=2 }
    assert.deepEqual([...b.subarray(0, 8)], [16, 0, 4, 0, 2, 0, 0, 0]);
    // RTA_GATEWAY { len=8, type=5, 192.168.1.2 }
    assert.deepEqual([...b.subarray(8, 16)], [8, 0, 5, 0, 192, 168, 1, 2]);
    assert.deepEqual([...b.subarray(24, 28)], [8, 0, 5, 0]);
    assert.deepEqual(decodeMultipath(b), hops);
    // The kernel's order is not ours: decoding sorts.
    assert.deepEqual(decodeMultipath(encodeMultipath([...hops].reverse())), hops);
    const v6 = [{ via: 'fe80::1', oif: 3, onlink: false }];
    assert.deepEqual(decodeMultipath(encodeMultipath(v6)), v6);
  });
  it('the batch message carries RTA_MULTIPATH instead of RTA_OIF/RTA_GATEWAY, onlink per hop', () => {
    const hops = [
      { via: '192.168.1.2', oif: 2, onlink: true },
      { via: '192.168.1.3', oif: 2, onlink: true },
    ];
    const m = encodeRouteMessage({ op: 'replace', route: ecmp, hops }, 1);
    assert.equal(m.readUInt32LE(0), m.length);
    assert.equal(m.readUInt32LE(24), 0, 'no rtm_flags onlink for a multipath route');
    // attributes: RTA_DST (8) then RTA_MULTIPATH (4 + 32)
    assert.equal(m.length, 28 + 8 + 36);
    assert.equal(m.readUInt16LE(36), 36);
    assert.equal(m.readUInt16LE(38), 9, 'RTA_MULTIPATH');
    assert.deepEqual(decodeMultipath(m.subarray(40)), hops);
  });
  it('compares a multipath route by its set of next hops', () => {
    const have: KernelRoute = {
      family: 4,
      dst: ecmp.dst,
      type: 'unicast',
      onlink: false,
      scope: 'universe',
      multipath: [
        { via: '192.168.1.2', oif: 2, onlink: true },
        { via: '192.168.1.3', oif: 2, onlink: true },
      ],
    };
    const want = [
      { via: '192.168.1.3', oif: 2, onlink: true },
      { via: '192.168.1.2', oif: 2, onlink: true },
    ];
    assert.equal(sameRoute(ecmp, undefined, have, want), true, 'order does not matter');
    assert.equal(sameRoute(ecmp, undefined, have, want.slice(0, 1)), false, 'a hop fewer');
    assert.equal(
      sameRoute(ecmp, undefined, have, [want[0]!, { ...want[1]!, via: '192.168.1.4' }]),
      false,
      'another hop',
    );
    assert.equal(sameRoute(ecmp, undefined, have, [want[0]!, { ...want[1]!, oif: 5 }]), false);
    assert.equal(sameRoute(ecmp, undefined, have, [want[0]!, { ...want[1]!, onlink: false }]), false);
    const single: KernelRoute = { ...have, multipath: undefined, oif: 2, via: '192.168.1.2', onlink: true };
    assert.equal(sameRoute(ecmp, undefined, single, want), false, 'single path in the kernel, ECMP wanted');
    const one: RouteSpec = { ...ecmp, multipath: undefined, dev: 'eth0', via: '192.168.1.2', onlink: true };
    assert.equal(sameRoute(one, 2, have), false, 'ECMP in the kernel, single path wanted');
    assert.equal(sameRoute(one, 2, single), true);
  });
  it('renders the ip -batch multipath form', () => {
    assert.equal(
      routeBatchLine('replace', ecmp),
      'route replace 10.99.0.0/24 proto 80 nexthop via 192.168.1.2 dev eth0 weight 1 onlink nexthop via 192.168.1.3 dev eth0 weight 1 onlink',
    );
    assert.equal(routeBatchLine('del', ecmp), 'route del 10.99.0.0/24 proto 80');
  });
});

describe('route driver helpers', () => {
  it('renders the exact ip -batch route forms (proto 80)', () => {
    assert.equal(routeBatchLine('replace', wl), 'route replace 10.65.0.5/32 dev gh1 scope link proto 80');
    assert.equal(
      routeBatchLine('replace', vx),
      'route replace 10.65.1.0/26 via 10.65.1.0 dev vxlan.gingham onlink proto 80',
    );
    assert.equal(
      routeBatchLine('replace', { dst: '10.65.0.0/26', type: 'blackhole', onlink: false, scope: 'universe' }),
      'route replace blackhole 10.65.0.0/26 proto 80',
    );
    assert.equal(routeBatchLine('del', vx), 'route del 10.65.1.0/26 proto 80');
    assert.equal(
      routeBatchLine('del', { dst: '10.65.0.0/26', type: 'blackhole', onlink: false, scope: 'universe' }),
      'route del blackhole 10.65.0.0/26 proto 80',
    );
  });
  it('compares only what the agent controls', () => {
    const k: KernelRoute = { family: 4, dst: wl.dst, type: 'unicast', oif: 7, onlink: false, scope: 'link' };
    assert.equal(sameRoute(wl, 7, k), true);
    assert.equal(sameRoute(wl, 8, k), false, 'moved to another interface');
    assert.equal(sameRoute(wl, 7, { ...k, scope: 'universe' }), false);
    assert.equal(
      sameRoute({ ...wl, family: 6, dst: 'fd00::5/128' }, 7, { ...k, family: 6, scope: 'universe' }),
      true,
      'IPv6 has no scope',
    );
    const kv: KernelRoute = {
      family: 4,
      dst: vx.dst,
      type: 'unicast',
      oif: 3,
      via: '10.65.1.0',
      onlink: true,
      scope: 'universe',
    };
    assert.equal(sameRoute(vx, 3, kv), true);
    assert.equal(sameRoute(vx, 3, { ...kv, onlink: false }), false);
    assert.equal(sameRoute(vx, 3, { ...kv, via: '10.65.1.1' }), false);
    const bh: RouteSpec = {
      family: 6,
      dst: 'fd00::/122',
      kind: 'blackhole',
      type: 'blackhole',
      onlink: false,
      scope: 'universe',
    };
    assert.equal(
      sameRoute(bh, undefined, {
        family: 6,
        dst: bh.dst,
        type: 'blackhole',
        oif: 1,
        onlink: false,
        scope: 'universe',
      }),
      true,
      'v6 blackholes show dev lo',
    );
  });
});

describe('netlink guards', () => {
  it('recovers errno names from the package messages', () => {
    assert.equal(errnoOf(new Error('Request rejected: EEXIST')), 'EEXIST');
    assert.equal(errnoOf(new Error('timed out')), undefined);
  });
  it('runBounded never exceeds its limit and collects every error', async () => {
    let active = 0;
    let peak = 0;
    const errs = await runBounded(
      Array.from({ length: 300 }, (_, i) => i),
      128,
      async (i) => {
        active++;
        peak = Math.max(peak, active);
        await new Promise((r) => setTimeout(r, 1));
        active--;
        if (i % 100 === 0) throw new Error(`x${i}`);
      },
    );
    assert.ok(peak <= 128 && peak > 1);
    assert.equal(errs.length, 3);
  });
});

describe('ownership, names and addresses', () => {
  it('owns gh* and its tunnel devices only', () => {
    assert.equal(isOwnedLink('gh0123456789a'), true);
    assert.equal(isOwnedLink('vxlan.gingham'), true);
    assert.equal(isOwnedLink('eth0'), false);
    assert.equal(isOwnedLink('vxlan.calico'), false);
    assert.equal(isOwnedLink('vxlan6.gingham'), true);
  });
  it('names every device it creates within IFNAMSIZ (15 characters)', () => {
    // The kernel rejects a longer name ("Attribute failed policy validation"): a 16-character
    // IPv6 VXLAN device name once made IPv6 VXLAN impossible.
    for (const name of [...OWNED_TUNNELS, `${INTERFACE_PREFIX}0123456789a`])
      assert.ok(name.length <= 15, `${name} has ${name.length} characters`);
  });
  it('derives a stable, locally administered unicast VTEP MAC', () => {
    const m = vtepMacFor('node-1', 4);
    assert.equal(m, vtepMacFor('node-1', 4));
    assert.notEqual(m, vtepMacFor('node-2', 4));
    const first = Number.parseInt(m.slice(0, 2), 16);
    assert.equal(first & 1, 0);
    assert.equal(first & 2, 2);
  });
  it('parses listen addresses', () => {
    assert.deepEqual(parseHostPort('127.0.0.1:9091'), { host: '127.0.0.1', port: 9091 });
    assert.deepEqual(parseHostPort('[::1]:9099'), { host: '::1', port: 9099 });
    assert.throws(() => parseHostPort('nope'));
  });
  it('slims endpoints to what policy needs', () => {
    const s = slimEndpoint({
      apiVersion: 'projectcalico.org/v3',
      kind: 'WorkloadEndpoint',
      metadata: {
        name: 'w',
        namespace: 'ns',
        labels: { a: 'b' },
        uid: 'u',
        annotations: { big: 'x'.repeat(100) },
      },
      spec: { node: 'n', ipNetworks: ['10.0.0.1/32'], containerID: 'c', profiles: ['kns.ns'] },
    });
    assert.deepEqual(s.metadata, { name: 'w', namespace: 'ns', labels: { a: 'b' } });
    assert.deepEqual(s.spec, { node: 'n', ipNetworks: ['10.0.0.1/32'], profiles: ['kns.ns'] });
  });
});

describe('IP autodetection', () => {
  const addrs: HostAddress[] = [
    { ifname: 'docker0', cidr: '172.17.0.1/16', family: 4 },
    { ifname: 'gh0123456789a', cidr: '10.65.0.1/32', family: 4 },
    { ifname: 'eth0', cidr: '192.168.1.10/24', family: 4 },
    { ifname: 'eth1', cidr: '10.0.5.3/16', family: 4 },
    { ifname: 'eth0', cidr: 'fd00::10/64', family: 6 },
  ];
  it('first-found skips docker, workload and tunnel interfaces', () => {
    assert.equal(chooseAddress(parseMethod('first-found'), 4, addrs)?.cidr, '192.168.1.10/24');
    assert.equal(chooseAddress(parseMethod('first-found'), 6, addrs)?.cidr, 'fd00::10/64');
  });
  it('interface=REGEX, cidr=, can-reach=, explicit', () => {
    assert.equal(chooseAddress(parseMethod('interface=eth1'), 4, addrs)?.cidr, '10.0.5.3/16');
    assert.equal(chooseAddress(parseMethod('interface=eth.*'), 4, addrs)?.cidr, '192.168.1.10/24');
    assert.equal(chooseAddress(parseMethod('cidr=10.0.0.0/8'), 4, addrs)?.cidr, '10.0.5.3/16');
    assert.equal(chooseAddress(parseMethod('can-reach=8.8.8.8'), 4, addrs, '10.0.5.3')?.ifname, 'eth1');
    assert.equal(chooseAddress({ kind: 'explicit', ip: '192.168.1.10/24' }, 4, addrs)?.ifname, 'eth0');
    assert.equal(chooseAddress(parseMethod('interface=wlan0'), 4, addrs), null);
    assert.throws(() => parseMethod('bogus=1'));
  });
});

describe('batched route messages', () => {
  it('encodes RTM_NEWROUTE replace with protocol 80, onlink, oif and gateway', () => {
    const b = encodeRouteMessage({ op: 'replace', route: vx, oif: 7 }, 42);
    assert.equal(b.readUInt32LE(0), b.length);
    assert.equal(b.readUInt16LE(4), 24); // RTM_NEWROUTE
    assert.equal(b.readUInt16LE(6), 0x1 | 0x100 | 0x400); // REQUEST|REPLACE|CREATE, no ACK
    assert.equal(b.readUInt32LE(8), 42);
    assert.deepEqual([b[16], b[17], b[20], b[21], b[22], b[23]], [2, 26, 254, 80, 0, 1]);
    assert.equal(b.readUInt32LE(24), 4); // RTNH_F_ONLINK
    // RTA_DST 10.65.1.0, RTA_OIF 7, RTA_GATEWAY 10.65.1.0
    assert.deepEqual([...b.subarray(28, 36)], [8, 0, 1, 0, 10, 65, 1, 0]);
    assert.deepEqual([b.readUInt16LE(36), b.readUInt16LE(38), b.readUInt32LE(40)], [8, 4, 7]);
    assert.deepEqual([...b.subarray(44, 52)], [8, 0, 5, 0, 10, 65, 1, 0]);
    assert.equal(b.length, 52);
  });
  it('encodes scope-link workload routes, blackholes and protocol-80 deletes', () => {
    const w = encodeRouteMessage({ op: 'replace', route: wl, oif: 3 }, 1);
    assert.deepEqual([w[22], w[23], w.readUInt32LE(24)], [253, 1, 0]);
    const bh = encodeRouteMessage(
      {
        op: 'replace',
        route: { family: 4, dst: '10.65.0.0/26', type: 'blackhole', onlink: false, scope: 'universe' },
      },
      2,
    );
    assert.deepEqual([bh[23], bh.length], [6, 36]); // RTN_BLACKHOLE, dst only
    const del = encodeRouteMessage({ op: 'delete', route: vx }, 3);
    assert.deepEqual(
      [del.readUInt16LE(4), del.readUInt16LE(6), del[21], del[22], del[23], del.length],
      [25, 1, 80, 255, 0, 36],
    );
    const v6 = encodeRouteMessage(
      { op: 'replace', route: { ...wl, family: 6, dst: 'fd00::5/128' }, oif: 3 },
      4,
    );
    assert.deepEqual([v6[16], v6[17], v6[22], v6.readUInt16LE(28)], [10, 128, 0, 20]);
  });
});

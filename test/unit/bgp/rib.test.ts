// Decision process (RFC 4271 §9.1.2.2 + tie-breakers), ECMP, Adj-RIB-In/Loc-RIB bookkeeping,
// graceful-restart stale handling, route-reflection export rules and loop checks.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { AsPathSegment } from '../../../bgp/codec/types.js';
import { AttrInterner, asPathLength, type RouteAttrs } from '../../../bgp/rib/attrs.js';
import { comparePaths, selectBest } from '../../../bgp/rib/decision.js';
import { type ExportTarget, exportAttrs } from '../../../bgp/rib/export.js';
import { prefixKey as k, keyFamily, PrefixMap, prefixText, v4Key } from '../../../bgp/rib/prefix.js';
import { makeSource, type RouteSource } from '../../../bgp/rib/source.js';
import { type Path, Rib } from '../../../bgp/rib/table.js';

const seq = (...asns: number[]): AsPathSegment[] => (asns.length ? [{ type: 'sequence', asns }] : []);
const attrs = (x: Partial<RouteAttrs> = {}): RouteAttrs => ({
  origin: 0,
  asPath: [],
  nextHop: '192.0.2.1',
  ...x,
});
const ebgp = (n: number, asn = 65100) =>
  makeSource({ id: `192.0.2.${n}`, address: `192.0.2.${n}`, asn, routerId: `10.0.0.${n}`, ibgp: false });
const ibgp = (n: number, rrClient = false) =>
  makeSource({
    id: `192.0.2.${n}`,
    address: `192.0.2.${n}`,
    asn: 65000,
    routerId: `10.0.0.${n}`,
    ibgp: true,
    rrClient,
  });
const local = makeSource({
  id: 'local',
  address: '',
  asn: 65000,
  routerId: '10.0.0.100',
  ibgp: false,
  local: true,
});
const path = (source: RouteSource, a: RouteAttrs): Path => ({ source, raw: a, attrs: a, stale: false });

describe('decision process', () => {
  const cases: Array<{ name: string; a: Path; b: Path; winner: 'a' | 'b'; reason: string }> = [
    {
      name: 'higher LOCAL_PREF wins over shorter AS path',
      a: path(ibgp(1), attrs({ localPref: 200, asPath: seq(1, 2, 3) })),
      b: path(ibgp(2), attrs({ localPref: 100, asPath: seq(1) })),
      winner: 'a',
      reason: 'local-pref',
    },
    {
      name: 'missing LOCAL_PREF counts as 100',
      a: path(ebgp(1), attrs({ asPath: seq(1) })),
      b: path(ibgp(2), attrs({ localPref: 90 })),
      winner: 'a',
      reason: 'local-pref',
    },
    {
      name: 'locally originated wins ties on local-pref',
      a: path(ibgp(1), attrs({ localPref: 100 })),
      b: path(local, attrs()),
      winner: 'b',
      reason: 'local-origin',
    },
    {
      name: 'shorter AS path; an AS_SET counts one',
      a: path(
        ebgp(1),
        attrs({
          asPath: [
            { type: 'sequence', asns: [1] },
            { type: 'set', asns: [5, 6, 7] },
          ],
        }),
      ),
      b: path(ebgp(2), attrs({ asPath: seq(1, 2, 3) })),
      winner: 'a',
      reason: 'as-path-length',
    },
    {
      name: 'lower ORIGIN',
      a: path(ebgp(1), attrs({ asPath: seq(1), origin: 2 })),
      b: path(ebgp(2), attrs({ asPath: seq(2), origin: 1 })),
      winner: 'b',
      reason: 'origin',
    },
    {
      name: 'lower MED from the same neighbour AS',
      a: path(ebgp(1), attrs({ asPath: seq(7, 9), med: 50 })),
      b: path(ebgp(2), attrs({ asPath: seq(7, 8), med: 10 })),
      winner: 'b',
      reason: 'med',
    },
    {
      name: 'MED ignored between different neighbour ASes (falls to router id)',
      a: path(ebgp(1), attrs({ asPath: seq(7), med: 50 })),
      b: path(ebgp(2), attrs({ asPath: seq(8), med: 10 })),
      winner: 'a',
      reason: 'router-id',
    },
    {
      name: 'eBGP over iBGP',
      a: path(ibgp(1), attrs({ asPath: seq(7) })),
      b: path(ebgp(2), attrs({ asPath: seq(7) })),
      winner: 'b',
      reason: 'ebgp-over-ibgp',
    },
    {
      name: 'lower ORIGINATOR_ID stands in for the router id (RFC 4456 §9)',
      a: path(ibgp(1), attrs({ originatorId: '10.9.9.9' })),
      b: path(ibgp(2), attrs({ originatorId: '10.1.1.1' })),
      winner: 'b',
      reason: 'router-id',
    },
    {
      name: 'shorter CLUSTER_LIST',
      a: path(ibgp(1), attrs({ originatorId: '10.1.1.1', clusterList: ['1.1.1.1', '2.2.2.2'] })),
      b: path(ibgp(2), attrs({ originatorId: '10.1.1.1', clusterList: ['1.1.1.1'] })),
      winner: 'b',
      reason: 'cluster-list-length',
    },
    {
      name: 'lowest peer address last',
      a: path(ibgp(3), attrs({ originatorId: '10.1.1.1' })),
      b: path(ibgp(2), attrs({ originatorId: '10.1.1.1' })),
      winner: 'b',
      reason: 'peer-address',
    },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const r = comparePaths(c.a, c.b);
      assert.equal(r.reason, c.reason);
      assert.equal(r.cmp < 0 ? 'a' : 'b', c.winner);
      assert.equal(selectBest([c.a, c.b], false)[0], c.winner === 'a' ? c.a : c.b);
      assert.equal(selectBest([c.b, c.a], false)[0], c.winner === 'a' ? c.a : c.b, 'order independent');
    });
  }

  it('ECMP: equal paths through different next hops are merged, worse ones are not', () => {
    const p1 = path(ebgp(1, 7), attrs({ asPath: seq(7), nextHop: '192.0.2.1' }));
    const p2 = path(ebgp(2, 8), attrs({ asPath: seq(8), nextHop: '192.0.2.2' }));
    const p3 = path(ebgp(3, 9), attrs({ asPath: seq(9, 9), nextHop: '192.0.2.3' }));
    assert.deepEqual(selectBest([p3, p2, p1], true), [p1, p2]);
    assert.deepEqual(selectBest([p3, p2, p1], false), [p1]);
  });

  it('AS path length ignores confederation segments', () => {
    assert.equal(asPathLength([{ type: 'confed-sequence', asns: [1, 2] }, ...seq(3)]), 1);
  });
});

describe('prefix keys', () => {
  it('IPv4 keys are numbers that round-trip to canonical text, host bits cleared', () => {
    for (const t of ['0.0.0.0/0', '10.65.0.0/26', '255.255.255.255/32', '128.0.0.0/1', '192.0.2.128/25']) {
      const key = k(t);
      assert.equal(typeof key, 'number', t);
      assert.equal(prefixText(key), t);
      assert.equal(keyFamily(key), 4);
    }
    assert.equal(k('10.1.2.3/8'), k('10.0.0.0/8'), 'host bits beyond the length do not make a new key');
    assert.notEqual(k('10.0.0.0/8'), k('10.0.0.0/9'), 'same address, other length: other key');
    assert.equal(prefixText(k('10.0.0.1')), '10.0.0.1/32', 'a bare address is a host prefix');
  });
  it('IPv6 keys are canonical text; bad input names itself', () => {
    assert.equal(k('FD00:0:0::/48'), 'fd00::/48');
    assert.equal(keyFamily(k('fd00::/48')), 6);
    for (const bad of ['10.0.0.0/33', '10.0.0/8', '300.0.0.0/8', '10.0.0.0/', 'fd00::/129', 'x']) {
      assert.throws(
        () => k(bad),
        (e: Error) => e.name === 'PrefixKeyError' && e.message.includes(bad),
        bad,
      );
    }
  });
  it('PrefixMap: get/set/delete across lengths and families, addresses ≥ 128.0.0.0 included', () => {
    const m = new PrefixMap<number>();
    const texts = [
      '10.0.0.0/8',
      '10.0.0.0/16',
      '200.1.0.0/16',
      '255.255.255.255/32',
      'fd00::/64',
      '0.0.0.0/0',
    ];
    for (const [i, t] of texts.entries()) m.set(k(t), i);
    assert.equal(m.size, texts.length);
    for (const [i, t] of texts.entries()) assert.equal(m.get(k(t)), i, t);
    assert.equal(m.has(k('10.0.0.0/24')), false);
    assert.deepEqual(m.keys().map(prefixText).sort(), [
      '0.0.0.0/0',
      '10.0.0.0/16',
      '10.0.0.0/8',
      '200.1.0.0/16',
      '255.255.255.255/32',
      'fd00::/64',
    ]);
    assert.equal(m.delete(k('10.0.0.0/8')), true);
    assert.equal(m.delete(k('10.0.0.0/8')), false);
    assert.equal(m.size, 5);
    m.clear();
    assert.equal(m.size, 0);
  });
});

describe('PrefixMap against a Map (random operations)', () => {
  it('same contents after 60k random sets, deletes and lookups (tombstones reused, table regrown)', () => {
    let seed = 7;
    const rand = (n: number) => {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      return seed % n;
    };
    const m = new PrefixMap<number>();
    const ref = new Map<string, number>();
    for (let op = 0; op < 60_000; op++) {
      // A small key space, so sets hit existing and deleted keys often.
      const len = 8 + rand(25);
      const addr = (rand(4096) * 1048573) >>> 0;
      const key = k(prefixText(v4Key(addr, len))); // host bits set: k() clears them
      const canon = prefixText(key);
      const r = rand(10);
      if (r < 5) {
        m.set(key, op);
        ref.set(canon, op);
      } else if (r < 8) assert.equal(m.delete(key), ref.delete(canon));
      else assert.equal(m.get(key), ref.get(canon));
      assert.equal(m.size, ref.size);
    }
    const got = new Map(m.entries().map(([key, v]) => [prefixText(key), v]));
    assert.deepEqual(got, ref);
  });
  it('forEach: entries deleted before their turn are skipped; growth while iterating is safe', () => {
    const m = new PrefixMap<number>();
    for (let i = 0; i < 100; i++) m.set(v4Key(i * 256, 24), i);
    let first = -1;
    const seen = new Set<number>();
    m.forEach((v) => {
      assert.ok(!seen.has(v), `visited ${v} twice`);
      seen.add(v);
      if (first >= 0) return;
      first = v;
      for (let i = 0; i < 100; i++) if (i !== v && i % 2 === 0) m.delete(v4Key(i * 256, 24));
      for (let i = 0; i < 5000; i++) m.set(v4Key(i * 256 + 65536 * 256, 24), 1000 + i); // forces regrowth
    });
    const expected = new Set([first, ...Array.from({ length: 50 }, (_, i) => i * 2 + 1)]);
    assert.deepEqual(seen, expected, 'survivors visited once, deleted and added ones not');
    assert.equal(m.size, 5000 + expected.size);
  });
});

describe('Rib', () => {
  it('keeps one path per source, selects, reports best changes only when they change', () => {
    const changes: Array<[string, string[]]> = [];
    const rib = new Rib({ ecmp: false }, (p, best) =>
      changes.push([prefixText(p), best.map((x) => x.source.id)]),
    );
    const i = new AttrInterner();
    const a1 = i.intern(attrs({ asPath: seq(1, 2) }));
    const a2 = i.intern(attrs({ asPath: seq(3) }));
    rib.set(ebgp(1), k('10.0.0.0/24'), a1, a1);
    rib.set(ebgp(2), k('10.0.0.0/24'), a2, a2);
    rib.set(ebgp(2), k('10.0.0.0/24'), a2, a2); // duplicate: no change
    assert.equal(rib.bestCount, 1);
    assert.deepEqual(changes, [
      ['10.0.0.0/24', ['192.0.2.1']],
      ['10.0.0.0/24', ['192.0.2.2']],
    ]);
    rib.set(ebgp(3), k('10.0.0.0/24'), a2, null); // rejected by import policy
    assert.deepEqual(rib.countsOf('192.0.2.3'), { received: 1, accepted: 0 });
    assert.equal(rib.remove('192.0.2.2', k('10.0.0.0/24')), true);
    assert.deepEqual(changes.at(-1), ['10.0.0.0/24', ['192.0.2.1']]);
    assert.equal(rib.removeSource('192.0.2.1'), 1);
    assert.deepEqual(changes.at(-1), ['10.0.0.0/24', []]);
    assert.equal(rib.best(k('10.0.0.0/24')).length, 0);
    assert.equal(rib.bestCount, 0);
    rib.removeSource('192.0.2.3');
    assert.equal(rib.size, 0);
  });

  it('graceful restart: stale paths stay in use, re-learned ones are fresh without churn, the rest are swept', () => {
    const changes: string[] = [];
    const rib = new Rib({ ecmp: false }, (p, best) => changes.push(`${prefixText(p)}:${best.length}`));
    const a = attrs();
    rib.set(ibgp(1), k('10.1.0.0/26'), a, a);
    rib.set(ibgp(1), k('10.1.0.64/26'), a, a);
    rib.set(ibgp(1), k('fd00::/64'), a, a);
    changes.length = 0;
    assert.equal(rib.markStale('192.0.2.1'), 3);
    assert.equal(rib.best(k('10.1.0.0/26')).length, 1, 'still used');
    rib.set(ibgp(1), k('10.1.0.0/26'), a, a); // same route after restart
    assert.equal(rib.paths(k('10.1.0.0/26'))[0]!.stale, false);
    assert.equal(
      rib.sweepStale('192.0.2.1', (p) => keyFamily(p) === 4),
      1,
    );
    assert.deepEqual(changes, ['10.1.0.64/26:0']);
    assert.equal(rib.paths(k('fd00::/64'))[0]!.stale, true, 'other family waits for its own End-of-RIB');
    assert.equal(
      rib.sweepStale('192.0.2.1', (p) => keyFamily(p) === 6),
      1,
      'its End-of-RIB sweeps it',
    );
    // Nothing stale left: a later End-of-RIB does not walk the table (the filter is never asked).
    assert.equal(
      rib.sweepStale('192.0.2.1', () => assert.fail('walked the table with nothing stale')),
      0,
    );
    assert.equal(rib.paths(k('10.1.0.0/26')).length, 1, 'the re-learned route stays');
  });

  it('prefixes learned together share one path object; marking some stale leaves the others fresh', () => {
    const changes: string[] = [];
    const rib = new Rib({ ecmp: false }, (p, best) =>
      changes.push(
        `${prefixText(p)}:${best.map((x) => `${x.source.id}${x.stale ? '(stale)' : ''}`).join(',')}`,
      ),
    );
    const s1 = ibgp(1);
    const s2 = ibgp(2);
    const a = attrs();
    const worse = attrs({ asPath: seq(1, 2, 3) });
    rib.setMany(s1, [k('10.2.0.0/26'), k('10.2.0.64/26'), k('10.2.0.128/26')], a, () => a);
    assert.equal(rib.paths(k('10.2.0.0/26'))[0], rib.paths(k('10.2.0.64/26'))[0], 'one shared path');
    rib.set(s2, k('10.2.0.64/26'), worse, worse); // a second, worse path: a full destination
    assert.equal(
      rib.markStale('192.0.2.1', (p) => p !== k('10.2.0.128/26')),
      2,
    );
    assert.equal(rib.paths(k('10.2.0.0/26'))[0]!.stale, true);
    assert.equal(rib.best(k('10.2.0.64/26'))[0]!.stale, true, 'the best pointer follows the stale copy');
    assert.equal(rib.paths(k('10.2.0.128/26'))[0]!.stale, false, 'unmarked prefix untouched');
    changes.length = 0;
    rib.set(s1, k('10.2.0.0/26'), a, a); // re-learned: fresh again, no churn
    assert.equal(rib.paths(k('10.2.0.0/26'))[0]!.stale, false);
    assert.equal(rib.sweepStale('192.0.2.1'), 1);
    assert.deepEqual(changes, ['10.2.0.64/26:192.0.2.2']);
    assert.equal(rib.paths(k('10.2.0.64/26')).length, 1, 'back to one path');
    assert.equal(rib.bestCount, 3);
    assert.deepEqual(rib.countsOf('192.0.2.1'), { received: 2, accepted: 2 });
    assert.equal(rib.remove('192.0.2.2', k('10.2.0.64/26')), true);
    assert.equal(changes.at(-1), '10.2.0.64/26:');
    assert.equal(rib.bestCount, 2);
    assert.deepEqual([...rib.bestPrefixes()].map(prefixText).sort(), ['10.2.0.0/26', '10.2.0.128/26']);
  });

  it('interning shares equal attribute sets', () => {
    const i = new AttrInterner();
    const x = i.intern(attrs({ communities: [1, 2] }));
    const y = i.intern(attrs({ communities: [1, 2] }));
    const z = i.intern(attrs({ communities: [2, 1] }));
    assert.equal(x, y);
    assert.notEqual(x, z);
    assert.ok(Object.isFrozen(x));
  });
});

describe('export rules and route reflection (RFC 4271 §9.1.3, RFC 4456)', () => {
  const me = { asn: 65000, routerId: '10.0.0.100' };
  const rr = { ...me, clusterId: '1.1.1.1' };
  const to = (n: number, x: Partial<ExportTarget> = {}): ExportTarget => ({
    id: `192.0.2.${n}`,
    asn: 65000,
    ibgp: true,
    rrClient: false,
    routerId: `10.0.0.${n}`,
    nextHopSelf: false,
    selfNextHop4: '192.0.2.100',
    selfNextHop6: 'fd00::100',
    ...x,
  });
  const learned = path(ibgp(1), attrs({ localPref: 120, nextHop: '192.0.2.1' }));
  const fromClient = path(ibgp(1, true), attrs({ nextHop: '192.0.2.1' }));

  it('iBGP-learned routes are not passed to iBGP peers without reflection', () => {
    assert.equal(exportAttrs('10.0.0.0/24', learned, to(2), me), null);
  });
  it('never back to the peer the route came from', () => {
    assert.equal(exportAttrs('10.0.0.0/24', learned, to(1, { ibgp: false, asn: 1 }), me), null);
  });
  it('reflector: client route to non-client gets ORIGINATOR_ID and CLUSTER_LIST, next hop kept', () => {
    const out = exportAttrs('10.0.0.0/24', fromClient, to(2), rr)!;
    assert.equal(out.originatorId, '10.0.0.1');
    assert.deepEqual(out.clusterList, ['1.1.1.1']);
    assert.equal(out.nextHop, '192.0.2.1');
    assert.equal(out.localPref, 100);
  });
  it('reflector: non-client route only to clients; an existing CLUSTER_LIST is prepended to', () => {
    const nonClient = path(ibgp(3), attrs({ originatorId: '10.0.0.50', clusterList: ['2.2.2.2'] }));
    assert.equal(exportAttrs('10.0.0.0/24', nonClient, to(2), rr), null);
    const out = exportAttrs('10.0.0.0/24', nonClient, to(4, { rrClient: true }), rr)!;
    assert.equal(out.originatorId, '10.0.0.50');
    assert.deepEqual(out.clusterList, ['1.1.1.1', '2.2.2.2']);
  });
  it('reflector: not reflected to the originator itself', () => {
    const r = path(ibgp(3, true), attrs({ originatorId: '10.0.0.4' }));
    assert.equal(exportAttrs('10.0.0.0/24', r, to(4, { rrClient: true }), rr), null);
  });
  it('eBGP: prepends our AS, next hop self, strips LOCAL_PREF / ORIGINATOR_ID / CLUSTER_LIST and a learned MED', () => {
    const r = path(
      ibgp(1),
      attrs({ localPref: 200, med: 5, originatorId: '10.0.0.9', clusterList: ['1.1.1.1'], asPath: seq(7) }),
    );
    const out = exportAttrs('10.0.0.0/24', r, to(9, { ibgp: false, asn: 65009 }), me)!;
    assert.deepEqual(out.asPath, seq(65000, 7));
    assert.equal(out.nextHop, '192.0.2.100');
    assert.equal(out.localPref, undefined);
    assert.equal(out.med, undefined);
    assert.equal(out.originatorId, undefined);
    assert.equal(out.clusterList, undefined);
  });
  it('local routes: next hop self when unset, per family; not exported where we have no address', () => {
    const l = path(local, attrs({ nextHop: '' }));
    assert.equal(exportAttrs('10.0.0.0/24', l, to(2), me)!.nextHop, '192.0.2.100');
    assert.equal(exportAttrs('fd00:1::/64', l, to(2), me)!.nextHop, 'fd00::100');
    assert.equal(exportAttrs('fd00:1::/64', l, to(2, { selfNextHop6: '' }), me), null);
  });
  it('nextHopSelf peer option and export policy', () => {
    assert.equal(
      exportAttrs('10.0.0.0/24', fromClient, to(2, { nextHopSelf: true }), rr)!.nextHop,
      '192.0.2.100',
    );
    const reject = { statements: [], defaultAction: 'reject' as const };
    assert.equal(exportAttrs('10.0.0.0/24', fromClient, to(2, { policy: reject }), rr), null);
  });
});

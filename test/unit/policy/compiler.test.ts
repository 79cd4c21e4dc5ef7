// The compiler's output shape, without a kernel: base chains and priorities, dispatch maps, shared
// policy chains, sets (hash for addresses, merged interval sets for CIDRs), NAT, fail-closed input.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parsePrefix } from '../../../lib/ip.js';
import { compile, FILTER_PRIORITY, NAT_PRIORITY, toNftJson } from '../../../policy/index.js';
import { fullReplaceJson, mergePrefixes, prefixText } from '../../../policy/nft.js';
import type { Resource } from '../../../store/api.js';
import {
  calicoPolicy,
  globalNetworkSet,
  globalPolicy,
  ipPool,
  k8sPolicy,
  NODE,
  namespace,
  pod,
  tier,
} from './fixtures.js';

const base: Resource[] = [
  namespace('x', { team: 'a' }),
  namespace('y', { team: 'b' }),
  pod('x', 'a', {
    ip: '10.65.0.1',
    iface: 'ghxa',
    labels: { app: 'web' },
    ports: [{ name: 'http', protocol: 'TCP', port: 8080 }],
  }),
  pod('x', 'b', { ip: '10.65.0.2', iface: 'ghxb', labels: { app: 'web' } }),
  pod('y', 'c', { ip: '10.65.1.3', iface: 'ghyc', node: 'node2', labels: { app: 'db' } }),
  pod('y', 'd', { ip: 'fd00::4', iface: 'ghyd', node: 'node2', labels: { app: 'db' } }),
];

const ruleText = (rs: ReturnType<typeof compile>['ruleset'], chain: string) =>
  JSON.stringify(rs.chains.get(chain)?.rules ?? null);

describe('compiler', () => {
  it('renders one inet table with documented base chains and priorities', () => {
    const { ruleset } = compile({ node: NODE, resources: base });
    assert.equal(ruleset.family, 'inet');
    assert.equal(ruleset.table, 'gingham');
    const hooks = [...ruleset.chains.values()]
      .filter((c) => c.base)
      .map((c) => [c.name, c.base!.hook, c.base!.prio, c.base!.type]);
    assert.deepEqual(hooks, [
      ['forward', 'forward', FILTER_PRIORITY, 'filter'],
      ['input', 'input', FILTER_PRIORITY, 'filter'],
      ['output', 'output', FILTER_PRIORITY, 'filter'],
      ['nat-postrouting', 'postrouting', NAT_PRIORITY, 'nat'],
    ]);
    for (const c of ruleset.chains.values()) if (c.base) assert.equal(typeof c.base.prio, 'number');
    const fwd = ruleText(ruleset, 'forward');
    assert.ok(fwd.indexOf('established') < fwd.indexOf('gh*'), 'conntrack first');
    assert.ok(fwd.indexOf('gh*') < fwd.indexOf('@fw-dispatch'), 'unknown interfaces dropped before dispatch');
  });

  it('dispatches local endpoints only, through verdict maps', () => {
    const { ruleset } = compile({ node: NODE, resources: base });
    assert.deepEqual(
      [...ruleset.maps.get('fw-dispatch')!.elements.values()],
      [
        ['ghxa', { jump: { target: 'fw-ghxa' } }],
        ['ghxb', { jump: { target: 'fw-ghxb' } }],
      ],
    );
    assert.deepEqual([...ruleset.sets.get('local-ifaces')!.elements.values()], ['ghxa', 'ghxb']);
    assert.ok(!ruleset.chains.has('tw-ghyc'), 'remote endpoints get no chains');
  });

  it('shares one policy chain between all endpoints a policy selects', () => {
    const np = k8sPolicy('x', 'web', {
      podSelector: { matchLabels: { app: 'web' } },
      ingress: [{ from: [{ namespaceSelector: {} }] }],
    });
    const { ruleset } = compile({ node: NODE, resources: [...base, np] });
    const pcs = [...ruleset.chains.keys()].filter((n) => n.startsWith('pi-'));
    assert.deepEqual(pcs, ['pi-default/x/knp.default.web']);
    for (const ep of ['tw-ghxa', 'tw-ghxb'])
      assert.match(ruleText(ruleset, ep), /pi-default\/x\/knp.default.web/);
  });

  it('puts selector members in hash sets per family, and network-set CIDRs in a merged interval set', () => {
    const gnp = globalPolicy('from-db', {
      selector: 'app == "web"',
      ingress: [{ action: 'Allow', source: { selector: 'app == "db"' } }],
    });
    const gns = globalNetworkSet('dbnets', ['192.0.2.0/24', '192.0.2.128/25', '198.51.100.0/24'], {
      app: 'db',
    });
    const { ruleset } = compile({ node: NODE, resources: [...base, gnp, gns] });
    const sets = [...ruleset.sets.values()].filter((s) => /^[sn][46]-/.test(s.name));
    const byName = Object.fromEntries(sets.map((s) => [s.name.slice(0, 2), s]));
    assert.deepEqual([...byName.s4!.elements.values()], ['10.65.1.3']);
    assert.equal(byName.s4!.interval, false);
    assert.deepEqual([...byName.s6!.elements.values()], ['fd00::4']);
    assert.equal(byName.n4!.interval, true);
    assert.deepEqual(
      [...byName.n4!.elements.values()],
      [{ prefix: { addr: '192.0.2.0', len: 24 } }, { prefix: { addr: '198.51.100.0', len: 24 } }],
    );
    assert.ok(!byName.n6, 'no interval set without CIDR members');
  });

  it('renders natOutgoing pools into masquerade sets', () => {
    const { ruleset } = compile({
      node: NODE,
      resources: [...base, ipPool('a', '10.65.0.0/16', true), ipPool('b', '10.66.0.0/16', false)],
    });
    assert.deepEqual(
      [...ruleset.sets.get('masq-pools4')!.elements.values()],
      [{ prefix: { addr: '10.65.0.0', len: 16 } }],
    );
    assert.equal(ruleset.sets.get('all-pools4')!.elements.size, 2);
    assert.match(ruleText(ruleset, 'nat-postrouting'), /"masquerade":null/);
  });

  it('orders tiers and policies: tier order, policy order, unset last, ties by name', () => {
    const res = [
      ...base,
      tier('t1', 10),
      calicoPolicy('x', 'p-unset', { ingress: [{ action: 'Allow' }] }),
      calicoPolicy('x', 'p-5', { order: 5, ingress: [{ action: 'Allow' }] }),
      calicoPolicy('x', 'b-1', { order: 1, ingress: [{ action: 'Allow' }] }),
      calicoPolicy('x', 'a-1', { order: 1, ingress: [{ action: 'Allow' }] }),
      globalPolicy('t1.first', { tier: 't1', order: 100, ingress: [{ action: 'Pass' }] }),
    ];
    const { ruleset } = compile({ node: NODE, resources: res });
    const jumps = ruleset.chains
      .get('tw-ghxa')!
      .rules.flatMap((r) => r.expr)
      .filter((e): e is { jump: { target: string } } => 'jump' in e)
      .map((e) => e.jump.target);
    assert.deepEqual(jumps, [
      'pi-t1/t1.first',
      'pi-default/x/a-1',
      'pi-default/x/b-1',
      'pi-default/x/p-5',
      'pi-default/x/p-unset',
      'pri-kns.x',
    ]);
  });

  it('fails closed on bad input and says why', () => {
    const res = [
      ...base,
      calicoPolicy('x', 'bad', {
        selector: 'app == "web"',
        ingress: [{ action: 'Allow', source: { selector: 'app in {"a"' } }],
      }),
      globalPolicy('lost.p', { tier: 'lost', selector: 'app == "web"', egress: [{ action: 'Allow' }] }),
    ];
    const { ruleset, problems } = compile({ node: NODE, resources: res });
    assert.equal(problems.filter((p) => p.severity === 'error').length, 2);
    assert.match(
      ruleText(ruleset, 'pi-default/x/bad'),
      /"drop":null\}\],"comment":"NetworkPolicy x\/bad is invalid \(fail closed\)/,
    );
    assert.match(ruleText(ruleset, 'po-lost/lost.p'), /"drop":null/);
    assert.match(ruleText(ruleset, 'fw-ghxa'), /po-lost\/lost.p/);
  });

  it('an endpoint with no profile and no policy is denied', () => {
    const p = pod('x', 'lonely', { ip: '10.65.0.9', iface: 'ghlonely' });
    (p.spec as { profiles: string[] }).profiles = ['does-not-exist'];
    const { ruleset, problems } = compile({ node: NODE, resources: [...base, p] });
    assert.deepEqual(ruleset.chains.get('tw-ghlonely')!.rules.at(-1)!.expr.at(-1), { drop: null });
    assert.ok(!ruleText(ruleset, 'tw-ghlonely').includes('jump'));
    assert.ok(problems.some((x) => /profile "does-not-exist" does not exist/.test(x.message)));
  });

  it('rule details: ports merge, named ports, notPorts, ICMP, ipVersion', () => {
    const np = calicoPolicy('x', 'r', {
      ingress: [
        {
          action: 'Allow',
          protocol: 'TCP',
          destination: { ports: [80, '80:90', 100, 'http'], notPorts: [85] },
        },
        { action: 'Deny', protocol: 'ICMP', icmp: { type: 8, code: 0 } },
        { action: 'Allow', ipVersion: 6 },
      ],
    });
    const { ruleset } = compile({ node: NODE, resources: [...base, np] });
    const t = ruleText(ruleset, 'pi-default/x/r');
    assert.match(t, /"set":\[\{"range":\[80,90\]\},100\]/, 'overlapping ranges merged');
    assert.match(t, /"op":"!=","left":\{"payload":\{"protocol":"th","field":"dport"\}\},"right":85/);
    assert.match(
      t,
      /"concat":\[\{"payload":\{"protocol":"ip","field":"daddr"\}\},\{"meta":\{"key":"l4proto"\}\}/,
    );
    assert.match(t, /"protocol":"icmp","field":"type"\}\},"right":8/);
    assert.match(t, /"nfproto"\}\},"right":"ipv6"/);
    const np4 = [...ruleset.sets.values()].find((s) => s.name.startsWith('p4-'))!;
    assert.deepEqual([...np4.elements.values()], [{ concat: ['10.65.0.1', 6, 8080] }]);
  });

  it('renders valid nft JSON commands (table object uses name, others use table)', () => {
    const { ruleset } = compile({ node: NODE, resources: base });
    const cmds = toNftJson(ruleset).nftables;
    assert.deepEqual(cmds[0], { add: { table: { family: 'inet', name: 'gingham' } } });
    assert.deepEqual(cmds[1], { delete: { table: { family: 'inet', name: 'gingham' } } });
    for (const c of cmds.slice(3)) {
      const body = Object.values(Object.values(c)[0]!)[0] as Record<string, unknown>;
      assert.equal(body.table, 'gingham');
    }
  });

  it('mergePrefixes drops contained prefixes and keeps adjacent ones', () => {
    const ps = [
      '10.0.0.0/8',
      '10.1.0.0/16',
      '11.0.0.0/8',
      '10.0.0.0/8',
      '192.168.0.0/24',
      '192.168.1.0/24',
    ].map((s) => parsePrefix(s));
    assert.deepEqual(mergePrefixes(ps).map(prefixText), [
      '10.0.0.0/8',
      '11.0.0.0/8',
      '192.168.0.0/24',
      '192.168.1.0/24',
    ]);
  });

  it('host endpoints: policies at input (ingress) and output (egress) through their own maps', () => {
    const hep: Resource = {
      apiVersion: 'projectcalico.org/v3',
      kind: 'HostEndpoint',
      metadata: { name: 'node1-eth0', labels: { role: 'node' } },
      spec: { node: NODE, interfaceName: 'eth0', expectedIPs: ['192.168.1.10'] },
    };
    const gnp = globalPolicy('ssh', {
      selector: 'role == "node"',
      ingress: [{ action: 'Allow', protocol: 'TCP', destination: { ports: [22] } }],
    });
    const { ruleset } = compile({ node: NODE, resources: [...base, hep, gnp] });
    assert.deepEqual(
      [...ruleset.maps.get('fh-dispatch')!.elements.values()],
      [['eth0', { jump: { target: 'fh-eth0' } }]],
    );
    assert.deepEqual(
      [...ruleset.maps.get('th-dispatch')!.elements.values()],
      [['eth0', { jump: { target: 'th-eth0' } }]],
    );
    assert.match(ruleText(ruleset, 'fh-eth0'), /pi-default\/ssh/);
    assert.match(ruleText(ruleset, 'input'), /@fh-dispatch/);
    assert.match(ruleText(ruleset, 'output'), /@th-dispatch/);
    assert.ok(
      !ruleset.sets.get('local-ifaces')!.elements.has('eth0'),
      'host interfaces are not gh* workloads',
    );
    assert.match(ruleText(ruleset, 'fh-eth0'), /"set":\[22,179,2379/, 'failsafe ports first');
    assert.match(ruleText(ruleset, 'th-eth0'), /"set":\[53,67\]/);
  });

  it('re-uses rendered policy chains across compiles, and re-renders when their sets change shape', () => {
    const gnp = globalPolicy('from-db', {
      selector: 'app == "web"',
      ingress: [{ action: 'Allow', source: { selector: 'app == "db"' } }],
    });
    const r1 = compile({ node: NODE, resources: [...base, gnp] }).ruleset;
    const r2 = compile({ node: NODE, resources: [...base, gnp] }).ruleset;
    const name = 'pi-default/from-db';
    assert.equal(r1.chains.get(name)!.rules, r2.chains.get(name)!.rules, 'same rules object: cache hit');
    assert.deepEqual(
      [...r2.sets.values()].find((s) => s.name.startsWith('s4-'))!.elements.size,
      1,
      'sets still filled',
    );
    // A network set now matches the selector: the chain needs the interval set too.
    const gns = globalNetworkSet('dbnets', ['192.0.2.0/24'], { app: 'db' });
    const r3 = compile({ node: NODE, resources: [...base, gnp, gns] }).ruleset;
    assert.notEqual(r3.chains.get(name)!.rules, r2.chains.get(name)!.rules);
    assert.match(JSON.stringify(r3.chains.get(name)!.rules), /@n4-/);
  });

  it('rule-level serviceAccounts: names and a selector over the account labels (pcsa.* from ksa profiles)', () => {
    const ksa = (ns: string, sa: string, labels: Record<string, string>): Resource => ({
      apiVersion: 'projectcalico.org/v3',
      kind: 'Profile',
      metadata: { name: `ksa.${ns}.${sa}` },
      spec: { labelsToApply: Object.fromEntries(Object.entries(labels).map(([k, v]) => [`pcsa.${k}`, v])) },
    });
    const withSa = (name: string, ip: string, sa: string): Resource => {
      const r = pod('y', name, { ip, iface: `ghy${name}`, node: 'node2', serviceAccountName: sa });
      (r.spec as { profiles?: string[] }).profiles = ['kns.y', `ksa.y.${sa}`];
      return r;
    };
    const res = [
      namespace('x'),
      namespace('y'),
      pod('x', 'a', { ip: '10.65.0.1', iface: 'ghxa', labels: { app: 'web' } }),
      withSa('p', '10.65.1.1', 'api'),
      withSa('q', '10.65.1.2', 'batch'),
      withSa('r', '10.65.1.3', 'api2'),
      pod('y', 's', { ip: '10.65.1.4', iface: 'ghys', node: 'node2' }),
      ksa('y', 'api', { tier: 'front' }),
      ksa('y', 'batch', { tier: 'back' }),
      ksa('y', 'api2', { tier: 'front' }),
    ];
    const membersOf = (source: Record<string, unknown>) => {
      const gnp = globalPolicy('sa', { selector: 'app == "web"', ingress: [{ action: 'Allow', source }] });
      const r = compile({ node: NODE, resources: [...res, gnp] });
      assert.deepEqual(
        r.problems.filter((p) => p.severity === 'error'),
        [],
      );
      const chain = JSON.stringify(r.ruleset.chains.get('pi-default/sa')!.rules);
      const set = [...r.ruleset.sets.values()].find(
        (s) => s.name.startsWith('s4-') && chain.includes(s.name),
      )!;
      return [...set.elements.values()].map(String).sort();
    };
    assert.deepEqual(membersOf({ serviceAccounts: { names: ['api', 'batch'] } }), ['10.65.1.1', '10.65.1.2']);
    assert.deepEqual(membersOf({ serviceAccounts: { selector: 'tier == "front"' } }), [
      '10.65.1.1',
      '10.65.1.3',
    ]);
    assert.deepEqual(
      membersOf({ serviceAccounts: { names: ['api2'], selector: 'tier == "front"' } }),
      ['10.65.1.3'],
      'names and selector both apply',
    );
    assert.deepEqual(
      membersOf({ serviceAccounts: { selector: 'projectcalico.org/name == "batch"' } }),
      ['10.65.1.2'],
      'projectcalico.org/name is the account name',
    );
    assert.deepEqual(
      membersOf({ serviceAccounts: {} }),
      ['10.65.1.1', '10.65.1.2', '10.65.1.3'],
      'any account',
    );
  });

  it('rule-level services are rejected with a reason; the policy fails closed', () => {
    const gnp = globalPolicy('svc', {
      selector: 'app == "web"',
      ingress: [{ action: 'Allow', source: { services: { name: 'db', namespace: 'y' } } }],
    });
    const r = compile({ node: NODE, resources: [...base, gnp] });
    const p = r.problems.find((x) => x.object === 'GlobalNetworkPolicy svc');
    assert.ok(p && p.severity === 'error', 'reported');
    assert.match(p.message, /services .*not supported.*Service endpoints/);
    assert.match(ruleText(r.ruleset, 'pi-default/svc'), /is invalid \(fail closed\)/);
  });

  it('fullReplaceJson is the full-replace JSON, also when served from its per-chain cache', () => {
    const gnp = globalPolicy('from-db', {
      selector: 'app == "web"',
      ingress: [{ action: 'Allow', protocol: 'TCP', source: { selector: 'app == "db"' } }],
    });
    const { ruleset } = compile({ node: NODE, resources: [...base, gnp, ipPool('p', '10.65.0.0/16', true)] });
    const want = JSON.stringify(toNftJson(ruleset));
    assert.equal(fullReplaceJson(ruleset), want);
    assert.equal(fullReplaceJson(ruleset), want, 'second time, from the cache');
    const other = { ...ruleset, table: 'other' };
    assert.equal(
      fullReplaceJson(other),
      JSON.stringify(toNftJson(other)),
      'another table: not the cached text',
    );
  });
});

// Calico-only semantics with real traffic (tiers, Pass, order, GlobalNetworkPolicy, notNets, notPorts,
// ICMP), bad input failing closed, unknown gh* interfaces, natOutgoing, and a failed nft transaction
// leaving the previous ruleset in force. One topology for the whole file.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { compile } from '../../../policy/index.js';
import { isRoot, Netns, vethBetween } from '../../harness/netns.js';
import { calicoPolicy, globalPolicy, NODE, tier } from '../../unit/policy/fixtures.js';
import { all, Cluster, type Expect, expectMatrix, NODE_OUTSIDE_IP, OUTSIDE_IP } from './harness.js';

const skip = !isRoot() ? 'needs root (network namespaces)' : false;
const inNs = (ns: string) => `projectcalico.org/namespace == "${ns}"`;

describe('Calico policy semantics (real traffic)', { skip }, () => {
  let c: Cluster;
  before(async () => {
    c = await Cluster.create();
    await c.enforce([], { full: true });
  });
  after(() => c?.destroy());

  it('tiers and Pass: a security tier passes y to the default tier and denies the rest', async () => {
    const security = tier('security', 100);
    const gate = globalPolicy('security.gate', {
      tier: 'security',
      order: 10,
      selector: inNs('x'),
      ingress: [{ action: 'Pass', source: { namespaceSelector: 'ns == "y"' } }, { action: 'Deny' }],
    });
    await c.enforce([security, gate]);
    // No default-tier policy for x: passed traffic falls through to the kns.x profile (allow).
    await expectMatrix(c, 'tcp', 80, (f, t) => t.ns !== 'x' || f.ns === 'y', 'security tier only');
    // Now a default-tier policy in x allows only y/a: the other passed pods hit end-of-tier deny.
    const onlyA = calicoPolicy('x', 'only-a', {
      ingress: [{ action: 'Allow', source: { selector: 'pod == "a"', namespaceSelector: 'ns == "y"' } }],
    });
    await c.enforce([security, gate, onlyA]);
    await expectMatrix(c, 'tcp', 80, (f, t) => t.ns !== 'x' || f.id === 'y/a', 'security + default tiers');
  });

  it('tier defaultAction Pass: a tier whose policies do not match hands over to the next', async () => {
    const t = tier('audit', 50, 'Pass');
    const p = globalPolicy('audit.nothing', {
      tier: 'audit',
      selector: 'all()',
      ingress: [{ action: 'Deny', source: { nets: ['192.0.2.0/24'] } }],
    });
    await c.enforce([t, p]);
    await expectMatrix(c, 'tcp', 80, all, 'Pass tier');
    await c.enforce([tier('audit', 50, 'Deny'), p]);
    await expectMatrix(c, 'tcp', 80, () => false, 'same tier with Deny default');
  });

  it('Deny before Allow by order, and unset order sorts last', async () => {
    const deny = (order?: number) =>
      calicoPolicy('x', 'deny-ya', {
        ...(order !== undefined ? { order } : {}),
        ingress: [{ action: 'Deny', source: { selector: 'pod == "a"', namespaceSelector: 'ns == "y"' } }],
      });
    const allow = (order?: number) =>
      calicoPolicy('x', 'allow-all', {
        ...(order !== undefined ? { order } : {}),
        ingress: [{ action: 'Allow' }],
      });
    await c.enforce([deny(10), allow(20)]);
    await expectMatrix(c, 'tcp', 80, (f, t) => t.ns !== 'x' || f.id !== 'y/a', 'deny first');
    await c.enforce([deny(20), allow(10)]);
    await expectMatrix(c, 'tcp', 80, all, 'allow first');
    await c.enforce([deny(), allow(5)]);
    await expectMatrix(c, 'tcp', 80, all, 'unset order last');
  });

  it('GlobalNetworkPolicy with namespaceSelector; notNets; notPorts', async () => {
    const gnp = globalPolicy('z-from-x', {
      namespaceSelector: 'ns == "z"',
      ingress: [{ action: 'Allow', source: { namespaceSelector: 'ns == "x"' } }],
    });
    const notNets = calicoPolicy('y', 'not-x', {
      ingress: [{ action: 'Allow', source: { notNets: ['10.65.0.8/29'] } }],
    }); // .8-.15 = x/*
    const notPorts = calicoPolicy('x', 'not-80', {
      ingress: [{ action: 'Allow', protocol: 'TCP', destination: { notPorts: [80] } }],
    });
    await c.enforce([gnp, notNets, notPorts]);
    const want80: Expect = (f, t) => (t.ns === 'z' ? f.ns === 'x' : t.ns === 'y' ? f.ns !== 'x' : false);
    await expectMatrix(c, 'tcp', 80, want80, 'gnp/notNets/notPorts tcp 80');
    const want81: Expect = (f, t) => (t.ns === 'z' ? f.ns === 'x' : t.ns === 'y' ? f.ns !== 'x' : true);
    await expectMatrix(c, 'tcp', 81, want81, 'gnp/notNets/notPorts tcp 81');
    await expectMatrix(c, 'udp', 81, (f, t) => (t.ns === 'x' ? false : want81(f, t)), 'notPorts is TCP only');
  });

  it('ICMP: echo allowed from y only; notICMP', async () => {
    const icmp = calicoPolicy('x', 'icmp', {
      ingress: [
        { action: 'Allow', protocol: 'ICMP', icmp: { type: 8 }, source: { namespaceSelector: 'ns == "y"' } },
        { action: 'Allow', protocol: 'TCP' },
      ],
    });
    await c.enforce([icmp]);
    await expectMatrix(c, 'ping', 0, (f, t) => t.ns !== 'x' || f.ns === 'y', 'icmp type 8');
    await expectMatrix(c, 'tcp', 80, all, 'tcp alongside icmp');
    const notIcmp = calicoPolicy('x', 'icmp', {
      ingress: [{ action: 'Allow', protocol: 'ICMP', notICMP: { type: 8 } }],
    });
    await c.enforce([notIcmp]);
    await expectMatrix(c, 'ping', 0, (_f, t) => t.ns !== 'x', 'notICMP echo');
  });

  it('bad input fails closed and is reported: invalid selector, missing tier, unresolvable named port', async () => {
    const badSel = calicoPolicy('x', 'bad-selector', {
      selector: 'pod == "a"',
      ingress: [{ action: 'Allow', source: { selector: 'pod = "b"' } }],
    });
    const noTier = globalPolicy('ghost.p', {
      tier: 'ghost',
      selector: inNs('y'),
      ingress: [{ action: 'Allow' }],
    });
    const badPort = calicoPolicy('z', 'named', {
      ingress: [{ action: 'Allow', protocol: 'TCP', destination: { ports: ['no-such-port'] } }],
    });
    const problems = await c.enforce([badSel, noTier, badPort]);
    const text = problems.map((p) => `${p.severity} ${p.object}: ${p.message}`).join('\n');
    assert.match(text, /error NetworkPolicy x\/bad-selector: invalid selector at position 4/);
    assert.match(text, /error GlobalNetworkPolicy ghost\.p: tier "ghost" does not exist/);
    assert.match(
      text,
      /warning NetworkPolicy z\/named: named port\(s\) no-such-port resolve to no endpoint port/,
    );
    await expectMatrix(
      c,
      'tcp',
      80,
      (_f, t) => t.id !== 'x/a' && t.ns !== 'y' && t.ns !== 'z',
      'fail closed',
    );
  });

  it('an unknown gh* interface is dropped while known workloads keep talking', async () => {
    await c.enforce([]);
    const rogue = Netns.create('gpr');
    try {
      vethBetween(c.node, 'ghrogue', rogue, 'eth0');
      rogue.ip('addr', 'add', '10.65.0.99/32', 'dev', 'eth0');
      rogue.ip('route', 'add', '169.254.1.1', 'dev', 'eth0', 'scope', 'link');
      rogue.ip('route', 'add', 'default', 'via', '169.254.1.1', 'dev', 'eth0');
      c.node.exec('sysctl', ['-q', '-w', 'net.ipv4.conf.ghrogue.proxy_arp=1']);
      c.node.ip('route', 'add', '10.65.0.99/32', 'dev', 'ghrogue', 'scope', 'link');
      const out = rogue.exec('busybox', ['ping', '-c', '1', '-W', '1', c.w('x/a').ip], { allowFail: true });
      assert.doesNotMatch(out, / 0% packet loss/);
      assert.equal(
        await c
          .w('x/a')
          .agent.probe('tcp', '10.65.0.99', 80, 500)
          .then((r) => r.ok),
        false,
      );
      await expectMatrix(c, 'tcp', 80, all, 'known workloads');
      const counters = c.node.exec('nft', ['list', 'chain', 'inet', 'gingham', 'forward']);
      assert.match(counters, /iifname "gh\*" iifname != @local-ifaces counter packets [1-9]/);
    } finally {
      rogue.destroy();
    }
  });

  it('natOutgoing: the outside sees the node address; without it, no route back', async () => {
    await c.enforce([], { natOutgoing: false });
    const before = await c.w('x/a').agent.probe('tcp', OUTSIDE_IP, 80, 600);
    assert.equal(before.ok, false, 'without NAT the outside cannot answer a pool address');
    await c.enforce([], { natOutgoing: true });
    const r = await c.w('x/a').agent.probe('tcp', OUTSIDE_IP, 80, 2000);
    assert.equal(r.ok, true);
    assert.equal(r.peer, NODE_OUTSIDE_IP);
    const u = await c.w('y/b').agent.probe('udp', OUTSIDE_IP, 81, 2000);
    assert.equal(u.peer, NODE_OUTSIDE_IP);
    // Pod-to-pod traffic stays un-NATed: the server sees the pod address.
    const p = await c.w('x/a').agent.probe('tcp', c.w('y/b').ip, 80, 2000);
    assert.equal(p.peer, c.w('x/a').ip);
  });

  it('a failed transaction leaves the previous ruleset in force (never open)', async () => {
    const denyAll = calicoPolicy('x', 'deny', { ingress: [{ action: 'Deny' }] });
    await c.enforce([denyAll]);
    const good = compile({ node: NODE, resources: [...c.baseResources(), denyAll] }).ruleset;
    // Break the desired ruleset: a rule jumping to a chain that does not exist.
    const bad = compile({ node: NODE, resources: c.baseResources() }).ruleset;
    bad.chains.get('forward')!.rules.push({ expr: [{ jump: { target: 'no-such-chain' } }] });
    await assert.rejects(c.applier.apply(bad), /nft full replace failed/);
    await expectMatrix(c, 'tcp', 80, (_f, t) => t.ns !== 'x', 'still the old ruleset');
    // Recovery: the next good apply works (full rebuild, since the last applied is unchanged).
    await c.applier.apply(good);
    await c.enforce([]);
    await expectMatrix(c, 'tcp', 80, all, 'recovered');
  });
});

// Upstream Kubernetes NetworkPolicy e2e cases with real traffic: namespaces x, y, z; pods a, b, c;
// TCP and UDP on 80 and 81; full truth tables per case. One topology for the whole file.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { isRoot } from '../../harness/netns.js';
import { k8sPolicy } from '../../unit/policy/fixtures.js';
import { all, Cluster, type Expect, expectMatrix } from './harness.js';

const skip = !isRoot() ? 'needs root (network namespaces)' : false;

describe('k8s NetworkPolicy conformance (real traffic)', { skip }, () => {
  let c: Cluster;
  before(async () => {
    c = await Cluster.create();
  });
  after(() => c?.destroy());

  const denyAllX = k8sPolicy('x', 'deny-all', { podSelector: {}, policyTypes: ['Ingress'] });

  it('no policy: everything reaches everything (TCP 80, UDP 81, ICMP)', async () => {
    await c.enforce([], { full: true });
    await expectMatrix(c, 'tcp', 80, all, 'no policy');
    await expectMatrix(c, 'udp', 81, all, 'no policy');
    await expectMatrix(c, 'ping', 0, all, 'no policy');
  });

  it('deny-all ingress in x', async () => {
    await c.enforce([denyAllX]);
    const want: Expect = (_f, t) => t.ns !== 'x';
    await expectMatrix(c, 'tcp', 80, want, 'deny-all');
    await expectMatrix(c, 'udp', 80, want, 'deny-all');
    // The drops are counted where they happen: end of the default tier in x's ingress chains.
    const hits = (await c.applier.counters()).filter(
      (k) => k.comment === 'end of tier default: default deny',
    );
    assert.ok(
      hits.length >= 3 && hits.every((k) => k.chain.startsWith('tw-ghx') && k.packets > 0),
      JSON.stringify(hits),
    );
  });

  it('allow ingress from namespace y (namespaceSelector)', async () => {
    await c.enforce([
      denyAllX,
      k8sPolicy('x', 'allow-y', {
        podSelector: {},
        ingress: [{ from: [{ namespaceSelector: { matchLabels: { ns: 'y' } } }] }],
      }),
    ]);
    await expectMatrix(c, 'tcp', 81, (f, t) => t.ns !== 'x' || f.ns === 'y', 'allow from y');
  });

  it('pod + namespace selector in one peer, and matchExpressions', async () => {
    await c.enforce([
      k8sPolicy('x', 'a-from-yb', {
        podSelector: { matchLabels: { pod: 'a' } },
        ingress: [
          {
            from: [
              {
                namespaceSelector: { matchExpressions: [{ key: 'ns', operator: 'In', values: ['y'] }] },
                podSelector: { matchLabels: { pod: 'b' } },
              },
            ],
          },
        ],
      }),
    ]);
    await expectMatrix(c, 'tcp', 80, (f, t) => t.id !== 'x/a' || f.id === 'y/b', 'pod+ns peer');
  });

  it('podSelector alone is scoped to the policy namespace', async () => {
    await c.enforce([
      k8sPolicy('x', 'a-from-b', {
        podSelector: { matchLabels: { pod: 'a' } },
        ingress: [{ from: [{ podSelector: { matchLabels: { pod: 'b' } } }] }],
      }),
    ]);
    await expectMatrix(c, 'tcp', 80, (f, t) => t.id !== 'x/a' || f.id === 'x/b', 'pod peer');
  });

  it('ipBlock with except', async () => {
    await c.enforce([
      k8sPolicy('x', 'ipblock', {
        podSelector: { matchLabels: { pod: 'a' } },
        ingress: [{ from: [{ ipBlock: { cidr: '10.65.0.0/16', except: ['10.65.0.20/30'] } }] }],
      }),
    ]);
    // 10.65.0.20/30 = y/a, y/b, y/c
    await expectMatrix(c, 'tcp', 80, (f, t) => t.id !== 'x/a' || f.ns !== 'y', 'ipBlock except');
  });

  it('named port: only serve-81-tcp is open on x/a', async () => {
    await c.enforce([
      k8sPolicy('x', 'named', {
        podSelector: { matchLabels: { pod: 'a' } },
        ingress: [{ ports: [{ port: 'serve-81-tcp', protocol: 'TCP' }] }],
      }),
    ]);
    await expectMatrix(c, 'tcp', 80, (_f, t) => t.id !== 'x/a', 'named port, tcp 80');
    await expectMatrix(c, 'tcp', 81, all, 'named port, tcp 81');
    await expectMatrix(c, 'udp', 81, (_f, t) => t.id !== 'x/a', 'named port, udp 81');
  });

  it('endPort: TCP 80-81 open, UDP closed', async () => {
    await c.enforce([
      k8sPolicy('x', 'range', {
        podSelector: {},
        ingress: [{ ports: [{ protocol: 'TCP', port: 81, endPort: 82 }] }],
      }),
    ]);
    await expectMatrix(c, 'tcp', 81, all, 'endPort tcp 81');
    await expectMatrix(c, 'tcp', 80, (_f, t) => t.ns !== 'x', 'endPort tcp 80 (below the range)');
    await expectMatrix(c, 'udp', 81, (_f, t) => t.ns !== 'x', 'endPort udp');
  });

  it('egress: x/a may only reach namespace y on UDP 80', async () => {
    await c.enforce([
      k8sPolicy('x', 'egress', {
        podSelector: { matchLabels: { pod: 'a' } },
        policyTypes: ['Egress'],
        egress: [
          {
            to: [{ namespaceSelector: { matchLabels: { ns: 'y' } } }],
            ports: [{ protocol: 'UDP', port: 80 }],
          },
        ],
      }),
    ]);
    await expectMatrix(c, 'udp', 80, (f, t) => f.id !== 'x/a' || t.ns === 'y', 'egress udp 80');
    await expectMatrix(c, 'tcp', 80, (f) => f.id !== 'x/a', 'egress tcp 80');
  });

  it('policy update and label changes are enforced while traffic is checked', async () => {
    const allowFrom = (ns: string) =>
      k8sPolicy('x', 'allow-from', {
        podSelector: {},
        ingress: [{ from: [{ namespaceSelector: { matchLabels: { ns } } }] }],
      });
    await c.enforce([allowFrom('y')]);
    await expectMatrix(c, 'tcp', 80, (f, t) => t.ns !== 'x' || f.ns === 'y', 'before update');
    // Update the policy: y → z.
    await c.enforce([allowFrom('z')]);
    await expectMatrix(c, 'tcp', 80, (f, t) => t.ns !== 'x' || f.ns === 'z', 'after update');
    // Relabel namespace y as z: its pods are now allowed too (set elements change, not rules).
    c.nsLabels.y = { ns: 'z' };
    await c.enforce([allowFrom('z')]);
    await expectMatrix(c, 'tcp', 80, (f, t) => t.ns !== 'x' || f.ns !== 'x', 'namespace relabelled');
    c.nsLabels.y = { ns: 'y' };
    // Pod label change: allow only pods labelled role=client; give the label to z/c.
    const byRole = k8sPolicy('x', 'allow-from', {
      podSelector: {},
      ingress: [{ from: [{ namespaceSelector: {}, podSelector: { matchLabels: { role: 'client' } } }] }],
    });
    await c.enforce([byRole]);
    await expectMatrix(c, 'tcp', 80, (_f, t) => t.ns !== 'x', 'no client yet');
    c.podLabels['z/c'] = { pod: 'c', role: 'client' };
    await c.enforce([byRole]);
    await expectMatrix(c, 'tcp', 80, (f, t) => t.ns !== 'x' || f.id === 'z/c', 'z/c became a client');
    c.podLabels['z/c'] = { pod: 'c' };
    await c.enforce([]);
    await expectMatrix(c, 'tcp', 80, all, 'policies removed');
  });
});

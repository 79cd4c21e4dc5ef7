// Kubernetes NetworkPolicy → Calico conversion, as Calico does it.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { convertK8sNetworkPolicy, labelSelectorToCalico, Selector } from '../../../policy/index.js';
import type { K8sNetworkPolicySpec } from '../../../store/schemas/index.js';

const conv = (s: Record<string, unknown>) =>
  convertK8sNetworkPolicy('p', 'x', s as unknown as K8sNetworkPolicySpec);

describe('k8s NetworkPolicy conversion', () => {
  it('label selectors: matchLabels and every matchExpressions operator', () => {
    const s = labelSelectorToCalico({
      matchLabels: { app: 'web' },
      matchExpressions: [
        { key: 'tier', operator: 'In', values: ['a', 'b'] },
        { key: 'env', operator: 'NotIn', values: ['prod'] },
        { key: 'team', operator: 'Exists' },
        { key: 'legacy', operator: 'DoesNotExist' },
      ],
    });
    const sel = new Selector(s);
    assert.equal(sel.matches({ labels: { app: 'web', tier: 'a', team: '' } }), true);
    assert.equal(sel.matches({ labels: { app: 'web', tier: 'c', team: '' } }), false);
    assert.equal(sel.matches({ labels: { app: 'web', tier: 'a', team: '', env: 'prod' } }), false);
    assert.equal(sel.matches({ labels: { app: 'web', tier: 'a', team: '', legacy: '1' } }), false);
    assert.equal(sel.matches({ labels: { app: 'web', tier: 'a' } }), false);
    assert.equal(labelSelectorToCalico({}), 'all()');
  });

  it('default tier, order 1000, policyTypes defaulting', () => {
    const a = conv({ podSelector: {}, ingress: [{}] });
    assert.equal(a.tier, 'default');
    assert.equal(a.order, 1000);
    assert.deepEqual(a.types, ['Ingress']);
    assert.deepEqual(conv({ podSelector: {}, egress: [{}] }).types, ['Ingress', 'Egress']);
    assert.deepEqual(conv({ podSelector: {}, policyTypes: ['Egress'] }).types, ['Egress']);
    assert.deepEqual(conv({ podSelector: {} }).ingress, [], 'no rules = deny all');
  });

  it('one rule per peer × protocol; ports on the destination; endPort as a range', () => {
    const p = conv({
      podSelector: { matchLabels: { app: 'web' } },
      ingress: [
        {
          from: [
            { podSelector: { matchLabels: { app: 'a' } } },
            { namespaceSelector: { matchLabels: { t: '1' } } },
          ],
          ports: [
            { protocol: 'TCP', port: 80 },
            { protocol: 'UDP', port: 53 },
            { port: 8000, endPort: 8080 },
            { port: 'http' },
          ],
        },
      ],
    });
    assert.equal(p.ingress!.length, 4);
    assert.deepEqual(p.ingress![0], {
      action: 'Allow',
      protocol: 'TCP',
      source: { selector: "app == 'a'" },
      destination: { ports: [80, '8000:8080', 'http'] },
    });
    assert.deepEqual(p.ingress![1], {
      action: 'Allow',
      protocol: 'UDP',
      source: { selector: "app == 'a'" },
      destination: { ports: [53] },
    });
    assert.deepEqual(p.ingress![2]!.source, { namespaceSelector: "t == '1'", selector: 'all()' });
  });

  it('ipBlock except → notNets; egress peers and ports both on the destination', () => {
    const p = conv({
      podSelector: {},
      policyTypes: ['Egress'],
      egress: [
        {
          to: [{ ipBlock: { cidr: '10.0.0.0/8', except: ['10.1.0.0/16'] } }],
          ports: [{ protocol: 'UDP', port: 53 }],
        },
      ],
    });
    assert.deepEqual(p.egress, [
      {
        action: 'Allow',
        protocol: 'UDP',
        destination: { nets: ['10.0.0.0/8'], notNets: ['10.1.0.0/16'], ports: [53] },
      },
    ]);
  });

  it('namespaceSelector + podSelector in one peer stay in one rule', () => {
    const p = conv({
      podSelector: {},
      ingress: [
        {
          from: [
            { namespaceSelector: { matchLabels: { ns: 'y' } }, podSelector: { matchLabels: { pod: 'b' } } },
          ],
        },
      ],
    });
    assert.deepEqual(p.ingress, [
      { action: 'Allow', source: { selector: "pod == 'b'", namespaceSelector: "ns == 'y'" } },
    ]);
  });

  it('a port without a number allows the whole protocol', () => {
    const p = conv({ podSelector: {}, ingress: [{ ports: [{ protocol: 'UDP' }] }] });
    assert.deepEqual(p.ingress, [{ action: 'Allow', protocol: 'UDP' }]);
  });
});

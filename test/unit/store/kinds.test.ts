import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { UnknownKindError } from '../../../store/errors.js';
import {
  KINDS,
  kindFromWire,
  kindPrefix,
  parseResourceKeyPath,
  prefixEnd,
  resolveKind,
  resourceKeyPath,
} from '../../../store/kinds.js';
import { specSchemas } from '../../../store/schemas/index.js';

describe('kind registry', () => {
  it('resolves singular, plural and short names in any case', () => {
    for (const [word, kind] of [
      ['networkpolicy', 'NetworkPolicy'],
      ['networkpolicies', 'NetworkPolicy'],
      ['netpol', 'NetworkPolicy'],
      ['wep', 'WorkloadEndpoint'],
      ['gnp', 'GlobalNetworkPolicy'],
      ['ippool', 'IPPool'],
      ['IPPools', 'IPPool'],
      ['hep', 'HostEndpoint'],
      ['bgppeer', 'BGPPeer'],
      ['felixconfig', 'FelixConfiguration'],
      ['ns', 'Namespace'],
      ['k8snetworkpolicy', 'K8sNetworkPolicy'],
      ['bgpconfig', 'BGPConfiguration'],
    ] as const) {
      assert.equal(resolveKind(word).kind, kind, word);
    }
    assert.throws(() => resolveKind('pods'), UnknownKindError);
  });
  it('no name maps to two kinds, and every kind has a schema', () => {
    const seen = new Map<string, string>();
    for (const k of KINDS) {
      for (const n of new Set([k.kind.toLowerCase(), k.plural, k.singular, ...k.shortNames])) {
        assert.ok(!seen.has(n) || seen.get(n) === k.kind, `${n} used by ${seen.get(n)} and ${k.kind}`);
        seen.set(n, k.kind);
      }
      assert.ok(specSchemas[k.kind], k.kind);
    }
    assert.equal(KINDS.length, 16);
  });
  it('maps wire identities, telling the two NetworkPolicy kinds apart', () => {
    assert.equal(kindFromWire('projectcalico.org/v3', 'NetworkPolicy').kind, 'NetworkPolicy');
    assert.equal(kindFromWire('networking.k8s.io/v1', 'NetworkPolicy').kind, 'K8sNetworkPolicy');
    assert.equal(kindFromWire('v1', 'Namespace').kind, 'Namespace');
    assert.throws(() => kindFromWire('v1', 'IPPool'), UnknownKindError);
  });
  it('lays out etcd keys like Calico, under /gingham/', () => {
    assert.equal(resourceKeyPath('IPPool', 'p1'), '/gingham/resources/v3/projectcalico.org/ippools/p1');
    assert.equal(
      resourceKeyPath('WorkloadEndpoint', 'n1-cni-abc-eth0', 'prod'),
      '/gingham/resources/v3/projectcalico.org/workloadendpoints/prod/n1-cni-abc-eth0',
    );
    assert.equal(
      resourceKeyPath('K8sNetworkPolicy', 'a', 'b'),
      '/gingham/resources/v3/networking.k8s.io/networkpolicies/b/a',
    );
    assert.equal(kindPrefix('Namespace'), '/gingham/resources/v3/core/namespaces/');
    assert.throws(() => resourceKeyPath('NetworkPolicy', 'x'));
    assert.deepEqual(parseResourceKeyPath('NetworkPolicy', resourceKeyPath('NetworkPolicy', 'x', 'y')), {
      name: 'x',
      namespace: 'y',
    });
    assert.equal(parseResourceKeyPath('IPPool', '/gingham/resources/v3/projectcalico.org/ippools/a/b'), null);
    // GlobalNetworkPolicy's prefix must not swallow NetworkPolicy's and vice versa.
    assert.ok(!kindPrefix('GlobalNetworkPolicy').startsWith(kindPrefix('NetworkPolicy')));
  });
  it('prefixEnd is the first key past the prefix', () => {
    assert.equal(prefixEnd('/a/').toString(), '/a0');
    assert.equal(prefixEnd('ab').toString(), 'ac');
  });
});

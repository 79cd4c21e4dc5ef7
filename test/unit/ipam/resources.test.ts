import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { matchNodeSelector, parsePool, SelectorUnsupportedError } from '../../../ipam/resources.js';

describe('ipam resources', () => {
  it('reads pools with Calico defaults', () => {
    const p = parsePool({ metadata: { name: 'v6' }, spec: { cidr: 'fd00:65::/64' } })!;
    assert.equal(p.blockSize, 122);
    assert.equal(p.family, 6);
    assert.equal(p.nodeSelector, 'all()');
    assert.deepEqual(p.allowedUses, ['Workload', 'Tunnel']);
    assert.equal(parsePool({ metadata: { name: 'x' }, spec: { cidr: 'bogus' } }), null);
  });

  it('evaluates the node selectors pools use', () => {
    const labels = { zone: 'a', rack: 'r1', 'projectcalico.org/name': 'n1' };
    assert.ok(matchNodeSelector('all()', labels));
    assert.ok(matchNodeSelector("zone == 'a'", labels));
    assert.ok(!matchNodeSelector("zone != 'a'", labels));
    assert.ok(matchNodeSelector('has(rack) && zone == "a"', labels));
    assert.ok(!matchNodeSelector('!has(rack)', labels));
    assert.ok(matchNodeSelector("zone in {'a', 'b'}", labels));
    assert.ok(!matchNodeSelector("zone not in {'a'}", labels));
    assert.ok(matchNodeSelector("projectcalico.org/name == 'n1'", labels));
    assert.throws(() => matchNodeSelector("zone == 'a' || rack == 'r1'", labels), SelectorUnsupportedError);
  });
});

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { NodeSelectorError, parsePool, poolSelectsNode } from '../../../ipam/resources.js';

describe('ipam resources', () => {
  it('reads pools with Calico defaults', () => {
    const p = parsePool({ metadata: { name: 'v6' }, spec: { cidr: 'fd00:65::/64' } })!;
    assert.equal(p.blockSize, 122);
    assert.equal(p.family, 6);
    assert.equal(p.nodeSelector, 'all()');
    assert.deepEqual(p.allowedUses, ['Workload', 'Tunnel']);
    assert.equal(parsePool({ metadata: { name: 'x' }, spec: { cidr: 'bogus' } }), null);
  });

  it('evaluates pool node selectors in the whole selector language', () => {
    const labels = { zone: 'a', rack: 'r1', 'projectcalico.org/name': 'n1' };
    const sel = (nodeSelector: string) => poolSelectsNode({ name: 'p', nodeSelector }, labels);
    assert.ok(sel('all()'));
    assert.ok(sel(''));
    assert.ok(sel("zone == 'a'"));
    assert.ok(!sel("zone != 'a'"));
    assert.ok(sel('has(rack) && zone == "a"'));
    assert.ok(!sel('!has(rack)'));
    assert.ok(sel("zone in {'a', 'b'}"));
    assert.ok(!sel("zone not in {'a'}"));
    assert.ok(sel("projectcalico.org/name == 'n1'"));
    // Beyond conjunctions: || , ! and parentheses, string operators.
    assert.ok(sel("zone == 'b' || rack == 'r1'"));
    assert.ok(!sel("zone == 'b' || (rack == 'r1' && !has(zone))"));
    assert.ok(sel("rack starts with 'r' && zone contains 'a'"));
    assert.ok(sel("!(zone == 'b')"));
    assert.throws(
      () => sel("zone == 'a' &&"),
      (e: unknown) =>
        e instanceof NodeSelectorError &&
        /IPPool p: nodeSelector "zone == 'a' &&" is invalid/.test(e.message),
    );
  });
});

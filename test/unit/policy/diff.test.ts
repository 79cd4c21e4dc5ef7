// The applier's diff: smallest transaction, right order, full replace when in-place is impossible.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { compile, diffRulesets } from '../../../policy/index.js';
import type { Resource } from '../../../store/api.js';
import { calicoPolicy, NODE, namespace, pod } from './fixtures.js';

function world(extraLabel: string, withPolicy: boolean, extraPod = false): Resource[] {
  const r: Resource[] = [
    namespace('x'),
    pod('x', 'a', { ip: '10.65.0.1', iface: 'ghxa', labels: { role: 'web' } }),
    pod('x', 'b', { ip: '10.65.0.2', iface: 'ghxb', node: 'node2', labels: { role: extraLabel } }),
  ];
  if (extraPod) r.push(pod('x', 'c', { ip: '10.65.0.3', iface: 'ghxc', labels: { role: 'db' } }));
  if (withPolicy)
    r.push(
      calicoPolicy('x', 'p', {
        selector: 'role == "web"',
        ingress: [{ action: 'Allow', source: { selector: 'role == "db"' } }],
      }),
    );
  return r;
}
const rs = (...a: Parameters<typeof world>) => compile({ node: NODE, resources: world(...a) }).ruleset;
const kinds = (cmds: Record<string, Record<string, unknown>>[]) =>
  cmds.map((c) => `${Object.keys(c)[0]} ${Object.keys(Object.values(c)[0]!)[0]}`);

describe('diffRulesets', () => {
  it('no change → no commands', () => {
    assert.deepEqual(diffRulesets(rs('db', true), rs('db', true))!.commands, []);
  });

  it('a remote label change is one set element add, nothing else', () => {
    const d = diffRulesets(rs('web', true), rs('db', true))!;
    assert.deepEqual(kinds(d.commands), ['add element']);
    assert.deepEqual((d.commands[0]!.add as { element: { elem: unknown } }).element.elem, ['10.65.0.2']);
    const back = diffRulesets(rs('db', true), rs('web', true))!;
    assert.deepEqual(kinds(back.commands), ['delete element']);
  });

  it('a new policy: declare chains/sets first, rewrite endpoint chains, nothing deleted', () => {
    const d = diffRulesets(rs('db', false), rs('db', true))!;
    const k = kinds(d.commands);
    assert.ok(k.indexOf('add chain') < k.indexOf('flush chain'), 'chains declared before rules jump to them');
    assert.ok(k.includes('add set'));
    assert.ok(!k.some((x) => x.startsWith('delete')));
    assert.equal(d.summary.chainsAdded, 1);
    assert.equal(d.summary.chainsRewritten, 1, 'only tw-ghxa changes');
  });

  it('removing a policy deletes its chain after the rewrite that stops jumping to it', () => {
    const d = diffRulesets(rs('db', true), rs('db', false))!;
    const k = kinds(d.commands);
    assert.ok(k.lastIndexOf('add rule') < k.indexOf('delete chain'));
    assert.ok(k.indexOf('flush chain') < k.indexOf('delete chain'));
    assert.ok(k.indexOf('delete chain') < k.indexOf('delete set'), 'sets go after the chains using them');
  });

  it('a new local endpoint adds map elements after its chains exist', () => {
    const d = diffRulesets(rs('db', true), rs('db', true, true))!;
    const k = kinds(d.commands);
    assert.ok(k.indexOf('add chain') < k.indexOf('add element'));
    assert.equal(d.summary.chainsAdded, 2);
  });

  it('a base chain priority change cannot be done in place → null (full replace)', () => {
    const a = rs('db', true);
    const b = rs('db', true);
    b.chains.get('forward')!.base!.prio = -10;
    assert.equal(diffRulesets(a, b), null);
  });
});

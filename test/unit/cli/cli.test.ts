import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { applyLabelChanges, parseLabelChanges } from '../../../cli/commands/label.js';
import { CommandUnavailableError, commands, optional, takeGlobalFlags, usage } from '../../../cli/main.js';
import { parseOutputFormat, render } from '../../../cli/output.js';
import type { Resource } from '../../../store/api.js';

describe('cli/main', () => {
  it('takes --etcd-endpoints from anywhere and exports it', () => {
    const saved = process.env.ETCD_ENDPOINTS;
    try {
      assert.deepEqual(takeGlobalFlags(['get', '--etcd-endpoints', 'http://a:1,http://b:2', 'ippool']), [
        'get',
        'ippool',
      ]);
      assert.equal(process.env.ETCD_ENDPOINTS, 'http://a:1,http://b:2');
      assert.deepEqual(takeGlobalFlags(['--etcd-endpoints=http://c:3', 'version']), ['version']);
      assert.equal(process.env.ETCD_ENDPOINTS, 'http://c:3');
      assert.deepEqual(takeGlobalFlags(['ipam', '--', '--etcd-endpoints', 'x']), [
        'ipam',
        '--',
        '--etcd-endpoints',
        'x',
      ]);
      assert.throws(() => takeGlobalFlags(['get', '--etcd-endpoints']), /needs a value/);
    } finally {
      if (saved === undefined) delete process.env.ETCD_ENDPOINTS;
      else process.env.ETCD_ENDPOINTS = saved;
    }
  });
  it('has every command in the table and in the usage text', () => {
    for (const c of [
      'apply',
      'create',
      'replace',
      'delete',
      'get',
      'label',
      'version',
      'ipam',
      'node',
      'policy',
      'agent',
      'reflector',
    ]) {
      assert.ok(commands[c], c);
      assert.match(usage(), new RegExp(`\\n  ${c} `));
    }
  });
  it('a command whose module is missing is "not available", not a crash', async () => {
    const load = optional(
      './commands/no-such-command.js',
      () => import('../../../cli/commands/no-such-command.js' as string),
    );
    await assert.rejects(load(), CommandUnavailableError);
  });
  it('every built-in command answers --help with its usage and exit 0', async () => {
    for (const c of ['apply', 'create', 'replace', 'get', 'delete', 'label', 'version']) {
      const cmd = await commands[c]!();
      let out = '';
      const write = process.stdout.write;
      process.stdout.write = ((chunk: string) => {
        out += chunk;
        return true;
      }) as typeof process.stdout.write;
      let code: number;
      try {
        code = await cmd.run(['--help']);
      } finally {
        process.stdout.write = write;
      }
      assert.equal(code, 0, c);
      assert.match(out, new RegExp(`^Usage: gingham ${c}`), c);
    }
  });
});

describe('label changes', () => {
  it('parses set and remove', () => {
    assert.deepEqual(parseLabelChanges(['a=1', 'b-', 'c=']), [
      { op: 'set', key: 'a', value: '1' },
      { op: 'remove', key: 'b' },
      { op: 'set', key: 'c', value: '' },
    ]);
    assert.throws(() => parseLabelChanges(['oops']), /neither KEY=VALUE nor KEY-/);
  });
  it('needs --overwrite to change a value; removal of a missing label fails', () => {
    assert.deepEqual(applyLabelChanges({ a: '1' }, parseLabelChanges(['b=2']), false), { a: '1', b: '2' });
    assert.deepEqual(applyLabelChanges({ a: '1' }, parseLabelChanges(['a=1']), false), { a: '1' });
    assert.throws(() => applyLabelChanges({ a: '1' }, parseLabelChanges(['a=2']), false), /--overwrite/);
    assert.deepEqual(applyLabelChanges({ a: '1' }, parseLabelChanges(['a=2']), true), { a: '2' });
    assert.deepEqual(applyLabelChanges({ a: '1' }, parseLabelChanges(['a-']), false), {});
    assert.throws(() => applyLabelChanges({}, parseLabelChanges(['a-']), false), /not found/);
  });
});

describe('output', () => {
  const pools: Resource[] = [
    {
      apiVersion: 'projectcalico.org/v3',
      kind: 'IPPool',
      metadata: { name: 'p1', labels: { a: 'b' } },
      spec: { cidr: '10.0.0.0/16', nodeSelector: 'all()', blockSize: 26 },
    },
    {
      apiVersion: 'projectcalico.org/v3',
      kind: 'IPPool',
      metadata: { name: 'pool-two' },
      spec: { cidr: '10.1.0.0/16', nodeSelector: 'all()', blockSize: 28 },
    },
  ];
  it('json list shape and single object', () => {
    const list = JSON.parse(render('IPPool', pools, 'json', false));
    assert.deepEqual(Object.keys(list), ['apiVersion', 'kind', 'items']);
    assert.equal(list.kind, 'IPPoolList');
    assert.equal(JSON.parse(render('IPPool', pools.slice(0, 1), 'json', true)).metadata.name, 'p1');
    const k8s = JSON.parse(render('Namespace', [], 'json', false));
    assert.deepEqual(k8s, { apiVersion: 'v1', kind: 'NamespaceList', items: [] });
  });
  it('tables align, wide adds columns and labels', () => {
    assert.equal(
      render('IPPool', pools, 'table', false),
      'NAME       CIDR          SELECTOR\np1         10.0.0.0/16   all()\npool-two   10.1.0.0/16   all()',
    );
    const wide = render('IPPool', pools, 'wide', false).split('\n');
    assert.match(wide[0]!, /BLOCKSIZE.*LABELS$/);
    assert.match(wide[1]!, /26.*a=b$/);
    assert.equal(render('IPPool', pools, 'name', false), 'ippool/p1\nippool/pool-two');
  });
  it('output formats', () => {
    assert.equal(parseOutputFormat(undefined), 'table');
    assert.equal(parseOutputFormat('wide'), 'wide');
    assert.throws(() => parseOutputFormat('xml'), /unknown output format/);
  });
});

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { kindOf } from '../../../store/kinds.js';
import { ManifestError, parseManifest } from '../../../store/manifest.js';

const POOL =
  'apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata:\n  name: p1\nspec:\n  cidr: 10.65.0.0/16\n';
const NS = 'apiVersion: v1\nkind: Namespace\nmetadata:\n  name: prod\n  labels: {env: prod}\n';

describe('parseManifest', () => {
  it('reads YAML multi-doc, skipping empty documents, in order', () => {
    const out = parseManifest(`---\n${POOL}---\n${NS}---\n`, 'm.yaml');
    assert.deepEqual(
      out.map((e) => [kindOf(e.resource), e.resource.metadata.name, e.source.index]),
      [
        ['IPPool', 'p1', 0],
        ['Namespace', 'prod', 1],
      ],
    );
    assert.equal(out[0]!.source.file, 'm.yaml');
  });
  it('reads JSON and List kinds', () => {
    const list = {
      apiVersion: 'projectcalico.org/v3',
      kind: 'IPPoolList',
      items: [
        {
          apiVersion: 'projectcalico.org/v3',
          kind: 'IPPool',
          metadata: { name: 'a' },
          spec: { cidr: '10.1.0.0/16' },
        },
        {
          apiVersion: 'projectcalico.org/v3',
          kind: 'IPPool',
          metadata: { name: 'b' },
          spec: { cidr: '10.2.0.0/16' },
        },
      ],
    };
    const out = parseManifest(JSON.stringify(list), 'l.json');
    assert.deepEqual(
      out.map((e) => [e.resource.metadata.name, e.source.item]),
      [
        ['a', 0],
        ['b', 1],
      ],
    );
    assert.equal(
      parseManifest(JSON.stringify({ kind: 'List', apiVersion: 'v1', items: list.items })).length,
      2,
    );
  });
  it('applies the default namespace to namespaced kinds', () => {
    const np = 'apiVersion: projectcalico.org/v3\nkind: NetworkPolicy\nmetadata:\n  name: np\nspec: {}\n';
    assert.equal(
      parseManifest(np, 'f', { defaultNamespace: 'team' })[0]!.resource.metadata.namespace,
      'team',
    );
  });
  it('reports every invalid document, with file, index, kind, name and field', () => {
    const text = `${POOL}---\n${POOL.replace('p1', 'p2').replace('10.65.0.0/16', '10.65.0.0/33')}---\n${NS.replace('name: prod', 'name: prod\n  colour: red')}`;
    try {
      parseManifest(text, 'bad.yaml');
      assert.fail('accepted');
    } catch (e) {
      assert.ok(e instanceof ManifestError);
      assert.equal(e.errors.length, 2);
      assert.match(e.errors[0]!.message, /^bad\.yaml document 2 \(IPPool p2\): spec\.cidr: expected a CIDR/);
      assert.match(
        e.errors[1]!.message,
        /^bad\.yaml document 3 \(Namespace prod\): metadata\.colour: unknown field/,
      );
      assert.match(e.message, /2 invalid documents in bad\.yaml, nothing written/);
    }
  });
  it('reports syntax errors and empty input', () => {
    assert.throws(
      () => parseManifest('a: [1, 2\n', 's.yaml'),
      (e: unknown) => e instanceof ManifestError && /syntax/.test(e.message),
    );
    assert.throws(() => parseManifest('', 'e.yaml'), /at least one resource/);
    assert.throws(() => parseManifest('- 1\n- 2\n', 'x.yaml'), /expected an object/);
  });
});

// `gingham` end to end: the real CLI process against a real etcd.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type EtcdInstance, freePort, startEtcd } from '../../harness/etcd.js';

const ROOT = join(import.meta.dirname, '../../..');

interface Result {
  code: number | null;
  stdout: string;
  stderr: string;
}

/**
 * Transpiles the sources to JavaScript in a temp dir (file by file, as tsc emits them) and runs the
 * compiled CLI, as the installed bin does. esbuild (tsx's transpiler) takes well under a second;
 * type checking is `npm run typecheck`'s job.
 */
async function buildCli(out: string): Promise<string> {
  const { build } = await import('esbuild');
  const entryPoints: string[] = [];
  const walk = (d: string) => {
    for (const e of readdirSync(join(ROOT, d), { withFileTypes: true })) {
      const rel = join(d, e.name);
      if (e.isDirectory()) walk(rel);
      else if (e.name.endsWith('.ts') && !e.name.endsWith('.test.ts') && !e.name.endsWith('.d.ts'))
        entryPoints.push(join(ROOT, rel));
    }
  };
  for (const d of ['cli', 'store', 'lib']) walk(d);
  await build({
    entryPoints,
    outdir: out,
    outbase: ROOT,
    format: 'esm',
    platform: 'node',
    target: 'node20',
    logLevel: 'error',
  });
  copyFileSync(join(ROOT, 'package.json'), join(out, 'package.json'));
  symlinkSync(join(ROOT, 'node_modules'), join(out, 'node_modules'));
  const main = join(out, 'cli/main.js');
  const check = spawnSync(process.execPath, [main, '--help'], { encoding: 'utf8' });
  assert.equal(check.status, 0, `compiled CLI does not run: ${check.stderr}`);
  return main;
}

describe('gingham CLI', () => {
  let etcd: EtcdInstance;
  let dir: string;
  let main: string;
  const gingham = (args: string[], input?: string, endpoints = etcd.endpoint): Result => {
    const r = spawnSync(process.execPath, [main, ...args], {
      cwd: ROOT,
      input,
      encoding: 'utf8',
      env: { ...process.env, ETCD_ENDPOINTS: endpoints },
      timeout: 30_000,
    });
    return { code: r.status, stdout: r.stdout, stderr: r.stderr };
  };
  const file = (name: string, text: string): string => {
    const p = join(dir, name);
    writeFileSync(p, text);
    return p;
  };

  before(async () => {
    etcd = await startEtcd();
    dir = mkdtempSync(join(tmpdir(), 'gingham-cli-'));
    main = await buildCli(join(dir, 'build'));
  });
  after(async () => {
    await etcd?.destroy();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const POOL = `apiVersion: projectcalico.org/v3
kind: IPPool
metadata:
  name: pool-a
spec:
  cidr: 10.65.0.0/16
  natOutgoing: true
`;
  const NS = `apiVersion: v1
kind: Namespace
metadata:
  name: prod
  labels:
    env: prod
`;
  const NETPOL = `apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: db
  namespace: prod
spec:
  podSelector:
    matchLabels: {app: db}
  ingress:
    - ports: [{port: 5432}]
`;

  it('applies a multi-document file and gets it back in every format', () => {
    const r = gingham(['apply', '-f', file('ok.yaml', `${POOL}---\n${NS}---\n${NETPOL}`)]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /IPPool pool-a applied/);
    assert.match(r.stdout, /K8sNetworkPolicy prod\/db applied/);

    const list = gingham(['get', 'ippools', '-o', 'json']);
    assert.equal(list.code, 0, list.stderr);
    const obj = JSON.parse(list.stdout);
    assert.equal(obj.apiVersion, 'projectcalico.org/v3');
    assert.equal(obj.kind, 'IPPoolList');
    assert.deepEqual(Object.keys(obj), ['apiVersion', 'kind', 'items']);
    assert.equal(obj.items.length, 1);
    assert.equal(obj.items[0].spec.blockSize, 26);

    const one = JSON.parse(gingham(['get', 'ippool', 'pool-a', '-o', 'json']).stdout);
    assert.equal(one.kind, 'IPPool');
    assert.match(one.metadata.resourceVersion, /^\d+$/);

    const wide = gingham(['get', 'ipp', '-o', 'wide']);
    assert.match(wide.stdout, /^NAME\s+CIDR\s+SELECTOR\s+BLOCKSIZE/);
    assert.match(wide.stdout, /pool-a\s+10\.65\.0\.0\/16\s+all\(\)\s+26\s+Never\s+Never\s+true/);

    const yaml = gingham(['get', 'knp', 'db', '-n', 'prod', '-o', 'yaml']);
    assert.equal(yaml.code, 0, yaml.stderr);
    assert.match(yaml.stdout, /^apiVersion: networking\.k8s\.io\/v1\nkind: NetworkPolicy\n/);
    assert.equal(gingham(['get', 'ns', '-o', 'name']).stdout, 'namespace/prod\n');
    const allNs = gingham(['get', 'k8snetworkpolicies', '-A']);
    assert.match(allNs.stdout, /^NAMESPACE\s+NAME\s+POD-SELECTOR\nprod\s+db\s+app=db$/m);
  });

  it('reads stdin and JSON Lists', () => {
    const list = JSON.stringify({
      apiVersion: 'projectcalico.org/v3',
      kind: 'GlobalNetworkSetList',
      items: [
        {
          apiVersion: 'projectcalico.org/v3',
          kind: 'GlobalNetworkSet',
          metadata: { name: 's1' },
          spec: { nets: ['10.0.0.0/8'] },
        },
        { apiVersion: 'projectcalico.org/v3', kind: 'GlobalNetworkSet', metadata: { name: 's2' }, spec: {} },
      ],
    });
    const r = gingham(['create', '-f', '-'], list);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(
      gingham(['get', 'globalnetworksets', '-o', 'name']).stdout,
      'globalnetworkset/s1\nglobalnetworkset/s2\n',
    );
  });

  it('writes nothing from a file with an invalid document, and says which and why', () => {
    const bad = `${POOL.replace('pool-a', 'pool-new')}---\n${POOL.replace('pool-a', 'pool-bad').replace('10.65.0.0/16', '10.66.0.0/16\n  blockSize: 40')}`;
    const r = gingham(['apply', '-f', file('bad.yaml', bad)]);
    assert.equal(r.code, 1);
    assert.match(
      r.stderr,
      /bad\.yaml document 2 \(IPPool pool-bad\): spec\.blockSize: expected a block size in 20\.\.32/,
    );
    assert.match(r.stderr, /nothing written/);
    const g = gingham(['get', 'ippool', 'pool-new']);
    assert.equal(g.code, 1);
    assert.match(g.stderr, /IPPool pool-new not found/);
  });

  it('reports conflicts, existing objects and unknown kinds with exit 1', () => {
    const created = gingham(['create', '-f', file('dup.yaml', POOL)]);
    assert.equal(created.code, 1);
    assert.match(created.stderr, /IPPool pool-a already exists/);
    const stale = POOL.replace('name: pool-a', 'name: pool-a\n  resourceVersion: "1"');
    const replaced = gingham(['replace', '-f', file('stale.yaml', stale)]);
    assert.equal(replaced.code, 1);
    assert.match(replaced.stderr, /conflict on IPPool pool-a: expected revision 1/);
    const unknown = gingham(['get', 'pods']);
    assert.equal(unknown.code, 1);
    assert.match(unknown.stderr, /unknown kind "pods"/);
  });

  it('labels: add, refuse to overwrite, overwrite, remove', () => {
    assert.equal(gingham(['label', 'ippool', 'pool-a', 'team=net']).code, 0);
    const refused = gingham(['label', 'ippool', 'pool-a', 'team=web']);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /--overwrite/);
    assert.equal(gingham(['label', 'ippool', 'pool-a', 'team=web', '--overwrite']).code, 0);
    assert.deepEqual(JSON.parse(gingham(['get', 'ippool', 'pool-a', '-o', 'json']).stdout).metadata.labels, {
      team: 'web',
    });
    assert.equal(gingham(['label', 'ippool', 'pool-a', 'team-']).code, 0);
    assert.equal(
      JSON.parse(gingham(['get', 'ippool', 'pool-a', '-o', 'json']).stdout).metadata.labels,
      undefined,
    );
    const invalid = gingham(['label', 'ippool', 'pool-a', 'bad key=x']);
    assert.equal(invalid.code, 1);
  });

  it('deletes by name and from a file', () => {
    const d = gingham(['delete', 'globalnetworkset', 's1']);
    assert.equal(d.code, 0, d.stderr);
    const again = gingham(['delete', 'globalnetworkset', 's1']);
    assert.equal(again.code, 1);
    assert.match(again.stderr, /GlobalNetworkSet s1 not found/);
    const f = gingham(['delete', '-f', file('del.yaml', `${NS}---\n${NETPOL}`)]);
    assert.equal(f.code, 0, f.stderr);
    assert.equal(gingham(['get', 'ns', '-o', 'name']).stdout, '');
  });

  it('says which endpoint is unreachable and after how long', async () => {
    const dead = `http://127.0.0.1:${await freePort()}`;
    const r = gingham(['get', 'ippools'], undefined, dead);
    assert.equal(r.code, 1);
    assert.match(
      r.stderr,
      new RegExp(`etcd unreachable at ${dead.replace(/[.]/g, '\\.')} .*gave up after \\d+\\.\\d s`),
    );
  });

  it('prints help and the version without etcd', () => {
    const h = gingham(['get', '--help'], undefined, 'http://127.0.0.1:1');
    assert.equal(h.code, 0, h.stderr);
    assert.match(h.stdout, /^Usage: gingham get KIND/);
    const v = gingham(['version'], undefined, 'http://127.0.0.1:1');
    assert.match(v.stdout, /^Client Version:\s+0\.\d+\.\d+/);
    assert.equal(gingham(['frobnicate']).code, 1);
  });
});

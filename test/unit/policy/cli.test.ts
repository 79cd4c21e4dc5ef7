// `gingham policy render` and `explain -f` from files: no etcd, no root. Run in-process with
// stdout/stderr captured.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { run } from '../../../cli/commands/policy.js';

const CLUSTER = join(import.meta.dirname, 'testdata', 'cluster.yaml');

async function capture(argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await run(argv, {
    out: (s) => {
      out += s;
    },
    err: (s) => {
      err += s;
    },
  });
  return { code, out, err };
}

describe('gingham policy (CLI)', () => {
  const tmp = mkdtempSync(join(tmpdir(), 'gingham-policy-cli-'));
  after(() => rmSync(tmp, { recursive: true, force: true }));

  it('render prints a full-replace nft JSON transaction for the node', async () => {
    const r = await capture(['render', '--node', 'node1', '-f', CLUSTER]);
    assert.equal(r.code, 0, r.err);
    const j = JSON.parse(r.out) as { nftables: Record<string, Record<string, { name?: string }>>[] };
    assert.deepEqual(j.nftables[0], { add: { table: { family: 'inet', name: 'gingham' } } });
    const chains = j.nftables.filter((c) => c.add?.chain).map((c) => c.add!.chain!.name);
    assert.ok(chains.includes('tw-ghxa') && chains.includes('fw-ghxb'));
    assert.ok(!chains.includes('tw-ghyc'), 'node2 endpoints are not local');
    assert.ok(chains.includes('pi-security/security.frontend-gate'));
    assert.equal(r.err, '');
  });

  it('render reports problems on stderr and --check fails on errors', async () => {
    const bad = join(tmp, 'bad.yaml');
    writeFileSync(
      bad,
      [
        'apiVersion: projectcalico.org/v3',
        'kind: NetworkPolicy',
        'metadata: {name: broken, namespace: x}',
        'spec:',
        '  selector: app == "web"',
        '  ingress: [{action: Allow, source: {selector: "app in {\'a\'"}}]',
      ].join('\n'),
    );
    const r = await capture(['render', '--node', 'node1', '-f', CLUSTER, '-f', bad]);
    assert.equal(r.code, 0);
    assert.match(r.err, /error: NetworkPolicy x\/broken: .*invalid selector at position 11/);
    assert.match(r.err, /\^/);
    const c = await capture(['render', '--check', '--node', 'node1', '-f', CLUSTER, '-f', bad]);
    assert.equal(c.code, 1);
  });

  it('render without --node or -f is a usage error', async () => {
    assert.equal((await capture(['render', '-f', CLUSTER])).code, 1);
    assert.equal((await capture(['render', '--node', 'n'])).code, 1);
    assert.equal((await capture(['frobnicate'])).code, 1);
  });

  it('explain -f: text names tier, policy, rule and verdict for both directions', async () => {
    const r = await capture([
      'explain',
      '-f',
      CLUSTER,
      '--from',
      'y/d',
      '--to',
      'x/a',
      '--protocol',
      'TCP',
      '--port',
      '8080',
    ]);
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /Egress of y\/d: ALLOW/);
    assert.match(r.out, /Ingress of x\/a: DENY/);
    assert.match(r.out, /GlobalNetworkPolicy security.frontend-gate rule 0: Pass/);
    assert.match(r.out, /end of tier default/);
    assert.match(r.out, /Verdict: DENIED by the ingress side/);
    const ok = await capture([
      'explain',
      '-f',
      CLUSTER,
      '--from',
      'y/c',
      '--to',
      'x/a',
      '--protocol',
      'tcp',
      '--port',
      '8080',
    ]);
    assert.match(ok.out, /K8sNetworkPolicy x\/web-from-api \(tier default\), rule 0: Allow/);
    assert.match(ok.out, /Verdict: ALLOWED/);
  });

  it('explain -o json is machine-readable', async () => {
    const r = await capture([
      'explain',
      '-f',
      CLUSTER,
      '--from',
      'x/b',
      '--to',
      'y/c',
      '--protocol',
      'UDP',
      '--port',
      '53',
      '-o',
      'json',
    ]);
    const j = JSON.parse(r.out) as {
      verdict: string;
      egress: { decidedBy: { kind: string; profile: string } };
    };
    assert.equal(j.verdict, 'Allow');
    assert.deepEqual(j.egress.decidedBy, {
      kind: 'profile-rule',
      profile: 'kns.x',
      rule: 0,
      action: 'Allow',
    });
  });

  it('explain: unknown endpoint and missing port are clear errors', async () => {
    const a = await capture([
      'explain',
      '-f',
      CLUSTER,
      '--from',
      'x/nope',
      '--to',
      'x/a',
      '--protocol',
      'TCP',
      '--port',
      '1',
    ]);
    assert.equal(a.code, 1);
    assert.match(a.err, /x\/nope: no such endpoint \(known: /);
    const b = await capture(['explain', '-f', CLUSTER, '--from', 'x/b', '--to', 'x/a', '--protocol', 'TCP']);
    assert.equal(b.code, 1);
    assert.match(b.err, /a port is needed for TCP/);
  });
});

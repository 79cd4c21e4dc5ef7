// A full replace streams its JSON to nft through a named pipe while making it (applier.ts). Against a
// real nft in a namespace: a multi-MB table arrives whole; nft's own error text is reported; nft
// dying in the middle of the input (or never starting) fails the call instead of hanging it, leaves
// the previous table in force, and leaves no temp dir behind.
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { compile, NftApplier, type NftRuleset } from '../../../policy/index.js';
import { fullReplaceJson } from '../../../policy/nft.js';
import type { Resource } from '../../../store/api.js';
import { isRoot, Netns } from '../../harness/netns.js';
import { NODE } from '../../unit/policy/fixtures.js';

const skip = !isRoot() ? 'needs root (network namespaces)' : false;

const ip4 = (n: number) => `10.${64 + ((n >>> 16) & 0x3f)}.${(n >>> 8) & 255}.${n & 255}`;

/** 400 policies × 6 rules over 40 local and 3,000 remote endpoints (30,000 set elements): ~4 MB of JSON. */
function cluster(): Resource[] {
  const out: Resource[] = [];
  for (let n = 0; n < 10; n++)
    out.push({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: `ns${n}` }, spec: {} });
  let addr = 1;
  for (let i = 0; i < 3040; i++) {
    const local = i < 40;
    const ips: string[] = [];
    for (let k = 0; k < (local ? 1 : 10); k++) ips.push(`${ip4(addr++)}/32`);
    out.push({
      apiVersion: 'projectcalico.org/v3',
      kind: 'WorkloadEndpoint',
      metadata: {
        name: `${local ? NODE : 'other'}-k8s-w${i}-eth0`,
        namespace: `ns${i % 10}`,
        labels: { app: `app${i % 20}` },
      },
      spec: { node: local ? NODE : 'other', pod: `w${i}`, interfaceName: `ghs${i}`, ipNetworks: ips },
    });
  }
  for (let p = 0; p < 400; p++) {
    const ingress = [];
    for (let r = 0; r < 6; r++)
      ingress.push({
        action: r === 5 ? 'Deny' : 'Allow',
        protocol: 'TCP',
        source: { selector: `app == "app${(p + r) % 20}"`, namespaceSelector: 'all()' },
        destination: { ports: [1000 + p * 6 + r] },
      });
    out.push({
      apiVersion: 'projectcalico.org/v3',
      kind: 'NetworkPolicy',
      metadata: { name: `p${p}`, namespace: `ns${p % 10}` },
      spec: { order: p, selector: `app == "app${p % 20}"`, types: ['Ingress'], ingress },
    });
  }
  return out;
}

function ruleCount(listing: unknown): number {
  return (listing as { nftables: Record<string, unknown>[] }).nftables.filter((o) => 'rule' in o).length;
}

describe('applier: streamed full replace', { skip }, () => {
  let ns: Netns;
  let tmp: string;
  let savedTmp: string | undefined;
  let rs: NftRuleset;
  let rules = 0;

  before(() => {
    ns = Netns.create('gpst');
    // A private TMPDIR (os.tmpdir() reads it per call): the applier's temp dirs must all be gone.
    savedTmp = process.env.TMPDIR;
    tmp = mkdtempSync(join(tmpdir(), 'gingham-stream-test-'));
    process.env.TMPDIR = tmp;
    rs = compile({ node: NODE, resources: cluster() }).ruleset;
    for (const c of rs.chains.values()) rules += c.rules.length;
  });
  after(() => {
    if (savedTmp === undefined) delete process.env.TMPDIR;
    else process.env.TMPDIR = savedTmp;
    rmSync(tmp, { recursive: true, force: true });
    ns?.destroy();
  });

  const applier = (o: { nft?: string; prefix?: string[] } = {}) =>
    new NftApplier({ session: false, prefix: ['ip', 'netns', 'exec', ns.name], ...o });

  it('loads a multi-MB table in one transaction, streamed in many writes', async () => {
    assert.ok(fullReplaceJson(rs).length > 3_000_000, 'longer than the 2 MiB streaming threshold');
    const a = applier();
    const report = await a.applyFull(rs);
    assert.equal(report.mode, 'full');
    assert.ok(report.textMs !== undefined && report.textMs >= 0);
    assert.equal(ruleCount(await a.list()), rules);
    // A second full replace over the full table (as a resync does).
    await a.applyFull(rs);
    assert.equal(ruleCount(await a.list()), rules);
    assert.deepEqual(readdirSync(tmp), []);
  });

  it("reports nft's own error text; the previous table stays", async () => {
    const a = applier();
    const bad: NftRuleset = { ...rs, chains: new Map(rs.chains) };
    const fwd = bad.chains.get('forward')!;
    bad.chains.set('forward', { ...fwd, rules: [...fwd.rules, { expr: [{ jump: { target: 'missing' } }] }] });
    await assert.rejects(a.applyFull(bad), (e: Error & { stderr?: string }) => {
      assert.equal(e.name, 'NftError');
      assert.match(e.stderr ?? '', /Error/, 'nft stderr is carried');
      return true;
    });
    assert.equal(ruleCount(await a.list()), rules);
    assert.deepEqual(readdirSync(tmp), []);
  });

  it('nft killed in the middle of its input: the call fails (no hang), nothing changes', async () => {
    // `timeout` ends nft 50 ms in, long before it can have parsed ~3 MB; our writes then hit EPIPE.
    const a = applier({ prefix: ['ip', 'netns', 'exec', ns.name, 'timeout', '0.05'] });
    const t0 = performance.now();
    await assert.rejects(a.applyFull(rs), (e: Error & { exitCode?: number | null }) => {
      assert.equal(e.name, 'NftError');
      assert.equal(e.exitCode, 124, e.message);
      return true;
    });
    assert.ok(performance.now() - t0 < 30_000);
    assert.equal(ruleCount(await applier().list()), rules);
    assert.deepEqual(readdirSync(tmp), []);
  });

  it('nft slow to open its input: a small table (temp file) and a large one (stream) both load', {
    timeout: 60_000,
  }, async () => {
    // nft opens the FIFO only after 0.5 s: the applier must not have closed its end by then.
    const slow = ['ip', 'netns', 'exec', ns.name, 'sh', '-c', 'sleep 0.5; exec "$0" "$@"'];
    const a = applier({ prefix: slow });
    const small = compile({ node: NODE, resources: cluster().slice(0, 60) }).ruleset;
    assert.ok(fullReplaceJson(small).length < 100_000);
    await a.applyFull(small);
    assert.equal(
      ruleCount(await a.list()),
      [...small.chains.values()].reduce((n, c) => n + c.rules.length, 0),
    );
    await a.applyFull(rs);
    assert.equal(ruleCount(await a.list()), rules);
    assert.deepEqual(readdirSync(tmp), []);
  });

  it('an nft that cannot start fails the call with the reason', async () => {
    const a = new NftApplier({ session: false, nft: '/nonexistent/nft' });
    await assert.rejects(a.applyFull(rs), (e: Error) => e.name === 'NftError' && /ENOENT/.test(e.message));
    assert.deepEqual(readdirSync(tmp), []);
  });
});

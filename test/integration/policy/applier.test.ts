// The applier against a real kernel: incremental transactions leave exactly what a full replace of
// the same desired ruleset leaves; resync repairs outside tampering; failures keep the old ruleset.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { compile, NftApplier, type NftRuleset } from '../../../policy/index.js';
import type { Resource } from '../../../store/api.js';
import { isRoot, Netns } from '../../harness/netns.js';
import {
  calicoPolicy,
  globalNetworkSet,
  globalPolicy,
  ipPool,
  k8sPolicy,
  NODE,
  namespace,
  pod,
  tier,
} from '../../unit/policy/fixtures.js';

const skip = !isRoot() ? 'needs root (network namespaces)' : false;

/** nft -j list output without handles, counters and creation order. */
function normalise(listing: unknown): string {
  const items = (listing as { nftables: Record<string, Record<string, unknown>>[] }).nftables.filter(
    (o) => !('metainfo' in o),
  );
  const strip = (v: unknown): unknown => {
    if (Array.isArray(v)) return v.map(strip);
    if (v && typeof v === 'object') {
      const o: Record<string, unknown> = {};
      for (const [k, x] of Object.entries(v)) {
        if (k === 'handle') continue;
        o[k] = k === 'counter' ? null : strip(x);
      }
      return o;
    }
    return v;
  };
  const chains = new Map<string, unknown[]>();
  const others: string[] = [];
  for (const it of items) {
    const [kind, body] = Object.entries(it)[0]!;
    if (kind === 'rule') {
      const ch = body.chain as string;
      if (!chains.has(ch)) chains.set(ch, []);
      chains.get(ch)!.push(strip(body));
    } else {
      const b = strip(body) as Record<string, unknown>;
      if (Array.isArray(b.elem)) b.elem = [...(b.elem as unknown[])].map((e) => JSON.stringify(e)).sort();
      others.push(JSON.stringify([kind, b]));
    }
  }
  return JSON.stringify({
    others: others.sort(),
    chains: [...chains.entries()].sort(([a], [b]) => (a < b ? -1 : 1)),
  });
}

function world(step: number): Resource[] {
  const pods: Resource[] = [];
  for (let i = 0; i < 6 + (step % 3); i++) {
    pods.push(
      pod(i % 2 ? 'x' : 'y', `p${i}`, {
        ip: `10.65.1.${i + 1}`,
        iface: `ghp${i}`,
        labels: { role: (i + step) % 3 === 0 ? 'db' : 'web' },
        ports: [{ name: 'http', protocol: 'TCP', port: 8000 + step }],
      }),
    );
  }
  // A remote pod on another node: only in sets.
  pods.push(
    pod('x', 'remote', {
      ip: `10.65.2.${step + 1}`,
      iface: 'ghremote',
      node: 'node2',
      labels: { role: 'db' },
    }),
  );
  const res: Resource[] = [
    ipPool('p', '10.65.0.0/16', step % 2 === 0),
    namespace('x', { team: 'a' }),
    namespace('y', { team: step > 2 ? 'a' : 'b' }),
    ...pods,
  ];
  res.push(
    k8sPolicy('x', 'web', {
      podSelector: { matchLabels: { role: 'web' } },
      ingress: [{ from: [{ podSelector: { matchLabels: { role: 'db' } } }], ports: [{ port: 'http' }] }],
    }),
  );
  if (step >= 1)
    res.push(
      tier('sec', 10),
      globalPolicy('sec.g', {
        tier: 'sec',
        selector: 'role == "db"',
        ingress: [{ action: 'Pass' }],
        egress: [{ action: 'Deny', destination: { nets: ['192.0.2.0/24'] } }, { action: 'Pass' }],
      }),
    );
  if (step === 2 || step === 4)
    res.push(
      globalNetworkSet('ext', ['198.51.100.0/24', '198.51.100.7/32', '203.0.113.0/25'], { role: 'db' }),
    );
  if (step !== 3)
    res.push(
      calicoPolicy('y', 'deny', {
        order: step,
        ingress: [{ action: 'Deny', source: { namespaceSelector: 'team == "a"' } }],
      }),
    );
  return res;
}

describe('NftApplier (real nft in a namespace)', { skip }, () => {
  let a: Netns;
  let b: Netns;
  let inc: NftApplier;
  let full: NftApplier;
  before(() => {
    a = Netns.create('gpa');
    b = Netns.create('gpb');
    inc = new NftApplier({ prefix: ['ip', 'netns', 'exec', a.name] });
    full = new NftApplier({ prefix: ['ip', 'netns', 'exec', b.name] });
  });
  after(() => {
    inc?.close();
    full?.close();
    a?.destroy();
    b?.destroy();
  });

  it('incremental updates converge to the same kernel state as full replaces', async () => {
    const modes: string[] = [];
    let prev = '';
    for (let step = 0; step < 6; step++) {
      const rs = compile({ node: NODE, resources: world(step) }).ruleset;
      const r = await inc.apply(rs);
      modes.push(r.mode);
      await full.applyFull(compile({ node: NODE, resources: world(step) }).ruleset);
      const now = normalise(await inc.list());
      assert.equal(now, normalise(await full.list()), `step ${step} (${r.mode})`);
      assert.notEqual(now, prev, 'each step changes the kernel state');
      prev = now;
    }
    assert.deepEqual(modes, [
      'full',
      'incremental',
      'incremental',
      'incremental',
      'incremental',
      'incremental',
    ]);
  });

  it('an unchanged ruleset is a no-op', async () => {
    const r = await inc.apply(compile({ node: NODE, resources: world(5) }).ruleset);
    assert.equal(r.mode, 'noop');
  });

  it('an outside change (someone deleted our table) is repaired by retry → full rebuild, and by resync', async () => {
    a.exec('nft', ['delete', 'table', 'inet', 'gingham']);
    const r = await inc.apply(compile({ node: NODE, resources: world(4) }).ruleset);
    assert.equal(r.mode, 'rebuild');
    await full.applyFull(compile({ node: NODE, resources: world(4) }).ruleset);
    assert.equal(normalise(await inc.list()), normalise(await full.list()));
    a.exec('nft', ['flush', 'chain', 'inet', 'gingham', 'forward']);
    await inc.resync();
    assert.equal(normalise(await inc.list()), normalise(await full.list()));
  });

  it('a ruleset nft rejects leaves the previous one intact', async () => {
    const before = normalise(await inc.list());
    const bad: NftRuleset = compile({ node: NODE, resources: world(1) }).ruleset;
    bad.chains.get('forward')!.rules.push({ expr: [{ jump: { target: 'missing' } }] });
    await assert.rejects(inc.apply(bad), (e: Error) => e.name === 'NftError');
    assert.equal(normalise(await inc.list()), before);
  });

  it('deleteTable removes only our table', async () => {
    a.exec('nft', ['add', 'table', 'inet', 'someone-else']);
    await inc.deleteTable();
    const out = a.exec('nft', ['list', 'tables']);
    assert.match(out, /someone-else/);
    assert.doesNotMatch(out, /gingham/);
  });
});

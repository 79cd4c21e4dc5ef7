// The incremental engine against the one-shot compiler: after every change in a sequence (relabels,
// pods coming and going, namespace labels, network sets, named ports, policies, profiles, pools),
// the engine's ruleset must be exactly what compile() makes from the same resources; and a remote
// endpoint change must leave every chain and every untouched set the same object.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { compile, type NftRuleset, PolicyEngine, toNftJson } from '../../../policy/index.js';
import { isK8sNetworkPolicy } from '../../../policy/model.js';
import type { Resource } from '../../../store/api.js';
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
} from './fixtures.js';

/** Canonical text of a ruleset, one command per line: element order does not matter to nft. */
function canon(rs: NftRuleset): string[] {
  const j = toNftJson(rs) as { nftables: Record<string, Record<string, { elem?: unknown[] }>>[] };
  return j.nftables.map((c) => {
    for (const v of Object.values(c))
      for (const o of Object.values(v))
        if (o && typeof o === 'object' && Array.isArray(o.elem))
          o.elem = o.elem.map((e) => JSON.stringify(e)).sort();
    return JSON.stringify(c);
  });
}

/**
 * Equal canonical rulesets (as sets of commands: full-replace JSON declares every chain and set
 * before any rule, so their order does not matter), or a failure showing the differing lines.
 */
function assertSame(a: NftRuleset, b: NftRuleset, what: string): void {
  const x = canon(a);
  const y = canon(b);
  const onlyX = x.filter((l) => !y.includes(l));
  const onlyY = y.filter((l) => !x.includes(l));
  assert.deepEqual({ engine: onlyX, compile: onlyY }, { engine: [], compile: [] }, what);
  assert.equal(x.length, y.length, `${what}: as many commands`);
}

const keyOf = (r: Resource) =>
  `${isK8sNetworkPolicy(r) ? 'K8sNetworkPolicy' : r.kind}/${r.metadata.namespace ?? ''}/${r.metadata.name}`;

/** The changes that turn `prev` into `next` (by object identity, as the agent's store events do). */
function changes(prev: Resource[], next: Resource[]) {
  const a = new Map(prev.map((r) => [keyOf(r), r]));
  const b = new Map(next.map((r) => [keyOf(r), r]));
  const out = [];
  for (const [k, r] of b) {
    if (a.get(k) === r) continue;
    out.push({ kind: k.split('/')[0]!, name: r.metadata.name, namespace: r.metadata.namespace, resource: r });
  }
  for (const [k, r] of a) {
    if (b.has(k)) continue;
    out.push({
      kind: k.split('/')[0]!,
      name: r.metadata.name,
      namespace: r.metadata.namespace,
      resource: null,
    });
  }
  return out;
}

const relabel = (rs: Resource[], name: string, labels: Record<string, string>) =>
  rs.map((r) =>
    r.kind === 'WorkloadEndpoint' && r.metadata.name.includes(`-k8s-${name}-`)
      ? { ...r, metadata: { ...r.metadata, labels: { pod: name, ...labels } } }
      : r,
  );

function steps(): [string, Resource[]][] {
  const s0: Resource[] = [
    namespace('x', { team: 'a' }),
    namespace('y', { team: 'b' }),
    pod('x', 'a', { ip: '10.65.0.1', iface: 'ghxa', labels: { app: 'web' } }),
    pod('x', 'b', { ip: '10.65.0.2', iface: 'ghxb', labels: { app: 'web' } }),
    pod('y', 'c', { ip: '10.65.1.3', iface: 'ghyc', node: 'node2', labels: { app: 'db' } }),
    pod('y', 'd', { ip: 'fd00::4', iface: 'ghyd', node: 'node2', labels: { app: 'db' } }),
    globalPolicy('from-db', {
      selector: 'app == "web"',
      ingress: [
        { action: 'Allow', protocol: 'TCP', source: { selector: 'app == "db"' } },
        {
          action: 'Allow',
          protocol: 'TCP',
          source: { namespaceSelector: 'team == "b"' },
          destination: { ports: ['http'] },
        },
      ],
    }),
    calicoPolicy('x', 'egress-db', {
      selector: 'all()',
      types: ['Egress'],
      egress: [{ action: 'Allow', protocol: 'TCP', destination: { selector: 'app == "db"', ports: ['pg'] } }],
    }),
    k8sPolicy('x', 'web', {
      podSelector: { matchLabels: { app: 'web' } },
      ingress: [{ from: [{ podSelector: {} }] }],
    }),
    ipPool('p4', '10.65.0.0/16', true),
  ];
  const out: [string, Resource[]][] = [['start', s0]];
  const add = (label: string, f: (prev: Resource[]) => Resource[]) => out.push([label, f(out.at(-1)![1])]);
  add('remote relabel', (p) => relabel(p, 'c', { app: 'cache' }));
  add('remote relabel back', (p) => relabel(p, 'c', { app: 'db' }));
  add('remote pod added', (p) => [
    ...p,
    pod('y', 'e', { ip: '10.65.1.5', iface: 'ghye', node: 'node2', labels: { app: 'db' } }),
  ]);
  add('remote pod with the same address as another', (p) => [
    ...p,
    pod('y', 'f', { ip: '10.65.1.5', iface: 'ghyf', node: 'node3', labels: { app: 'db' } }),
  ]);
  add('one of the two removed', (p) => p.filter((r) => !r.metadata.name.includes('-k8s-e-')));
  add('remote named port appears', (p) =>
    p.map((r) =>
      r.metadata.name.includes('-k8s-c-')
        ? { ...r, spec: { ...(r.spec as object), ports: [{ name: 'pg', protocol: 'TCP', port: 5432 }] } }
        : r,
    ),
  );
  add('local named port appears', (p) => [
    ...p.filter((r) => !r.metadata.name.includes('-k8s-a-')),
    pod('x', 'a', {
      ip: '10.65.0.1',
      iface: 'ghxa',
      labels: { app: 'web' },
      ports: [{ name: 'http', protocol: 'TCP', port: 8080 }],
    }),
  ]);
  add('local pod added', (p) => [
    ...p,
    pod('x', 'g', { ip: '10.65.0.7', iface: 'ghxg', labels: { app: 'web' } }),
  ]);
  add('local pod relabelled out of the policy', (p) => relabel(p, 'g', { app: 'other' }));
  add('local pod removed', (p) => p.filter((r) => !r.metadata.name.includes('-k8s-g-')));
  add('namespace labels swapped', (p) => [
    ...p.filter((r) => r.kind !== 'Namespace'),
    namespace('x', { team: 'b' }),
    namespace('y', { team: 'a' }),
  ]);
  add('network set matches (interval set appears)', (p) => [
    ...p,
    globalNetworkSet('dbnets', ['192.0.2.0/24', '10.65.9.9/32'], { app: 'db' }),
  ]);
  add('network set gone', (p) => p.filter((r) => r.kind !== 'GlobalNetworkSet'));
  add('policy changed', (p) =>
    p.map((r) =>
      r.kind === 'GlobalNetworkPolicy'
        ? globalPolicy('from-db', {
            selector: 'app == "web"',
            ingress: [{ action: 'Allow', protocol: 'UDP', source: { selector: 'app == "cache"' } }],
          })
        : r,
    ),
  );
  add('tiered policy with a missing tier, then the tier', (p) => [
    ...p,
    { ...globalPolicy('sec', { tier: 'security', selector: 'all()', ingress: [{ action: 'Pass' }] }) },
  ]);
  add('tier created', (p) => [...p, tier('security', 10)]);
  add('profile with labels for a pod', (p) => [
    ...p.map((r) =>
      r.metadata.name.includes('-k8s-d-')
        ? { ...r, spec: { ...(r.spec as object), profiles: ['kns.y', 'extra'] } }
        : r,
    ),
    {
      apiVersion: 'projectcalico.org/v3',
      kind: 'Profile',
      metadata: { name: 'extra' },
      spec: { labelsToApply: { app: 'cache' } },
    },
  ]);
  add('profile labels changed', (p) =>
    p.map((r) => (r.kind === 'Profile' ? { ...r, spec: { labelsToApply: { app: 'web' } } } : r)),
  );
  add('pool changed', (p) => [...p.filter((r) => r.kind !== 'IPPool'), ipPool('p4', '10.65.0.0/16', false)]);
  add('k8s policy removed', (p) => p.filter((r) => !isK8sNetworkPolicy(r)));
  add('namespace y emptied', (p) =>
    p.filter((r) => !(r.kind === 'WorkloadEndpoint' && r.metadata.namespace === 'y')),
  );
  return out;
}

describe('incremental engine', () => {
  for (const bulkThreshold of [1000, 1]) {
    it(`gives compile()'s ruleset after every change (bulk threshold ${bulkThreshold})`, () => {
      const eng = new PolicyEngine({ node: NODE, bulkThreshold });
      let prev: Resource[] = [];
      for (const [label, resources] of steps()) {
        eng.update(changes(prev, resources));
        const want = compile({ node: NODE, resources });
        assertSame(eng.ruleset(), want.ruleset, `after: ${label}`);
        const key = (p: { severity: string; object: string; message: string }) =>
          `${p.severity}|${p.object}|${p.message}`;
        assert.deepEqual(
          eng.problems().map(key).sort(),
          want.problems.map(key).sort(),
          `problems after: ${label}`,
        );
        prev = resources;
      }
    });
  }

  it("gives compile()'s ruleset when each batch arrives one change per call (the agent's chunks)", () => {
    // The agent's worker gets a batch in several messages, each with the whole batch's endpoint
    // count: a large batch takes the bulk path even though every call is small.
    for (const bulkThreshold of [1000, 1]) {
      const eng = new PolicyEngine({ node: NODE, bulkThreshold });
      let prev: Resource[] = [];
      for (const [label, resources] of steps()) {
        const batch = changes(prev, resources);
        const endpoints = batch.filter((c) => c.kind === 'WorkloadEndpoint').length;
        for (const c of batch) eng.update([c], endpoints);
        assertSame(
          eng.ruleset(),
          compile({ node: NODE, resources }).ruleset,
          `after: ${label} (${bulkThreshold})`,
        );
        prev = resources;
      }
    }
  });

  it('a remote relabel replaces only the sets it moves; what was returned stays unchanged', () => {
    const eng = new PolicyEngine({ node: NODE });
    const [, s0] = steps()[0]!;
    eng.update(changes([], s0));
    const r1 = eng.ruleset();
    const before = canon(r1);
    const s1 = relabel(s0, 'c', { app: 'cache' });
    eng.update(changes(s0, s1));
    const r2 = eng.ruleset();
    assert.deepEqual(canon(r1), before, 'the earlier ruleset was not mutated');
    for (const [name, c] of r2.chains)
      assert.equal(c, r1.chains.get(name), `chain ${name} is the same object`);
    const moved = [...r2.sets].filter(([name, s]) => s !== r1.sets.get(name)).map(([n]) => n);
    assert.ok(moved.length >= 1 && moved.length <= 3, `moved sets: ${moved.join(', ')}`);
    assertSame(r2, compile({ node: NODE, resources: s1 }).ruleset, 'after the relabel');
  });

  it('keeps one label map per distinct label set', () => {
    const eng = new PolicyEngine({ node: NODE });
    const pods: Resource[] = [namespace('x')];
    for (let i = 0; i < 50; i++)
      pods.push(
        pod('x', `p${i}`, { ip: `10.65.2.${i}`, iface: `ghp${i}`, node: 'node2', labels: { app: 'same' } }),
      );
    eng.update(changes([], pods));
    eng.ruleset();
    assert.equal(eng.stats().endpoints, 50);
  });
});

// IPv6 and two nodes, with real traffic: two node namespaces joined by a plain link, each with two
// dual-stack workloads (/32 + /128) behind gh* veths; each node runs its own incremental engine and
// applier, fed the same cluster events, as agents do. Checks: IPv6 TCP/UDP and ICMPv6 echo through
// ip6 sets of *remote* endpoints (policy enforced on the receiving node for traffic crossing nodes),
// IPv4 alongside, and ICMPv6 neighbour discovery surviving an egress deny-all (conntrack does not
// track ND; without the base-chain exception the workload would lose its gateway).
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { NftApplier, type PolicyChange, PolicyEngine } from '../../../policy/index.js';
import type { Resource } from '../../../store/api.js';
import { isRoot, Netns, vethBetween } from '../../harness/netns.js';
import { calicoPolicy, namespace, pod } from '../../unit/policy/fixtures.js';
import { type Agent, startAgent } from './harness.js';

const skip = !isRoot() ? 'needs root (network namespaces)' : false;

interface Wl {
  id: string;
  ns: string;
  pod: string;
  node: string;
  ip4: string;
  ip6: string;
  iface: string;
  netns: Netns;
  agent: Agent;
}

interface NodeNs {
  name: string;
  netns: Netns;
  engine: PolicyEngine;
  applier: NftApplier;
}

const LINK4 = ['192.168.201.1', '192.168.201.2'];
const LINK6 = ['fd00:201::1', 'fd00:201::2'];
const GW6 = 'fe80::1';

describe('IPv6 and two nodes (real traffic)', { skip }, () => {
  const nodes: NodeNs[] = [];
  const wls: Wl[] = [];
  let applied: Resource[] = [];

  const w = (id: string) => wls.find((x) => x.id === id)!;

  before(async () => {
    for (const [i, name] of ['node1', 'node2'].entries()) {
      const netns = Netns.create(`gp6n${i}`);
      netns.exec('sysctl', ['-q', '-w', 'net.ipv4.ip_forward=1', 'net.ipv6.conf.all.forwarding=1']);
      nodes.push({
        name,
        netns,
        engine: new PolicyEngine({ node: name }),
        applier: new NftApplier({ prefix: ['ip', 'netns', 'exec', netns.name] }),
      });
    }
    const [n1, n2] = nodes as [NodeNs, NodeNs];
    vethBetween(n1.netns, 'ext0', n2.netns, 'ext0');
    for (const [i, n] of nodes.entries()) {
      n.netns.ip('addr', 'add', `${LINK4[i]}/24`, 'dev', 'ext0');
      n.netns.ip('-6', 'addr', 'add', `${LINK6[i]}/64`, 'dev', 'ext0', 'nodad');
      const peer = 1 - i;
      n.netns.ip('route', 'add', `10.66.${peer + 1}.0/24`, 'via', LINK4[peer]!);
      n.netns.ip('-6', 'route', 'add', `fd66:${peer + 1}::/64`, 'via', LINK6[peer]!);
      // Proxy ARP answers for 169.254.1.1 only when the node can route it elsewhere.
      n.netns.ip('route', 'add', 'default', 'via', LINK4[peer]!);
    }
    const defs = [
      ['x', 'a', 0],
      ['x', 'b', 0],
      ['y', 'c', 1],
      ['y', 'd', 1],
    ] as const;
    for (const [k, [ns, p, ni]] of defs.entries()) {
      const node = nodes[ni]!;
      const netns = Netns.create('gp6w');
      const iface = `gh6${ns}${p}`;
      const ip4 = `10.66.${ni + 1}.${k + 1}`;
      const ip6 = `fd66:${ni + 1}::${k + 1}`;
      vethBetween(node.netns, iface, netns, 'eth0');
      netns.ip('addr', 'add', `${ip4}/32`, 'dev', 'eth0');
      netns.ip('-6', 'addr', 'add', `${ip6}/128`, 'dev', 'eth0', 'nodad');
      netns.ip('route', 'add', '169.254.1.1', 'dev', 'eth0', 'scope', 'link');
      netns.ip('route', 'add', 'default', 'via', '169.254.1.1', 'dev', 'eth0');
      // The IPv6 gateway is a link-local address on the host side of every workload veth.
      node.netns.ip('-6', 'addr', 'add', `${GW6}/64`, 'dev', iface, 'nodad');
      netns.ip('-6', 'route', 'add', 'default', 'via', GW6, 'dev', 'eth0');
      node.netns.exec('sysctl', [
        '-q',
        '-w',
        `net.ipv4.conf.${iface}.proxy_arp=1`,
        `net.ipv4.neigh.${iface}.proxy_delay=0`,
      ]);
      node.netns.ip('route', 'add', `${ip4}/32`, 'dev', iface, 'scope', 'link');
      node.netns.ip('-6', 'route', 'add', `${ip6}/128`, 'dev', iface);
      wls.push({
        id: `${ns}/${p}`,
        ns,
        pod: p,
        node: node.name,
        ip4,
        ip6,
        iface,
        netns,
        agent: startAgent(netns),
      });
    }
    await Promise.all(wls.map((x) => x.agent.ready));
    await enforce([], true);
    // Warm up neighbours both ways, both families.
    await Promise.all(
      wls.flatMap((a) =>
        wls.flatMap((b) => [a.agent.probe('tcp', b.ip4, 80, 3000), a.agent.probe('tcp', b.ip6, 80, 3000)]),
      ),
    );
  });

  after(() => {
    for (const x of wls) {
      x.agent.stop();
      x.netns.destroy();
    }
    for (const n of nodes) {
      n.applier.close();
      n.netns.destroy();
    }
  });

  function resources(extra: Resource[]): Resource[] {
    return [
      namespace('x', { ns: 'x' }),
      namespace('y', { ns: 'y' }),
      ...wls.map((x) => {
        const r = pod(x.ns, x.pod, { ip: x.ip4, iface: x.iface, node: x.node, labels: { app: x.pod } });
        const spec = r.spec as { ipNetworks: string[] };
        spec.ipNetworks = [...spec.ipNetworks, `${x.ip6}/128`];
        return r;
      }),
      ...extra,
    ];
  }

  /** Feeds both nodes' engines the changes since the last call (as store events) and applies. */
  async function enforce(extra: Resource[], full = false): Promise<void> {
    const next = resources(extra);
    const key = (r: Resource) => `${r.kind}/${r.metadata.namespace ?? ''}/${r.metadata.name}`;
    const before = new Map(applied.map((r) => [key(r), JSON.stringify(r)]));
    const changes: PolicyChange[] = [];
    for (const r of next) {
      if (before.get(key(r)) === JSON.stringify(r)) continue;
      changes.push({ kind: r.kind, name: r.metadata.name, namespace: r.metadata.namespace, resource: r });
    }
    const nextKeys = new Set(next.map(key));
    for (const r of applied)
      if (!nextKeys.has(key(r)))
        changes.push({
          kind: r.kind,
          name: r.metadata.name,
          namespace: r.metadata.namespace,
          resource: null,
        });
    for (const n of nodes) {
      n.engine.update(changes);
      const rs = n.engine.ruleset();
      assert.deepEqual(
        n.engine.problems().filter((p) => p.severity === 'error'),
        [],
        `${n.name}: no errors`,
      );
      if (full) await n.applier.applyFull(rs);
      else await n.applier.apply(rs);
    }
    applied = next;
  }

  async function reach(from: string, to: string, kind: 'tcp' | 'udp' | 'ping', fam: 4 | 6): Promise<boolean> {
    const a = w(from).agent;
    const ip = fam === 4 ? w(to).ip4 : w(to).ip6;
    if ((await a.probe(kind, ip, 80, 700)).ok) return true;
    return (await a.probe(kind, ip, 80, 2000)).ok;
  }

  /** Every ordered pair, compared with `want`; fails with the list of differences. */
  async function expectAll(
    kind: 'tcp' | 'udp' | 'ping',
    fam: 4 | 6,
    want: (from: Wl, to: Wl) => boolean,
    label: string,
  ): Promise<void> {
    const bad: string[] = [];
    await Promise.all(
      wls.flatMap((a) =>
        wls
          .filter((b) => b !== a)
          .map(async (b) => {
            const got = await reach(a.id, b.id, kind, fam);
            if (got !== want(a, b))
              bad.push(
                `${a.id}→${b.id} ${kind}/IPv${fam}: ${got ? 'open' : 'blocked'}, expected ${got ? 'blocked' : 'open'}`,
              );
          }),
      ),
    );
    assert.deepEqual(bad.sort(), [], label);
  }

  it('without policy every pair talks, IPv4 and IPv6, within and across nodes', async () => {
    for (const fam of [4, 6] as const) {
      await expectAll('tcp', fam, () => true, `tcp/IPv${fam}`);
      await expectAll('ping', fam, () => true, `ping/IPv${fam}`);
    }
    await expectAll('udp', 6, () => true, 'udp/IPv6');
  });

  it('ingress on node1 allows only a remote pod (node2) by selector: its /128 and /32 in the sets', async () => {
    const onlyC = calicoPolicy('x', 'only-c', {
      selector: 'app == "a"',
      ingress: [
        {
          action: 'Allow',
          protocol: 'TCP',
          source: { namespaceSelector: 'ns == "y"', selector: 'app == "c"' },
          destination: { ports: [80] },
        },
        {
          action: 'Allow',
          protocol: 'ICMPv6',
          icmp: { type: 128 },
          source: { namespaceSelector: 'ns == "y"', selector: 'app == "c"' },
        },
      ],
    });
    await enforce([onlyC]);
    const toA = (f: Wl, t: Wl) => t.id !== 'x/a' || f.id === 'y/c';
    await expectAll('tcp', 6, toA, 'tcp/IPv6: only y/c reaches x/a');
    await expectAll('tcp', 4, toA, 'tcp/IPv4: only y/c reaches x/a');
    await expectAll('ping', 6, toA, 'ICMPv6 echo: only y/c reaches x/a');
    // No ICMPv4 rule: ping over IPv4 to x/a is denied for everyone.
    await expectAll('ping', 4, (_f, t) => t.id !== 'x/a', 'ICMPv4 to x/a denied');
    // An unrelated policy on node2's namespace changes nothing for x/a.
    await enforce([
      onlyC,
      calicoPolicy('y', 'noop', { selector: 'app == "none"', ingress: [{ action: 'Allow' }] }),
    ]);
    await expectAll('tcp', 6, toA, 'unchanged after an unrelated policy');
  });

  it('a relabelled remote pod moves between ip6 sets on the other node', async () => {
    const fromD = calicoPolicy('x', 'from-role-db', {
      selector: 'app == "a"',
      ingress: [
        {
          action: 'Allow',
          protocol: 'TCP',
          source: { namespaceSelector: 'ns == "y"', selector: 'role == "db"' },
        },
      ],
    });
    // y/d gets role=db through its labels (a store modification of the endpoint).
    const d = wls.find((x) => x.id === 'y/d')!;
    const withRole = (on: boolean) => {
      const rs = resources([fromD]);
      return rs.map((r) =>
        r.kind === 'WorkloadEndpoint' && r.metadata.name.includes('-k8s-d-') && on
          ? { ...r, metadata: { ...r.metadata, labels: { ...(r.metadata.labels ?? {}), role: 'db' } } }
          : r,
      );
    };
    await enforceResources(withRole(true));
    await expectAll(
      'tcp',
      6,
      (f, t) => t.id !== 'x/a' || f.id === d.id,
      'y/d (role=db) reaches x/a over IPv6',
    );
    await enforceResources(withRole(false));
    await expectAll('tcp', 6, (_f, t) => t.id !== 'x/a', 'after the relabel nobody reaches x/a');
  });

  it('egress deny-all keeps ICMPv6 neighbour discovery: the pod still answers (ingress) over IPv6', async () => {
    const denyEgress = calicoPolicy('y', 'd-no-egress', { selector: 'app == "d"', types: ['Egress'] });
    await enforce([denyEgress]);
    // Forget the neighbours on both sides of y/d's veth: the pod must resolve its gateway and the
    // node must resolve the pod again, through ND that the pod's egress policy would otherwise drop.
    const d = w('y/d');
    const n2 = nodes[1]!;
    n2.netns.ip('-6', 'neigh', 'flush', 'dev', d.iface);
    d.netns.ip('-6', 'neigh', 'flush', 'dev', 'eth0');
    await expectAll('tcp', 6, (f) => f.id !== 'y/d', 'y/d cannot initiate, but answers over IPv6');
    const neigh = d.netns.ip('-6', 'neigh', 'show', 'dev', 'eth0');
    assert.match(neigh, /fe80::1 .*(REACHABLE|STALE|DELAY|PROBE)/, `y/d resolved its gateway:\n${neigh}`);
  });

  async function enforceResources(next: Resource[]): Promise<void> {
    const key = (r: Resource) => `${r.kind}/${r.metadata.namespace ?? ''}/${r.metadata.name}`;
    const before = new Map(applied.map((r) => [key(r), JSON.stringify(r)]));
    const changes: PolicyChange[] = [];
    for (const r of next)
      if (before.get(key(r)) !== JSON.stringify(r))
        changes.push({ kind: r.kind, name: r.metadata.name, namespace: r.metadata.namespace, resource: r });
    const nextKeys = new Set(next.map(key));
    for (const r of applied)
      if (!nextKeys.has(key(r)))
        changes.push({
          kind: r.kind,
          name: r.metadata.name,
          namespace: r.metadata.namespace,
          resource: null,
        });
    for (const n of nodes) {
      n.engine.update(changes);
      await n.applier.apply(n.engine.ruleset());
    }
    applied = next;
  }
});

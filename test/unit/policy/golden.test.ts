// compile() output is pinned for a synthetic cluster that uses every rule feature: tiers, Pass and
// Log, namespaced and global policies, namespaceSelector scopes, nets/notNets, selectors and
// notSelectors (hash and interval sets), named ports and notPorts, ICMP/notICMP, IPv4 and IPv6,
// profiles, service accounts, host endpoints, NAT pools and a broken policy. Performance work on the
// model, the index and the compiler must not change one byte of the nft JSON nor the problems.
//
// The golden file was written by this test from the compiler before that work (UPDATE_GOLDEN=1
// rewrites it: only for a deliberate change of the rendered output, reviewed in the diff).
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { compile } from '../../../policy/compiler.js';
import { fullReplaceCommands, fullReplaceJson } from '../../../policy/nft.js';
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

const GOLDEN = join(import.meta.dirname, 'testdata', 'golden-compile.json');

function cluster(): Resource[] {
  const out: Resource[] = [
    namespace('a', { team: 'red' }),
    namespace('b', { team: 'blue' }),
    namespace('c', { team: 'red' }),
    tier('security', 100),
    tier('platform', 200, 'Pass'),
    ipPool('v4', '10.64.0.0/12', true),
    ipPool('v6', 'fd00:64::/48', false),
    globalNetworkSet('corp', ['192.168.0.0/16', '192.168.3.0/24', '172.16.0.0/12'], { zone: 'corp' }),
    globalNetworkSet('corp6', ['2001:db8::/32'], { zone: 'corp' }),
    {
      apiVersion: 'projectcalico.org/v3',
      kind: 'NetworkSet',
      metadata: { name: 'partners', namespace: 'b', labels: { zone: 'partner' } },
      spec: { nets: ['203.0.113.0/24', '198.51.100.7/32'] },
    },
    {
      apiVersion: 'projectcalico.org/v3',
      kind: 'Profile',
      metadata: { name: 'ksa.a.api' },
      spec: { labelsToApply: { 'pcsa.tier': 'front' } },
    },
    {
      apiVersion: 'projectcalico.org/v3',
      kind: 'HostEndpoint',
      metadata: { name: `${NODE}-eth0`, labels: { role: 'node' } },
      spec: { node: NODE, interfaceName: 'eth0', expectedIPs: ['192.168.1.10', 'fd00:1::10'] },
    },
  ];
  const nss = ['a', 'b', 'c'];
  for (let i = 0; i < 24; i++) {
    const ns = nss[i % 3]!;
    const local = i % 2 === 0;
    const v6 = i % 4 === 1;
    const r = pod(ns, `w${i}`, {
      ip: v6 ? `fd00:64::${i + 1}` : `10.64.${i >> 3}.${i + 1}`,
      iface: `gh${ns}${i}`,
      labels: { app: `app${i % 5}`, ...(i % 6 === 0 ? { tier: 'db' } : {}) },
      node: local ? NODE : 'node2',
      ...(i % 3 === 0 ? { ports: [{ name: 'http', protocol: 'TCP' as const, port: 8000 + i }] } : {}),
      ...(i % 7 === 0 ? { serviceAccountName: 'api' } : {}),
    });
    if (i % 7 === 0) (r.spec as { profiles?: string[] }).profiles = [`kns.${ns}`, `ksa.${ns}.api`];
    if (i === 5) (r.spec as { ipNetworks: string[] }).ipNetworks.push('10.64.9.5/32', 'fd00:64::99/128');
    out.push(r);
  }
  out.push(
    globalPolicy('sec-deny-corp', {
      tier: 'security',
      order: 10,
      selector: 'all()',
      namespaceSelector: 'team == "red"',
      types: ['Ingress', 'Egress'],
      ingress: [
        { action: 'Deny', source: { selector: 'zone == "corp"' } },
        { action: 'Log', protocol: 'UDP', destination: { ports: [53, '60:70', 'dns'] } },
        { action: 'Pass', source: { nets: ['10.0.0.0/8', 'fd00::/8'], notNets: ['10.64.0.0/16'] } },
      ],
      egress: [
        { action: 'Allow', protocol: 'ICMP', icmp: { type: 8, code: 0 } },
        { action: 'Deny', protocol: 'ICMPv6', notICMP: { type: 128, code: 0 } },
        { action: 'Allow', notProtocol: 'TCP', destination: { notSelector: 'app == "app1"' } },
        { action: 'Pass', protocol: 'ICMP', notICMP: { type: 3 } },
      ],
    }),
    globalPolicy('plat', {
      tier: 'platform',
      order: 5,
      selector: 'has(app)',
      ingress: [
        {
          action: 'Allow',
          protocol: 'TCP',
          source: { selector: 'tier == "db"' },
          destination: { ports: ['http'] },
        },
        { action: 'Allow', protocol: 'TCP', destination: { notPorts: [22, 23, '1000:2000'] } },
        { action: 'Deny', ipVersion: 6, source: { selector: 'zone == "corp"' } },
      ],
    }),
    globalPolicy('node-ssh', {
      selector: 'role == "node"',
      ingress: [{ action: 'Allow', protocol: 'TCP', destination: { ports: [22] } }],
      egress: [{ action: 'Allow' }],
    }),
    calicoPolicy('a', 'web', {
      order: 1,
      selector: 'app in {"app0", "app2"}',
      types: ['Ingress', 'Egress'],
      ingress: [
        {
          action: 'Allow',
          protocol: 'TCP',
          source: { serviceAccounts: { names: ['api'], selector: 'tier == "front"' } },
        },
        {
          action: 'Allow',
          protocol: 'TCP',
          source: { selector: 'app == "app3"', namespaceSelector: 'all()' },
          destination: { ports: [80, 443, 81, 82] },
        },
        {
          action: 'Allow',
          protocol: 'UDP',
          source: { notSelector: 'app == "app4"' },
          destination: { notPorts: ['http'] },
        },
      ],
      egress: [
        {
          action: 'Allow',
          destination: { selector: 'zone == "partner"', namespaceSelector: 'team == "blue"' },
        },
        {
          action: 'Allow',
          protocol: 'TCP',
          destination: { selector: 'app == "app1"', ports: ['http', 9000] },
        },
      ],
    }),
    calicoPolicy('b', 'broken', {
      selector: 'all()',
      ingress: [{ action: 'Allow', source: { selector: 'app ==' } }],
    }),
    calicoPolicy('c', 'egress-only', {
      selector: 'app == "app2"',
      egress: [{ action: 'Deny', ipVersion: 4, destination: { nets: ['169.254.0.0/16'] } }],
    }),
    k8sPolicy('b', 'k8s-allow', {
      podSelector: { matchLabels: { app: 'app1' } },
      policyTypes: ['Ingress'],
      ingress: [
        {
          from: [{ podSelector: { matchLabels: { app: 'app3' } } }],
          ports: [{ protocol: 'TCP', port: 8080 }],
        },
      ],
    }),
  );
  return out;
}

interface Golden {
  nft: string;
  problems: unknown[];
}

function render(): Golden {
  const r = compile({ node: NODE, resources: cluster() });
  return { nft: fullReplaceJson(r.ruleset), problems: r.problems };
}

const golden = (): Golden => JSON.parse(readFileSync(GOLDEN, 'utf8')) as Golden;

describe('compile output (golden)', () => {
  it('renders the pinned nft JSON and problems for a synthetic cluster using every feature', () => {
    const got = render();
    if (process.env.UPDATE_GOLDEN === '1') writeFileSync(GOLDEN, `${JSON.stringify(got, null, 2)}\n`);
    const want = golden();
    assert.equal(got.nft, want.nft);
    assert.deepEqual(got.problems, want.problems);
  });

  it('renders the same again from new objects, and fullReplaceJson equals the command form', () => {
    const r = compile({ node: NODE, resources: cluster() });
    assert.equal(fullReplaceJson(r.ruleset), JSON.stringify({ nftables: fullReplaceCommands(r.ruleset) }));
    assert.equal(render().nft, golden().nft);
  });
});

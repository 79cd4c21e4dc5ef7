// Every kind: a valid manifest (with the defaults it should get), and invalid ones that must be
// rejected with the right field path.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CALICO_API_VERSION, type Resource } from '../../../store/api.js';
import { ValidationError } from '../../../store/errors.js';
import {
  durationMs,
  FELIX_CONFIGURATION_DEFAULTS,
  mergeFelixConfiguration,
} from '../../../store/schemas/index.js';
import { validateResource } from '../../../store/validate.js';

function doc(
  kind: string,
  spec: unknown,
  meta: Record<string, unknown> = {},
  apiVersion = CALICO_API_VERSION,
): unknown {
  return { apiVersion, kind, metadata: { name: 'x', ...meta }, spec };
}

function ok(d: unknown): Resource {
  return validateResource(d, { file: 't.yaml', index: 0 });
}

/** Asserts rejection and that some issue names `path` (and, if given, mentions `text`). */
function bad(d: unknown, path: string, text?: RegExp): ValidationError {
  try {
    validateResource(d, { file: 't.yaml', index: 0 });
  } catch (e) {
    assert.ok(e instanceof ValidationError, `expected ValidationError, got ${String(e)}`);
    const hit = e.issues.find((i) => i.path === path);
    assert.ok(hit, `no issue at ${path}; issues: ${JSON.stringify(e.issues)}`);
    if (text) assert.match(hit.message, text);
    assert.match(e.message, /t\.yaml document 1/);
    return e;
  }
  assert.fail(`accepted an invalid document at ${path}`);
}

const spec = (r: Resource) => r.spec as Record<string, unknown>;

describe('IPPool', () => {
  it('applies Calico defaults (v4)', () => {
    const s = spec(ok(doc('IPPool', { cidr: '10.65.0.0/16' })));
    assert.deepEqual(s, {
      cidr: '10.65.0.0/16',
      blockSize: 26,
      ipipMode: 'Never',
      vxlanMode: 'Never',
      natOutgoing: false,
      disabled: false,
      disableBGPExport: false,
      nodeSelector: 'all()',
      allowedUses: ['Workload', 'Tunnel'],
      assignmentMode: 'Automatic',
    });
  });
  it('defaults blockSize 122 for IPv6', () => {
    assert.equal(spec(ok(doc('IPPool', { cidr: 'fd00:65::/64' }))).blockSize, 122);
  });
  it('keeps explicit values', () => {
    const s = spec(
      ok(doc('IPPool', { cidr: '10.65.0.0/16', blockSize: 28, vxlanMode: 'CrossSubnet', natOutgoing: true })),
    );
    assert.equal(s.blockSize, 28);
    assert.equal(s.vxlanMode, 'CrossSubnet');
    assert.equal(s.natOutgoing, true);
  });
  it('rejects bad values with field paths', () => {
    bad(doc('IPPool', {}), 'spec.cidr');
    bad(doc('IPPool', { cidr: '10.65.0.1/16' }), 'spec.cidr', /host bits/);
    bad(doc('IPPool', { cidr: 'ten' }), 'spec.cidr');
    bad(doc('IPPool', { cidr: '10.65.0.0/16', blockSize: 19 }), 'spec.blockSize', /20\.\.32/);
    bad(doc('IPPool', { cidr: 'fd00::/64', blockSize: 26 }), 'spec.blockSize', /116\.\.128/);
    bad(doc('IPPool', { cidr: '10.65.0.0/28' }), 'spec.cidr', /blockSize/);
    bad(doc('IPPool', { cidr: '10.65.0.0/16', ipipMode: 'Sometimes' }), 'spec.ipipMode');
    bad(doc('IPPool', { cidr: 'fd00::/64', ipipMode: 'Always' }), 'spec.ipipMode', /IPv4 only/);
    bad(doc('IPPool', { cidr: '10.65.0.0/16', ipipMode: 'Always', vxlanMode: 'Always' }), 'spec.vxlanMode');
    bad(doc('IPPool', { cidr: '10.65.0.0/16', allowedUses: ['Pets'] }), 'spec.allowedUses[0]');
  });
  it('rejects unknown fields instead of dropping them', () => {
    bad(doc('IPPool', { cidr: '10.65.0.0/16', natOutgoin: true }), 'spec.natOutgoin', /unknown field/);
    bad({ ...(doc('IPPool', { cidr: '10.65.0.0/16' }) as object), extra: 1 }, 'extra');
    bad(doc('IPPool', { cidr: '10.65.0.0/16' }, { labelz: {} }), 'metadata.labelz');
  });
  it('rejects a namespace on a cluster-scoped kind and bad names', () => {
    bad(doc('IPPool', { cidr: '10.65.0.0/16' }, { namespace: 'a' }), 'metadata.namespace');
    bad(doc('IPPool', { cidr: '10.65.0.0/16' }, { name: 'Bad_Name' }), 'metadata.name');
    bad(doc('IPPool', { cidr: '10.65.0.0/16' }, { labels: { 'a b': 'c' } }), 'metadata.labels.a b');
  });
});

describe('IPAMConfiguration', () => {
  it('defaults and the singleton name', () => {
    assert.deepEqual(spec(ok(doc('IPAMConfiguration', {}, { name: 'default' }))), {
      strictAffinity: false,
      autoAllocateBlocks: true,
      maxBlocksPerHost: 0,
    });
    bad(doc('IPAMConfiguration', {}, { name: 'other' }), 'metadata.name', /"default"/);
    bad(doc('IPAMConfiguration', { maxBlocksPerHost: -1 }, { name: 'default' }), 'spec.maxBlocksPerHost');
  });
});

describe('Node', () => {
  it('accepts Calico node fields', () => {
    const s = spec(
      ok(
        doc('Node', {
          bgp: { ipv4Address: '192.168.100.10/24', asNumber: 64512, routeReflectorClusterID: '224.0.0.1' },
          ipv4VXLANTunnelAddr: '10.65.0.1',
          orchRefs: [{ nodeName: 'n1', orchestrator: 'k8s' }],
        }),
      ),
    );
    assert.equal((s.bgp as { asNumber: number }).asNumber, 64512);
  });
  it('accepts a status, rejects bad addresses', () => {
    ok({ ...(doc('Node', {}) as object), status: { podCIDRs: ['10.0.0.0/24'] } });
    ok(doc('Node', { bgp: { ipv4Address: '192.168.100.10' } }));
    bad(doc('Node', { bgp: { ipv4Address: '192.168.100.10/33' } }), 'spec.bgp.ipv4Address');
    bad(doc('Node', { bgp: { ipv4Address: 'fd00::1/64' } }), 'spec.bgp.ipv4Address');
    bad(doc('Node', { bgp: { asNumber: 4294967296 } }), 'spec.bgp.asNumber');
    bad(doc('Node', { vxlanTunnelMACAddr: 'zz' }), 'spec.vxlanTunnelMACAddr');
  });
});

describe('BGPConfiguration', () => {
  it('fills defaults into "default" only', () => {
    assert.deepEqual(spec(ok(doc('BGPConfiguration', {}, { name: 'default' }))), {
      logSeverityScreen: 'Info',
      nodeToNodeMeshEnabled: true,
      asNumber: 64512,
      listenPort: 179,
    });
    assert.deepEqual(spec(ok(doc('BGPConfiguration', { listenPort: 1790 }, { name: 'node.n1' }))), {
      listenPort: 1790,
    });
  });
  it('keeps explicit values and reads asdot AS numbers', () => {
    const s = spec(
      ok(doc('BGPConfiguration', { nodeToNodeMeshEnabled: false, asNumber: '1.10' }, { name: 'default' })),
    );
    assert.equal(s.nodeToNodeMeshEnabled, false);
    assert.equal(s.asNumber, 65546);
  });
  it('rejects bad values', () => {
    bad(doc('BGPConfiguration', { listenPort: 0 }), 'spec.listenPort');
    bad(doc('BGPConfiguration', { communities: [{ name: 'a', value: 'x' }] }), 'spec.communities[0].value');
    bad(doc('BGPConfiguration', { serviceClusterIPs: [{ cidr: 'nope' }] }), 'spec.serviceClusterIPs[0].cidr');
    bad(doc('BGPConfiguration', { asNumber: '70000.1' }), 'spec.asNumber');
  });
});

describe('BGPPeer', () => {
  it('accepts peerIP with port and selector peers', () => {
    assert.equal(
      spec(ok(doc('BGPPeer', { peerIP: '10.0.0.1:1790', asNumber: 65001 }))).sourceAddress,
      'UseNodeIP',
    );
    ok(doc('BGPPeer', { peerIP: '[fd00::1]:179', asNumber: 65001, keepaliveTime: '3s', holdTime: '9s' }));
    ok(doc('BGPPeer', { nodeSelector: '!has(rr)', peerSelector: 'has(rr)' }));
  });
  it('rejects contradictions', () => {
    bad(doc('BGPPeer', { peerIP: '10.0.0.1' }), 'spec.asNumber');
    bad(doc('BGPPeer', {}), 'spec.peerIP');
    bad(doc('BGPPeer', { peerIP: '10.0.0.1', asNumber: 1, peerSelector: 'all()' }), 'spec.peerSelector');
    bad(doc('BGPPeer', { node: 'a', nodeSelector: 'all()', peerSelector: 'all()' }), 'spec.nodeSelector');
    bad(doc('BGPPeer', { peerIP: '10.0.0.1:99999', asNumber: 1 }), 'spec.peerIP');
    bad(doc('BGPPeer', { peerIP: '10.0.0.1', asNumber: 1, keepaliveTime: 'soon' }), 'spec.keepaliveTime');
  });
});

describe('WorkloadEndpoint and HostEndpoint', () => {
  const wep = {
    orchestrator: 'cni',
    workload: 'w1',
    node: 'n1',
    endpoint: 'eth0',
    ipNetworks: ['10.65.1.5/32', 'fd00:65::5/128'],
    interfaceName: 'gh3c0a1b2c3d4',
    mac: 'ee:ee:ee:ee:ee:ee',
    profiles: ['kns.default'],
    ports: [{ name: 'http', protocol: 'TCP', port: 80 }],
  };
  it('accepts a workload endpoint (namespaced; default namespace applied by the caller)', () => {
    const r = validateResource(doc('WorkloadEndpoint', wep), {}, { defaultNamespace: 'default' });
    assert.equal(r.metadata.namespace, 'default');
    bad(doc('WorkloadEndpoint', wep), 'metadata.namespace', /namespaced/);
  });
  it('rejects bad workload endpoints', () => {
    bad(doc('WorkloadEndpoint', { ...wep, node: undefined }, { namespace: 'a' }), 'spec.node');
    bad(
      doc('WorkloadEndpoint', { ...wep, ipNetworks: ['10.65.1.5/33'] }, { namespace: 'a' }),
      'spec.ipNetworks[0]',
    );
    bad(
      doc('WorkloadEndpoint', { ...wep, interfaceName: 'a-very-long-interface' }, { namespace: 'a' }),
      'spec.interfaceName',
    );
    bad(
      doc(
        'WorkloadEndpoint',
        { ...wep, ports: [{ name: 'x', protocol: 'TCP', port: 0 }] },
        { namespace: 'a' },
      ),
      'spec.ports[0].port',
    );
  });
  it('host endpoints need an interface or expected IPs', () => {
    ok(doc('HostEndpoint', { node: 'n1', interfaceName: 'eth0', expectedIPs: ['192.168.0.1'] }));
    ok(doc('HostEndpoint', { node: 'n1', expectedIPs: ['192.168.0.1'] }));
    bad(doc('HostEndpoint', { node: 'n1' }), 'spec.interfaceName');
    bad(doc('HostEndpoint', { node: 'n1', expectedIPs: ['x'] }), 'spec.expectedIPs[0]');
  });
});

describe('policies', () => {
  const rule = {
    action: 'Allow',
    protocol: 'TCP',
    source: { selector: "app == 'web'" },
    destination: { ports: [80, '8000:8080', 'http'] },
  };
  it('GlobalNetworkPolicy: tier default and Calico types defaulting', () => {
    const s = spec(ok(doc('GlobalNetworkPolicy', { selector: 'all()', ingress: [rule] })));
    assert.equal(s.tier, 'default');
    assert.deepEqual(s.types, ['Ingress']);
    assert.deepEqual(spec(ok(doc('GlobalNetworkPolicy', { egress: [rule] }))).types, ['Egress']);
    assert.deepEqual(spec(ok(doc('GlobalNetworkPolicy', { ingress: [rule], egress: [rule] }))).types, [
      'Ingress',
      'Egress',
    ]);
    assert.deepEqual(spec(ok(doc('GlobalNetworkPolicy', {}))).types, ['Ingress']);
    assert.deepEqual(spec(ok(doc('GlobalNetworkPolicy', { types: ['Egress'] }))).types, ['Egress']);
  });
  it('NetworkPolicy is namespaced and validates rules', () => {
    ok(doc('NetworkPolicy', { order: 100, ingress: [rule] }, { namespace: 'prod' }));
    bad(
      doc('NetworkPolicy', { ingress: [{ ...rule, action: 'Accept' }] }, { namespace: 'p' }),
      'spec.ingress[0].action',
    );
    bad(
      doc(
        'NetworkPolicy',
        { ingress: [{ action: 'Allow', destination: { ports: [80] } }] },
        { namespace: 'p' },
      ),
      'spec.ingress[0].destination.ports',
      /protocol/,
    );
    bad(
      doc('NetworkPolicy', { ingress: [{ ...rule, destination: { ports: ['90:80'] } }] }, { namespace: 'p' }),
      'spec.ingress[0].destination.ports[0]',
    );
    bad(
      doc(
        'NetworkPolicy',
        { egress: [{ action: 'Deny', destination: { nets: ['10.0.0.0/33'] } }] },
        { namespace: 'p' },
      ),
      'spec.egress[0].destination.nets[0]',
    );
    bad(
      doc('NetworkPolicy', { ingress: [{ action: 'Allow', icmp: { type: 8 } }] }, { namespace: 'p' }),
      'spec.ingress[0].icmp',
    );
    bad(
      doc('NetworkPolicy', { ingress: [{ ...rule, sauce: {} }] }, { namespace: 'p' }),
      'spec.ingress[0].sauce',
    );
  });
  it('GlobalNetworkPolicy host flags', () => {
    ok(doc('GlobalNetworkPolicy', { preDNAT: true, applyOnForward: true, ingress: [rule] }));
    bad(doc('GlobalNetworkPolicy', { preDNAT: true, ingress: [rule] }), 'spec.applyOnForward');
    bad(
      doc('GlobalNetworkPolicy', { doNotTrack: true, preDNAT: true, applyOnForward: true }),
      'spec.preDNAT',
    );
    bad(doc('GlobalNetworkPolicy', { preDNAT: true, applyOnForward: true, egress: [rule] }), 'spec.egress');
  });
  it('Profile, Tier, NetworkSet, GlobalNetworkSet', () => {
    ok(doc('Profile', { ingress: [{ action: 'Allow' }], labelsToApply: { team: 'a' } }));
    assert.equal(spec(ok(doc('Tier', { order: 100 }))).defaultAction, 'Deny');
    bad(doc('Tier', { defaultAction: 'Allow' }), 'spec.defaultAction');
    assert.deepEqual(spec(ok(doc('NetworkSet', {}, { namespace: 'a' }))).nets, []);
    ok(doc('GlobalNetworkSet', { nets: ['10.0.0.0/8', 'fd00::/8'] }));
    bad(doc('GlobalNetworkSet', { nets: ['10.0.0.1/8'] }), 'spec.nets[0]');
  });
});

describe('FelixConfiguration', () => {
  it('fills Felix defaults (with our gh prefix) into "default" only', () => {
    const s = spec(ok(doc('FelixConfiguration', { vxlanEnabled: true }, { name: 'default' })));
    assert.equal(s.interfacePrefix, 'gh');
    assert.equal(s.routeRefreshInterval, '90s');
    assert.equal(s.vxlanEnabled, true);
    assert.deepEqual(spec(ok(doc('FelixConfiguration', { healthPort: 9199 }, { name: 'node.n1' }))), {
      healthPort: 9199,
    });
  });
  it('merges defaults < default < node', () => {
    const m = mergeFelixConfiguration({ vxlanEnabled: true, healthPort: 1 }, { healthPort: 2 });
    assert.equal(m.vxlanEnabled, true);
    assert.equal(m.healthPort, 2);
    assert.equal(m.interfacePrefix, FELIX_CONFIGURATION_DEFAULTS.interfacePrefix);
    assert.equal(durationMs(m.routeRefreshInterval), 90_000);
    assert.equal(durationMs('1m30s'), 90_000);
    assert.equal(durationMs('250ms'), 250);
  });
  it('rejects bad values', () => {
    bad(doc('FelixConfiguration', { interfacePrefix: 'Cali-' }), 'spec.interfacePrefix');
    bad(doc('FelixConfiguration', { routeRefreshInterval: '90' }), 'spec.routeRefreshInterval');
    bad(doc('FelixConfiguration', { iptablesBackend: 'nft' }), 'spec.iptablesBackend', /unknown field/);
  });
});

describe('Kubernetes kinds', () => {
  it('v1 Namespace with labels, spec optional', () => {
    const r = ok({
      apiVersion: 'v1',
      kind: 'Namespace',
      metadata: { name: 'prod', labels: { env: 'prod' } },
    });
    assert.deepEqual(r.spec, {});
    assert.equal(r.apiVersion, 'v1');
    bad(
      { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'prod', namespace: 'x' } },
      'metadata.namespace',
    );
  });
  it('networking.k8s.io/v1 NetworkPolicy: port protocol defaults to TCP', () => {
    const r = ok(
      doc(
        'NetworkPolicy',
        {
          podSelector: { matchLabels: { app: 'db' } },
          policyTypes: ['Ingress'],
          ingress: [
            {
              from: [
                {
                  namespaceSelector: { matchExpressions: [{ key: 'env', operator: 'In', values: ['prod'] }] },
                },
              ],
              ports: [{ port: 5432 }],
            },
          ],
        },
        { namespace: 'prod' },
        'networking.k8s.io/v1',
      ),
    );
    assert.equal(r.kind, 'NetworkPolicy');
    assert.equal(r.apiVersion, 'networking.k8s.io/v1');
    const ingress = spec(r).ingress as { ports: { protocol: string }[] }[];
    assert.equal(ingress[0]!.ports[0]!.protocol, 'TCP');
  });
  it('rejects bad k8s policies', () => {
    const k8s = (s: unknown) => doc('NetworkPolicy', s, { namespace: 'a' }, 'networking.k8s.io/v1');
    bad(k8s({}), 'spec.podSelector');
    bad(
      k8s({ podSelector: {}, ingress: [{ ports: [{ port: 80, endPort: 70 }] }] }),
      'spec.ingress[0].ports[0].endPort',
    );
    bad(
      k8s({ podSelector: { matchExpressions: [{ key: 'a', operator: 'In' }] } }),
      'spec.podSelector.matchExpressions[0].values',
    );
    bad(
      k8s({ podSelector: {}, ingress: [{ from: [{ ipBlock: { cidr: '10.0.0.0/40' } }] }] }),
      'spec.ingress[0].from[0].ipBlock.cidr',
    );
  });
});

describe('document-level errors', () => {
  it('unknown kinds and apiVersions', () => {
    bad({ apiVersion: 'v1', kind: 'Pod', metadata: { name: 'a' } }, 'kind', /unknown kind "Pod"/);
    bad({ apiVersion: 'projectcalico.org/v2', kind: 'IPPool', metadata: { name: 'a' } }, 'kind');
    bad({ kind: 'IPPool', metadata: { name: 'a' } }, 'apiVersion');
  });
  it('names the document, kind and name in the message', () => {
    const e = bad(doc('IPPool', { cidr: 'x' }, { name: 'p1' }), 'spec.cidr');
    assert.match(e.message, /^t\.yaml document 1 \(IPPool p1\): spec\.cidr: expected a CIDR/);
  });
  it('status only where the kind has one', () => {
    bad({ ...(doc('Tier', {}) as object), status: {} }, 'status');
  });
});

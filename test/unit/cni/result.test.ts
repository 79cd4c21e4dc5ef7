import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { buildEndpoint, endpointName, identityFrom, workloadIdOf } from '../../../cni/endpoint.js';
import { CniCode, CniError } from '../../../cni/errors.js';
import { parseResult, toVersion } from '../../../cni/result.js';
import { hostVethName } from '../../../lib/constants.js';
import { validateResource } from '../../../store/validate.js';

const result = {
  cniVersion: '1.1.0',
  interfaces: [
    { name: 'gh0', mac: 'ee:ee:ee:ee:ee:ee', mtu: 1500 },
    { name: 'eth0', mac: '02:00:00:00:00:01', sandbox: '/n' },
  ],
  ips: [
    { address: '10.65.0.1/32', gateway: '169.254.1.1', interface: 1 },
    { address: 'fd00::1/128', interface: 1 },
  ],
  routes: [{ dst: '0.0.0.0/0' }],
};

describe('cni results', () => {
  it('renders 1.1.0 with interface mtu and 1.0.0 without', () => {
    const r11 = toVersion(result, '1.1.0') as { interfaces: { mtu?: number }[] };
    assert.equal(r11.interfaces[0]!.mtu, 1500);
    const r10 = toVersion(result, '1.0.0') as {
      interfaces: { mtu?: number }[];
      ips: Record<string, unknown>[];
    };
    assert.equal(r10.interfaces[0]!.mtu, undefined);
    assert.equal(r10.ips[0]!.version, undefined);
  });

  it('adds ips[].version for 0.4.0 and 0.3.1', () => {
    for (const v of ['0.4.0', '0.3.1'] as const) {
      const r = toVersion(result, v) as { cniVersion: string; ips: { version: string; address: string }[] };
      assert.equal(r.cniVersion, v);
      assert.deepEqual(
        r.ips.map((i) => [i.version, i.address]),
        [
          ['4', '10.65.0.1/32'],
          ['6', 'fd00::1/128'],
        ],
      );
    }
  });

  it('reads results of older versions (a delegated plugin answering 0.4.0)', () => {
    const r = parseResult({
      cniVersion: '0.4.0',
      ips: [{ version: '4', address: '10.1.0.2/24', gateway: '10.1.0.1' }],
      dns: {},
    });
    assert.deepEqual(r.ips, [{ address: '10.1.0.2/24', gateway: '10.1.0.1' }]);
    assert.throws(
      () => parseResult({ cniVersion: '0.2.0', ip4: {} }),
      (e: unknown) => e instanceof CniError && e.code === CniCode.IncompatibleVersion,
    );
    assert.throws(() => parseResult('x'), /not a JSON object/);
  });

  it('renders error objects', () => {
    const e = new CniError(CniCode.InvalidNetworkConfig, 'bad mtu', 'mtu=10');
    assert.deepEqual(e.toJSON('1.0.0'), { cniVersion: '1.0.0', code: 7, msg: 'bad mtu', details: 'mtu=10' });
    assert.deepEqual(new CniError(11, 'later').toJSON('1.1.0'), {
      cniVersion: '1.1.0',
      code: 11,
      msg: 'later',
    });
  });
});

describe('cni workload endpoint', () => {
  it('names endpoints and veths like Calico', () => {
    const k8s = identityFrom('node-1', 'c0ffee', 'eth0', {
      K8S_POD_NAMESPACE: 'prod',
      K8S_POD_NAME: 'web-0',
    });
    assert.equal(endpointName(k8s), 'node--1-k8s-web--0-eth0');
    assert.equal(workloadIdOf(k8s), 'prod.web-0');
    // Calico: cali + sha1("prod.web-0")[:11]; ours: gh + the same 11 hex.
    assert.equal(hostVethName('prod.web-0'), 'ghaa960f0d82e');
    assert.equal(hostVethName('prod.web-0').length, 13);
    const cni = identityFrom('n1', 'abc123', 'net1', {});
    assert.equal(endpointName(cni), 'n1-cni-abc123-net1');
    assert.equal(cni.namespace, 'default');
  });

  it('builds the endpoint: labels, profile, named ports only', () => {
    const id = identityFrom('n1', 'c1', 'eth0', { K8S_POD_NAMESPACE: 'prod', K8S_POD_NAME: 'web-0' });
    const wep = buildEndpoint({
      id,
      network: 'gnet',
      hostIf: 'gh123',
      mac: '02:00:00:00:00:01',
      ipNetworks: ['10.65.0.1/32'],
      labels: [{ key: 'app', value: 'web' }],
      portMappings: [
        { hostPort: 8080, containerPort: 80, protocol: 'tcp', name: 'http' },
        { hostPort: 5353, containerPort: 53, protocol: 'udp' },
      ],
    });
    assert.equal(wep.metadata.namespace, 'prod');
    assert.equal(wep.metadata.labels.app, 'web');
    assert.equal(wep.metadata.labels['projectcalico.org/namespace'], 'prod');
    assert.deepEqual(wep.spec.profiles, ['kns.prod']);
    assert.equal(wep.spec.pod, 'web-0');
    assert.equal(wep.spec.workload, undefined);
    assert.deepEqual(wep.spec.ports, [{ name: 'http', protocol: 'TCP', port: 80, hostPort: 8080 }]);
    assert.equal(wep.spec.interfaceName, 'gh123');
    // What the plugin writes is a valid store resource (the store's own schema).
    const valid = validateResource(JSON.parse(JSON.stringify(wep)));
    assert.equal(valid.metadata.name, 'n1-k8s-web--0-eth0');
  });
});

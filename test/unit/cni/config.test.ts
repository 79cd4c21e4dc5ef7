import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { checkIfName, parseCniArgs, parseEnv, parseNetConf, versionAtLeast } from '../../../cni/config.js';
import { CniCode, CniError } from '../../../cni/errors.js';

const code = (c: number) => (e: unknown) => e instanceof CniError && e.code === c;

describe('cni config parsing', () => {
  it('parses CNI_ARGS and rejects malformed ones', () => {
    assert.deepEqual(parseCniArgs('IgnoreUnknown=1;K8S_POD_NAMESPACE=ns1;K8S_POD_NAME=web-0'), {
      IgnoreUnknown: '1',
      K8S_POD_NAMESPACE: 'ns1',
      K8S_POD_NAME: 'web-0',
    });
    assert.deepEqual(parseCniArgs(undefined), {});
    assert.throws(() => parseCniArgs('novalue'), code(CniCode.InvalidEnvironment));
    assert.throws(() => parseCniArgs('=x'), code(CniCode.InvalidEnvironment));
    assert.throws(() => parseCniArgs('bad key=1'), /invalid key/);
  });

  it('checks interface names', () => {
    checkIfName('eth0');
    assert.throws(() => checkIfName('a-very-long-ifname'), /longer than 15/);
    assert.throws(() => checkIfName('eth/0'), /not allowed/);
    assert.throws(() => checkIfName(''), /empty/);
    assert.throws(() => checkIfName('..'), code(CniCode.InvalidEnvironment));
  });

  it('parses the environment per command', () => {
    const base = {
      CNI_CONTAINERID: 'abc',
      CNI_NETNS: '/var/run/netns/x',
      CNI_IFNAME: 'eth0',
      CNI_PATH: '/a:/b',
    };
    const e = parseEnv({ ...base, CNI_COMMAND: 'ADD', CNI_ARGS: 'K8S_POD_NAME=p' });
    assert.equal(e.command, 'ADD');
    assert.deepEqual(e.path, ['/a', '/b']);
    assert.equal(e.args.K8S_POD_NAME, 'p');
    assert.throws(() => parseEnv({ ...base, CNI_COMMAND: 'FOO' }), /unknown CNI_COMMAND/);
    assert.throws(() => parseEnv({ ...base, CNI_COMMAND: 'ADD', CNI_NETNS: '' }), /CNI_NETNS/);
    assert.doesNotThrow(
      () => parseEnv({ ...base, CNI_COMMAND: 'DEL', CNI_NETNS: '' }),
      'DEL may come without a netns',
    );
    assert.throws(
      () => parseEnv({ ...base, CNI_COMMAND: 'ADD', CNI_CONTAINERID: 'a/b' }),
      code(CniCode.InvalidEnvironment),
    );
    assert.equal(parseEnv({ CNI_COMMAND: 'VERSION' }).command, 'VERSION');
    assert.equal(parseEnv({ CNI_COMMAND: 'GC' }).command, 'GC');
  });

  it('parses network configurations and rejects bad ones with the right codes', () => {
    const ok = {
      cniVersion: '1.1.0',
      name: 'gnet',
      type: 'gingham-cni',
      ipam: { type: 'gingham-ipam' },
      mtu: 1450,
    };
    assert.equal(parseNetConf(JSON.stringify(ok)).mtu, 1450);
    assert.throws(() => parseNetConf('{not json'), code(CniCode.DecodeFailure));
    assert.throws(() => parseNetConf('[]'), code(CniCode.DecodeFailure));
    assert.throws(
      () => parseNetConf(JSON.stringify({ ...ok, cniVersion: '0.2.0' })),
      code(CniCode.IncompatibleVersion),
    );
    assert.throws(
      () => parseNetConf(JSON.stringify({ ...ok, name: '' })),
      code(CniCode.InvalidNetworkConfig),
    );
    assert.throws(() => parseNetConf(JSON.stringify({ ...ok, mtu: 10 })), /mtu/);
    assert.throws(() => parseNetConf(JSON.stringify({ ...ok, ipam: { type: '../x' } })), /ipam.type/);
    assert.throws(
      () => parseNetConf(JSON.stringify({ ...ok, args: { cni: { labels: [{ key: 1 }] } } })),
      /labels/,
    );
    assert.throws(
      () => parseNetConf(JSON.stringify({ ...ok, runtimeConfig: { portMappings: [{ hostPort: 'x' }] } })),
      /portMappings/,
    );
  });

  it('compares versions', () => {
    assert.ok(versionAtLeast('1.1.0', '1.0.0'));
    assert.ok(versionAtLeast('0.4.0', '0.4.0'));
    assert.ok(!versionAtLeast('0.3.1', '0.4.0'));
  });
});

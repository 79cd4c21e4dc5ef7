// IPAM against an etcd that serves https only and requires a client certificate (as a production
// etcd for Calico usually does): the JSON-gateway client, the gingham-ipam executable with the
// network configuration's TLS keys or the ETCD_* environment, and `gingham ipam show`.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { Allocator } from '../../../ipam/allocator.js';
import { EtcdLite, EtcdUnavailableError, etcdTlsFromEnv, readEtcdTls } from '../../../ipam/etcd-lite.js';
import { resourceKeyPath } from '../../../store/kinds.js';
import { type EtcdInstance, etcdTlsEnv, startEtcd } from '../../harness/etcd.js';
import { CLI, cni, ensureBuilt, IPAM_PLUGIN, nodeResource, poolResource } from '../cni/helpers.js';

describe('ipam over an https etcd with client certificates', { timeout: 120_000 }, () => {
  let etcd: EtcdInstance;
  let kv: EtcdLite;
  let dir: string;

  before(async () => {
    ensureBuilt();
    dir = mkdtempSync(join(tmpdir(), 'gingham-ipam-tls-'));
    etcd = await startEtcd({ tls: true });
    kv = new EtcdLite([etcd.endpoint], 5000, etcdTlsFromEnv(etcdTlsEnv(etcd.tls!)));
    await kv.txn(
      [],
      [
        {
          put: resourceKeyPath('IPPool', 'tls4'),
          value: poolResource('tls4', { cidr: '10.83.0.0/24', blockSize: 28 }),
        },
        { put: resourceKeyPath('Node', 'tls-node'), value: nodeResource('tls-node') },
      ],
    );
  });
  after(async () => {
    kv?.close();
    await etcd?.destroy();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('the JSON-gateway client allocates and releases through TLS', async () => {
    const alloc = new Allocator(kv, { node: 'tls-node' });
    const { ips } = await alloc.assign({ handleId: 'tls-h1', num4: 1, num6: 0 });
    assert.match(ips[0]!, /^10\.83\.0\.\d+$/);
    assert.deepEqual(await alloc.addressesOf('tls-h1'), ips);
    assert.deepEqual(await alloc.releaseHandle('tls-h1'), ips);
  });

  it('without a client certificate etcd refuses, and the error names the endpoint', async () => {
    const noCert = new EtcdLite(
      [etcd.endpoint],
      3000,
      readEtcdTls({ ca: { setting: 'ca', path: etcd.tls!.ca } }),
    );
    const systemCas = new EtcdLite([etcd.endpoint], 3000);
    try {
      for (const c of [noCert, systemCas])
        await assert.rejects(
          c.get('/calico/x'),
          (e: unknown) => e instanceof EtcdUnavailableError && e.message.includes(etcd.endpoint),
        );
    } finally {
      noCert.close();
      systemCas.close();
    }
  });

  const conf = (extra: Record<string, unknown>) => ({
    cniVersion: '1.0.0',
    name: 'tlsnet',
    type: 'x',
    nodename: 'tls-node',
    etcd_endpoints: etcd.endpoint,
    ipam: { type: 'gingham-ipam' },
    ...extra,
  });
  const call = (command: string, id: string, c: unknown, env: Record<string, string> = {}) =>
    cni({ bin: IPAM_PLUGIN, command, containerId: id, netns: '/x', ifname: 'eth0', conf: c, env });

  it('gingham-ipam: TLS files from the network configuration, or from the ETCD_* environment', async () => {
    const t = etcd.tls!;
    const keys = { etcd_ca_cert_file: t.ca, etcd_cert_file: t.cert, etcd_key_file: t.key };
    const a = await call('ADD', 'tls-c1', conf(keys));
    assert.equal(a.code, 0, a.stdout + a.stderr);
    assert.match(a.json.ips[0].address, /^10\.83\.0\.\d+\/32$/);
    // The keys may sit in the ipam section too (a foreign main plugin's configuration).
    const b = await call('ADD', 'tls-c2', conf({ ipam: { type: 'gingham-ipam', ...keys } }));
    assert.equal(b.code, 0, b.stdout + b.stderr);
    const env = etcdTlsEnv(t);
    const c = await call('ADD', 'tls-c3', conf({}), env);
    assert.equal(c.code, 0, c.stdout + c.stderr);
    assert.equal(new Set([a, b, c].map((r) => r.json.ips[0].address)).size, 3);

    // `gingham ipam show` reads the same environment.
    const show = await promisify(execFile)(process.execPath, [CLI, 'ipam', 'show', '-o', 'json'], {
      env: { ...process.env, ETCD_ENDPOINTS: etcd.endpoint, ...env },
    });
    const pool = (JSON.parse(show.stdout) as { pools: { name: string; inUse: number }[] }).pools.find(
      (p) => p.name === 'tls4',
    );
    assert.equal(pool?.inUse, 3);

    for (const id of ['tls-c1', 'tls-c2', 'tls-c3']) {
      const d = await call('DEL', id, conf({}), env);
      assert.equal(d.code, 0, d.stdout + d.stderr);
    }
    const after = await promisify(execFile)(process.execPath, [CLI, 'ipam', 'check', '-o', 'json'], {
      env: { ...process.env, ETCD_ENDPOINTS: etcd.endpoint, ...env },
    });
    assert.equal((JSON.parse(after.stdout) as { ok: boolean }).ok, true, after.stdout);
  });

  it('unusable TLS settings: code 7 naming the key or variable and the path; nothing allocated', async () => {
    const t = etcd.tls!;
    const notPem = join(dir, 'not-pem.crt');
    writeFileSync(notPem, 'hello\n');
    const cases: [Record<string, unknown>, Record<string, string>, RegExp][] = [
      [
        { etcd_ca_cert_file: join(dir, 'missing.crt') },
        {},
        /etcd_ca_cert_file \(.*missing\.crt\): cannot use it: ENOENT/,
      ],
      [{ etcd_cert_file: t.cert }, {}, /etcd_cert_file .*needs its key/],
      [{ etcd_ca_cert_file: notPem }, {}, /etcd_ca_cert_file .*not-pem\.crt.*not a PEM file/],
      [{ etcd_ca_cert_file: 'relative.crt' }, {}, /"etcd_ca_cert_file" must be an absolute file path/],
      [
        {},
        { ...etcdTlsEnv(t), ETCD_KEY_FILE: join(dir, 'nokey') },
        /ETCD_KEY_FILE \(.*nokey\): cannot use it: ENOENT/,
      ],
    ];
    for (const [extra, env, msg] of cases) {
      const r = await call('ADD', 'tls-bad', conf(extra), env);
      assert.equal(r.code, 1, r.stdout + r.stderr);
      assert.equal(r.json.code, 7);
      assert.match(r.json.msg, msg);
    }
    assert.deepEqual(await new Allocator(kv, { node: 'tls-node' }).addressesOf('tlsnet.tls-bad.eth0'), []);
  });
});

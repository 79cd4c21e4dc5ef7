// TLS client options: a real etcd serving HTTPS with client-certificate auth, reached through
// ETCD_CA_CERT_FILE / ETCD_CERT_FILE / ETCD_KEY_FILE as the store and the CLI read them.
import assert from 'node:assert/strict';
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { EtcdUnavailableError, openStore } from '../../../store/index.js';
import { freePort } from '../../harness/etcd.js';

function openssl(dir: string, args: string[]): void {
  execFileSync('openssl', args, { cwd: dir, stdio: 'ignore' });
}

/** A CA, a server certificate for 127.0.0.1 and a client certificate, all signed by the CA. */
function makeCerts(dir: string): void {
  openssl(dir, [
    'req',
    '-x509',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:prime256v1',
    '-nodes',
    '-days',
    '1',
    '-subj',
    '/CN=gingham-test-ca',
    '-keyout',
    'ca.key',
    '-out',
    'ca.crt',
  ]);
  writeFileSync(
    join(dir, 'server.ext'),
    'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n',
  );
  writeFileSync(join(dir, 'client.ext'), 'extendedKeyUsage=clientAuth\n');
  for (const who of ['server', 'client']) {
    openssl(dir, [
      'req',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-subj',
      `/CN=${who}`,
      '-keyout',
      `${who}.key`,
      '-out',
      `${who}.csr`,
    ]);
    openssl(dir, [
      'x509',
      '-req',
      '-in',
      `${who}.csr`,
      '-CA',
      'ca.crt',
      '-CAkey',
      'ca.key',
      '-CAcreateserial',
      '-days',
      '1',
      '-extfile',
      `${who}.ext`,
      '-out',
      `${who}.crt`,
    ]);
  }
}

describe('store over TLS', () => {
  let dir: string;
  let etcd: ChildProcess | undefined;
  let endpoint: string;
  const saved: Record<string, string | undefined> = {
    ETCD_CA_CERT_FILE: process.env.ETCD_CA_CERT_FILE,
    ETCD_CERT_FILE: process.env.ETCD_CERT_FILE,
    ETCD_KEY_FILE: process.env.ETCD_KEY_FILE,
  };

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'gingham-tls-'));
    makeCerts(dir);
    const port = await freePort();
    const peer = await freePort();
    endpoint = `https://127.0.0.1:${port}`;
    etcd = spawn(
      'etcd',
      [
        '--name',
        'tls',
        '--data-dir',
        join(dir, 'data'),
        '--listen-client-urls',
        endpoint,
        '--advertise-client-urls',
        endpoint,
        '--listen-peer-urls',
        `http://127.0.0.1:${peer}`,
        '--initial-advertise-peer-urls',
        `http://127.0.0.1:${peer}`,
        '--initial-cluster',
        `tls=http://127.0.0.1:${peer}`,
        '--cert-file',
        join(dir, 'server.crt'),
        '--key-file',
        join(dir, 'server.key'),
        '--trusted-ca-file',
        join(dir, 'ca.crt'),
        '--client-cert-auth',
        '--log-level',
        'error',
      ],
      { stdio: 'ignore' },
    );
    // Never leave it behind, even if the run is aborted.
    process.on('exit', () => etcd?.kill('SIGKILL'));
  });
  after(async () => {
    const p = etcd;
    if (p && p.exitCode === null && p.signalCode === null) {
      await new Promise<void>((resolve) => {
        p.once('exit', () => resolve());
        p.kill('SIGTERM');
      });
    }
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('connects with the certificates named in the environment', async () => {
    process.env.ETCD_CA_CERT_FILE = join(dir, 'ca.crt');
    process.env.ETCD_CERT_FILE = join(dir, 'client.crt');
    process.env.ETCD_KEY_FILE = join(dir, 'client.key');
    const store = await openStore({ endpoints: [endpoint], unavailableRetryMs: 10_000 });
    try {
      // etcd may still be starting: the store's retry window rides over that.
      const r = await store.create({
        apiVersion: 'projectcalico.org/v3',
        kind: 'Tier',
        metadata: { name: 'tls' },
        spec: {},
      });
      assert.equal((await store.get('Tier', 'tls')).metadata.resourceVersion, r.metadata.resourceVersion);
    } finally {
      await store.close();
    }
  });

  it('without a client certificate the server refuses, and the error says where', async () => {
    delete process.env.ETCD_CERT_FILE;
    delete process.env.ETCD_KEY_FILE;
    const store = await openStore({
      endpoints: [endpoint],
      caFile: join(dir, 'ca.crt'),
      unavailableRetryMs: 500,
    });
    try {
      await assert.rejects(
        store.get('Tier', 'tls'),
        (e: unknown) => e instanceof EtcdUnavailableError && e.message.includes(endpoint),
      );
    } finally {
      await store.close();
    }
  });
});

// TLS client options: a real etcd serving HTTPS with client-certificate auth, reached through
// ETCD_CA_CERT_FILE / ETCD_CERT_FILE / ETCD_KEY_FILE as the store and the CLI read them.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { EtcdUnavailableError, openStore } from '../../../store/index.js';
import { type EtcdInstance, etcdTlsEnv, startEtcd } from '../../harness/etcd.js';

describe('store over TLS', () => {
  let etcd: EtcdInstance;
  const saved: Record<string, string | undefined> = {
    ETCD_CA_CERT_FILE: process.env.ETCD_CA_CERT_FILE,
    ETCD_CERT_FILE: process.env.ETCD_CERT_FILE,
    ETCD_KEY_FILE: process.env.ETCD_KEY_FILE,
  };

  before(async () => {
    etcd = await startEtcd({ tls: true });
  });
  after(async () => {
    await etcd?.destroy();
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  });

  it('connects with the certificates named in the environment', async () => {
    Object.assign(process.env, etcdTlsEnv(etcd.tls!));
    const store = await openStore({ endpoints: [etcd.endpoint], unavailableRetryMs: 10_000 });
    try {
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
      endpoints: [etcd.endpoint],
      caFile: etcd.tls!.ca,
      unavailableRetryMs: 500,
    });
    try {
      await assert.rejects(
        store.get('Tier', 'tls'),
        (e: unknown) => e instanceof EtcdUnavailableError && e.message.includes(etcd.endpoint),
      );
    } finally {
      await store.close();
    }
  });
});

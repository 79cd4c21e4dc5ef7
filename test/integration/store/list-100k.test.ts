// 100,000 workload endpoints (~40 MB of JSON, ten times etcd's 4 MiB gRPC message limit) list
// correctly through paged range reads at one revision.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Resource } from '../../../store/api.js';
import { type EtcdStore, openStore, resourceKeyPath } from '../../../store/index.js';
import { type EtcdInstance, startEtcd } from '../../harness/etcd.js';

const N = 100_000;
const NAMESPACES = 4;
/** etcd's default --max-txn-ops. */
const OPS_PER_TXN = 128;

function wep(i: number): Resource {
  const ns = `ns${i % NAMESPACES}`;
  const name = `node${i % 100}-cni-${i.toString(16).padStart(12, '0')}-eth0`;
  return {
    apiVersion: 'projectcalico.org/v3',
    kind: 'WorkloadEndpoint',
    metadata: { name, namespace: ns, labels: { app: `app${i % 50}`, tier: 'web' }, uid: `uid-${i}` },
    spec: {
      orchestrator: 'cni',
      workload: `w${i}`,
      node: `node${i % 100}`,
      endpoint: 'eth0',
      ipNetworks: [`10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}/32`],
      interfaceName: `gh${i.toString(16).padStart(11, '0')}`,
      profiles: [`kns.${ns}`],
    },
  };
}

describe('list of 100k objects', () => {
  let etcd: EtcdInstance;
  let store: EtcdStore;
  let bytes = 0;
  before(async () => {
    etcd = await startEtcd();
    store = await openStore({ endpoints: [etcd.endpoint] });
    // Bulk load with multi-put transactions (setup only: the store writes one object per txn).
    const batches: Buffer[][][] = [];
    for (let i = 0; i < N; i += OPS_PER_TXN) {
      const batch: Buffer[][] = [];
      for (let j = i; j < Math.min(N, i + OPS_PER_TXN); j++) {
        const r = wep(j);
        const value = Buffer.from(JSON.stringify(r));
        bytes += value.length;
        batch.push([
          Buffer.from(resourceKeyPath('WorkloadEndpoint', r.metadata.name, r.metadata.namespace)),
          value,
        ]);
      }
      batches.push(batch);
    }
    let next = 0;
    await Promise.all(
      Array.from({ length: 8 }, async () => {
        while (next < batches.length) {
          const batch = batches[next++]!;
          await store.client.kv.txn({
            success: batch.map(([key, value]) => ({ request_put: { key, value } })),
          });
        }
      }),
    );
  });
  after(async () => {
    await store?.close();
    await etcd?.destroy();
  });

  it('lists all of them at one revision, in pages', async () => {
    assert.ok(
      bytes > 8 * 4 * 1024 * 1024,
      `test data is ${bytes} bytes, must exceed one gRPC message by far`,
    );
    const t0 = Date.now();
    const all = await store.list('WorkloadEndpoint');
    const ms = Date.now() - t0;
    assert.equal(all.items.length, N);
    const names = new Set(all.items.map((r) => `${r.metadata.namespace}/${r.metadata.name}`));
    assert.equal(names.size, N);
    assert.ok(
      all.items.every(
        (r) => r.metadata.resourceVersion && BigInt(r.metadata.resourceVersion) <= all.revision,
      ),
    );
    process.stdout.write(`# listed ${N} objects (${(bytes / 1e6).toFixed(1)} MB) in ${ms} ms\n`);
  });

  it('lists one namespace', async () => {
    const one = await store.list('WorkloadEndpoint', { namespace: 'ns1', pageSize: 5000 });
    assert.equal(one.items.length, N / NAMESPACES);
    assert.ok(one.items.every((r) => r.metadata.namespace === 'ns1'));
  });
});

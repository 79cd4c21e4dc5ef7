// The store watch as the agent uses it (store.watch(..., { previous: false })) against a real etcd:
// a large snapshot arrives page by page (several onEvents calls before onInSync, so 100k endpoints
// are never all in memory at once), and deletes found by a resync carry no previous value (none is
// kept) while the default mode still delivers it.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { ResourceEvent } from '../../../store/api.js';
import { type EtcdStore, openStore } from '../../../store/index.js';
import { resourceKeyPath } from '../../../store/kinds.js';
import { type EtcdInstance, startEtcd } from '../../harness/etcd.js';

const N = 2500;
const NS = 'watchpages';

function wep(i: number): [string, string] {
  const name = `w${i}`;
  return [
    resourceKeyPath('WorkloadEndpoint', name, NS),
    JSON.stringify({
      apiVersion: 'projectcalico.org/v3',
      kind: 'WorkloadEndpoint',
      metadata: { name, namespace: NS },
      spec: { node: `n${i % 7}`, interfaceName: `gh${i}`, ipNetworks: [`10.70.${i >> 8}.${i & 255}/32`] },
    }),
  ];
}

describe('store watch, the agent’s way: paged snapshot, no retained values', { timeout: 60_000 }, () => {
  let etcd: EtcdInstance;
  let store: EtcdStore;
  before(async () => {
    etcd = await startEtcd();
    store = await openStore({ endpoints: [etcd.endpoint] });
    for (let i = 0; i < N; i += 100) {
      const ops = Array.from({ length: Math.min(100, N - i) }, (_, j) => wep(i + j));
      await store.client.kv.txn({
        success: ops.map(([k, v]) => ({ request_put: { key: Buffer.from(k), value: Buffer.from(v) } })),
      });
    }
  });
  after(async () => {
    await store?.close();
    await etcd?.destroy();
  });

  it('delivers a large snapshot in pages, all before in-sync, each key once', async () => {
    const batches: number[] = [];
    const names = new Set<string>();
    let syncedAfter = -1;
    const h = store.watch(
      ['WorkloadEndpoint'],
      {
        onEvents: (es) => {
          batches.push(es.length);
          for (const e of es) if (e.type === 'added') names.add(e.resource.metadata.name);
        },
        onInSync: () => {
          syncedAfter = batches.length;
        },
      },
      { previous: false },
    );
    try {
      const deadline = Date.now() + 20000;
      while (syncedAfter < 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      assert.ok(syncedAfter >= 0, 'in sync');
      assert.equal(names.size, N);
      assert.equal(
        batches.reduce((a, b) => a + b, 0),
        N,
      );
      // The default page is 1000 keys: at least three batches, none larger than a page.
      assert.ok(batches.length >= 3, `batches: ${batches.join(',')}`);
      assert.ok(Math.max(...batches) <= 1000, `batches: ${batches.join(',')}`);
      assert.equal(syncedAfter, batches.length, 'every page arrived before in-sync');
    } finally {
      await h.close();
    }
  });

  for (const previous of [false, true]) {
    it(`a resync after compaction emits the deletes it finds, previous ${previous ? 'delivered' : 'null'}`, async () => {
      const realRange = store.rangePrefixes.bind(store);
      let hooked = false;
      // Between the first listing and the start of the etcd watch: delete two keys and compact
      // past the listing's revision, so the watch is cancelled and the watcher must re-list.
      store.rangePrefixes = async (prefixes, pageSize, onPage) => {
        const res = await realRange(prefixes, pageSize, onPage);
        if (!hooked) {
          hooked = true;
          await store.delete({ kind: 'WorkloadEndpoint', name: 'w1', namespace: NS });
          await store.delete({ kind: 'WorkloadEndpoint', name: 'w2', namespace: NS });
          const rev = await store.kvPut('/gingham/test/bump', 'x');
          await store.client.kv.compact({ revision: String(rev), physical: true });
        }
        return res;
      };
      const deleted: Array<Extract<ResourceEvent, { type: 'deleted' }>> = [];
      let syncs = 0;
      const h = store.watch(
        ['WorkloadEndpoint'],
        {
          onEvents: (es) => {
            for (const e of es) if (e.type === 'deleted') deleted.push(e);
          },
          onInSync: () => {
            syncs++;
          },
        },
        { namespace: NS, previous },
      );
      try {
        const deadline = Date.now() + 20000;
        while ((syncs < 2 || deleted.length < 2) && Date.now() < deadline)
          await new Promise((r) => setTimeout(r, 50));
        assert.equal(syncs, 2, 'in sync, out (compaction), in sync again');
        assert.deepEqual(deleted.map((d) => d.key.name).sort(), ['w1', 'w2']);
        for (const d of deleted) {
          if (previous) assert.equal(d.previous?.metadata.name, d.key.name);
          else assert.equal(d.previous, null);
        }
      } finally {
        store.rangePrefixes = realRange;
        await h.close();
        // Put them back for the next case.
        for (const i of [1, 2]) {
          const [k, v] = wep(i);
          await store.kvPut(k, v);
        }
      }
    });
  }
});

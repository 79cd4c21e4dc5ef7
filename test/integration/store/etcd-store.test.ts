// The store against a real etcd: CRUD, CAS, raw keys, and the watch contract (snapshot, deltas,
// resync after compaction, etcd restart).
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Resource, ResourceEvent } from '../../../store/api.js';
import {
  AlreadyExistsError,
  ConflictError,
  type EtcdStore,
  EtcdUnavailableError,
  NotFoundError,
  openStore,
  ValidationError,
} from '../../../store/index.js';
import { type EtcdInstance, startEtcd } from '../../harness/etcd.js';

const V3 = 'projectcalico.org/v3';
const pool = (name: string, cidr: string, extra: Record<string, unknown> = {}): Resource => ({
  apiVersion: V3,
  kind: 'IPPool',
  metadata: { name },
  spec: { cidr, ...extra },
});
const netpol = (ns: string, name: string): Resource => ({
  apiVersion: V3,
  kind: 'NetworkPolicy',
  metadata: { name, namespace: ns },
  spec: { selector: 'all()' },
});

/** Collects watch callbacks and lets a test wait for a condition on them. */
class Recorder {
  events: ResourceEvent[] = [];
  log: string[] = [];
  syncs: bigint[] = [];
  outOfSync: Error[] = [];
  private waiters: (() => void)[] = [];
  handlers = {
    onEvents: (es: ResourceEvent[]) => {
      this.events.push(...es);
      for (const e of es)
        this.log.push(`${e.type}:${e.type === 'deleted' ? e.key.name : e.resource.metadata.name}`);
      this.poke();
    },
    onInSync: (rev: bigint) => {
      this.syncs.push(rev);
      this.log.push('sync');
      this.poke();
    },
    onOutOfSync: (err: Error) => {
      this.outOfSync.push(err);
      this.log.push('oos');
      this.poke();
    },
  };
  private poke() {
    for (const w of this.waiters.splice(0)) w();
  }
  async until(cond: () => boolean, timeoutMs = 8000, what = 'condition'): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!cond()) {
      const left = deadline - Date.now();
      if (left <= 0) assert.fail(`timed out waiting for ${what}; log: ${this.log.join(' ')}`);
      await new Promise<void>((r) => {
        this.waiters.push(r);
        setTimeout(r, Math.min(left, 100)).unref();
      });
    }
  }
}

describe('EtcdStore', () => {
  let etcd: EtcdInstance;
  let store: EtcdStore;
  before(async () => {
    etcd = await startEtcd();
    store = await openStore({ endpoints: [etcd.endpoint] });
  });
  after(async () => {
    await store?.close();
    await etcd?.destroy();
  });

  it('creates, reads, updates with CAS and deletes', async () => {
    const created = await store.create(pool('crud', '10.1.0.0/16'));
    assert.match(created.metadata.resourceVersion!, /^\d+$/);
    assert.ok(created.metadata.uid);
    assert.equal((created.spec as { blockSize: number }).blockSize, 26, 'defaults applied on write');
    await assert.rejects(store.create(pool('crud', '10.1.0.0/16')), AlreadyExistsError);

    const got = await store.get('IPPool', 'crud');
    assert.deepEqual(got, created);
    const updated = await store.update({ ...got, spec: { ...(got.spec as object), natOutgoing: true } });
    assert.ok(BigInt(updated.metadata.resourceVersion!) > BigInt(got.metadata.resourceVersion!));
    assert.equal(updated.metadata.uid, created.metadata.uid, 'uid survives an update');
    // A stale resourceVersion is a conflict, and nothing is written.
    await assert.rejects(
      store.update(got),
      (e: unknown) => e instanceof ConflictError && e.expected === got.metadata.resourceVersion,
    );
    assert.equal(((await store.get('IPPool', 'crud')).spec as { natOutgoing: boolean }).natOutgoing, true);
    await assert.rejects(
      store.delete({ kind: 'IPPool', name: 'crud' }, { resourceVersion: got.metadata.resourceVersion }),
      ConflictError,
    );

    const deleted = await store.delete(
      { kind: 'IPPool', name: 'crud' },
      { resourceVersion: updated.metadata.resourceVersion },
    );
    assert.equal(deleted.metadata.name, 'crud');
    await assert.rejects(store.get('IPPool', 'crud'), NotFoundError);
    assert.equal(await store.tryGet('IPPool', 'crud'), null);
    await assert.rejects(store.delete({ kind: 'IPPool', name: 'crud' }), NotFoundError);
    await assert.rejects(store.update(pool('crud', '10.1.0.0/16')), NotFoundError);
  });

  it('apply creates then updates; invalid objects are never written', async () => {
    const a = await store.apply(pool('ap', '10.2.0.0/16'));
    const b = await store.apply(pool('ap', '10.2.0.0/16', { disabled: true }));
    assert.ok(BigInt(b.metadata.resourceVersion!) > BigInt(a.metadata.resourceVersion!));
    assert.equal(b.metadata.creationTimestamp, a.metadata.creationTimestamp);
    await assert.rejects(store.create(pool('bad', '10.2.0.0/33')), ValidationError);
    assert.equal(await store.tryGet('IPPool', 'bad'), null);
    // A pool's CIDR and block size are fixed once created (IPAM blocks depend on them).
    await assert.rejects(
      store.apply(pool('ap', '10.2.0.0/16', { blockSize: 28 })),
      (e: unknown) => e instanceof ValidationError && e.issues[0]?.path === 'spec.blockSize',
    );
    await assert.rejects(
      store.apply(pool('ap', '10.3.0.0/16')),
      /spec\.cidr: expected the stored value "10\.2\.0\.0\/16"/,
    );
  });

  it('lists by kind and namespace', async () => {
    await store.create(netpol('ns-a', 'p1'));
    await store.create(netpol('ns-a', 'p2'));
    await store.create(netpol('ns-b', 'p1'));
    await store.create({ apiVersion: V3, kind: 'GlobalNetworkPolicy', metadata: { name: 'g1' }, spec: {} });
    const all = await store.list('NetworkPolicy', { pageSize: 2 });
    assert.deepEqual(
      all.items.map((r) => `${r.metadata.namespace}/${r.metadata.name}`),
      ['ns-a/p1', 'ns-a/p2', 'ns-b/p1'],
    );
    assert.ok(all.revision > 0n);
    assert.deepEqual(
      (await store.list('NetworkPolicy', { namespace: 'ns-a' })).items.map((r) => r.metadata.name),
      ['p1', 'p2'],
    );
    assert.deepEqual(
      (await store.list('GlobalNetworkPolicy')).items.map((r) => r.metadata.name),
      ['g1'],
    );
  });

  it('a list whose snapshot is compacted between pages starts again at the current revision', async () => {
    for (let i = 0; i < 5; i++) await store.kvPut(`/gingham/test/pages/${i}`, String(i));
    const kv = store.client.kv;
    const realRange = kv.range.bind(kv);
    let calls = 0;
    kv.range = async (req, opts) => {
      const res = await realRange(req, opts);
      if (++calls === 1) {
        // After the first page: a new write, then compact up to it.
        const rev = await store.kvPut('/gingham/test/pages/5', '5');
        await kv.compact({ revision: String(rev), physical: true });
      }
      return res;
    };
    try {
      const l = await store.kvList('/gingham/test/pages/', { pageSize: 2 });
      assert.deepEqual(
        l.items.map((i) => i.value.toString()),
        ['0', '1', '2', '3', '4', '5'],
      );
      assert.ok(calls > 3, 'the list was restarted');
    } finally {
      kv.range = realRange;
    }
  });

  it('raw keys: CAS put/delete and paged list', async () => {
    const k = '/gingham/ipam/v2/test/a';
    const r1 = await store.kvPut(k, 'one', { expectModRevision: 0n });
    await assert.rejects(
      store.kvPut(k, 'again', { expectModRevision: 0n }),
      (e: unknown) => e instanceof ConflictError && e.actual === String(r1),
    );
    const r2 = await store.kvPut(k, Buffer.from('two'), { expectModRevision: r1 });
    assert.deepEqual(await store.kvGet(k), { value: Buffer.from('two'), modRevision: r2 });
    await assert.rejects(store.kvDelete(k, { expectModRevision: r1 }), ConflictError);
    for (let i = 0; i < 7; i++) await store.kvPut(`/gingham/ipam/v2/test/list/${i}`, String(i));
    const l = await store.kvList('/gingham/ipam/v2/test/list/', { pageSize: 3 });
    assert.deepEqual(
      l.items.map((i) => i.value.toString()),
      ['0', '1', '2', '3', '4', '5', '6'],
    );
    assert.equal(await store.kvDelete(k, { expectModRevision: r2 }), true);
    assert.equal(await store.kvDelete(k), false);
    assert.equal(await store.kvGet(k), null);
  });

  it('watch: snapshot, in-sync, then typed deltas with the deleted object', async () => {
    await store.create(pool('w1', '10.10.0.0/16'));
    const rec = new Recorder();
    const h = store.watch(['IPPool'], rec.handlers);
    try {
      await rec.until(() => rec.syncs.length === 1, 8000, 'initial sync');
      const snapshot = rec.events.map((e) => (e.type === 'deleted' ? '' : e.resource.metadata.name));
      assert.ok(snapshot.includes('w1') && snapshot.includes('ap'));
      assert.ok(rec.events.every((e) => e.type === 'added'));
      const n = rec.events.length;
      const w2 = await store.create(pool('w2', '10.11.0.0/16'));
      await store.update({ ...w2, spec: { ...(w2.spec as object), disabled: true } });
      await store.delete({ kind: 'IPPool', name: 'w1' });
      await rec.until(() => rec.events.length >= n + 3, 8000, 'three deltas');
      const deltas = rec.events.slice(n);
      assert.deepEqual(
        deltas.map((e) => e.type),
        ['added', 'modified', 'deleted'],
      );
      const del = deltas[2]!;
      assert.ok(del.type === 'deleted' && del.key.name === 'w1' && del.previous?.metadata.name === 'w1');
      assert.equal(del.kind, 'IPPool');
      assert.ok(
        deltas[1]!.type === 'modified' && (deltas[1]!.resource.spec as { disabled: boolean }).disabled,
      );
    } finally {
      await h.close();
    }
  });

  it('watch of one namespace sees only that namespace', async () => {
    const rec = new Recorder();
    const h = store.watch(['NetworkPolicy'], rec.handlers, { namespace: 'ns-b' });
    try {
      await rec.until(() => rec.syncs.length === 1);
      await store.create(netpol('ns-a', 'p9'));
      await store.create(netpol('ns-b', 'p9'));
      await rec.until(() => rec.log.includes('added:p9'));
      assert.ok(
        rec.events.every(
          (e) => (e.type === 'deleted' ? e.key.namespace : e.resource.metadata.namespace) === 'ns-b',
        ),
      );
    } finally {
      await h.close();
    }
  });

  it('watch resyncs after a compaction: re-lists, emits deletes for vanished keys, resumes', async () => {
    const ns = 'compact';
    for (const n of ['a', 'b', 'c']) await store.create(netpol(ns, n));
    // Between the watch's first list and the start of its etcd watch, change things and compact
    // past the list revision: the etcd watch is then cancelled and the watcher must resync.
    const realRange = store.rangePrefixes.bind(store);
    let hooked = false;
    store.rangePrefixes = async (prefixes, pageSize) => {
      const res = await realRange(prefixes, pageSize);
      if (!hooked) {
        hooked = true;
        await store.delete({ kind: 'NetworkPolicy', name: 'b', namespace: ns });
        const c = await store.get('NetworkPolicy', 'c', ns);
        await store.update({ ...c, metadata: { ...c.metadata, labels: { v: '2' } } });
        const d = await store.create(netpol(ns, 'd'));
        await store.client.kv.compact({ revision: d.metadata.resourceVersion!, physical: true });
      }
      return res;
    };
    const rec = new Recorder();
    const h = store.watch(['NetworkPolicy'], rec.handlers, { namespace: ns });
    try {
      await rec.until(() => rec.syncs.length >= 2, 8000, 'resync after compaction');
      assert.equal(rec.outOfSync.length, 1);
      assert.match(rec.outOfSync[0]!.message, /cancel/i);
      assert.deepEqual(rec.log, [
        'added:a',
        'added:b',
        'added:c',
        'sync',
        'oos',
        'modified:c',
        'added:d',
        'deleted:b',
        'sync',
      ]);
      const del = rec.events.find((e) => e.type === 'deleted');
      assert.ok(del?.type === 'deleted' && del.previous?.metadata.name === 'b');
      // And the watch is live again afterwards.
      await store.create(netpol(ns, 'e'));
      await rec.until(() => rec.log.includes('added:e'));
    } finally {
      store.rangePrefixes = realRange;
      await h.close();
    }
  });

  it('watch survives an etcd restart: out-of-sync, then in-sync with what was written meanwhile', async () => {
    const rec = new Recorder();
    const h = store.watch(['GlobalNetworkSet'], rec.handlers);
    let writer: EtcdStore | undefined;
    try {
      await rec.until(() => rec.syncs.length === 1);
      await etcd.stop();
      await rec.until(() => rec.outOfSync.length === 1, 8000, 'out-of-sync signal');
      // While etcd is down, operations fail with a clear error naming the endpoint.
      const down = await openStore({ endpoints: [etcd.endpoint], unavailableRetryMs: 300 });
      await assert.rejects(
        down.get('IPPool', 'x'),
        (e: unknown) => e instanceof EtcdUnavailableError && e.message.includes(etcd.endpoint),
      );
      await down.close();
      await etcd.start();
      const restarted = Date.now();
      // Written before the watcher has reconnected (a fresh client connects at once).
      writer = await openStore({ endpoints: [etcd.endpoint] });
      await writer.create({
        apiVersion: V3,
        kind: 'GlobalNetworkSet',
        metadata: { name: 'while-away' },
        spec: { nets: ['10.9.0.0/16'] },
      });
      await rec.until(
        () => rec.syncs.length === 2 && rec.log.includes('added:while-away'),
        10000,
        'resync after restart',
      );
      const took = Date.now() - restarted;
      assert.ok(took < 4000, `picked up the restarted etcd after ${took} ms`);
      // Whether it arrives in the resync's diff or as the first delta depends on who wins the race.
      const tail = rec.log.slice(rec.log.lastIndexOf('oos'));
      assert.deepEqual([...tail].sort(), ['added:while-away', 'oos', 'sync']);
      // Live again.
      await writer.create({
        apiVersion: V3,
        kind: 'GlobalNetworkSet',
        metadata: { name: 'after' },
        spec: {},
      });
      await rec.until(() => rec.log.includes('added:after'));
      // The watcher's own client works again too.
      assert.equal((await store.get('GlobalNetworkSet', 'after')).metadata.name, 'after');
    } finally {
      await h.close();
      await writer?.close();
    }
  });

  it('raw-key watch: snapshot, deltas, deletes', async () => {
    const p = '/gingham/status/test/';
    await store.kvPut(`${p}n1`, 'up');
    const seen: string[] = [];
    let synced = 0;
    const rec = new Recorder();
    const h = store.kvWatch(p, {
      onEvents: (es) => {
        for (const e of es) seen.push(`${e.type}:${e.key.slice(p.length)}:${e.value?.toString() ?? ''}`);
        rec.handlers.onInSync(0n);
      },
      onInSync: () => {
        synced++;
        rec.handlers.onInSync(0n);
      },
    });
    try {
      await rec.until(() => synced === 1);
      await store.kvPut(`${p}n2`, 'down');
      await store.kvDelete(`${p}n1`);
      await rec.until(() => seen.length >= 3);
      assert.deepEqual(seen, ['put:n1:up', 'put:n2:down', 'delete:n1:']);
    } finally {
      await h.close();
    }
  });
});

// The block allocator against a real etcd: affinity, borrowing, strictAffinity, maxBlocksPerHost,
// pool filters, release, and concurrency across processes (4 nodes, 200 allocations).
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { after, before, beforeEach, describe, it } from 'node:test';
import {
  Allocator,
  NoUsablePoolError,
  newAllocatorMemory,
  PoolExhaustedError,
} from '../../../ipam/allocator.js';
import type { EtcdLite } from '../../../ipam/etcd-lite.js';
import { affinityKey, blockKey, borrowedAddresses, handleKey, IPAM_PREFIX } from '../../../ipam/model.js';
import { checkReport, loadSnapshot, showReport } from '../../../ipam/report.js';
import { KEY_PREFIX, resourceKeyPath } from '../../../store/kinds.js';
import {
  cni,
  ensureBuilt,
  IPAM_PLUGIN,
  nodeResource,
  pool,
  poolResource,
  ROOT,
  startUnixEtcd,
  type UnixEtcd,
} from '../cni/helpers.js';

describe('ipam allocator on etcd', { timeout: 180_000 }, () => {
  let etcd: UnixEtcd;
  let kv: EtcdLite;

  const setPools = async (
    pools: Record<string, Record<string, unknown>>,
    config?: Record<string, unknown>,
  ) => {
    await kv.txn([], [{ delete: KEY_PREFIX }]);
    const { kvs } = await kv.range(KEY_PREFIX);
    await kv.txn(
      [],
      kvs.map((k) => ({ delete: k.key })),
    );
    const ops = Object.entries(pools).map(([name, spec]) => ({
      put: resourceKeyPath('IPPool', name),
      value: poolResource(name, spec),
    }));
    if (config) {
      ops.push({
        put: resourceKeyPath('IPAMConfiguration', 'default'),
        value: JSON.stringify({
          apiVersion: 'projectcalico.org/v3',
          kind: 'IPAMConfiguration',
          metadata: { name: 'default' },
          spec: config,
        }),
      });
    }
    for (const n of ['n1', 'n2', 'n3', 'n4'])
      ops.push({ put: resourceKeyPath('Node', n), value: nodeResource(n, { zone: n === 'n1' ? 'a' : 'b' }) });
    await kv.txn([], ops);
  };

  before(async () => {
    etcd = await startUnixEtcd();
    kv = etcd.kv;
  });
  after(async () => {
    await etcd?.destroy();
  });
  beforeEach(async () => {
    await setPools({
      p4: { cidr: '10.70.0.0/24', blockSize: 29 },
      p6: { cidr: 'fd00:70::/120', blockSize: 125 },
    });
  });

  it('claims a block by affinity, fills it, then claims the next', async () => {
    const a = new Allocator(kv, { node: 'n1' });
    const first = await a.assign({ handleId: 'h0', num4: 1, num6: 1 });
    assert.equal(first.ips.length, 2);
    const snap = await loadSnapshot(kv);
    assert.deepEqual(snap.affinities.map((x) => [x.node, x.active]).sort(), [
      ['n1', true],
      ['n1', true],
    ]);
    const b4 = first.blocks[0]!;
    for (let i = 1; i < 8; i++)
      assert.equal(
        (await a.assign({ handleId: `h${i}`, num4: 1, num6: 0 })).blocks[0],
        b4,
        'fills its own block first',
      );
    const ninth = await a.assign({ handleId: 'h8', num4: 1, num6: 0 });
    assert.notEqual(ninth.blocks[0], b4);
    const rep = showReport(await loadSnapshot(kv));
    assert.equal(rep.blocks.filter((b) => b.node === 'n1' && b.pool === 'p4').length, 2);
    assert.ok(checkReport(await loadSnapshot(kv)).inconsistencies.length === 0);
  });

  it('allocates several addresses for one handle across blocks and releases them all, idempotently', async () => {
    const a = new Allocator(kv, { node: 'n2' });
    const r = await a.assign({ handleId: 'multi', num4: 12, num6: 0 });
    assert.equal(new Set(r.ips).size, 12);
    assert.equal(new Set(r.blocks).size, 2);
    assert.deepEqual((await a.addressesOf('multi')).sort(), [...r.ips].sort());
    assert.equal((await a.releaseHandle('multi')).length, 12);
    assert.deepEqual(await a.releaseHandle('multi'), [], 'second release is a no-op');
    const { kvs } = await kv.range(IPAM_PREFIX);
    // The handle is gone; of the two emptied blocks one went back to the pool, the node keeps one.
    assert.equal(kvs.filter((k) => k.key.includes('/handle/')).length, 0);
    assert.equal(kvs.filter((k) => k.key.includes('/assignment/')).length, 1);
    assert.equal(kvs.filter((k) => k.key.includes('/host/n2/')).length, 1);
    assert.ok(checkReport(await loadSnapshot(kv)).ok);
  });

  it('borrows from another node’s block when its own limit is reached and strictAffinity is false', async () => {
    await setPools(
      { p4: { cidr: '10.70.0.0/28', blockSize: 29 } },
      { maxBlocksPerHost: 1, strictAffinity: false },
    );
    const n1 = new Allocator(kv, { node: 'n1' });
    const n2 = new Allocator(kv, { node: 'n2' });
    await n2.assign({ handleId: 'b0', num4: 1, num6: 0 });
    for (let i = 0; i < 8; i++) await n1.assign({ handleId: `a${i}`, num4: 1, num6: 0 });
    const borrowed = await n1.assign({ handleId: 'a8', num4: 1, num6: 0 });
    const snap = await loadSnapshot(kv);
    const n2block = snap.blocks.find((b) => b.affinity === 'host:n2')!;
    assert.deepEqual(
      borrowedAddresses(n2block),
      borrowed.ips,
      'the borrowed address is listed for a /32 route',
    );
    // strictAffinity forbids it.
    await kv.txn(
      [],
      [
        {
          put: resourceKeyPath('IPAMConfiguration', 'default'),
          value: JSON.stringify({
            apiVersion: 'projectcalico.org/v3',
            kind: 'IPAMConfiguration',
            metadata: { name: 'default' },
            spec: { maxBlocksPerHost: 1, strictAffinity: true },
          }),
        },
      ],
    );
    await assert.rejects(
      new Allocator(kv, { node: 'n1' }).assign({ handleId: 'a9', num4: 1, num6: 0 }),
      (e: unknown) => {
        return (
          e instanceof PoolExhaustedError &&
          /maxBlocksPerHost=1.*strictAffinity forbids borrowing/.test(e.message)
        );
      },
    );
  });

  it('honours disabled pools, nodeSelector and allowedUses', async () => {
    await setPools({
      off: { cidr: '10.71.0.0/24', disabled: true },
      zoneA: { cidr: '10.72.0.0/24', nodeSelector: "zone == 'a'" },
      tunnel: { cidr: '10.73.0.0/24', allowedUses: ['Tunnel'] },
    });
    const n1 = await new Allocator(kv, { node: 'n1' }).assign({ handleId: 'x', num4: 1, num6: 0 });
    assert.match(n1.ips[0]!, /^10\.72\./);
    await assert.rejects(
      new Allocator(kv, { node: 'n2' }).assign({ handleId: 'y', num4: 1, num6: 0 }),
      NoUsablePoolError,
    );
    const t = await new Allocator(kv, { node: 'n2' }).assign({
      handleId: 't',
      num4: 1,
      num6: 0,
      use: 'Tunnel',
    });
    assert.match(t.ips[0]!, /^10\.73\./);
    await assert.rejects(
      new Allocator(kv, { node: 'n1' }).assign({ handleId: 'z', num4: 1, num6: 0, ipv4Pools: ['off'] }),
      /not found or disabled: off/,
    );
  });

  it('a hint kept across Allocators (the agent): prefetch reads block and handle, assign is one transaction', async () => {
    // Counts the requests that reach etcd (the real client underneath).
    let requests = 0;
    const counted = <T>(p: Promise<T>): Promise<T> => {
      requests++;
      return p;
    };
    const counting = {
      get: (k: string) => counted(kv.get(k)),
      range: (p: string) => counted(kv.range(p)),
      txn: (...a: Parameters<EtcdLite['txn']>) => counted(kv.txn(...a)),
      close: () => undefined,
    };
    const lastBlock = new Map<4 | 6, string>();
    const first = new Allocator(counting, { node: 'n1', lastBlock });
    const a = await first.assign({ handleId: 'h.hint.1', num4: 1, num6: 0 });
    assert.equal(lastBlock.get(4), a.blocks[0], 'the block used is kept as the hint');
    // A new Allocator (pools read fresh), the same hint map.
    const second = new Allocator(counting, { node: 'n1', lastBlock });
    await second.prefetch([4], 'h.hint.2');
    requests = 0;
    const b = await second.assign({ handleId: 'h.hint.2', num4: 1, num6: 0 });
    assert.equal(requests, 1, 'only the transaction: block and handle were read ahead');
    assert.equal(b.blocks[0], a.blocks[0]);
    assert.notEqual(b.ips[0], a.ips[0]);
    // A stale read ahead only costs a retry: another allocation lands in between.
    const third = new Allocator(counting, { node: 'n1', lastBlock });
    await third.prefetch([4], 'h.hint.3');
    await first.assign({ handleId: 'h.hint.between', num4: 1, num6: 0 });
    const c = await third.assign({ handleId: 'h.hint.3', num4: 1, num6: 0 });
    const all = [a, b, c].map((r) => r.ips[0]);
    const between = await first.addressesOf('h.hint.between');
    assert.equal(new Set([...all, ...between]).size, 4, 'four distinct addresses');
    assert.deepEqual(await third.addressesOf('h.hint.3'), c.ips);
    for (const h of ['h.hint.1', 'h.hint.2', 'h.hint.3', 'h.hint.between']) await first.releaseHandle(h);
    assert.ok(checkReport(await loadSnapshot(kv)).ok);
  });

  /** The real client, counting requests and the write transactions whose compare failed. */
  const counting = () => {
    const c = {
      requests: 0,
      failed: 0,
      kv: {
        get: (k: string) => {
          c.requests++;
          return kv.get(k);
        },
        range: (p: string) => {
          c.requests++;
          return kv.range(p);
        },
        txn: async (...a: Parameters<EtcdLite['txn']>) => {
          c.requests++;
          const r = await kv.txn(...a);
          if (!r.succeeded) c.failed++;
          return r;
        },
        close: () => undefined,
      },
      reset() {
        c.requests = 0;
        c.failed = 0;
      },
    };
    return c;
  };

  it('assigns and releases against the block as last written (one request); another writer costs one failed compare', async () => {
    const ca = counting();
    const cb = counting();
    // Two allocators of one node that do not share what they remember (two processes).
    const a = new Allocator(ca.kv, { node: 'n1' });
    const b = new Allocator(cb.kv, { node: 'n1' });
    const r1 = await a.assign({ handleId: 'k1', num4: 1, num6: 0 });
    ca.reset();
    const r2 = await a.assign({ handleId: 'k2', num4: 1, num6: 0 });
    assert.deepEqual([ca.requests, ca.failed], [1, 0], 'the transaction alone, against its own last write');
    assert.equal(r2.blocks[0], r1.blocks[0]);
    const r3 = await b.assign({ handleId: 'k3', num4: 1, num6: 0 });
    assert.equal(r3.blocks[0], r1.blocks[0], 'b fills the same affine block');
    ca.reset();
    const r4 = await a.assign({ handleId: 'k4', num4: 1, num6: 0 });
    assert.deepEqual(
      [ca.requests, ca.failed],
      [2, 1],
      'the stale compare fails and reads the block back; the retry uses it at once',
    );
    const ips = [r1, r2, r3, r4].map((r) => r.ips[0]);
    assert.equal(new Set(ips).size, 4, 'four distinct addresses');
    // Release: a knows k2's handle (its own write) and the block (read back by its failed compare).
    ca.reset();
    assert.deepEqual(await a.releaseHandle('k2'), r2.ips);
    assert.deepEqual([ca.requests, ca.failed], [1, 0], 'a release is one transaction too');
    cb.reset();
    assert.deepEqual(await b.releaseHandle('k3'), r3.ips);
    assert.deepEqual([cb.requests, cb.failed], [2, 1], "b's block is stale after a's writes: one retry");
    assert.deepEqual(await a.releaseHandle('k2'), [], 'a released handle releases nothing again');
    const snap = await loadSnapshot(kv);
    assert.deepEqual(
      snap.handles.map((h) => h.handleID).sort(),
      ['k1', 'k4'],
      'the released handles are deleted, the others kept',
    );
    assert.deepEqual(checkReport(snap).inconsistencies, [], 'blocks and handles agree');
    assert.equal(showReport(snap).pools.find((p) => p.name === 'p4')!.inUse, 2);
    await a.releaseHandle('k1');
    await b.releaseHandle('k4');
    assert.ok(checkReport(await loadSnapshot(kv)).ok);
  });

  it('memory kept across Allocators (the agent: one per call): the DEL of an ADD made here is one request', async () => {
    const c = counting();
    const memory = newAllocatorMemory();
    const lastBlock = new Map();
    const add = new Allocator(c.kv, { node: 'n1', lastBlock, memory });
    const r = await add.assign({ handleId: 'm1', num4: 1, num6: 0 });
    await new Allocator(c.kv, { node: 'n1', lastBlock, memory }).assign({ handleId: 'm2', num4: 1, num6: 0 });
    c.reset();
    // A new Allocator, as for the next call: handle and block come from the shared memory.
    assert.deepEqual(await new Allocator(c.kv, { node: 'n1', lastBlock, memory }).releaseHandle('m1'), r.ips);
    assert.deepEqual([c.requests, c.failed], [1, 0]);
    // Without the memory the same release reads the handle and the block first (and, as it empties
    // the block, the node's affinities).
    c.reset();
    await new Allocator(c.kv, { node: 'n1', lastBlock }).releaseHandle('m2');
    assert.deepEqual([c.requests, c.failed], [4, 0]);
    assert.ok(checkReport(await loadSnapshot(kv)).ok);
  });

  it('an existing handle fails the compare of an assignment that guessed it absent; the retry adds to it', async () => {
    const first = new Allocator(kv, { node: 'n2' });
    const r1 = await first.assign({ handleId: 'again', num4: 1, num6: 0 });
    // A fresh Allocator has never seen the handle: it guesses "absent", in the block and in a claim.
    const c = counting();
    const second = new Allocator(c.kv, { node: 'n2' });
    const r2 = await second.assign({ handleId: 'again', num4: 1, num6: 0 });
    assert.equal(c.failed, 1, 'one failed compare (on the handle)');
    const third = new Allocator(c.kv, { node: 'n3' });
    c.reset();
    const r3 = await third.assign({ handleId: 'again', num4: 1, num6: 0 });
    assert.equal(c.failed, 1, 'the claim of a new block failed once on the handle too');
    assert.notEqual(r3.blocks[0], r1.blocks[0], 'n3 claimed its own block');
    const held = [...r1.ips, ...r2.ips, ...r3.ips];
    assert.equal(new Set(held).size, 3);
    assert.deepEqual((await first.addressesOf('again')).sort(), [...held].sort());
    const h = JSON.parse((await kv.get(handleKey('again')))!.value.toString());
    assert.deepEqual(h.block, { [r1.blocks[0]!]: 2, [r3.blocks[0]!]: 1 });
    assert.ok(checkReport(await loadSnapshot(kv)).inconsistencies.length === 0);
    assert.deepEqual((await first.releaseHandle('again')).sort(), [...held].sort());
    assert.equal(await kv.get(handleKey('again')), null);
    assert.ok(checkReport(await loadSnapshot(kv)).ok);
  });

  it('a remembered block that was deleted meanwhile: the failed compare finds it gone and the node claims anew', async () => {
    const a = new Allocator(kv, { node: 'n4' });
    // Fill the first /29 block and take one address in a second one (the hint).
    const got = [];
    for (let i = 0; i < 9; i++) got.push(await a.assign({ handleId: `d${i}`, num4: 1, num6: 0 }));
    const second = got[8]!.blocks[0]!;
    assert.notEqual(second, got[0]!.blocks[0]);
    // Someone else frees the second block: emptied, and not the node's only block, it is deleted.
    const other = new Allocator(kv, { node: '' });
    assert.deepEqual(await other.releaseAddresses(got[8]!.ips), got[8]!.ips);
    assert.equal(await kv.get(blockKey(second)), null);
    assert.equal(await kv.get(affinityKey('n4', second)), null);
    const next = await a.assign({ handleId: 'd9', num4: 1, num6: 0 });
    assert.ok(!got.slice(0, 8).some((r) => r.ips[0] === next.ips[0]), 'a new address');
    const snap = await loadSnapshot(kv);
    assert.equal(
      snap.blocks.find((b) => b.cidr === next.blocks[0])?.affinity,
      'host:n4',
      'in a block claimed for n4',
    );
    // d8's handle was dropped by releaseAddresses; releasing it through `a` (which remembers it
    // as written) fails the compare, reads it back gone, and releases nothing.
    assert.deepEqual(await a.releaseHandle('d8'), []);
    assert.deepEqual(checkReport(snap).inconsistencies, []);
    for (let i = 0; i < 10; i++) await a.releaseHandle(`d${i}`);
    assert.ok(checkReport(await loadSnapshot(kv)).ok);
  });

  it('releases a single address by IP and updates its handle', async () => {
    const a = new Allocator(kv, { node: 'n3' });
    const r = await a.assign({ handleId: 'two', num4: 2, num6: 0 });
    assert.deepEqual(await a.releaseAddresses([r.ips[0]!]), [r.ips[0]]);
    assert.deepEqual(await a.addressesOf('two'), [r.ips[1]]);
    assert.deepEqual(await a.releaseAddresses([r.ips[0]!]), [], 'already free');
    await a.releaseAddresses([r.ips[1]!]);
    // The node's only block stays (empty) with its affinity; a second empty block would go.
    assert.ok(await kv.get(blockKey(r.blocks[0]!)));
    assert.ok(await kv.get(affinityKey('n3', r.blocks[0]!)));
    assert.ok(checkReport(await loadSnapshot(kv)).ok);
  });

  it('200 concurrent allocations from 4 node processes get 200 distinct addresses; releasing them leaves nothing', async () => {
    await setPools({ p4: { cidr: '10.80.0.0/22', blockSize: 26 } });
    // One process per node, 50 allocations in flight each (the allocator over the built dist/).
    ensureBuilt();
    const driver = `
      const { Allocator } = await import(${JSON.stringify(join(ROOT, 'dist/ipam/allocator.js'))});
      const { EtcdLite } = await import(${JSON.stringify(join(ROOT, 'dist/ipam/etcd-lite.js'))});
      const [node, op] = process.argv.slice(1);
      const kv = new EtcdLite([${JSON.stringify(etcd.endpoint)}], 20000);
      const a = new Allocator(kv, { node });
      const ids = Array.from({ length: 50 }, (_, i) => node + '.' + i);
      const out = await Promise.all(ids.map((h) => op === 'add' ? a.assign({ handleId: h, num4: 1, num6: 0 }).then((r) => r.ips[0]) : a.releaseHandle(h).then((r) => r.length)));
      kv.close();
      console.log(JSON.stringify(out));`;
    const runAll = (op: string) =>
      Promise.all(
        ['n1', 'n2', 'n3', 'n4'].map(
          (n) =>
            new Promise<unknown[]>((resolve, reject) => {
              const p = spawn(process.execPath, ['--input-type=module', '-e', driver, n, op], {
                stdio: ['ignore', 'pipe', 'pipe'],
              });
              let out = '';
              let err = '';
              p.stdout.on('data', (d) => (out += d));
              p.stderr.on('data', (d) => (err += d));
              p.on('close', (code) =>
                code === 0 ? resolve(JSON.parse(out)) : reject(new Error(`${n} ${op}: ${err}`)),
              );
            }),
        ),
      );
    const ips = (await runAll('add')).flat() as string[];
    assert.equal(ips.length, 200);
    assert.equal(new Set(ips).size, 200, 'no address handed out twice');
    const snap = await loadSnapshot(kv);
    const rep = checkReport(snap);
    assert.deepEqual(rep.inconsistencies, [], 'blocks, affinities and handles agree');
    assert.equal(showReport(snap).pools[0]!.inUse, 200);
    const released = (await runAll('del')).flat() as number[];
    assert.equal(
      released.reduce((a, b) => a + b, 0),
      200,
    );
    const after = await loadSnapshot(kv);
    assert.equal(showReport(after).pools[0]!.inUse, 0);
    assert.ok(checkReport(after).ok, JSON.stringify(checkReport(after)));
  });

  it('gingham-ipam executables in parallel (4 nodes × 5) allocate distinct addresses and release them', async () => {
    ensureBuilt();
    await setPools({ p4: { cidr: '10.81.0.0/24', blockSize: 28 } });
    const jobs = Array.from({ length: 20 }, (_, i) => ({ node: `n${(i % 4) + 1}`, id: `c${i}` }));
    const conf = (node: string) => ({
      cniVersion: '1.0.0',
      name: 'inet',
      type: 'x',
      nodename: node,
      etcd_endpoints: etcd.endpoint,
      ipam: { type: 'gingham-ipam' },
    });
    const got: string[] = [];
    await pool(jobs, 8, async (j) => {
      const r = await cni({
        bin: IPAM_PLUGIN,
        command: 'ADD',
        containerId: j.id,
        netns: '/x',
        ifname: 'eth0',
        conf: conf(j.node),
      });
      assert.equal(r.code, 0, r.stdout + r.stderr);
      got.push(r.json.ips[0].address);
    });
    assert.equal(new Set(got).size, 20);
    assert.ok(got.every((a) => /^10\.81\.0\.\d+\/32$/.test(a)));
    await pool(jobs, 8, async (j) => {
      const r = await cni({
        bin: IPAM_PLUGIN,
        command: 'DEL',
        containerId: j.id,
        netns: '/x',
        ifname: 'eth0',
        conf: conf(j.node),
      });
      assert.equal(r.code, 0, r.stdout);
    });
    const snap = await loadSnapshot(kv);
    assert.deepEqual(snap.handles, []);
    assert.equal(showReport(snap).pools[0]!.inUse, 0);
    assert.ok(snap.blocks.length <= 4, 'at most one warm block per node');
    assert.ok(checkReport(snap).ok, JSON.stringify(checkReport(snap)));
  });
});

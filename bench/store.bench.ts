// Store throughput and watch latency against a local etcd, each next to the raw etcd3 client
// doing the same work (the floor the store's validation, CAS and resync layers add to).
import type { Etcd3 } from 'etcd3';
import type { Resource } from '../store/api.js';
import { type EtcdStore, openStore, resourceKeyPath } from '../store/index.js';
import { startEtcd } from '../test/harness/etcd.js';
import type { BenchRow } from './types.js';

const SEQ = 300;
const CONC = 1000;
/** Store and raw runs alternate, ROUNDS times each; the median counts (the machine is shared). */
const ROUNDS = 3;
const IN_FLIGHT = 64;
const WATCH_N = 1000;

function pool(i: number, tag: string): Resource {
  return {
    apiVersion: 'projectcalico.org/v3',
    kind: 'IPPool',
    metadata: { name: `${tag}-${i}`, labels: { bench: tag } },
    spec: { cidr: `10.${(i >> 8) & 255}.${i & 255}.0/26`, natOutgoing: true },
  };
}

/** Alternates the two subjects round by round so that background load hits both alike; medians. */
async function paired(
  n: number,
  inFlight: number,
  a: (i: number, round: number) => Promise<unknown>,
  b: (i: number, round: number) => Promise<unknown>,
): Promise<[number, number]> {
  const ra: number[] = [];
  const rb: number[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    ra.push(await timed(n, inFlight, (i) => a(i, round)));
    rb.push(await timed(n, inFlight, (i) => b(i, round)));
  }
  const med = (v: number[]) => v.sort((x, y) => x - y)[Math.floor(v.length / 2)]!;
  return [med(ra), med(rb)];
}

async function timed(n: number, inFlight: number, op: (i: number) => Promise<unknown>): Promise<number> {
  let next = 0;
  const t0 = process.hrtime.bigint();
  await Promise.all(
    Array.from({ length: inFlight }, async () => {
      while (next < n) await op(next++);
    }),
  );
  const s = Number(process.hrtime.bigint() - t0) / 1e9;
  return n / s;
}

function pct(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

/** put → event latency for sequential writes; `watch` starts a watcher and resolves when in sync. */
async function watchLatency(
  client: Etcd3,
  watch: (onKey: (key: string) => void) => Promise<() => Promise<void>>,
  value: (i: number) => string,
  keyOf: (i: number) => string,
): Promise<number[]> {
  const sent = new Map<string, bigint>();
  const lat: number[] = [];
  let waiting: (() => void) | undefined;
  const stop = await watch((key) => {
    const t = sent.get(key);
    if (t === undefined) return;
    lat.push(Number(process.hrtime.bigint() - t) / 1e6);
    sent.delete(key);
    waiting?.();
  });
  for (let i = 0; i < WATCH_N; i++) {
    const key = keyOf(i);
    const got = new Promise<void>((r) => {
      waiting = r;
    });
    sent.set(key, process.hrtime.bigint());
    await client.kv.put({ key: Buffer.from(key), value: Buffer.from(value(i)) });
    await Promise.race([got, new Promise((r) => setTimeout(r, 2000))]);
  }
  await stop();
  return lat.sort((a, b) => a - b);
}

export async function run(): Promise<BenchRow[]> {
  const etcd = await startEtcd();
  let store: EtcdStore | undefined;
  try {
    store = await openStore({ endpoints: [etcd.endpoint] });
    const s = store;
    const client = s.client;
    const rows: BenchRow[] = [];
    const rawPut = (r: Resource) =>
      client.kv.put({
        key: Buffer.from(resourceKeyPath('IPPool', r.metadata.name)),
        value: Buffer.from(JSON.stringify(r)),
      });

    // Warm up both paths (connection, JIT).
    await timed(200, 16, (i) => s.create(pool(i, 'warm')));
    await timed(200, 16, (i) => rawPut(pool(i, 'warmraw')));

    const [seqStore, seqRaw] = await paired(
      SEQ,
      1,
      (i, r) => s.create(pool(i, `seq${r}`)),
      (i, r) => rawPut(pool(i, `seqraw${r}`)),
    );
    rows.push({
      bench: 'store',
      metric: 'create (validate + CAS txn), sequential',
      value: seqStore,
      unit: 'writes/s',
      baseline: seqRaw,
      baselineLabel: 'raw etcd3 put',
      goal: '≥ 0.8x raw',
    });
    const [concStore, concRaw] = await paired(
      CONC,
      IN_FLIGHT,
      (i, r) => s.create(pool(i, `conc${r}`)),
      (i, r) => rawPut(pool(i, `concraw${r}`)),
    );
    rows.push({
      bench: 'store',
      metric: `create, ${IN_FLIGHT} in flight`,
      value: concStore,
      unit: 'writes/s',
      baseline: concRaw,
      baselineLabel: 'raw etcd3 put',
      goal: '≥ 0.8x raw',
    });

    // The same create-if-absent transaction through the raw client: the store's own overhead
    // (validation, defaults, uid, error mapping) is the gap between this and `create`.
    const rawCreate = (r: Resource) => {
      const key = Buffer.from(resourceKeyPath('IPPool', r.metadata.name));
      return client.kv.txn({
        compare: [{ key, target: 'Create', result: 'Equal', create_revision: 0 }],
        success: [{ request_put: { key, value: Buffer.from(JSON.stringify(r)) } }],
      });
    };
    const [concStore2, concTxn] = await paired(
      CONC,
      IN_FLIGHT,
      (i, r) => s.create(pool(i, `conc2${r}`)),
      (i, r) => rawCreate(pool(i, `conctxn${r}`)),
    );
    rows.push({
      bench: 'store',
      metric: `create, ${IN_FLIGHT} in flight, vs the same txn raw`,
      value: concStore2,
      unit: 'writes/s',
      baseline: concTxn,
      baselineLabel: 'raw etcd3 txn',
      goal: '≥ 0.8x raw',
    });

    // Watch latency: the same raw puts, observed through store.watch vs a raw etcd3 watcher.
    const rawValue = (i: number) => JSON.stringify(pool(i, 'w'));
    const storeLat = await watchLatency(
      client,
      async (onKey) => {
        let ready!: () => void;
        const inSync = new Promise<void>((r) => {
          ready = r;
        });
        const h = s.watch(['GlobalNetworkSet'], {
          onEvents: (es) => {
            for (const e of es)
              if (e.type !== 'deleted') onKey(resourceKeyPath('GlobalNetworkSet', e.resource.metadata.name));
          },
          onInSync: () => ready(),
        });
        await inSync;
        return () => h.close();
      },
      (i) =>
        JSON.stringify({
          apiVersion: 'projectcalico.org/v3',
          kind: 'GlobalNetworkSet',
          metadata: { name: `w${i}` },
          spec: { nets: [] },
        }),
      (i) => resourceKeyPath('GlobalNetworkSet', `w${i}`),
    );
    const rawPrefix = '/bench/raw/';
    const rawLat = await watchLatency(
      client,
      async (onKey) => {
        const w = await client.watch().prefix(rawPrefix).create();
        w.on('put', (kv) => onKey(kv.key.toString()));
        return () => w.cancel();
      },
      rawValue,
      (i) => `${rawPrefix}${i}`,
    );
    for (const p of [50, 99]) {
      rows.push({
        bench: 'store',
        metric: `watch latency put→event p${p} (${WATCH_N} sequential puts)`,
        value: pct(storeLat, p),
        unit: 'ms',
        baseline: pct(rawLat, p),
        baselineLabel: 'raw etcd3 watch',
        goal: p === 99 ? 'p99 within 2 ms of raw' : 'within 0.5 ms of raw',
      });
    }
    return rows;
  } finally {
    await store?.close();
    await etcd.destroy();
  }
}

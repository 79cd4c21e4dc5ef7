// `gingham reflector` as its own process (real etcd, no root): two nodes' BGP runners with the
// mesh off peer only with the reflector (BGPPeer peerSelector has(rr)); each learns the other's
// block through it with the original next hop, and the reflector publishes its status.
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import pino from 'pino';
import { BgpRunner, bgpStatusKey } from '../../../agent/bgp/runner.js';
import type { LearnedRoute } from '../../../agent/calc/model.js';
import { blockKey, serializeBlock } from '../../../ipam/model.js';
import { CALICO_API_VERSION, type EtcdStore, openStore } from '../../../store/index.js';
import { type EtcdInstance, freePort, startEtcd } from '../../harness/etcd.js';
import { waitFor } from '../../unit/bgp/helpers.js';

const logger = pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' });

const block = (cidr: string, node: string) =>
  serializeBlock({
    cidr,
    affinity: `host:${node}`,
    allocations: Array(64).fill(null),
    unallocated: Array.from({ length: 64 }, (_, i) => i),
    attributes: [],
    sequenceNumber: 0,
    deleted: false,
  });

describe('gingham reflector process', () => {
  let etcd: EtcdInstance;
  let store: EtcdStore;
  let child: ChildProcess | undefined;
  let childLog = '';
  const runners: BgpRunner[] = [];
  const learned: { c1: LearnedRoute[]; c2: LearnedRoute[] } = { c1: [], c2: [] };

  before(async () => {
    etcd = await startEtcd();
    store = await openStore({ endpoints: [etcd.endpoint] });
    const port = await freePort();
    const res = (kind: string, name: string, spec: unknown, labels?: Record<string, string>) => ({
      apiVersion: CALICO_API_VERSION,
      kind,
      metadata: { name, ...(labels ? { labels } : {}) },
      spec,
    });
    await store.apply(res('IPPool', 'pool1', { cidr: '10.65.0.0/16' }));
    await store.apply(res('BGPConfiguration', 'default', { listenPort: port, nodeToNodeMeshEnabled: false }));
    await store.apply(
      res(
        'Node',
        'rr',
        { bgp: { ipv4Address: '127.0.0.30/8', routeReflectorClusterID: '224.0.0.1' } },
        { rr: 'true' },
      ),
    );
    await store.apply(res('Node', 'c1', { bgp: { ipv4Address: '127.0.0.31/8' } }));
    await store.apply(res('Node', 'c2', { bgp: { ipv4Address: '127.0.0.32/8' } }));
    await store.apply(res('BGPPeer', 'to-rr', { peerSelector: 'has(rr)' }));
  });

  after(async () => {
    await Promise.all(runners.map((r) => r.stop()));
    if (child?.pid && child.exitCode === null) {
      const exited = new Promise((r) => child!.once('exit', r));
      process.kill(child.pid, 'SIGTERM');
      await Promise.race([exited, new Promise((r) => setTimeout(r, 5000))]);
      if (child.exitCode === null) process.kill(child.pid, 'SIGKILL');
    }
    await store?.close();
    await etcd?.destroy();
  });

  it('reflects client blocks between clients, next hop and ORIGINATOR_ID intact', async () => {
    child = spawn(
      process.execPath,
      [
        '--import',
        'tsx',
        'cli/main.ts',
        'reflector',
        '--node',
        'rr',
        '--listen-address',
        '127.0.0.30',
        '--metrics-addr',
        'none',
      ],
      { env: { ...process.env, ETCD_ENDPOINTS: etcd.endpoint }, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    child.stdout!.on('data', (d: Buffer) => {
      childLog += d.toString();
    });
    child.stderr!.on('data', (d: Buffer) => {
      childLog += d.toString();
    });
    for (const [name, ip] of [
      ['c1', '127.0.0.31'],
      ['c2', '127.0.0.32'],
    ] as const) {
      const r = new BgpRunner({
        nodeName: name,
        store,
        logger,
        listenHost: ip,
        onLearned: (routes) => {
          learned[name] = routes;
        },
      });
      runners.push(r);
      r.start();
    }
    await store.kvPut(blockKey('10.65.1.0/26'), block('10.65.1.0/26', 'c1'));
    await store.kvPut(blockKey('10.65.2.0/26'), block('10.65.2.0/26', 'c2'));
    try {
      await waitFor('c2 learns c1’s block via the reflector', () => learned.c2.length > 0, 20_000);
      await waitFor('c1 learns c2’s block via the reflector', () => learned.c1.length > 0, 20_000);
    } catch (e) {
      throw new Error(`${(e as Error).message}\nreflector log:\n${childLog}`);
    }
    assert.deepEqual(learned.c2, [
      { prefix: '10.65.1.0/26', nextHops: [{ via: '127.0.0.31', onlink: true }] },
    ]);
    assert.deepEqual(learned.c1, [
      { prefix: '10.65.2.0/26', nextHops: [{ via: '127.0.0.32', onlink: true }] },
    ]);
    const r = runners[1]!.current!.locRib().find((x) => x.prefix === '10.65.1.0/26')!;
    assert.equal(r.attrs.originatorId, '127.0.0.31');
    assert.deepEqual(r.attrs.clusterList, ['224.0.0.1']);
    assert.deepEqual(
      runners[0]!.current!.peers().map((p) => [p.address, p.type, p.state]),
      [['127.0.0.30', 'global', 'Established']],
    );
    const doc = await waitFor(
      'reflector status',
      async () => {
        const kv = await store.kvGet(bgpStatusKey('rr'));
        return kv ? JSON.parse(kv.value.toString()) : null;
      },
      15_000,
    );
    assert.deepEqual(doc.peers.map((p: { address: string; type: string }) => [p.address, p.type]).sort(), [
      ['127.0.0.31', 'route reflector client'],
      ['127.0.0.32', 'route reflector client'],
    ]);
  });
});

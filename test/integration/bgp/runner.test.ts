// The BGP wiring end to end with a real etcd: two nodes' runners (speakers on 127.0.0.21/22),
// configured from Node / BGPConfiguration / BGPPeer / IPPool resources, announcing IPAM blocks,
// learning each other's blocks, publishing status that `gingham node status` reads, and
// applying a config change without flapping the running session. No root needed.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import pino from 'pino';
import { Registry } from 'prom-client';
import { BgpRunner, bgpStatusKey } from '../../../agent/bgp/runner.js';
import type { LearnedRoute } from '../../../agent/calc/model.js';
import { run as nodeCommand } from '../../../cli/commands/node.js';
import { blockKey, serializeBlock } from '../../../ipam/model.js';
import { CALICO_API_VERSION, type EtcdStore, openStore } from '../../../store/index.js';
import { type EtcdInstance, freePort, startEtcd } from '../../harness/etcd.js';
import { waitFor } from '../../unit/bgp/helpers.js';

const logger = pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' });

function block(cidr: string, node: string): string {
  return serializeBlock({
    cidr,
    affinity: `host:${node}`,
    allocations: Array(64).fill(null),
    unallocated: Array.from({ length: 64 }, (_, i) => i),
    attributes: [],
    sequenceNumber: 0,
    deleted: false,
  });
}

async function captureStdout(f: () => Promise<number>): Promise<{ code: number; out: string }> {
  const orig = process.stdout.write.bind(process.stdout);
  let out = '';
  process.stdout.write = ((chunk: string | Uint8Array) => {
    out += typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString();
    return true;
  }) as typeof process.stdout.write;
  try {
    return { code: await f(), out };
  } finally {
    process.stdout.write = orig;
  }
}

describe('BGP runner with etcd', () => {
  let etcd: EtcdInstance;
  let store: EtcdStore;
  const runners: BgpRunner[] = [];
  const learned: { a: LearnedRoute[]; b: LearnedRoute[] } = { a: [], b: [] };
  const registry = new Registry();

  before(async () => {
    etcd = await startEtcd();
    store = await openStore({ endpoints: [etcd.endpoint] });
    process.env.ETCD_ENDPOINTS = etcd.endpoint;
    const port = await freePort();
    const res = (kind: string, name: string, spec: unknown, labels?: Record<string, string>) => ({
      apiVersion: CALICO_API_VERSION,
      kind,
      metadata: { name, ...(labels ? { labels } : {}) },
      spec,
    });
    await store.apply(res('IPPool', 'pool1', { cidr: '10.65.0.0/16' }));
    await store.apply(res('BGPConfiguration', 'default', { listenPort: port, nodeMeshHoldTime: '9s' }));
    await store.apply(res('Node', 'a', { bgp: { ipv4Address: '127.0.0.21/8' } }));
    await store.apply(res('Node', 'b', { bgp: { ipv4Address: '127.0.0.22/8' } }));
  });

  after(async () => {
    await Promise.all(runners.map((r) => r.stop()));
    await store?.close();
    await etcd?.destroy();
  });

  it('mesh comes up, blocks are announced and learned, status is published', async () => {
    for (const [name, ip] of [
      ['a', '127.0.0.21'],
      ['b', '127.0.0.22'],
    ] as const) {
      const r = new BgpRunner({
        nodeName: name,
        store,
        logger,
        listenHost: ip,
        statusIntervalMs: 500,
        registry: name === 'a' ? registry : undefined,
        onLearned: (routes) => {
          learned[name] = routes;
        },
      });
      runners.push(r);
      r.start();
    }
    await store.kvPut(blockKey('10.65.0.0/26'), block('10.65.0.0/26', 'a'));
    await store.kvPut(blockKey('10.65.0.64/26'), block('10.65.0.64/26', 'b'));
    await waitFor('b learns a’s block', () => learned.b.find((r) => r.prefix === '10.65.0.0/26'));
    assert.deepEqual(learned.b, [
      { prefix: '10.65.0.0/26', nextHops: [{ via: '127.0.0.21', onlink: true }] },
    ]);
    await waitFor('a learns b’s block', () => learned.a.find((r) => r.prefix === '10.65.0.64/26'));

    const doc = await waitFor('status', () => {
      const s = runners[0]!.statusDoc();
      return s?.peers[0]?.state === 'Established' && s.peers[0].prefixesAdvertised === 1 ? s : null;
    });
    assert.equal(doc.peers[0]!.type, 'node-to-node mesh');
    const kv = await waitFor('status key', async () => store.kvGet(bgpStatusKey('a')));
    assert.equal(JSON.parse(kv.value.toString()).node, 'a');
    await new Promise((r) => setTimeout(r, 700)); // one status period
    const { code, out } = await captureStdout(() => nodeCommand(['status', '--node', 'a', '-o', 'json']));
    assert.equal(code, 0);
    const json = JSON.parse(out);
    assert.deepEqual(Object.keys(json), ['node', 'peers']);
    assert.equal(json.node, 'a');
    assert.deepEqual(Object.keys(json.peers[0]), [
      'address',
      'type',
      'state',
      'since',
      'prefixesReceived',
      'prefixesAdvertised',
    ]);
    assert.deepEqual(
      { ...json.peers[0], since: undefined },
      {
        address: '127.0.0.22',
        type: 'node-to-node mesh',
        state: 'Established',
        since: undefined,
        prefixesReceived: 1,
        prefixesAdvertised: 1,
      },
    );
    const table = await captureStdout(() => nodeCommand(['status', '--node', 'a']));
    assert.match(table.out, /\| 127\.0\.0\.22 +\| node-to-node mesh \| up +\|/);

    const metrics = await registry.metrics();
    assert.match(metrics, /gingham_bgp_peer_state\{peer="127.0.0.22",type="node-to-node mesh"\} 5/);
    assert.match(metrics, /gingham_bgp_peer_prefixes\{peer="127.0.0.22",kind="received"\} 1/);
  });

  it('config changes apply without flapping unaffected sessions; withdrawn blocks disappear', async () => {
    await store.apply({
      apiVersion: CALICO_API_VERSION,
      kind: 'BGPPeer',
      metadata: { name: 'tor-a' },
      spec: { node: 'a', peerIP: '127.0.0.99', asNumber: 65099 },
    });
    await waitFor('a has the new peer', () =>
      runners[0]!.current?.peers().some((p) => p.address === '127.0.0.99'),
    );
    await store.apply({
      apiVersion: CALICO_API_VERSION,
      kind: 'BGPConfiguration',
      metadata: { name: 'default' },
      spec: {
        listenPort: runners[0]!.current!.listenAddress()!.port,
        nodeMeshHoldTime: '9s',
        communities: [{ name: 'x', value: '65000:7' }],
        prefixAdvertisements: [{ cidr: '10.65.0.0/16', communities: ['x'] }],
      },
    });
    await waitFor(
      'community applied',
      () => runners[1]!.current?.locRib().find((r) => r.prefix === '10.65.0.0/26')?.attrs.communities?.length,
    );
    const mesh = runners[0]!.current!.peers().find((p) => p.address === '127.0.0.22')!;
    assert.equal(mesh.state, 'Established');
    assert.equal(mesh.flaps, 0);
    assert.equal(runners[1]!.current!.peers()[0]!.flaps, 0);
    await store.kvDelete(blockKey('10.65.0.0/26'));
    await waitFor('withdrawn', () => !learned.b.some((r) => r.prefix === '10.65.0.0/26'));
  });
});

// Issue 6's concurrency case with the real plugin: four node namespaces, each with its agent, and
// 200 ADDs in flight together through the C client (50 per node, as many runtimes' calls at
// once) against one etcd: 200 distinct addresses, every block consistent with its affinity and
// handles; then 200 DELs: nothing in use, `ipam check` clean, no veth or endpoint left.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { checkReport, loadSnapshot, showReport } from '../../../ipam/report.js';
import { resourceKeyPath } from '../../../store/kinds.js';
import { isRoot, type Netns, vethBetween } from '../../harness/netns.js';
import { buildFixture } from '../agent/helpers.js';
import {
  type CniAgent,
  cni,
  ensureBuilt,
  hostLinks,
  netnsPath,
  nodeResource,
  pool,
  poolResource,
  startCniAgent,
  startUnixEtcd,
  type UnixEtcd,
} from './helpers.js';

const skip = !isRoot() && 'needs root (network namespaces)';
const NODES = 4;
const PER_NODE = 50;

interface World {
  etcd: UnixEtcd;
  nodes: { name: string; ns: Netns; agent: CniAgent }[];
  workloads: Netns[];
  close(): Promise<void>;
}

describe('200 concurrent CNI ADDs from 4 nodes against one etcd', { skip, timeout: 300_000 }, () => {
  let world: World | undefined;

  before(async () => {
    ensureBuilt();
    world = await buildFixture(async (made) => {
      const etcd = made.keep(await startUnixEtcd(), (e) => e.destroy());
      const names = Array.from({ length: NODES }, (_, i) => `conc-node-${i + 1}`);
      await etcd.kv.txn(
        [],
        [
          {
            put: resourceKeyPath('IPPool', 'conc'),
            value: poolResource('conc', { cidr: '10.87.0.0/22', blockSize: 26 }),
          },
          ...names.map((n) => ({ put: resourceKeyPath('Node', n), value: nodeResource(n) })),
        ],
      );
      const dir = made.keep(mkdtempSync(join(tmpdir(), 'gingham-cni-conc-')), (d) =>
        rmSync(d, { recursive: true, force: true }),
      );
      const fabric = made.netns('ccf');
      const nodes: World['nodes'] = [];
      for (const [i, name] of names.entries()) {
        const ns = made.netns('ccn');
        // An uplink and a default route, as a node has (proxy ARP for 169.254.1.1 needs one).
        vethBetween(ns, 'eth0', fabric, `f${i}`);
        ns.ip('addr', 'add', `192.168.${110 + i}.2/24`, 'dev', 'eth0');
        fabric.ip('addr', 'add', `192.168.${110 + i}.1/24`, 'dev', `f${i}`);
        ns.ip('route', 'add', 'default', 'via', `192.168.${110 + i}.1`);
        const agent = made.keep(await startCniAgent(ns, name, etcd, join(dir, `${name}.sock`)), (a) =>
          a.stop(),
        );
        nodes.push({ name, ns, agent });
      }
      const workloads = Array.from({ length: NODES * PER_NODE }, () => made.netns('ccw'));
      return { etcd, nodes, workloads };
    });
  });

  after(async () => {
    await world?.close();
  });

  it('200 ADDs in flight: distinct addresses, consistent blocks; 200 DELs leave nothing', async () => {
    const { etcd, nodes, workloads } = world!;
    const call = (command: string, i: number) => {
      const node = nodes[i % NODES]!;
      return cni({
        command,
        containerId: `conc-${i}`,
        netns: netnsPath(workloads[i]!),
        ifname: 'eth0',
        conf: {
          cniVersion: '1.1.0',
          name: 'concnet',
          type: 'gingham-cni',
          agent_socket: node.agent.socket,
          ipam: { type: 'gingham-ipam' },
        },
        nodeNs: node.ns.name,
      });
    };
    const ids = workloads.map((_, i) => i);
    const ips: string[] = [];
    await pool(ids, ids.length, async (i) => {
      const r = await call('ADD', i);
      assert.equal(r.code, 0, `ADD ${i}: ${r.stdout}${r.stderr}`);
      ips.push(r.json.ips[0].address);
    });
    assert.equal(new Set(ips).size, 200, 'no address handed out twice');
    assert.ok(
      ips.every((a) => /^10\.87\.[0-3]\.\d+\/32$/.test(a)),
      ips.join(' '),
    );
    for (const n of nodes) assert.equal(hostLinks(n.ns).length, PER_NODE, `${n.name}'s veths`);
    const snap = await loadSnapshot(etcd.kv);
    const report = checkReport(snap);
    assert.deepEqual(report.inconsistencies, [], 'blocks, affinities and handles agree');
    assert.ok(report.ok, JSON.stringify(report));
    assert.equal(showReport(snap).pools[0]!.inUse, 200);
    assert.equal(snap.endpoints.length, 200);
    for (const n of nodes)
      assert.ok(
        snap.blocks.some((b) => b.affinity === `host:${n.name}`),
        `${n.name} claimed a block of its own`,
      );

    await pool(ids, ids.length, async (i) => {
      const r = await call('DEL', i);
      assert.equal(r.code, 0, `DEL ${i}: ${r.stdout}${r.stderr}`);
    });
    const after = await loadSnapshot(etcd.kv);
    assert.equal(showReport(after).pools[0]!.inUse, 0);
    assert.ok(checkReport(after).ok, JSON.stringify(checkReport(after)));
    assert.deepEqual(after.handles, []);
    assert.deepEqual(after.endpoints, []);
    for (const n of nodes) assert.deepEqual(hostLinks(n.ns), [], `${n.name}'s veths are gone`);
  });
});

// The chart's TLS path end to end: etcd serves https only and wants a client certificate; the
// agent, in a node namespace, gets the files through ETCD_CA_CERT_FILE / ETCD_CERT_FILE /
// ETCD_KEY_FILE (as the chart's etcd.tlsSecret passes them). Its store, its VXLAN tunnel address
// (IPAM) and its CNI server all reach etcd with them, and a pod is made through the C client in
// agent mode. Before, the CNI server stayed off with https endpoints and every ADD failed (11).
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { EtcdLite, etcdTlsFromEnv } from '../../../ipam/etcd-lite.js';
import { loadSnapshot } from '../../../ipam/report.js';
import { etcdTlsEnv } from '../../harness/etcd.js';
import { isRoot, Netns } from '../../harness/netns.js';
import {
  type AgentProc,
  agentArgs,
  ipPool,
  type NodeWorld,
  startAgent,
  startNodeWorld,
  waitFor,
} from '../agent/helpers.js';
import { cni, ensureBuilt, netnsPath } from './helpers.js';

const skip = !isRoot() && 'needs root (network namespaces)';
const NODE = 'tls-agent-node';

describe('agent and CNI agent mode over an https etcd', { skip, timeout: 180_000 }, () => {
  let world: NodeWorld | undefined;
  let agent: AgentProc | undefined;
  let kv: EtcdLite | undefined;
  let dir: string;
  let socket: string;
  const pods: Netns[] = [];

  before(async () => {
    ensureBuilt();
    world = await startNodeWorld({ node: 'tn', fabric: 'tf' }, { defaultRoute: true, tls: true });
    const env = etcdTlsEnv(world.etcd.tls!);
    kv = new EtcdLite([world.etcd.endpoint], 5000, etcdTlsFromEnv(env));
    await world.store.apply(ipPool('tls-pool', { cidr: '10.85.0.0/24', blockSize: 28, vxlanMode: 'Always' }));
    dir = mkdtempSync(join(tmpdir(), 'gingham-cni-tls-'));
    socket = join(dir, 'cni.sock');
    const args = [
      ...agentArgs(NODE, { policy: 'off', etcd: 'https://127.0.0.1:2379', cniSocket: socket }),
      ...['--bgp', 'off'],
    ];
    agent = startAgent(world.node, args, [], { env });
    await waitFor(
      'the CNI server',
      () => agent!.logs.some((l) => l.includes('CNI server listening')),
      45_000,
      agent.logs,
    );
  });

  after(async () => {
    await agent?.kill();
    for (const p of pods) p.destroy();
    kv?.close();
    await world?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('the agent allocates its VXLAN tunnel address through IPAM over TLS', async () => {
    const spec = await waitFor(
      'the tunnel address',
      async () => {
        const s = (await world!.store.tryGet('Node', NODE))?.spec as
          | { ipv4VXLANTunnelAddr?: string }
          | undefined;
        return s?.ipv4VXLANTunnelAddr ? s : null;
      },
      45_000,
      agent!.logs,
    );
    assert.match(spec.ipv4VXLANTunnelAddr!, /^10\.85\.0\.\d+$/);
  });

  it('a pod made and removed through the C client in agent mode', async () => {
    const ws = Netns.create('tw');
    pods.push(ws);
    const conf = {
      cniVersion: '1.1.0',
      name: 'tlsnet',
      type: 'gingham-cni',
      agent_socket: socket,
      ipam: { type: 'gingham-ipam' },
    };
    const call = (command: string) =>
      cni({
        command,
        containerId: 'tls-pod-1',
        netns: netnsPath(ws),
        ifname: 'eth0',
        conf,
        nodeNs: world!.node.name,
      });
    const add = await call('ADD');
    assert.equal(add.code, 0, add.stdout + add.stderr + agent!.logs.slice(-10).join('\n'));
    const ip = (add.json.ips[0].address as string).split('/')[0]!;
    assert.match(ip, /^10\.85\.0\.\d+$/);
    assert.match(ws.ip('-o', '-4', 'addr', 'show', 'dev', 'eth0'), new RegExp(`inet ${ip}/32`));
    const snap = await loadSnapshot(kv!);
    assert.equal(snap.endpoints.length, 1);
    const del = await call('DEL');
    assert.equal(del.code, 0, del.stdout + del.stderr);
    const after = await loadSnapshot(kv!);
    assert.deepEqual(after.endpoints, []);
    assert.deepEqual(
      after.handles.filter((h) => !h.handleID.startsWith('vxlan')),
      [],
      'only the tunnel address stays allocated',
    );
  });
});

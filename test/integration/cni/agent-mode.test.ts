// gingham-cni in agent mode: the network configuration names the node agent's CNI socket
// (`agent_socket`), the built plugin (the C client, and once the Node launcher) is exec'd like a
// runtime does and hands the call to a real `gingham agent` running in the node namespace
// (agent/cni/server.ts). Covers ADD/CHECK/DEL with
// pod-to-pod traffic through 169.254.1.1, concurrent ADDs and DELs, a configuration for another
// node, and the agent being down (error 11 naming the socket, STATUS 50, nothing made).
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { checkReport, loadSnapshot } from '../../../ipam/report.js';
import { GINGHAM_ROUTE_PROTOCOL } from '../../../lib/constants.js';
import { resourceKeyPath } from '../../../store/kinds.js';
import { isRoot, type Netns } from '../../harness/netns.js';
import {
  type CniAgent,
  type CniNode,
  cni,
  ensureBuilt,
  NODE_PLUGIN,
  netnsPath,
  pool,
  startCniAgent,
  startCniNode,
  type UnixEtcd,
} from './helpers.js';

const skip = !isRoot() && 'needs root (network namespaces)';

describe('gingham-cni in agent mode', { skip, timeout: 240_000 }, () => {
  let world: CniNode | undefined;
  let etcd: UnixEtcd;
  let node: Netns;
  let agent: CniAgent | undefined;
  let dir: string;
  let socket: string;
  const NODE = 'cni-agent-node';
  const conf = (extra: Record<string, unknown> = {}) => ({
    cniVersion: '1.1.0',
    name: 'anet',
    type: 'gingham-cni',
    agent_socket: agent!.socket,
    mtu: 1400,
    ipam: { type: 'gingham-ipam', assign_ipv6: 'false' },
    ...extra,
  });
  const workload = () => world!.workload();
  const path = netnsPath;
  const call = (command: string, ns: Netns | null, id: string, c: Record<string, unknown> = conf()) =>
    cni({ command, containerId: id, netns: ns ? path(ns) : '', ifname: 'eth0', conf: c, nodeNs: node.name });
  const hostLinks = () => world!.hostLinks();
  const noLeak = async () => {
    assert.deepEqual(hostLinks(), []);
    const snap = await loadSnapshot(etcd.kv);
    assert.deepEqual(snap.handles, [], 'no allocation left behind');
    assert.deepEqual(snap.endpoints, [], 'no endpoint left behind');
  };

  before(async () => {
    ensureBuilt();
    // An uplink with a default route, so that proxy ARP answers for 169.254.1.1 (see plugin.test.ts).
    world = await startCniNode(
      { node: 'an', fabric: 'af', workload: 'aw' },
      {
        nodeName: NODE,
        pools: {
          v4: { cidr: '10.66.0.0/24', blockSize: 27 },
          v6: { cidr: 'fd00:66::/120', blockSize: 124 },
        },
        uplink: { node: '192.168.101.10/24', fabric: '192.168.101.1/24' },
      },
    );
    ({ etcd, node } = world);
    dir = mkdtempSync(join(tmpdir(), 'gingham-cni-agent-'));
    socket = join(dir, 'cni.sock');
    agent = await startCniAgent(node, NODE, etcd, socket);
  });

  after(async () => {
    await agent?.stop();
    await world?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('ADD wires two workloads that reach each other via 169.254.1.1; CHECK, DEL clean up', async () => {
    const w1 = workload();
    const w2 = workload();
    const r1 = await call('ADD', w1, 'a1');
    assert.equal(r1.code, 0, r1.stdout + r1.stderr);
    assert.equal(r1.json.cniVersion, '1.1.0');
    const hostIf = r1.json.interfaces[0].name as string;
    assert.match(hostIf, /^gh[0-9a-f]{11}$/);
    assert.equal(r1.json.interfaces[1].sandbox, path(w1));
    const ip1 = (r1.json.ips[0].address as string).split('/')[0]!;
    assert.match(r1.json.ips[0].address, /^10\.66\.0\.\d+\/32$/);
    const r2 = await call('ADD', w2, 'a2', conf({ cniVersion: '0.4.0' }));
    assert.equal(r2.code, 0, r2.stdout);
    assert.equal(r2.json.cniVersion, '0.4.0');
    assert.equal(r2.json.ips[0].version, '4');
    const ip2 = (r2.json.ips[0].address as string).split('/')[0]!;
    assert.notEqual(ip1, ip2);

    // Same kernel result as the direct plugin.
    assert.match(w1.ip('-o', '-4', 'addr', 'show', 'dev', 'eth0'), new RegExp(`inet ${ip1}/32`));
    assert.match(w1.ip('-4', 'route'), /default via 169\.254\.1\.1 dev eth0/);
    assert.match(w1.ip('link', 'show', 'eth0'), /mtu 1400/);
    assert.match(
      node.ip('-4', 'route', 'show', 'proto', String(GINGHAM_ROUTE_PROTOCOL)),
      new RegExp(`${ip1.replace(/\./g, '\\.')} dev ${hostIf} scope link`),
    );
    // The endpoint belongs to the agent's node (the configuration names none).
    const wep = await etcd.kv.get(
      resourceKeyPath('WorkloadEndpoint', `${NODE.replace(/-/g, '--')}-cni-a1-eth0`, 'default'),
    );
    assert.ok(wep, 'WorkloadEndpoint written');
    assert.equal(JSON.parse(wep.value.toString()).spec.node, NODE);

    w1.exec('busybox', ['ping', '-c', '1', '-W', '2', ip2]);

    const chk = await call('CHECK', w1, 'a1', conf({ prevResult: r1.json }));
    assert.equal(chk.code, 0, chk.stdout);
    w1.ip('addr', 'del', `${ip1}/32`, 'dev', 'eth0');
    const bad = await call('CHECK', w1, 'a1', conf({ prevResult: r1.json }));
    assert.equal(bad.code, 1);
    assert.match(bad.json.msg, /lacks/);

    for (const [ns, id] of [
      [w1, 'a1'],
      [w2, 'a2'],
    ] as const) {
      const d = await call('DEL', ns, id);
      assert.equal(d.code, 0, d.stdout);
      assert.equal((await call('DEL', ns, id)).code, 0, 'DEL is idempotent');
    }
    await noLeak();
    assert.ok(checkReport(await loadSnapshot(etcd.kv)).ok);
  });

  it('dual-stack: /128 and a default route via the host side link-local', async () => {
    const w = workload();
    const r = await call('ADD', w, 'a6', conf({ ipam: { type: 'gingham-ipam' } }));
    assert.equal(r.code, 0, r.stdout);
    const v6 = r.json.ips.find((i: { address: string }) => i.address.includes(':'));
    assert.match(v6.address, /^fd00:66::[0-9a-f]+\/128$/);
    assert.match(w.ip('-6', 'route'), /default via fe80::ecee:eeff:feee:eeee dev eth0/);
    node.ip('addr', 'add', 'fd00:98::1/128', 'dev', 'lo');
    w.exec('busybox', ['ping', '-6', '-c', '1', '-W', '3', 'fd00:98::1']);
    assert.equal((await call('DEL', w, 'a6')).code, 0);
    await noLeak();
  });

  it('a failing kernel step is rolled back: veth, allocation, endpoint', async () => {
    const w = workload();
    w.ip('link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 'other0');
    const r = await call('ADD', w, 'a7');
    assert.equal(r.code, 1);
    assert.equal(r.json.code, 102);
    assert.match(r.json.msg, /creating veth/);
    await noLeak();
  });

  it('STATUS through the agent; a configuration naming another node is refused', async () => {
    const st = await cni({ command: 'STATUS', conf: conf(), nodeNs: node.name });
    assert.equal(st.code, 0, st.stdout);
    const w = workload();
    const r = await call('ADD', w, 'a3', conf({ nodename: 'some-other-node' }));
    assert.equal(r.code, 1);
    assert.equal(r.json.code, 7);
    assert.match(r.json.msg, /names node "some-other-node" but the agent at .* serves node "cni-agent-node"/);
    await noLeak();
  });

  it('concurrent ADDs get distinct addresses; concurrent DELs free them all', async () => {
    const n = 16;
    const ns = Array.from({ length: n }, () => workload());
    const ips: string[] = [];
    await pool(ns, n, async (w, i) => {
      const r = await call('ADD', w, `p${i}`);
      assert.equal(r.code, 0, r.stdout + r.stderr);
      ips.push(r.json.ips[0].address);
    });
    assert.equal(new Set(ips).size, n, 'distinct addresses');
    assert.equal(hostLinks().length, n);
    const report = checkReport(await loadSnapshot(etcd.kv));
    assert.ok(report.ok, JSON.stringify(report));
    await pool(ns, n, async (w, i) => {
      const d = await call('DEL', w, `p${i}`);
      assert.equal(d.code, 0, d.stdout);
    });
    await noLeak();
  });

  it('the Node launcher (node gingham-cni.cjs) in agent mode does what the C client does', async () => {
    const w = workload();
    const viaNode = (command: string, c: Record<string, unknown> = conf()) =>
      cni({
        bin: NODE_PLUGIN,
        command,
        containerId: 'n1',
        netns: path(w),
        ifname: 'eth0',
        conf: c,
        nodeNs: node.name,
      });
    const r = await viaNode('ADD');
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.json.ips[0].address, /^10\.66\.0\.\d+\/32$/);
    const chkNode = await viaNode('CHECK', conf({ prevResult: r.json }));
    assert.equal(chkNode.code, 0, chkNode.stdout);
    // The same call through the C client sees the same workload (CHECK passes there too).
    const chkC = await call('CHECK', w, 'n1', conf({ prevResult: r.json }));
    assert.equal(chkC.code, 0, chkC.stdout);
    const del = await viaNode('DEL');
    assert.equal(del.code, 0, del.stdout);
    await noLeak();
    const down = await viaNode('ADD', conf({ agent_socket: '/nonexistent/gingham/cni.sock' }));
    const downC = await call('ADD', w, 'n1', conf({ agent_socket: '/nonexistent/gingham/cni.sock' }));
    assert.equal(down.json.code, 11);
    assert.equal(downC.json.code, 11);
    for (const o of [down, downC])
      assert.match(o.json.msg, /not reachable at \/nonexistent\/gingham\/cni\.sock: ENOENT/);
  });

  it('a request over the size limit is refused in the form the client reads (5), nothing made', async () => {
    const w = workload();
    // ~600 kB of configuration (under the client's limit) that escaping makes ~1.2 MB of request.
    const r = await call('ADD', w, 'big', conf({ padding: '"'.repeat(300_000) }));
    assert.equal(r.code, 1, r.stdout);
    assert.equal(r.json.code, 5, r.stdout);
    assert.match(r.json.msg, /request larger than 1048576 bytes/);
    await noLeak();
  });

  it('agent down: try again later (11) naming the socket, STATUS 50, nothing made', async () => {
    const w = workload();
    // A socket path where nothing ever listened.
    const missing = await call('ADD', w, 'd0', conf({ agent_socket: '/nonexistent/gingham/cni.sock' }));
    assert.equal(missing.code, 1);
    assert.equal(missing.json.code, 11);
    assert.match(missing.json.msg, /\/nonexistent\/gingham\/cni\.sock/);
    assert.match(missing.json.msg, /ENOENT/);

    await agent!.stop();
    agent = undefined;
    assert.equal(existsSync(socket), false, 'a stopped agent removes its socket');
    const c = { ...conf2(socket) };
    const r = await call('ADD', w, 'd1', c);
    assert.equal(r.code, 1);
    assert.equal(r.json.code, 11);
    assert.ok(r.json.msg.includes(socket), r.json.msg);
    assert.equal(r.json.cniVersion, '1.1.0');
    const st = await cni({ command: 'STATUS', conf: c, nodeNs: node.name });
    assert.equal(st.code, 1);
    assert.equal(st.json.code, 50);
    const d = await call('DEL', w, 'd1', c);
    assert.equal(d.json.code, 11, 'DEL waits for the agent too (the runtime retries)');
    await noLeak();
    assert.deepEqual(w.ip('-o', 'link').includes('eth0'), false);

    // Back: the same call goes through.
    agent = await startCniAgent(node, NODE, etcd, socket);
    const again = await call('ADD', w, 'd1', conf());
    assert.equal(again.code, 0, again.stdout);
    assert.equal((await call('DEL', w, 'd1')).code, 0);
    await noLeak();
  });

  it('an agent killed (socket file left, nobody listening): 11, and the next agent takes the socket over', async () => {
    const w = workload();
    await agent!.stop('SIGKILL');
    agent = undefined;
    assert.ok(existsSync(socket), 'SIGKILL leaves the socket file');
    const r = await call('ADD', w, 'k1', conf2(socket));
    assert.equal(r.json.code, 11);
    assert.match(r.json.msg, /ECONNREFUSED/);
    await noLeak();
    agent = await startCniAgent(node, NODE, etcd, socket);
    const ok = await call('ADD', w, 'k1');
    assert.equal(ok.code, 0, ok.stdout);
    assert.equal((await call('DEL', w, 'k1')).code, 0);
    await noLeak();
  });

  function conf2(socket: string): Record<string, unknown> {
    return {
      cniVersion: '1.1.0',
      name: 'anet',
      type: 'gingham-cni',
      agent_socket: socket,
      ipam: { type: 'gingham-ipam', assign_ipv6: 'false' },
    };
  }
});

// gingham-cni end to end: a node namespace, workload namespaces, a real etcd; the built plugin is
// exec'd like a runtime does. Covers ADD/CHECK/DEL, result versions, pod-to-pod traffic through
// 169.254.1.1, IPv6, idempotent DEL, STATUS, GC and the bad-input cases of issue 6.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import { checkReport, loadSnapshot } from '../../../ipam/report.js';
import { GINGHAM_ROUTE_PROTOCOL } from '../../../lib/constants.js';
import { resourceKeyPath } from '../../../store/kinds.js';
import { isRoot, type Netns } from '../../harness/netns.js';
import {
  CLI,
  type CniNode,
  cni,
  ensureBuilt,
  IPAM_PLUGIN,
  netnsPath,
  PLUGIN,
  poolResource,
  startCniNode,
  type UnixEtcd,
} from './helpers.js';

const skip = !isRoot() && 'needs root (network namespaces)';

describe('gingham-cni in a node namespace', { skip, timeout: 120_000 }, () => {
  let world: CniNode | undefined;
  let etcd: UnixEtcd;
  let node: Netns;
  let workload: CniNode['workload'];
  let hostLinks: () => string[];
  const NODE = 'cni-node-1';
  const conf = (extra: Record<string, unknown> = {}) => ({
    cniVersion: '1.1.0',
    name: 'gnet',
    type: 'gingham-cni',
    nodename: NODE,
    etcd_endpoints: etcd.unix,
    mtu: 1400,
    ipam: { type: 'gingham-ipam', assign_ipv6: 'false' },
    ...extra,
  });
  const add = (ns: Netns, id: string, c: Record<string, unknown> = conf(), args?: string) =>
    cni({
      command: 'ADD',
      containerId: id,
      netns: netnsPath(ns),
      ifname: 'eth0',
      conf: c,
      nodeNs: node.name,
      ...(args ? { args } : {}),
    });
  const del = (ns: Netns | null, id: string, c: Record<string, unknown> = conf()) =>
    cni({
      command: 'DEL',
      containerId: id,
      netns: ns ? netnsPath(ns) : '',
      ifname: 'eth0',
      conf: c,
      nodeNs: node.name,
    });

  before(async () => {
    ensureBuilt();
    world = await startCniNode(
      { node: 'gn', fabric: 'gf', workload: 'gw' },
      {
        nodeName: NODE,
        pools: {
          v4: { cidr: '10.65.0.0/24', blockSize: 28 },
          v6: { cidr: 'fd00:65::/120', blockSize: 124 },
        },
        uplink: { node: '192.168.100.10/24', fabric: '192.168.100.1/24' },
      },
    );
    ({ etcd, node, workload, hostLinks } = world);
  });

  after(async () => {
    await world?.close();
  });

  it('answers VERSION', async () => {
    const r = await cni({ command: 'VERSION', conf: '' });
    assert.equal(r.code, 0);
    assert.deepEqual(r.json.supportedVersions, ['0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0']);
    // Answered by the launcher: no bundle (nor module) is loaded for it, in either executable.
    for (const bin of [PLUGIN, IPAM_PLUGIN]) {
      const t = await cni({ bin, command: 'VERSION', conf: '', env: { GINGHAM_CNI_TRACE: '1' } });
      assert.equal(t.code, 0, t.stderr);
      assert.equal(t.json.cniVersion, '1.1.0');
      assert.doesNotMatch(t.stderr, /loading/);
    }
  });

  it('ADD wires two workloads that reach each other via 169.254.1.1; CHECK, DEL clean up', async () => {
    const w1 = workload();
    const w2 = workload();
    const r1 = await add(w1, 'c1');
    assert.equal(r1.code, 0, r1.stdout + r1.stderr);
    assert.equal(r1.json.cniVersion, '1.1.0');
    const hostIf = r1.json.interfaces[0].name as string;
    assert.match(hostIf, /^gh[0-9a-f]{11}$/);
    assert.equal(r1.json.interfaces[0].mac, 'ee:ee:ee:ee:ee:ee');
    assert.equal(r1.json.interfaces[1].sandbox, netnsPath(w1));
    const ip1 = (r1.json.ips[0].address as string).split('/')[0]!;
    assert.match(r1.json.ips[0].address, /^10\.65\.0\.\d+\/32$/);
    // Older result versions as the runtime asks.
    const r2 = await add(w2, 'c2', conf({ cniVersion: '0.3.1' }));
    assert.equal(r2.code, 0, r2.stdout);
    assert.equal(r2.json.cniVersion, '0.3.1');
    assert.equal(r2.json.ips[0].version, '4');
    const ip2 = (r2.json.ips[0].address as string).split('/')[0]!;
    assert.notEqual(ip1, ip2);

    // Container side: /32, 169.254.1.1 scope link, default via it, MTU from config.
    const addr = w1.ip('-o', '-4', 'addr', 'show', 'dev', 'eth0');
    assert.match(addr, new RegExp(`inet ${ip1.replace(/\./g, '\\.')}/32`));
    const routes = w1.ip('-4', 'route');
    assert.match(routes, /default via 169\.254\.1\.1 dev eth0/);
    assert.match(routes, /169\.254\.1\.1 dev eth0 scope link/);
    assert.match(w1.ip('link', 'show', 'eth0'), /mtu 1400/);
    // Host side: /32 route with our protocol, proxy ARP on.
    assert.match(
      node.ip('-4', 'route', 'show', 'proto', String(GINGHAM_ROUTE_PROTOCOL)),
      new RegExp(`${ip1.replace(/\./g, '\\.')} dev ${hostIf} scope link`),
    );
    assert.equal(node.exec('cat', [`/proc/sys/net/ipv4/conf/${hostIf}/proxy_arp`]).trim(), '1');
    // The endpoint, Calico-named.
    const wep = await etcd.kv.get(
      resourceKeyPath('WorkloadEndpoint', `${NODE.replace(/-/g, '--')}-cni-c1-eth0`, 'default'),
    );
    assert.ok(wep, 'WorkloadEndpoint written');
    const spec = JSON.parse(wep.value.toString()).spec;
    assert.deepEqual(spec.ipNetworks, [`${ip1}/32`]);
    assert.equal(spec.interfaceName, hostIf);
    assert.equal(spec.node, NODE);

    // Pod to pod on one node: only through the host's routes and proxy ARP.
    w1.exec('busybox', ['ping', '-c', '1', '-W', '2', ip2]);

    // CHECK passes, then fails once the container loses its address.
    const check = () =>
      cni({
        command: 'CHECK',
        containerId: 'c1',
        netns: netnsPath(w1),
        ifname: 'eth0',
        conf: conf({ prevResult: r1.json }),
        nodeNs: node.name,
      });
    const chk = await check();
    assert.equal(chk.code, 0, chk.stdout);
    w1.ip('addr', 'del', `${ip1}/32`, 'dev', 'eth0');
    const bad = await check();
    assert.equal(bad.code, 1);
    assert.match(bad.json.msg, /lacks/);

    for (const [ns, id] of [
      [w1, 'c1'],
      [w2, 'c2'],
    ] as const) {
      const d = await del(ns, id);
      assert.equal(d.code, 0, d.stdout);
      const again = await del(ns, id);
      assert.equal(again.code, 0, 'DEL is idempotent');
    }
    assert.deepEqual(hostLinks(), []);
    assert.equal(w1.ip('-o', 'link').includes('eth0'), false);
    const report = checkReport(await loadSnapshot(etcd.kv));
    assert.ok(report.ok, JSON.stringify(report));
    // Every address is free again; the node keeps at most one (empty) block per family warm.
    const blocks = (await loadSnapshot(etcd.kv)).blocks;
    assert.ok(blocks.every((b) => b.allocations.every((a) => a === null)));
    assert.ok(
      blocks.filter((b) => !b.cidr.includes(':')).length <= 1,
      JSON.stringify(blocks.map((b) => b.cidr)),
    );
  });

  it('dual-stack: /128 and a default route via the host side link-local', async () => {
    const w = workload();
    const r = await add(w, 'c6', conf({ ipam: { type: 'gingham-ipam' } }));
    assert.equal(r.code, 0, r.stdout);
    const v6 = r.json.ips.find((i: { address: string }) => i.address.includes(':'));
    assert.match(v6.address, /^fd00:65::[0-9a-f]+\/128$/);
    assert.match(w.ip('-6', 'route'), /default via fe80::ecee:eeff:feee:eeee dev eth0/);
    // The host answers for its link-local and routes the /128 back: ping the node's own address.
    node.ip('addr', 'add', 'fd00:99::1/128', 'dev', 'lo');
    w.exec('busybox', ['ping', '-6', '-c', '1', '-W', '3', 'fd00:99::1']);
    assert.equal((await del(w, 'c6')).code, 0);
  });

  it('STATUS and GC', async () => {
    const st = await cni({ command: 'STATUS', conf: conf() });
    assert.equal(st.code, 0, st.stdout);
    const [a, b, c] = [workload(), workload(), workload()];
    for (const [ns, id] of [
      [a, 'g1'],
      [b, 'g2'],
      [c, 'g3'],
    ] as const)
      assert.equal((await add(ns, id)).code, 0);
    const gc = await cni({
      command: 'GC',
      conf: conf({ 'cni.dev/valid-attachments': [{ containerID: 'g2', ifname: 'eth0' }] }),
      nodeNs: node.name,
    });
    assert.equal(gc.code, 0, gc.stdout);
    assert.equal(hostLinks().length, 1, 'only the valid attachment keeps its veth');
    const snap = await loadSnapshot(etcd.kv);
    assert.deepEqual(
      snap.handles.map((h) => h.handleID),
      ['gnet.g2.eth0'],
    );
    assert.deepEqual(
      snap.endpoints.map((e) => e.name),
      [`${NODE.replace(/-/g, '--')}-cni-g2-eth0`],
    );
    assert.equal((await del(b, 'g2')).code, 0);
    // STATUS fails when etcd is unreachable (code 50).
    const down = await cni({ command: 'STATUS', conf: conf({ etcd_endpoints: 'unix:///nonexistent.sock' }) });
    assert.equal(down.json.code, 50);
  });

  describe('bad input: a CNI error with a clear message, nothing leaked', () => {
    const noLeak = async () => {
      assert.deepEqual(hostLinks(), []);
      const snap = await loadSnapshot(etcd.kv);
      assert.deepEqual(snap.handles, [], 'no allocation left behind');
      assert.deepEqual(snap.endpoints, [], 'no endpoint left behind');
    };

    it('malformed network configuration', async () => {
      const w = workload();
      const r = await cni({
        command: 'ADD',
        containerId: 'b1',
        netns: netnsPath(w),
        ifname: 'eth0',
        conf: '{"cniVersion":',
        nodeNs: node.name,
      });
      assert.equal(r.code, 1);
      assert.equal(r.json.code, 6);
      assert.match(r.json.msg, /not valid JSON/);
      const r2 = await add(w, 'b1', conf({ mtu: 'big' }));
      assert.equal(r2.json.code, 7);
      assert.match(r2.json.msg, /mtu/);
      const r3 = await add(w, 'b1', conf({ ipam: undefined }));
      assert.equal(r3.json.code, 7);
      assert.match(r3.json.msg, /ipam/);
      await noLeak();
    });

    it('missing netns', async () => {
      const r = await cni({
        command: 'ADD',
        containerId: 'b2',
        netns: '/var/run/netns/does-not-exist',
        ifname: 'eth0',
        conf: conf(),
        nodeNs: node.name,
      });
      assert.equal(r.json.code, 3);
      assert.match(r.json.msg, /does-not-exist does not exist/);
      await noLeak();
    });

    it('bad CNI_ARGS and bad interface names', async () => {
      const w = workload();
      const r = await add(w, 'b3', conf(), 'K8S_POD_NAME');
      assert.equal(r.json.code, 4);
      assert.match(r.json.msg, /CNI_ARGS/);
      for (const ifname of ['averyveryverylongname', 'eth/0']) {
        const x = await cni({
          command: 'ADD',
          containerId: 'b3',
          netns: netnsPath(w),
          ifname,
          conf: conf(),
          nodeNs: node.name,
        });
        assert.equal(x.json.code, 4);
        assert.match(x.json.msg, /CNI_IFNAME/);
      }
      await noLeak();
    });

    it('an interface name that already exists in the container is rolled back', async () => {
      const w = workload();
      w.ip('link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 'other0');
      const r = await add(w, 'b4');
      assert.equal(r.code, 1);
      assert.equal(r.json.code, 102);
      assert.match(r.json.msg, /creating veth/);
      await noLeak();
    });

    it('an exhausted pool', async () => {
      await etcd.kv.txn(
        [],
        [
          {
            put: resourceKeyPath('IPPool', 'v4'),
            value: poolResource('v4', { cidr: '10.66.0.0/30', blockSize: 30 }),
          },
          {
            put: resourceKeyPath('IPPool', 'v6'),
            value: poolResource('v6', { cidr: 'fd00:65::/120', blockSize: 124, disabled: true }),
          },
        ],
      );
      try {
        const ws = [workload(), workload(), workload(), workload(), workload()];
        for (let i = 0; i < 4; i++) assert.equal((await add(ws[i]!, `x${i}`)).code, 0);
        const r = await add(ws[4]!, 'x4');
        assert.equal(r.json.code, 100);
        assert.match(r.json.msg, /no free IPv4 address in pools 10\.66\.0\.0\/30/);
        assert.equal(hostLinks().length, 4);
        for (let i = 0; i < 4; i++) assert.equal((await del(ws[i]!, `x${i}`)).code, 0);
        await noLeak();
      } finally {
        await etcd.kv.txn(
          [],
          [
            {
              put: resourceKeyPath('IPPool', 'v4'),
              value: poolResource('v4', { cidr: '10.65.0.0/24', blockSize: 28 }),
            },
            {
              put: resourceKeyPath('IPPool', 'v6'),
              value: poolResource('v6', { cidr: 'fd00:65::/120', blockSize: 124 }),
            },
          ],
        );
      }
    });

    it('etcd down: try again later (11), nothing made; DEL after it is back cleans up', async () => {
      const w = workload();
      await etcd.stop();
      try {
        const r = await add(w, 'b5', conf(), undefined);
        assert.equal(r.code, 1);
        assert.equal(r.json.code, 11);
        assert.match(r.json.msg, /etcd unavailable/);
        assert.deepEqual(hostLinks(), []);
      } finally {
        await etcd.start();
      }
      const d = await del(w, 'b5');
      assert.equal(d.code, 0, d.stdout);
      await noLeak();
    });
  });

  it('gingham ipam show/check through the CLI', async () => {
    const w = workload();
    const a = await add(w, 's1');
    assert.equal(a.code, 0, a.stdout);
    const env = { ...process.env, ETCD_ENDPOINTS: etcd.endpoint };
    const show = JSON.parse(
      execFileSync(CLI, ['ipam', 'show', '--show-blocks', '-o', 'json'], { env, encoding: 'utf8' }),
    );
    assert.deepEqual(Object.keys(show), ['pools', 'blocks']);
    const v4 = show.pools.find((p: { name: string }) => p.name === 'v4');
    assert.deepEqual(v4, { name: 'v4', cidr: '10.65.0.0/24', size: 256, inUse: 1, free: 255 });
    assert.deepEqual(Object.keys(show.blocks[0]), ['cidr', 'pool', 'node', 'inUse', 'free']);
    assert.ok(show.blocks.every((b: { node: string }) => b.node === NODE));
    execFileSync(CLI, ['ipam', 'check'], { env });
    // A leak: the endpoint disappears but the address stays allocated → exit 1.
    await etcd.kv.txn(
      [],
      [{ delete: resourceKeyPath('WorkloadEndpoint', `${NODE.replace(/-/g, '--')}-cni-s1-eth0`, 'default') }],
    );
    assert.throws(
      () => execFileSync(CLI, ['ipam', 'check'], { env, stdio: 'pipe' }),
      (e: { status: number; stdout: Buffer }) => {
        return e.status === 1 && /leaked: 10\.65\.0\.\d+/.test(e.stdout.toString());
      },
    );
    const ip = a.json.ips[0].address.split('/')[0];
    const out = execFileSync(CLI, ['ipam', 'release', '--ip', ip], { env, encoding: 'utf8' });
    assert.match(out, /released/);
    assert.equal((await del(w, 's1')).code, 0);
    execFileSync(CLI, ['ipam', 'check'], { env });
  });
});

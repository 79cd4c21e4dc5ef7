// gingham-cni with other plugins and a real runtime: delegation to Debian's host-local, a chain
// with portmap and bandwidth (driven the way libcni drives a conflist), podman with its CNI
// backend, and an ADD killed midway (SIGKILL) that DEL and GC clean up after.
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { checkReport, loadSnapshot } from '../../../ipam/report.js';
import { resourceKeyPath } from '../../../store/kinds.js';
import { isRoot, type Netns, vethBetween } from '../../harness/netns.js';
import {
  type CniNode,
  cni,
  cniSpawn,
  ensureBuilt,
  IPAM_PLUGIN,
  netnsPath,
  PLUGIN,
  startCniNode,
  type UnixEtcd,
} from './helpers.js';

const skip = !isRoot() && 'needs root (network namespaces)';

describe('gingham-cni with other plugins and runtimes', { skip, timeout: 150_000 }, () => {
  let world: CniNode | undefined;
  let etcd: UnixEtcd;
  let node: Netns;
  let fabric: Netns;
  let workload: CniNode['workload'];
  let hostLinks: () => string[];
  let tmp: string;
  const NODE = 'rt-node';
  const base = () => ({
    cniVersion: '1.0.0',
    name: 'rnet',
    type: 'gingham-cni',
    nodename: NODE,
    etcd_endpoints: etcd.unix,
    ipam: { type: 'gingham-ipam', assign_ipv6: 'false' },
  });

  before(async () => {
    ensureBuilt();
    tmp = mkdtempSync(join(tmpdir(), 'gingham-cni-rt-'));
    world = await startCniNode(
      { node: 'rn', fabric: 'rf', workload: 'rw' },
      {
        nodeName: NODE,
        pools: { rt: { cidr: '10.90.0.0/24', blockSize: 28 } },
        uplink: { node: '192.168.200.10/24', fabric: '192.168.200.1/24' },
      },
    );
    ({ etcd, node, fabric, workload, hostLinks } = world);
    node.exec('sysctl', ['-qw', 'net.ipv4.ip_forward=1']);
  });

  after(async () => {
    await world?.close();
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  });

  it('delegates IPAM to Debian host-local (exec via CNI_PATH) and releases through it on DEL', async () => {
    const dataDir = join(tmp, 'host-local');
    const conf = { ...base(), ipam: { type: 'host-local', dataDir, ranges: [[{ subnet: '10.91.0.0/24' }]] } };
    const w = workload();
    const r = await cni({
      command: 'ADD',
      containerId: 'hl1',
      netns: netnsPath(w),
      ifname: 'eth0',
      conf,
      nodeNs: node.name,
    });
    assert.equal(r.code, 0, r.stdout);
    assert.match(r.json.ips[0].address, /^10\.91\.0\.\d+\/32$/);
    const ip = r.json.ips[0].address.split('/')[0];
    assert.match(w.ip('-4', 'addr', 'show', 'dev', 'eth0'), new RegExp(`${ip}/32`));
    assert.ok(existsSync(join(dataDir, 'rnet', ip)), 'host-local recorded the lease');
    const d = await cni({
      command: 'DEL',
      containerId: 'hl1',
      netns: netnsPath(w),
      ifname: 'eth0',
      conf,
      nodeNs: node.name,
    });
    assert.equal(d.code, 0, d.stdout);
    assert.ok(!existsSync(join(dataDir, 'rnet', ip)), 'host-local released it');
    assert.deepEqual(hostLinks(), []);
    // An IPAM type that is nowhere in CNI_PATH is a clear error, and nothing is left.
    const bad = await cni({
      command: 'ADD',
      containerId: 'hl2',
      netns: netnsPath(w),
      ifname: 'eth0',
      conf: { ...base(), ipam: { type: 'nope' } },
      nodeNs: node.name,
    });
    assert.equal(bad.json.code, 7);
    assert.match(bad.json.msg, /plugin "nope" not found in CNI_PATH/);
    assert.deepEqual(hostLinks(), []);
  });

  it('chains with portmap (host port → pod port DNAT) and bandwidth, like a conflist', async () => {
    const w = workload();
    const client = workload('rc');
    vethBetween(fabric, 'f1', client, 'eth0');
    fabric.ip('addr', 'add', '192.168.201.1/24', 'dev', 'f1');
    client.ip('addr', 'add', '192.168.201.2/24', 'dev', 'eth0');
    client.ip('route', 'add', 'default', 'via', '192.168.201.1');
    fabric.exec('sysctl', ['-qw', 'net.ipv4.ip_forward=1']);
    const list = {
      cniVersion: '1.0.0',
      name: 'rnet',
      plugins: [
        {
          type: 'gingham-cni',
          nodename: NODE,
          etcd_endpoints: etcd.unix,
          ipam: { type: 'gingham-ipam', assign_ipv6: 'false' },
        },
        { type: 'portmap', capabilities: { portMappings: true }, snat: true },
        { type: 'bandwidth', capabilities: { bandwidth: true } },
      ],
    };
    const runtimeConfig = {
      portMappings: [{ hostPort: 8080, containerPort: 80, protocol: 'tcp', name: 'http' }],
      bandwidth: {
        ingressRate: 10_000_000,
        ingressBurst: 1_000_000,
        egressRate: 10_000_000,
        egressBurst: 1_000_000,
      },
    };
    // libcni: each plugin gets the list's name/cniVersion, its own keys, runtimeConfig for the
    // capabilities it declares, and the previous plugin's result.
    let prev: unknown;
    const confs: Record<string, unknown>[] = [];
    for (const p of list.plugins) {
      const rc: Record<string, unknown> = {};
      for (const cap of Object.keys(p.capabilities ?? {}))
        rc[cap] = runtimeConfig[cap as keyof typeof runtimeConfig];
      if (p.type === 'gingham-cni') rc.portMappings = runtimeConfig.portMappings;
      const c = {
        ...p,
        name: list.name,
        cniVersion: list.cniVersion,
        runtimeConfig: rc,
        ...(prev ? { prevResult: prev } : {}),
      };
      confs.push(c);
      const bin = p.type === 'gingham-cni' ? PLUGIN : `/usr/lib/cni/${p.type}`;
      const r = await cni({
        bin,
        command: 'ADD',
        containerId: 'pm1',
        netns: netnsPath(w),
        ifname: 'eth0',
        conf: c,
        nodeNs: node.name,
      });
      assert.equal(r.code, 0, `${p.type}: ${r.stdout}${r.stderr}`);
      prev = r.json;
    }
    const podIp = (prev as { ips: { address: string }[] }).ips[0]!.address.split('/')[0]!;
    // The endpoint records the named port.
    const wep = JSON.parse(
      (await etcd.kv.get(
        resourceKeyPath('WorkloadEndpoint', 'rt--node-cni-pm1-eth0', 'default'),
      ))!.value.toString(),
    );
    assert.deepEqual(wep.spec.ports, [{ name: 'http', protocol: 'TCP', port: 80, hostPort: 8080 }]);
    // bandwidth put a tbf qdisc on the host side.
    assert.match(node.ip('link', 'show', wep.spec.interfaceName), /qdisc tbf/);
    // A server in the pod on port 80, reached from outside the node at node:8080.
    const server = spawn(
      'ip',
      ['netns', 'exec', w.name, 'busybox', 'nc', '-l', '-p', '80', '-e', 'echo', 'hello-from-pod'],
      { stdio: 'ignore' },
    );
    try {
      let answer = '';
      for (let i = 0; i < 30 && !answer.includes('hello'); i++) {
        await new Promise((r) => setTimeout(r, 100));
        answer = client.exec('busybox', ['nc', '-w', '2', '192.168.200.10', '8080'], { allowFail: true });
      }
      assert.match(answer, /hello-from-pod/, `DNAT to ${podIp}:80`);
    } finally {
      server.kill('SIGKILL');
    }
    for (const c of confs.reverse()) {
      const bin = c.type === 'gingham-cni' ? PLUGIN : `/usr/lib/cni/${c.type}`;
      const r = await cni({
        bin,
        command: 'DEL',
        containerId: 'pm1',
        netns: netnsPath(w),
        ifname: 'eth0',
        conf: { ...c, prevResult: prev },
        nodeNs: node.name,
      });
      assert.equal(r.code, 0, `${c.type} DEL: ${r.stdout}`);
    }
    assert.deepEqual(hostLinks(), []);
  });

  it('an ADD killed midway (SIGKILL) is cleaned up by DEL, and by GC', async () => {
    let interrupted = 0;
    const ids: { id: string; ns: Netns }[] = [];
    for (let i = 0; i < 8; i++) {
      const w = workload();
      const id = `k${i}`;
      ids.push({ id, ns: w });
      const { proc, done } = cniSpawn({
        command: 'ADD',
        containerId: id,
        netns: netnsPath(w),
        ifname: 'eth0',
        conf: base(),
        nodeNs: node.name,
      });
      // Kill at spread-out moments across the ADD (process start, IPAM, veth, endpoint).
      await new Promise((r) => setTimeout(r, 60 + i * 45));
      proc.kill('SIGKILL');
      const out = await done;
      if (out.signal === 'SIGKILL') interrupted++;
    }
    assert.ok(interrupted > 0, 'at least one ADD was interrupted');
    const before = await loadSnapshot(etcd.kv);
    const leftovers = before.handles.length + hostLinks().length;
    // DEL for the first half, GC (runtime knows none of them) for the rest.
    for (const { id, ns } of ids.slice(0, 4)) {
      const d = await cni({
        command: 'DEL',
        containerId: id,
        netns: netnsPath(ns),
        ifname: 'eth0',
        conf: base(),
        nodeNs: node.name,
      });
      assert.equal(d.code, 0, d.stdout);
    }
    const gc = await cni({
      command: 'GC',
      conf: { ...base(), cniVersion: '1.1.0', 'cni.dev/valid-attachments': [] },
      nodeNs: node.name,
    });
    assert.equal(gc.code, 0, gc.stdout);
    // Veths whose ADD died before the endpoint was written: the runtime removes the netns.
    // The kernel tears a deleted netns (and the veth pairs with an end in it) down asynchronously.
    for (const { ns } of ids.slice(4)) ns.destroy();
    for (let i = 0; i < 100 && hostLinks().length > 0; i++) await new Promise((r) => setTimeout(r, 50));
    assert.deepEqual(hostLinks(), [], `veths left (had ${leftovers} leftovers before cleanup)`);
    const snap = await loadSnapshot(etcd.kv);
    assert.deepEqual(snap.handles, []);
    assert.deepEqual(snap.endpoints, []);
    assert.ok(checkReport(snap).ok, JSON.stringify(checkReport(snap)));
  });

  it('podman runs a container on a gingham network inside the node namespace', {
    timeout: 90_000,
  }, async (t) => {
    if (!existsSync('/usr/bin/podman') || !existsSync('/bin/busybox'))
      return t.skip('podman or busybox-static missing');
    const rootfs = join(tmp, 'rootfs');
    mkdirSync(join(rootfs, 'bin'), { recursive: true });
    copyFileSync('/bin/busybox', join(rootfs, 'bin/busybox'));
    execFileSync('chmod', ['+x', join(rootfs, 'bin/busybox')]);
    for (const c of ['sh', 'ip', 'cat']) symlinkSync('busybox', join(rootfs, 'bin', c));
    const cniDir = join(tmp, 'cni');
    const pluginDir = join(tmp, 'plugins');
    mkdirSync(cniDir);
    mkdirSync(pluginDir);
    symlinkSync(PLUGIN, join(pluginDir, 'gingham-cni'));
    symlinkSync(IPAM_PLUGIN, join(pluginDir, 'gingham-ipam'));
    for (const p of ['portmap', 'bandwidth', 'host-local', 'loopback'])
      symlinkSync(`/usr/lib/cni/${p}`, join(pluginDir, p));
    writeFileSync(
      join(cniDir, 'podnet.conflist'),
      JSON.stringify({
        cniVersion: '1.0.0',
        name: 'podnet',
        plugins: [
          {
            type: 'gingham-cni',
            nodename: NODE,
            etcd_endpoints: etcd.unix,
            ipam: { type: 'gingham-ipam', assign_ipv6: 'false' },
          },
        ],
      }),
    );
    const conf = join(tmp, 'containers.conf');
    writeFileSync(
      conf,
      `[network]\nnetwork_backend = "cni"\ncni_plugin_dirs = ["${pluginDir}"]\nnetwork_config_dir = "${cniDir}"\n`,
    );
    const storage = join(tmp, 'storage');
    const out = execFileSync(
      'nsenter',
      [
        `--net=/var/run/netns/${node.name}`,
        'podman',
        '--root',
        join(storage, 'root'),
        '--runroot',
        join(storage, 'run'),
        '--runtime',
        'runc',
        '--cgroup-manager',
        'cgroupfs',
        '--network-backend',
        'cni',
        '--cni-config-dir',
        cniDir,
        'run',
        '--rm',
        '--network',
        'podnet',
        '--ulimit',
        'nofile=20000:20000',
        '--ulimit',
        'nproc=4096:4096',
        '--rootfs',
        rootfs,
        '/bin/sh',
        '-c',
        'ip -4 addr show eth0; ip route',
      ],
      { env: { ...process.env, CONTAINERS_CONF: conf }, encoding: 'utf8', timeout: 80_000 },
    );
    assert.match(out, /inet 10\.90\.0\.\d+\/32/);
    assert.match(out, /default via 169\.254\.1\.1 dev eth0/);
    // --rm: podman ran DEL; nothing left behind.
    assert.deepEqual(hostLinks(), []);
    const snap = await loadSnapshot(etcd.kv);
    assert.deepEqual(snap.handles, []);
    assert.deepEqual(snap.endpoints, []);
    void readdirSync;
  });
});

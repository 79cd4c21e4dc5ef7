// gingham-cni: the CNI main plugin (entry: cni/plugin.ts). ADD = IPAM → veth + addresses +
// routes → WorkloadEndpoint; any failure rolls back what was done. DEL undoes everything and
// succeeds when it is already gone.
import type { EtcdLite } from '../ipam/etcd-lite.js';
import { hostVethName } from '../lib/constants.js';
import { type CniEnv, type NetConf, versionAtLeast } from './config.js';
import {
  attach,
  detach,
  HOST_SIDE_LINK_LOCAL,
  hostLinkExists,
  inspectContainer,
  netnsExists,
  randomMac,
} from './dataplane.js';
import { delegate } from './delegate.js';
import {
  buildEndpoint,
  deleteEndpoint,
  identityFrom,
  listEndpoints,
  NETWORK_ANNOTATION,
  readEndpoint,
  workloadIdOf,
  writeEndpoint,
} from './endpoint.js';
import { CniCode, CniError } from './errors.js';
import {
  etcdFor,
  GINGHAM_IPAM,
  ipamAdd,
  ipamCheck,
  ipamDel,
  ipamGc,
  ipamStatus,
  nodeName,
  toCniError,
} from './ipam-core.js';
import { type CniResult, parseResult, toVersion } from './result.js';
import { main } from './skel.js';
import { trace } from './trace.js';

trace('modules loaded');

const DEFAULT_MTU = 1500;

function ipamType(conf: NetConf): string {
  if (!conf.ipam)
    throw new CniError(CniCode.InvalidNetworkConfig, 'network configuration has no "ipam" section');
  return conf.ipam.type;
}

/** Runs the IPAM step: in-process for gingham-ipam, else the delegated executable. */
async function runIpam(
  command: 'ADD' | 'DEL' | 'CHECK' | 'GC',
  conf: NetConf,
  env: CniEnv,
  kv: EtcdLite,
): Promise<CniResult | undefined> {
  const type = ipamType(conf);
  if (type === GINGHAM_IPAM) {
    if (command === 'ADD') return ipamAdd(conf, env, kv);
    if (command === 'DEL') await ipamDel(conf, env, kv);
    if (command === 'CHECK')
      await ipamCheck(
        conf,
        env,
        kv,
        parseResult(conf.prevResult).ips.map((i) => i.address),
      );
    if (command === 'GC') await ipamGc(conf, kv);
    return undefined;
  }
  const out = await delegate(type, command, JSON.stringify(conf), env.path);
  return command === 'ADD' ? parseResult(out) : undefined;
}

function splitFamilies(ips: { address: string }[]): { v4: string[]; v6: string[] } {
  const v4: string[] = [];
  const v6: string[] = [];
  for (const ip of ips) {
    const a = ip.address.split('/')[0]!;
    (a.includes(':') ? v6 : v4).push(a);
  }
  return { v4, v6 };
}

function hostIfFor(conf: NetConf, env: CniEnv): string {
  return hostVethName(workloadIdOf(identityFrom(nodeName(conf), env.containerId, env.ifname, env.args)));
}

async function add(conf: NetConf, env: CniEnv): Promise<unknown> {
  const node = nodeName(conf);
  const id = identityFrom(node, env.containerId, env.ifname, env.args);
  if (!(await netnsExists(env.netns))) {
    throw new CniError(CniCode.UnknownContainer, `network namespace ${env.netns} does not exist`);
  }
  const hostIf = hostVethName(workloadIdOf(id));
  const mtu = conf.mtu ?? DEFAULT_MTU;
  const kv = etcdFor(conf);
  const undo: (() => Promise<unknown>)[] = [];
  try {
    trace('add: start');
    const ipamResult = await runIpam('ADD', conf, env, kv);
    trace('add: ipam');
    undo.push(() => runIpam('DEL', conf, env, kv));
    const { v4, v6 } = splitFamilies(ipamResult?.ips ?? []);
    if (v4.length + v6.length === 0)
      throw new CniError(CniCode.IpamFailure, `IPAM plugin ${ipamType(conf)} returned no address`);
    const containerMac = randomMac();
    await attach({
      netns: env.netns,
      ifname: env.ifname,
      hostIf,
      mtu,
      ipv4: v4,
      ipv6: v6,
      containerMac,
      programHostRoutes: conf.program_host_routes !== false,
    });
    undo.push(() => detach(hostIf));
    trace('add: dataplane');
    const ipNetworks = [...v4.map((a) => `${a}/32`), ...v6.map((a) => `${a}/128`)];
    const wep = buildEndpoint({
      id,
      network: conf.name,
      hostIf,
      mac: containerMac,
      ipNetworks,
      labels: conf.args?.cni?.labels ?? [],
      portMappings: conf.runtimeConfig?.portMappings ?? [],
    });
    await writeEndpoint(kv, wep);
    trace('add: endpoint');
    const result: CniResult = {
      cniVersion: conf.cniVersion,
      interfaces: [
        { name: hostIf, mac: 'ee:ee:ee:ee:ee:ee', mtu },
        { name: env.ifname, mac: containerMac, sandbox: env.netns, mtu },
      ],
      ips: ipNetworks.map((address) => ({
        address,
        interface: 1,
        gateway: address.includes(':') ? HOST_SIDE_LINK_LOCAL : '169.254.1.1',
      })),
      routes: [...(v4.length ? [{ dst: '0.0.0.0/0' }] : []), ...(v6.length ? [{ dst: '::/0' }] : [])],
    };
    if (ipamResult?.dns) result.dns = ipamResult.dns;
    return toVersion(result, conf.cniVersion);
  } catch (e) {
    for (const u of undo.reverse()) await u().catch(() => undefined);
    throw e;
  } finally {
    kv.close();
  }
}

async function del(conf: NetConf, env: CniEnv): Promise<void> {
  const id = identityFrom(nodeName(conf), env.containerId, env.ifname, env.args);
  const kv = etcdFor(conf);
  const errors: unknown[] = [];
  const hostIf = hostVethName(workloadIdOf(id));
  try {
    // The three undo steps are independent: run them side by side.
    await Promise.all([
      detach(hostIf).catch((e) => errors.push(e)),
      runIpam('DEL', conf, env, kv).catch((e) => errors.push(e)),
      (async () => {
        // An endpoint written under another host-side name (older naming, different args).
        const wep = await readEndpoint(kv, id);
        const other = wep?.spec?.containerID === env.containerId ? wep.spec.interfaceName : undefined;
        if (other && other !== hostIf) await detach(other);
        await deleteEndpoint(kv, id);
      })().catch((e) => errors.push(e)),
    ]);
  } finally {
    kv.close();
  }
  if (errors.length > 0) throw errors[0];
}

async function check(conf: NetConf, env: CniEnv): Promise<void> {
  if (conf.prevResult === undefined)
    throw new CniError(CniCode.InvalidNetworkConfig, 'CHECK needs prevResult');
  const prev = parseResult(conf.prevResult);
  if (!(await netnsExists(env.netns)))
    throw new CniError(CniCode.UnknownContainer, `network namespace ${env.netns} does not exist`);
  const hostIf = hostIfFor(conf, env);
  if (!(await hostLinkExists(hostIf)))
    throw new CniError(CniCode.DataplaneFailure, `host interface ${hostIf} is missing`);
  const view = await inspectContainer(env.netns, env.ifname);
  if (!view.exists)
    throw new CniError(CniCode.DataplaneFailure, `interface ${env.ifname} is missing in ${env.netns}`);
  const want = prev.ips.map((i) => {
    const a = i.address.split('/')[0]!;
    return a.includes(':') ? `${a}/128` : `${a}/32`;
  });
  const missing = want.filter((a) => !view.addresses.includes(a));
  if (missing.length > 0)
    throw new CniError(CniCode.DataplaneFailure, `${env.ifname} lacks ${missing.join(', ')}`);
  const v4 = want.some((a) => !a.includes(':'));
  if (v4 && !view.routes.some((r) => r.dst === 'default' && r.gateway === '169.254.1.1')) {
    throw new CniError(CniCode.DataplaneFailure, `${env.ifname} has no default route via 169.254.1.1`);
  }
  const kv = etcdFor(conf);
  try {
    const wep = await readEndpoint(kv, identityFrom(nodeName(conf), env.containerId, env.ifname, env.args));
    if (!wep)
      throw new CniError(
        CniCode.DataplaneFailure,
        `WorkloadEndpoint for ${env.containerId}/${env.ifname} is missing`,
      );
    await runIpam('CHECK', conf, env, kv);
  } finally {
    kv.close();
  }
}

async function status(conf: NetConf): Promise<void> {
  if (ipamType(conf) !== GINGHAM_IPAM) return; // third-party IPAM plugins may predate STATUS
  const kv = etcdFor(conf);
  try {
    await ipamStatus(kv);
  } finally {
    kv.close();
  }
}

/** GC: remove endpoints (and their veths) and allocations of attachments the runtime no longer has. */
async function gc(conf: NetConf, env: CniEnv): Promise<void> {
  const node = nodeName(conf);
  const valid = new Set((conf['cni.dev/valid-attachments'] ?? []).map((a) => `${a.containerID}/${a.ifname}`));
  const kv = etcdFor(conf);
  try {
    for (const { wep } of await listEndpoints(kv)) {
      if (wep.spec?.node !== node || wep.metadata?.annotations?.[NETWORK_ANNOTATION] !== conf.name) continue;
      if (valid.has(`${wep.spec.containerID}/${wep.spec.endpoint}`)) continue;
      if (wep.spec.interfaceName) await detach(wep.spec.interfaceName);
      const id = {
        node,
        orchestrator: wep.spec.orchestrator === 'k8s' ? ('k8s' as const) : ('cni' as const),
        namespace: wep.metadata.namespace,
        workload: wep.spec.pod ?? wep.spec.workload ?? wep.spec.containerID,
        containerId: wep.spec.containerID,
        ifname: wep.spec.endpoint,
      };
      await deleteEndpoint(kv, id);
    }
    if (versionAtLeast(conf.cniVersion, '1.1.0')) await runIpam('GC', conf, env, kv);
  } finally {
    kv.close();
  }
}

main({ toCniError, add, del, check, status, gc });

// The gingham-cni commands (ADD, DEL, CHECK, STATUS, GC), written once for both ways a call
// arrives: the plugin executable working directly (cni/plugin-main.ts: a per-call etcd client,
// the node from the configuration) and the agent's CNI server (agent/cni/server.ts: its warm etcd
// client, its node, its allocator hint). What differs between the two is the CniContext.
//
// ADD = IPAM → veth + addresses + routes → WorkloadEndpoint; any failure rolls back what was done.
// DEL undoes everything and succeeds when it is already gone.
import type { AllocatorMemory } from '../ipam/allocator.js';
import type { KvClient } from '../ipam/etcd-lite.js';
import { hostVethName } from '../lib/constants.js';
import type { Family } from '../lib/ip.js';
import { type CniEnv, type NetConf, versionAtLeast } from './config.js';
import { HOST_SIDE_LINK_LOCAL, iprouteDataplane, randomMac, type WorkloadDataplane } from './dataplane.js';
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
  GINGHAM_IPAM,
  type IpamContext,
  ipamAdd,
  ipamCheck,
  ipamDel,
  ipamGc,
  ipamStatus,
  toCniError,
} from './ipam-core.js';
import { type CniResult, parseResult, toVersion } from './result.js';
import type { PluginHandlers } from './skel.js';

const DEFAULT_MTU = 1500;

/** A datastore client lent to one call; `release` ends the loan (closes a per-call client). */
export interface KvLease {
  kv: KvClient;
  release(): void;
}

/** What a call runs against. */
export interface CniContext {
  /** The node this call acts for (may reject a configuration naming another node). */
  node(conf: NetConf): string;
  /** The datastore for one call. */
  open(conf: NetConf): KvLease;
  /** The allocator's last-block hint, kept across calls by a long-lived caller. */
  lastBlock?: Map<Family, string>;
  /** The blocks and handles the allocator remembers, kept across calls the same way. */
  allocatorMemory?: AllocatorMemory;
  /** The kernel side (default: iproute2 in batch mode). */
  dataplane?: WorkloadDataplane;
  /** Phase timings of this call (GINGHAM_CNI_TRACE). */
  trace?: (phase: string) => void;
}

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
  ipam: IpamContext,
): Promise<CniResult | undefined> {
  const type = ipamType(conf);
  if (type === GINGHAM_IPAM) {
    if (command === 'ADD') return ipamAdd(conf, env, ipam);
    if (command === 'DEL') await ipamDel(conf, env, ipam);
    if (command === 'CHECK')
      await ipamCheck(
        conf,
        env,
        ipam,
        parseResult(conf.prevResult).ips.map((i) => i.address),
      );
    if (command === 'GC') await ipamGc(conf, ipam);
    return undefined;
  }
  const out = await delegate(type, command, JSON.stringify(conf), env.path, env.vars);
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

/** The command handlers over a context. Cheap to make: the agent makes one set per call. */
export function cniCommands(ctx: CniContext): PluginHandlers {
  const dp = ctx.dataplane ?? iprouteDataplane;
  const trace = ctx.trace ?? (() => undefined);
  const ipamCtx = (kv: KvClient, node: string): IpamContext => {
    const c: IpamContext = { kv, node };
    if (ctx.lastBlock) c.lastBlock = ctx.lastBlock;
    if (ctx.allocatorMemory) c.memory = ctx.allocatorMemory;
    return c;
  };

  async function add(conf: NetConf, env: CniEnv): Promise<unknown> {
    const node = ctx.node(conf);
    const id = identityFrom(node, env.containerId, env.ifname, env.args);
    if (!(await dp.netnsExists(env.netns))) {
      throw new CniError(CniCode.UnknownContainer, `network namespace ${env.netns} does not exist`);
    }
    const hostIf = hostVethName(workloadIdOf(id));
    const mtu = conf.mtu ?? DEFAULT_MTU;
    const lease = ctx.open(conf);
    const ipam = ipamCtx(lease.kv, node);
    const undo: (() => Promise<unknown>)[] = [];
    const containerMac = randomMac();
    try {
      trace('add: start');
      // A dataplane that can (the agent's) creates the pair while IPAM runs.
      const pair = dp.createPair?.({ netns: env.netns, ifname: env.ifname, hostIf, mtu, containerMac });
      if (pair) {
        pair.catch(() => undefined); // its failure surfaces below, or in the undo
        undo.push(() =>
          pair.then(
            () => dp.detach(hostIf),
            () => undefined,
          ),
        );
      }
      const ipamResult = await runIpam('ADD', conf, env, ipam);
      trace('add: ipam');
      undo.push(() => runIpam('DEL', conf, env, ipam));
      const { v4, v6 } = splitFamilies(ipamResult?.ips ?? []);
      if (v4.length + v6.length === 0)
        throw new CniError(CniCode.IpamFailure, `IPAM plugin ${ipamType(conf)} returned no address`);
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
      // The kernel side and the endpoint are independent (everything the endpoint names is known
      // now): written side by side. An agent that sees the endpoint before the veth exists waits
      // for the link, as it does for any endpoint whose interface is not there yet.
      const spec = {
        netns: env.netns,
        ifname: env.ifname,
        hostIf,
        mtu,
        ipv4: v4,
        ipv6: v6,
        containerMac,
        programHostRoutes: conf.program_host_routes !== false,
      };
      const kernel = pair && dp.configurePair ? pair.then(() => dp.configurePair!(spec)) : dp.attach(spec);
      const [attached, written] = await Promise.allSettled([kernel, writeEndpoint(lease.kv, wep)]);
      if (attached.status === 'fulfilled' && !pair) undo.push(() => dp.detach(hostIf));
      if (written.status === 'fulfilled') undo.push(() => deleteEndpoint(lease.kv, id));
      if (attached.status === 'rejected') throw attached.reason;
      if (written.status === 'rejected') throw written.reason;
      trace('add: dataplane and endpoint');
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
      lease.release();
    }
  }

  async function del(conf: NetConf, env: CniEnv): Promise<void> {
    const node = ctx.node(conf);
    const id = identityFrom(node, env.containerId, env.ifname, env.args);
    const lease = ctx.open(conf);
    const errors: unknown[] = [];
    const hostIf = hostVethName(workloadIdOf(id));
    try {
      // The three undo steps are independent: run them side by side.
      await Promise.all([
        dp.detach(hostIf).catch((e) => errors.push(e)),
        runIpam('DEL', conf, env, ipamCtx(lease.kv, node)).catch((e) => errors.push(e)),
        (async () => {
          // An endpoint written under another host-side name (older naming, different args).
          const wep = await readEndpoint(lease.kv, id);
          const other = wep?.spec?.containerID === env.containerId ? wep.spec.interfaceName : undefined;
          if (other && other !== hostIf) await dp.detach(other);
          await deleteEndpoint(lease.kv, id);
        })().catch((e) => errors.push(e)),
      ]);
    } finally {
      lease.release();
    }
    if (errors.length > 0) throw errors[0];
  }

  async function check(conf: NetConf, env: CniEnv): Promise<void> {
    if (conf.prevResult === undefined)
      throw new CniError(CniCode.InvalidNetworkConfig, 'CHECK needs prevResult');
    const prev = parseResult(conf.prevResult);
    if (!(await dp.netnsExists(env.netns)))
      throw new CniError(CniCode.UnknownContainer, `network namespace ${env.netns} does not exist`);
    const node = ctx.node(conf);
    const id = identityFrom(node, env.containerId, env.ifname, env.args);
    const hostIf = hostVethName(workloadIdOf(id));
    if (!(await dp.hostLinkExists(hostIf)))
      throw new CniError(CniCode.DataplaneFailure, `host interface ${hostIf} is missing`);
    const view = await dp.inspectContainer(env.netns, env.ifname);
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
    const lease = ctx.open(conf);
    try {
      const wep = await readEndpoint(lease.kv, id);
      if (!wep)
        throw new CniError(
          CniCode.DataplaneFailure,
          `WorkloadEndpoint for ${env.containerId}/${env.ifname} is missing`,
        );
      await runIpam('CHECK', conf, env, ipamCtx(lease.kv, node));
    } finally {
      lease.release();
    }
  }

  async function status(conf: NetConf): Promise<void> {
    if (ipamType(conf) !== GINGHAM_IPAM) return; // third-party IPAM plugins may predate STATUS
    const lease = ctx.open(conf);
    try {
      await ipamStatus(lease.kv);
    } finally {
      lease.release();
    }
  }

  /** GC: remove endpoints (and their veths) and allocations of attachments the runtime no longer has. */
  async function gc(conf: NetConf, env: CniEnv): Promise<void> {
    const node = ctx.node(conf);
    const valid = new Set(
      (conf['cni.dev/valid-attachments'] ?? []).map((a) => `${a.containerID}/${a.ifname}`),
    );
    const lease = ctx.open(conf);
    try {
      for (const { wep } of await listEndpoints(lease.kv)) {
        if (wep.spec?.node !== node || wep.metadata?.annotations?.[NETWORK_ANNOTATION] !== conf.name)
          continue;
        if (valid.has(`${wep.spec.containerID}/${wep.spec.endpoint}`)) continue;
        if (wep.spec.interfaceName) await dp.detach(wep.spec.interfaceName);
        const id = {
          node,
          orchestrator: wep.spec.orchestrator === 'k8s' ? ('k8s' as const) : ('cni' as const),
          namespace: wep.metadata.namespace,
          workload: wep.spec.pod ?? wep.spec.workload ?? wep.spec.containerID,
          containerId: wep.spec.containerID,
          ifname: wep.spec.endpoint,
        };
        await deleteEndpoint(lease.kv, id);
      }
      if (versionAtLeast(conf.cniVersion, '1.1.0')) await runIpam('GC', conf, env, ipamCtx(lease.kv, node));
    } finally {
      lease.release();
    }
  }

  return { toCniError, add, del, check, status, gc };
}

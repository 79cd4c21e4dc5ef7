// Kernel side of a workload attachment: the veth pair, the container's addresses and routes,
// the host's /32 (/128) route and proxy-ARP. Driven through iproute2 in batch mode (`ip -n` for
// the container side when it is a named netns): measured cheaper to start than any netlink
// binding in Node. (In the plugin, starting them while IPAM runs was tried and measured no
// faster: Node's spawn blocks the event loop until the child has exec'd, and that is most of an
// `ip` call. The agent's CNI server has its `ip` processes started ahead of time, so there the
// pair is created while IPAM runs: createPair/configurePair.)
import { spawn } from 'node:child_process';
import { realpathSync } from 'node:fs';
import { access, writeFile } from 'node:fs/promises';
import { basename, dirname } from 'node:path';
import { GINGHAM_ROUTE_PROTOCOL, HOST_SIDE_MAC, WORKLOAD_GATEWAY_V4 } from '../lib/constants.js';
import { CniCode, CniError } from './errors.js';

/** Link-local address the kernel derives (EUI-64) for the host side's MAC ee:ee:ee:ee:ee:ee. */
export const HOST_SIDE_LINK_LOCAL = 'fe80::ecee:eeff:feee:eeee';

export class DataplaneError extends CniError {
  constructor(
    readonly op: string,
    readonly stderr: string,
  ) {
    super(CniCode.DataplaneFailure, `${op} failed: ${stderr.trim() || 'unknown error'}`);
    this.name = 'DataplaneError';
  }
}

export interface ExecResult {
  code: number;
  stdout: string;
  stderr: string;
}

function exec(cmd: string, args: string[], input?: string): Promise<ExecResult> {
  return new Promise((resolve) => {
    const p = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d: Buffer) => {
      stdout += d;
    });
    p.stderr.on('data', (d: Buffer) => {
      stderr += d;
    });
    p.on('error', (e) => resolve({ code: -1, stdout, stderr: `${cmd}: ${e.message}` }));
    // A child that exits without reading stdin makes our write fail with EPIPE: not an error here.
    p.stdin.on('error', () => undefined);
    p.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
    p.stdin.end(input ?? '');
  });
}

/** Where `ip -n NAME` looks for NAME (iproute2's NETNS_RUN_DIR), resolved through symlinks. */
let netnsRunDir: string | null | undefined;

/**
 * How `ip` reaches the namespace at path `netns`: by name (`ip -n NAME`: iproute2 switches itself,
 * one exec, ~7 ms less than nsenter + ip) when it is a named namespace, else by path (nsenter; any
 * path, e.g. /proc/PID/ns/net).
 */
export function netnsTarget(netns: string): { name: string } | { path: string } {
  if (netnsRunDir === undefined) {
    try {
      netnsRunDir = realpathSync('/var/run/netns');
    } catch {
      netnsRunDir = null;
    }
  }
  const name = basename(netns);
  let dir: string | null = null;
  try {
    dir = realpathSync(dirname(netns));
  } catch {}
  if (netnsRunDir !== null && dir === netnsRunDir && /^[\w.-]+$/.test(name) && !name.startsWith('.'))
    return { name };
  return { path: netns };
}

/** The command that runs `ip ARGS` inside the namespace at path `netns`. */
function ipIn(netns: string, args: string[]): [string, string[]] {
  const t = netnsTarget(netns);
  return 'name' in t ? ['ip', ['-n', t.name, ...args]] : ['nsenter', [`--net=${t.path}`, 'ip', ...args]];
}

/**
 * Runs `ip -batch -` (lines on stdin) in this namespace or inside `netns` (a path). The plugin
 * starts a process per batch; the agent's CNI server has processes started ahead of time
 * (agent/cni/warm.ts), since starting one from a large process costs it 10–20 ms.
 */
export interface IpBatchRunner {
  batch(lines: string[], netns?: string): Promise<ExecResult>;
}

export const spawnBatchRunner: IpBatchRunner = {
  batch(lines, netns) {
    const input = `${lines.join('\n')}\n`;
    return netns ? exec(...ipIn(netns, ['-batch', '-']), input) : exec('ip', ['-batch', '-'], input);
  },
};

/** Runs a batch; a failure is a DataplaneError naming `op`. */
async function batch(run: IpBatchRunner, lines: string[], op: string, netns?: string): Promise<void> {
  const r = await run.batch(lines, netns);
  if (r.code !== 0) throw new DataplaneError(op, r.stderr);
}

/** Locally administered unicast MAC for the container side (random: Calico does the same). */
export function randomMac(): string {
  const b = new Uint8Array(6);
  crypto.getRandomValues(b);
  b[0] = (b[0]! & 0xfe) | 0x02;
  return Array.from(b, (x) => x.toString(16).padStart(2, '0')).join(':');
}

export interface AttachSpec {
  netns: string;
  ifname: string;
  hostIf: string;
  mtu: number;
  /** Addresses without prefix length. */
  ipv4: string[];
  ipv6: string[];
  containerMac: string;
  programHostRoutes: boolean;
}

/**
 * Host-side sysctls (Felix sets the same): proxy ARP so 169.254.1.1 resolves to the host, no proxy
 * delay, forwarding on; IPv6: no DAD on the host side (its link-local is the gateway), no RAs.
 */
async function hostSysctls(hostIf: string, v6: boolean, routing: boolean): Promise<void> {
  const w = (p: string, v: string) => writeFile(`/proc/sys/net/${p}`, v);
  const ops: Promise<void>[] = [];
  if (routing) {
    ops.push(
      w(`ipv4/conf/${hostIf}/proxy_arp`, '1'),
      w(`ipv4/neigh/${hostIf}/proxy_delay`, '0'),
      w(`ipv4/conf/${hostIf}/forwarding`, '1'),
    );
  }
  if (v6) {
    ops.push(w(`ipv6/conf/${hostIf}/accept_dad`, '0'), w(`ipv6/conf/${hostIf}/accept_ra`, '0'));
    if (routing) ops.push(w(`ipv6/conf/${hostIf}/forwarding`, '1'));
  }
  try {
    await Promise.all(ops);
  } catch (e) {
    throw new DataplaneError(`sysctl on ${hostIf}`, (e as Error).message);
  }
}

/** What is known of an attachment before IPAM has answered: enough to create the pair. */
export type PairSpec = Omit<AttachSpec, 'ipv4' | 'ipv6' | 'programHostRoutes'>;

function createLine(s: PairSpec): string {
  return `link add ${s.hostIf} address ${HOST_SIDE_MAC} mtu ${s.mtu} type veth peer name ${s.ifname} address ${s.containerMac} mtu ${s.mtu} netns ${s.netns}`;
}

/** Host side after creation: bring the end up, route the workload's addresses to it. */
function hostUpLines(s: AttachSpec): string[] {
  const up = [`link set ${s.hostIf} up`];
  if (s.programHostRoutes) {
    for (const a of s.ipv4)
      up.push(`route replace ${a}/32 dev ${s.hostIf} scope link proto ${GINGHAM_ROUTE_PROTOCOL}`);
    for (const a of s.ipv6) up.push(`route replace ${a}/128 dev ${s.hostIf} proto ${GINGHAM_ROUTE_PROTOCOL}`);
  }
  return up;
}

/** Container side: addresses, link up, the routes via 169.254.1.1 (and the host's link-local). */
function containerLines(s: AttachSpec): string[] {
  const c: string[] = [];
  for (const a of s.ipv4) c.push(`addr add ${a}/32 dev ${s.ifname}`);
  for (const a of s.ipv6) c.push(`addr add ${a}/128 dev ${s.ifname} nodad`);
  c.push(`link set ${s.ifname} up`);
  if (s.ipv4.length > 0) {
    c.push(`route add ${WORKLOAD_GATEWAY_V4} dev ${s.ifname} scope link`);
    c.push(`route add default via ${WORKLOAD_GATEWAY_V4} dev ${s.ifname}`);
  }
  if (s.ipv6.length > 0) c.push(`route add default via ${HOST_SIDE_LINK_LOCAL} dev ${s.ifname}`);
  return c;
}

/**
 * Runs the batch that creates the pair (`lines[0]`, then what else the caller adds). The pair may
 * exist from a failed later line, or a leftover host veth of the same workload (crashed ADD,
 * recreated sandbox) is in the way: ours is removed and the batch retried once.
 */
async function createWith(run: IpBatchRunner, s: PairSpec, lines: string[]): Promise<void> {
  const op = `creating veth ${s.hostIf}/${s.ifname} in ${s.netns}`;
  const remove = () => run.batch([`link del ${s.hostIf}`]);
  try {
    await batch(run, lines, op);
  } catch (e) {
    const r = await remove();
    if (r.code !== 0 && !(e instanceof DataplaneError && /File exists/.test(e.stderr))) throw e;
    await batch(run, lines, op).catch(async (e2) => {
      await remove();
      throw e2;
    });
  }
}

/**
 * After the pair exists: sysctls, the host end up with its routes, the container side. With
 * IPv6 the host end comes up only after DAD is off, so that its link-local (the container's IPv6
 * gateway) is usable at once; for IPv4 the three steps are independent and run side by side.
 * On failure, removes the pair.
 */
async function configureWith(run: IpBatchRunner, s: AttachSpec, hostUp: boolean): Promise<void> {
  const v6 = s.ipv6.length > 0;
  const up = hostUpLines(s);
  const container = () => batch(run, containerLines(s), `configuring ${s.ifname} in ${s.netns}`, s.netns);
  try {
    if (v6) {
      await hostSysctls(s.hostIf, v6, s.programHostRoutes);
      if (hostUp) await batch(run, up, `bringing up ${s.hostIf}`);
      await container();
    } else {
      // allSettled: every step has ended before the pair is removed.
      const r = await Promise.allSettled([
        hostSysctls(s.hostIf, v6, s.programHostRoutes),
        hostUp ? batch(run, up, `bringing up ${s.hostIf}`) : Promise.resolve(),
        container(),
      ]);
      for (const x of r) if (x.status === 'rejected') throw x.reason;
    }
  } catch (e) {
    await run.batch([`link del ${s.hostIf}`]);
    throw e;
  }
}

/**
 * Creates the veth pair and configures both ends. The host side is one `ip -batch` for IPv4-only
 * (create the pair — container end straight into the netns under its final name —, bring the
 * host end up, route the workload's addresses to it); with IPv6 the host end is brought up later,
 * after DAD is off. On failure, removes what it made.
 */
async function attachWith(run: IpBatchRunner, s: AttachSpec): Promise<void> {
  const v6 = s.ipv6.length > 0;
  await createWith(run, s, v6 ? [createLine(s)] : [createLine(s), ...hostUpLines(s)]);
  await configureWith(run, s, v6);
}

/**
 * Removes the pair (deleting the host end removes both). Absent = success (DEL is idempotent).
 * The container side is never touched by name: an interface there may belong to another network.
 */
async function detachWith(run: IpBatchRunner, hostIf: string): Promise<void> {
  const r = await run.batch([`link del ${hostIf}`]);
  if (r.code !== 0 && !/Cannot find device|does not exist/.test(r.stderr)) {
    throw new DataplaneError(`deleting ${hostIf}`, r.stderr);
  }
}

export const attach = (s: AttachSpec): Promise<void> => attachWith(spawnBatchRunner, s);
export const detach = (hostIf: string): Promise<void> => detachWith(spawnBatchRunner, hostIf);

export interface ContainerView {
  exists: boolean;
  mac?: string;
  addresses: string[];
  routes: { dst: string; gateway?: string }[];
}

/** What the container side looks like (CHECK). */
export async function inspectContainer(netns: string, ifname: string): Promise<ContainerView> {
  const r = await exec(...ipIn(netns, ['-j', 'addr', 'show', 'dev', ifname]));
  if (r.code !== 0) return { exists: false, addresses: [], routes: [] };
  const links = JSON.parse(r.stdout) as {
    address?: string;
    addr_info?: { local: string; prefixlen: number }[];
  }[];
  const link = links[0];
  const addresses = (link?.addr_info ?? [])
    .filter((a) => !a.local.startsWith('fe80'))
    .map((a) => `${a.local}/${a.prefixlen}`);
  const routes: ContainerView['routes'] = [];
  for (const fam of ['-4', '-6']) {
    const rr = await exec(...ipIn(netns, ['-j', fam, 'route', 'show', 'dev', ifname]));
    if (rr.code !== 0) continue;
    for (const x of JSON.parse(rr.stdout || '[]') as { dst: string; gateway?: string }[]) {
      routes.push(x.gateway ? { dst: x.dst, gateway: x.gateway } : { dst: x.dst });
    }
  }
  const out: ContainerView = { exists: true, addresses, routes };
  if (link?.address) out.mac = link.address;
  return out;
}

export async function hostLinkExists(hostIf: string): Promise<boolean> {
  return (await exec('ip', ['link', 'show', 'dev', hostIf])).code === 0;
}

/** Whether the netns path can be entered (missing netns is CNI error 3 on ADD/CHECK). */
export async function netnsExists(netns: string): Promise<boolean> {
  try {
    await access(netns);
    return true;
  } catch {
    return false;
  }
}

/** The kernel operations of the CNI commands (cni/commands.ts); the agent may bring its own. */
export interface WorkloadDataplane {
  attach(s: AttachSpec): Promise<void>;
  /**
   * Optional split of attach, for a caller whose batches cost no process start (the agent): the
   * pair is created while IPAM runs (createPair), the rest once the addresses are known
   * (configurePair, which removes the pair on failure).
   */
  createPair?(s: PairSpec): Promise<void>;
  configurePair?(s: AttachSpec): Promise<void>;
  detach(hostIf: string): Promise<void>;
  hostLinkExists(hostIf: string): Promise<boolean>;
  inspectContainer(netns: string, ifname: string): Promise<ContainerView>;
  netnsExists(netns: string): Promise<boolean>;
}

/**
 * The iproute2 implementation above, with `ip -batch` processes from `run`; `split`: offer
 * createPair/configurePair (one batch more per ADD, but the first one runs alongside IPAM).
 */
export function iprouteDataplaneWith(run: IpBatchRunner, split = false): WorkloadDataplane {
  const dp: WorkloadDataplane = {
    attach: (s) => attachWith(run, s),
    detach: (hostIf) => detachWith(run, hostIf),
    hostLinkExists,
    inspectContainer,
    netnsExists,
  };
  if (split) {
    dp.createPair = (s) => createWith(run, s, [createLine(s)]);
    dp.configurePair = (s) => configureWith(run, s, true);
  }
  return dp;
}

/** The plugin's: a process per batch. */
export const iprouteDataplane: WorkloadDataplane = iprouteDataplaneWith(spawnBatchRunner);

// Node IP autodetection, like calico/node's IP_AUTODETECTION_METHOD:
//   first-found | interface=REGEX | can-reach=ADDR | cidr=CIDR[,CIDR...] | an explicit --ip.
// The choice is pure (unit-tested) over facts the shell gathers with `ip -json`.
import { parseIp, parsePrefix, prefixContainsIp } from '../lib/ip.js';
import { ipJson } from './dataplane/iproute.js';

export interface HostAddress {
  ifname: string;
  /** `192.168.1.10/24` */
  cidr: string;
  family: 4 | 6;
}

export type AutodetectMethod =
  | { kind: 'first-found' }
  | { kind: 'interface'; regex: RegExp }
  | { kind: 'can-reach'; target: string }
  | { kind: 'cidr'; cidrs: string[] }
  | { kind: 'explicit'; ip: string };

export class AutodetectError extends Error {
  constructor(
    readonly method: string,
    detail: string,
  ) {
    super(`IP autodetection (${method}) failed: ${detail}`);
    this.name = 'AutodetectError';
  }
}

/** Interfaces never considered by first-found (calico/node's default exclusions, plus ours). */
const EXCLUDED =
  /^(lo|docker.*|cbr.*|dummy.*|virbr.*|lxcbr.*|veth.*|cali.*|gh.*|tunl.*|flannel.*|kube-ipvs.*|cni.*|vxlan.*|nodelocaldns.*)$/;

const OWN = /^(gh.*|vxlan\.gingham|vxlan6\.gingham|tunl0)$/;

export function parseMethod(text: string): AutodetectMethod {
  if (text === '' || text === 'first-found') return { kind: 'first-found' };
  const eq = text.indexOf('=');
  const key = eq < 0 ? text : text.slice(0, eq);
  const val = eq < 0 ? '' : text.slice(eq + 1);
  if (key === 'interface' && val) return { kind: 'interface', regex: new RegExp(`^(${val})$`) };
  if (key === 'can-reach' && val) return { kind: 'can-reach', target: val };
  if (key === 'cidr' && val) return { kind: 'cidr', cidrs: val.split(',') };
  throw new AutodetectError(text, 'expected first-found, interface=REGEX, can-reach=ADDR or cidr=CIDR');
}

/**
 * Picks this node's address of `family`. `routeSource` answers can-reach: the source address the
 * kernel would use to reach the target.
 */
export function chooseAddress(
  method: AutodetectMethod,
  family: 4 | 6,
  addrs: readonly HostAddress[],
  routeSource?: string,
): HostAddress | null {
  // Our own devices (workload veths, tunnels) never hold the node's address, whatever the method.
  const fam = addrs.filter((a) => a.family === family && !OWN.test(a.ifname));
  switch (method.kind) {
    case 'first-found':
      return fam.find((a) => !EXCLUDED.test(a.ifname)) ?? null;
    case 'interface':
      return fam.find((a) => method.regex.test(a.ifname)) ?? null;
    case 'cidr': {
      const nets = method.cidrs.map((c) => parsePrefix(c, { loose: true }));
      return (
        fam.find((a) => {
          const { family: f, addr } = parseIp(a.cidr.split('/')[0]!);
          return nets.some((n) => prefixContainsIp(n, addr, f));
        }) ?? null
      );
    }
    case 'can-reach':
    case 'explicit': {
      const want = method.kind === 'explicit' ? method.ip.split('/')[0] : routeSource;
      return fam.find((a) => a.cidr.split('/')[0] === want) ?? null;
    }
  }
}

interface IpAddrShow {
  ifname: string;
  addr_info?: Array<{ family: string; local: string; prefixlen: number; scope?: string }>;
}

/** Global-scope addresses of every interface in this network namespace. */
export async function hostAddresses(): Promise<HostAddress[]> {
  const links = await ipJson<IpAddrShow[]>(['addr', 'show']);
  const out: HostAddress[] = [];
  for (const l of links) {
    for (const a of l.addr_info ?? []) {
      if (a.scope !== 'global') continue;
      out.push({ ifname: l.ifname, cidr: `${a.local}/${a.prefixlen}`, family: a.family === 'inet6' ? 6 : 4 });
    }
  }
  return out;
}

/** The source address the kernel would use towards `target` (can-reach), or undefined. */
export async function routeSourceTo(target: string): Promise<string | undefined> {
  try {
    const [r] = await ipJson<Array<{ prefsrc?: string }>>(['route', 'get', target]);
    return r?.prefsrc;
  } catch {
    return undefined;
  }
}

/** True when the kernel has a route for 169.254.1.1 (the workloads' fictitious gateway). */
export async function hasGatewayRoute(gw: string): Promise<boolean> {
  try {
    const r = await ipJson<Array<{ dst?: string }>>(['route', 'get', gw]);
    return r.length > 0;
  } catch {
    return false;
  }
}

export async function detectAddress(method: AutodetectMethod, family: 4 | 6): Promise<HostAddress | null> {
  const addrs = await hostAddresses();
  const src = method.kind === 'can-reach' ? await routeSourceTo(method.target) : undefined;
  return chooseAddress(method, family, addrs, src);
}

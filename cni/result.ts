// CNI results and their conversion between spec versions. Internally a result is held in the
// 1.x shape; `toVersion` renders what the runtime asked for (0.3.x/0.4.0 add ips[].version).
import type { CniVersion } from './config.js';
import { CniCode, CniError } from './errors.js';

export interface CniInterface {
  name: string;
  mac?: string;
  sandbox?: string;
  mtu?: number;
}

export interface CniIp {
  /** CIDR, e.g. "10.65.0.5/32". */
  address: string;
  gateway?: string;
  interface?: number;
}

export interface CniRoute {
  dst: string;
  gw?: string;
}

export interface CniResult {
  cniVersion: string;
  interfaces?: CniInterface[];
  ips: CniIp[];
  routes?: CniRoute[];
  dns?: { nameservers?: string[]; domain?: string; search?: string[]; options?: string[] };
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Reads a result of any supported version (e.g. from a delegated IPAM plugin) into the 1.x shape. */
export function parseResult(v: unknown): CniResult {
  if (!isObject(v)) throw new CniError(CniCode.DecodeFailure, 'result is not a JSON object');
  if (typeof v.cniVersion !== 'string') throw new CniError(CniCode.DecodeFailure, 'result has no cniVersion');
  if (v.cniVersion.startsWith('0.1') || v.cniVersion.startsWith('0.2')) {
    throw new CniError(CniCode.IncompatibleVersion, `result version ${v.cniVersion} is not supported`);
  }
  const ips = Array.isArray(v.ips) ? v.ips : [];
  const out: CniResult = {
    cniVersion: v.cniVersion,
    ips: ips.map((ip) => {
      if (!isObject(ip) || typeof ip.address !== 'string')
        throw new CniError(CniCode.DecodeFailure, 'result ip has no address');
      const o: CniIp = { address: ip.address };
      if (typeof ip.gateway === 'string') o.gateway = ip.gateway;
      if (typeof ip.interface === 'number') o.interface = ip.interface;
      return o;
    }),
  };
  if (Array.isArray(v.interfaces)) out.interfaces = v.interfaces as CniInterface[];
  if (Array.isArray(v.routes)) out.routes = v.routes as CniRoute[];
  if (isObject(v.dns)) out.dns = v.dns as CniResult['dns'];
  return out;
}

/** Renders a result in the shape of `version`. */
export function toVersion(r: CniResult, version: CniVersion): Record<string, unknown> {
  const legacy = version.startsWith('0.');
  const out: Record<string, unknown> = { cniVersion: version };
  if (r.interfaces) {
    out.interfaces = r.interfaces.map((i) => {
      const o: Record<string, unknown> = { name: i.name };
      if (i.mac !== undefined) o.mac = i.mac;
      if (i.mtu !== undefined && version === '1.1.0') o.mtu = i.mtu;
      if (i.sandbox !== undefined) o.sandbox = i.sandbox;
      return o;
    });
  }
  out.ips = r.ips.map((ip) => {
    const o: Record<string, unknown> = {};
    if (legacy) o.version = ip.address.includes(':') ? '6' : '4';
    o.address = ip.address;
    if (ip.gateway !== undefined) o.gateway = ip.gateway;
    if (ip.interface !== undefined) o.interface = ip.interface;
    return o;
  });
  if (r.routes) out.routes = r.routes.map((x) => (x.gw ? { dst: x.dst, gw: x.gw } : { dst: x.dst }));
  out.dns = r.dns ?? {};
  return out;
}

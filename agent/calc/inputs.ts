// Translation from store resources / IPAM JSON to calc inputs. Pure; tolerant of absent fields
// (a resource the store accepted is schema-valid, but the agent must never crash on one).
import { formatIp, parsePrefix } from '../../lib/ip.js';
import type { BlockInput, EncapMode, EndpointInput, NodeInput, PoolInput } from './model.js';

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);
const str = (v: unknown): string | undefined => (typeof v === 'string' && v !== '' ? v : undefined);

export function nodeInput(name: string, spec: unknown): NodeInput {
  const s = isObj(spec) ? spec : {};
  const bgp = isObj(s.bgp) ? s.bgp : {};
  const addresses = Array.isArray(s.addresses)
    ? s.addresses
        .map((a) => (isObj(a) ? str(a.address) : undefined))
        .filter((a): a is string => a !== undefined)
    : undefined;
  return {
    name,
    ipv4Address: str(bgp.ipv4Address),
    ipv6Address: str(bgp.ipv6Address),
    ipv4IPIPTunnelAddr: str(bgp.ipv4IPIPTunnelAddr),
    ipv4VXLANTunnelAddr: str(s.ipv4VXLANTunnelAddr),
    vxlanTunnelMACAddr: str(s.vxlanTunnelMACAddr),
    ipv6VXLANTunnelAddr: str(s.ipv6VXLANTunnelAddr),
    vxlanTunnelMACAddrV6: str(s.vxlanTunnelMACAddrV6),
    addresses,
  };
}

const encap = (v: unknown): EncapMode => (v === 'Always' || v === 'CrossSubnet' ? v : 'Never');

export function poolInput(name: string, spec: unknown): PoolInput | null {
  const s = isObj(spec) ? spec : {};
  const cidr = str(s.cidr);
  if (!cidr) return null;
  return {
    name,
    cidr,
    vxlanMode: encap(s.vxlanMode),
    ipipMode: encap(s.ipipMode),
    natOutgoing: s.natOutgoing === true,
    disabled: s.disabled === true,
  };
}

/** The node a WorkloadEndpoint lives on (`spec.node`). */
export function endpointNode(spec: unknown): string | undefined {
  return isObj(spec) ? str(spec.node) : undefined;
}

export function endpointInput(
  key: string,
  name: string,
  namespace: string,
  spec: unknown,
  revision: bigint,
): EndpointInput | null {
  const s = isObj(spec) ? spec : {};
  const interfaceName = str(s.interfaceName);
  if (!interfaceName) return null;
  const ipNetworks = Array.isArray(s.ipNetworks)
    ? s.ipNetworks.filter((n): n is string => typeof n === 'string')
    : [];
  return { key, name, namespace, interfaceName, mac: str(s.mac), ipNetworks, revision };
}

/**
 * An IPAM block (`/gingham/ipam/v2/assignment/...`): Calico's JSON layout. Borrowed addresses are
 * allocations whose attribute names a node (`secondary.node`) other than the block's affine host.
 */
export function blockInput(json: unknown): BlockInput | null {
  if (!isObj(json)) return null;
  const cidr = str(json.cidr);
  if (!cidr) return null;
  const aff = str(json.affinity);
  const affinity = aff?.startsWith('host:') ? aff.slice(5) : null;
  const borrowed: BlockInput['borrowed'] = [];
  const allocations = Array.isArray(json.allocations) ? json.allocations : [];
  const attributes = Array.isArray(json.attributes) ? json.attributes : [];
  const base = parsePrefix(cidr, { loose: true });
  allocations.forEach((a, ordinal) => {
    if (typeof a !== 'number') return;
    const attr = attributes[a];
    const secondary = isObj(attr) && isObj(attr.secondary) ? attr.secondary : undefined;
    const node = secondary ? str(secondary.node) : undefined;
    if (node && node !== affinity)
      borrowed.push({ ip: formatIp(base.addr + BigInt(ordinal), base.family), node });
  });
  return { cidr, affinity, borrowed };
}

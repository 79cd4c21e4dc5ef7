// The IPAM data layout in etcd, shared by the CNI plugin, the CLI and the agent.
// Calico's format (calico.md §3) under our prefix; these keys and shapes are a contract: keep stable.
//
//   blocks      /gingham/ipam/v2/assignment/ipv4/block/10.65.0.0-26        → BlockJson
//   affinities  /gingham/ipam/v2/host/<node>/ipv4/block/10.65.0.0-26       → AffinityJson
//   handles     /gingham/ipam/v2/handle/<handleId>                         → HandleJson
import { type Family, formatPrefix, type Prefix, parsePrefix } from '../lib/ip.js';
import { blockOrdinals, ordinalToAddress } from './arith.js';

export const KEY_PREFIX = '/gingham/';
export const IPAM_PREFIX = `${KEY_PREFIX}ipam/v2/`;

/** One allocation's owner: the handle that releases it and where it lives. */
export interface AllocationAttribute {
  handle_id: string | null;
  /** Calico keys: node, namespace, pod, timestamp; ours add ifname, containerID. */
  secondary: Record<string, string> | null;
}

export interface Block {
  cidr: string;
  /** "host:<node>" for a block claimed by a node; null for an unaffine block. */
  affinity: string | null;
  /** index = ordinal; value = index into `attributes`, or null when free. */
  allocations: (number | null)[];
  /** Free ordinals in reuse order (FIFO: released ordinals go to the back). */
  unallocated: number[];
  attributes: AllocationAttribute[];
  /** Bumped on every write (Calico: lets readers detect ABA on release). */
  sequenceNumber: number;
  deleted: boolean;
}

export type AffinityState = 'pending' | 'confirmed' | 'pendingDeletion';

export interface Affinity {
  state: AffinityState;
  deleted: boolean;
}

export interface Handle {
  handleID: string;
  /** block CIDR → number of addresses this handle holds there. */
  block: Record<string, number>;
  deleted: boolean;
}

export class IpamDataError extends Error {
  constructor(
    message: string,
    readonly key: string,
  ) {
    super(`${key}: ${message}`);
    this.name = 'IpamDataError';
  }
}

// ---- names and keys -------------------------------------------------------

/** "10.65.0.0/26" → "10.65.0.0-26"; "fd00::10/122" → "fd00--10-122". */
export function cidrToName(cidr: string): string {
  return cidr.replace(/[:/]/g, '-');
}

/** Inverse of cidrToName: the last dash is the slash; for IPv6 the other dashes are colons. */
export function nameToCidr(name: string): string {
  const i = name.lastIndexOf('-');
  if (i < 0) throw new IpamDataError('not a block name', name);
  const addr = name.slice(0, i);
  const len = name.slice(i + 1);
  return `${addr.includes('.') ? addr : addr.replace(/-/g, ':')}/${len}`;
}

function familyPart(family: Family): string {
  return family === 4 ? 'ipv4' : 'ipv6';
}

export function familyOfCidr(cidr: string): Family {
  return cidr.includes(':') ? 6 : 4;
}

export function blockPrefix(family: Family): string {
  return `${IPAM_PREFIX}assignment/${familyPart(family)}/block/`;
}

export function blockKey(cidr: string): string {
  return blockPrefix(familyOfCidr(cidr)) + cidrToName(cidr);
}

/** Every affinity of one node (both families) lives under this prefix. */
export function hostPrefix(node?: string): string {
  return node === undefined ? `${IPAM_PREFIX}host/` : `${IPAM_PREFIX}host/${node}/`;
}

export function affinityKey(node: string, cidr: string): string {
  return `${hostPrefix(node)}${familyPart(familyOfCidr(cidr))}/block/${cidrToName(cidr)}`;
}

/** Splits an affinity key back into node and block CIDR; null if the key is not one. */
export function parseAffinityKey(key: string): { node: string; cidr: string } | null {
  const m = /^(.*)\/ipam\/v2\/host\/([^/]+)\/ipv[46]\/block\/([^/]+)$/.exec(key);
  if (!m || !key.startsWith(IPAM_PREFIX)) return null;
  return { node: m[2]!, cidr: nameToCidr(m[3]!) };
}

export const HANDLE_PREFIX = `${IPAM_PREFIX}handle/`;

export function handleKey(handleId: string): string {
  return HANDLE_PREFIX + handleId;
}

/** Handle of one CNI attachment: `<network>.<containerID>.<ifname>` (Calico: `<network>.<containerID>`). */
export function handleIdFor(network: string, containerId: string, ifname: string): string {
  return `${network}.${containerId}.${ifname}`;
}

export function affinityFor(node: string): string {
  return `host:${node}`;
}

/** The node of a "host:<node>" affinity, or null. */
export function affinityNode(affinity: string | null): string | null {
  return affinity?.startsWith('host:') ? affinity.slice(5) : null;
}

// ---- parsing --------------------------------------------------------------

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function decode(json: string | Buffer | unknown, key: string): unknown {
  if (typeof json === 'string' || Buffer.isBuffer(json)) {
    try {
      return JSON.parse(json.toString());
    } catch (e) {
      throw new IpamDataError(`invalid JSON (${(e as Error).message})`, key);
    }
  }
  return json;
}

/** Parses and checks a block value (string, Buffer or already-decoded JSON). */
export function parseBlock(json: string | Buffer | unknown, key = '<block>'): Block {
  const v = decode(json, key);
  if (!isObject(v)) throw new IpamDataError('a block must be a JSON object', key);
  if (typeof v.cidr !== 'string') throw new IpamDataError('block has no cidr', key);
  let prefix: Prefix;
  try {
    prefix = parsePrefix(v.cidr);
  } catch {
    throw new IpamDataError(`block cidr "${v.cidr}" is not a CIDR`, key);
  }
  const size = blockOrdinals(prefix);
  const allocations = v.allocations;
  if (!Array.isArray(allocations) || allocations.length !== size) {
    throw new IpamDataError(`block allocations must be an array of ${size} entries`, key);
  }
  const attributes = Array.isArray(v.attributes) ? v.attributes : [];
  const attrs: AllocationAttribute[] = attributes.map((a) => {
    if (!isObject(a)) throw new IpamDataError('block attribute is not an object', key);
    const secondary = isObject(a.secondary) ? (a.secondary as Record<string, string>) : null;
    return { handle_id: typeof a.handle_id === 'string' ? a.handle_id : null, secondary };
  });
  for (const x of allocations) {
    if (x !== null && (!Number.isInteger(x) || (x as number) < 0 || (x as number) >= attrs.length)) {
      throw new IpamDataError(`block allocation ${String(x)} does not index an attribute`, key);
    }
  }
  const unallocated = Array.isArray(v.unallocated) ? v.unallocated : [];
  for (const o of unallocated) {
    if (!Number.isInteger(o) || o < 0 || o >= size)
      throw new IpamDataError(`bad unallocated ordinal ${o}`, key);
  }
  return {
    cidr: formatPrefix(prefix),
    affinity: typeof v.affinity === 'string' ? v.affinity : null,
    allocations: allocations as (number | null)[],
    unallocated: unallocated as number[],
    attributes: attrs,
    sequenceNumber: typeof v.sequenceNumber === 'number' ? v.sequenceNumber : 0,
    deleted: v.deleted === true,
  };
}

export function serializeBlock(b: Block): string {
  return JSON.stringify({
    cidr: b.cidr,
    affinity: b.affinity,
    allocations: b.allocations,
    unallocated: b.unallocated,
    attributes: b.attributes,
    sequenceNumber: b.sequenceNumber,
    deleted: b.deleted,
  });
}

export function parseAffinity(json: string | Buffer | unknown, key = '<affinity>'): Affinity {
  const v = decode(json, key);
  if (!isObject(v)) throw new IpamDataError('an affinity must be a JSON object', key);
  const state = v.state;
  if (state !== 'pending' && state !== 'confirmed' && state !== 'pendingDeletion') {
    throw new IpamDataError(`unknown affinity state ${String(state)}`, key);
  }
  return { state, deleted: v.deleted === true };
}

/** Pending (and deleted) affinities are treated as absent (Calico #6867). */
export function affinityIsActive(a: Affinity): boolean {
  return a.state === 'confirmed' && !a.deleted;
}

export function serializeAffinity(a: Affinity): string {
  return JSON.stringify(a);
}

export function parseHandle(json: string | Buffer | unknown, key = '<handle>'): Handle {
  const v = decode(json, key);
  if (!isObject(v) || !isObject(v.block))
    throw new IpamDataError('a handle must be {"block": {cidr: count}}', key);
  const block: Record<string, number> = {};
  for (const [cidr, n] of Object.entries(v.block)) {
    if (!Number.isInteger(n) || (n as number) < 0) throw new IpamDataError(`bad count for ${cidr}`, key);
    if ((n as number) > 0) block[cidr] = n as number;
  }
  const id =
    typeof v.handleID === 'string'
      ? v.handleID
      : key.startsWith(HANDLE_PREFIX)
        ? key.slice(HANDLE_PREFIX.length)
        : '';
  return { handleID: id, block, deleted: v.deleted === true };
}

export function serializeHandle(h: Handle): string {
  return JSON.stringify({ handleID: h.handleID, block: h.block, deleted: h.deleted });
}

// ---- queries (pure) ------------------------------------------------------

export interface BlockAllocation {
  ordinal: number;
  address: string;
  handleId: string | null;
  node: string | null;
  attrs: Record<string, string>;
}

/** Every allocated address of a block with its owner. */
export function blockAllocations(b: Block): BlockAllocation[] {
  const prefix = parsePrefix(b.cidr);
  const out: BlockAllocation[] = [];
  b.allocations.forEach((a, ordinal) => {
    if (a === null) return;
    const attr = b.attributes[a];
    const attrs = attr?.secondary ?? {};
    out.push({
      ordinal,
      address: ordinalToAddress(prefix, ordinal),
      handleId: attr?.handle_id ?? null,
      node: attrs.node ?? null,
      attrs,
    });
  });
  return out;
}

export function blockInUse(b: Block): number {
  let n = 0;
  for (const a of b.allocations) if (a !== null) n++;
  return n;
}

/**
 * Allocations made by a node other than the block's affine node (or in an unaffine block):
 * the owning node must route (and announce) these as /32 or /128.
 */
export function borrowedAllocations(b: Block): BlockAllocation[] {
  const owner = affinityNode(b.affinity);
  return blockAllocations(b).filter((a) => owner === null || (a.node !== null && a.node !== owner));
}

/** Addresses of `borrowedAllocations`, as strings. */
export function borrowedAddresses(b: Block): string[] {
  return borrowedAllocations(b).map((a) => a.address);
}

// Pure operations on one allocation block: assign ordinals to a handle, release them.
// Every function returns a new Block; the caller writes it back with a CAS on its revision.
import { parsePrefix } from '../lib/ip.js';
import { addressToOrdinal, blockOrdinals, ordinalToAddress } from './arith.js';
import type { AllocationAttribute, Block } from './model.js';

export function newBlock(cidr: string, affinity: string | null): Block {
  const size = blockOrdinals(parsePrefix(cidr));
  return {
    cidr,
    affinity,
    allocations: new Array<number | null>(size).fill(null),
    unallocated: Array.from({ length: size }, (_, i) => i),
    attributes: [],
    sequenceNumber: 0,
    deleted: false,
  };
}

export function blockFree(b: Block): number {
  return b.unallocated.length;
}

function sameSecondary(a: Record<string, string> | null, b: Record<string, string> | null): boolean {
  if (a === null || b === null) return a === b;
  const ka = Object.keys(a);
  return ka.length === Object.keys(b).length && ka.every((k) => a[k] === b[k]);
}

/**
 * Assigns up to `count` free ordinals (FIFO from `unallocated`) to `handleId`.
 * Returns the new block and the addresses taken (fewer than `count` when the block runs out).
 */
export function assignFromBlock(
  b: Block,
  count: number,
  handleId: string,
  secondary: Record<string, string>,
): { block: Block; addresses: string[] } {
  const prefix = parsePrefix(b.cidr);
  const take = b.unallocated.slice(0, Math.max(0, count));
  if (take.length === 0) return { block: b, addresses: [] };
  const attributes = b.attributes.slice();
  let idx = attributes.findIndex((a) => a.handle_id === handleId && sameSecondary(a.secondary, secondary));
  if (idx < 0) {
    idx = attributes.length;
    attributes.push({ handle_id: handleId, secondary: { ...secondary } });
  }
  const allocations = b.allocations.slice();
  for (const o of take) allocations[o] = idx;
  return {
    block: {
      ...b,
      allocations,
      unallocated: b.unallocated.slice(take.length),
      attributes,
      sequenceNumber: b.sequenceNumber + 1,
    },
    addresses: take.map((o) => ordinalToAddress(prefix, o)),
  };
}

/** Drops attributes no allocation points at and renumbers the rest. */
function compact(b: Block): Block {
  const used = new Map<number, number>();
  const attributes: AllocationAttribute[] = [];
  const allocations = b.allocations.map((a) => {
    if (a === null) return null;
    let n = used.get(a);
    if (n === undefined) {
      n = attributes.length;
      used.set(a, n);
      attributes.push(b.attributes[a]!);
    }
    return n;
  });
  return { ...b, allocations, attributes };
}

export interface Released {
  block: Block;
  /** handle id → number of addresses released from it ("" for allocations without a handle). */
  byHandle: Map<string, number>;
  addresses: string[];
}

function releaseWhere(
  b: Block,
  pick: (ordinal: number, attr: AllocationAttribute | undefined) => boolean,
): Released {
  const prefix = parsePrefix(b.cidr);
  const allocations = b.allocations.slice();
  const unallocated = b.unallocated.slice();
  const byHandle = new Map<string, number>();
  const addresses: string[] = [];
  allocations.forEach((a, o) => {
    if (a === null) return;
    const attr = b.attributes[a];
    if (!pick(o, attr)) return;
    allocations[o] = null;
    unallocated.push(o);
    const h = attr?.handle_id ?? '';
    byHandle.set(h, (byHandle.get(h) ?? 0) + 1);
    addresses.push(ordinalToAddress(prefix, o));
  });
  if (addresses.length === 0) return { block: b, byHandle, addresses };
  return {
    block: compact({ ...b, allocations, unallocated, sequenceNumber: b.sequenceNumber + 1 }),
    byHandle,
    addresses,
  };
}

/** Frees every ordinal held by `handleId`. Releasing what is not held is a no-op (idempotent). */
export function releaseHandleFromBlock(b: Block, handleId: string): Released {
  return releaseWhere(b, (_o, attr) => attr?.handle_id === handleId);
}

/** Frees the given addresses (ignoring those already free). */
export function releaseAddressesFromBlock(b: Block, ips: readonly string[]): Released {
  const prefix = parsePrefix(b.cidr);
  const want = new Set(ips.map((ip) => addressToOrdinal(prefix, ip)));
  return releaseWhere(b, (o) => want.has(o));
}

export function blockIsEmpty(b: Block): boolean {
  return b.allocations.every((a) => a === null);
}

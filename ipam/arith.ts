// IPAM address arithmetic: ordinals inside a block, carving a pool into blocks. Pure, no I/O.
// Works for IPv4 and IPv6 alike (addresses are bigint, see lib/ip.ts).
import {
  type Family,
  familyBits,
  formatIp,
  formatPrefix,
  hostMask,
  type Prefix,
  parseIp,
  parsePrefix,
  prefixContains,
  prefixContainsIp,
} from '../lib/ip.js';

export class IpamArithError extends Error {
  constructor(
    message: string,
    readonly context: Record<string, unknown>,
  ) {
    super(message);
    this.name = 'IpamArithError';
  }
}

/** Number of addresses (ordinals) in a block. Blocks are at most 2^12 addresses (/20, /116). */
export function blockOrdinals(block: Prefix): number {
  const bits = familyBits(block.family) - block.len;
  if (bits > 16)
    throw new IpamArithError(`block ${formatPrefix(block)} is larger than 2^16 addresses`, { bits });
  return 1 << bits;
}

export function ordinalToAddress(block: Prefix, ordinal: number): string {
  if (!Number.isInteger(ordinal) || ordinal < 0 || ordinal >= blockOrdinals(block)) {
    throw new IpamArithError(`ordinal ${ordinal} is outside block ${formatPrefix(block)}`, { ordinal });
  }
  return formatIp(block.addr + BigInt(ordinal), block.family);
}

/** The ordinal of `ip` in `block`; throws when the address is outside the block. */
export function addressToOrdinal(block: Prefix, ip: string): number {
  const { family, addr } = parseIp(ip);
  if (!prefixContainsIp(block, addr, family)) {
    throw new IpamArithError(`${ip} is not inside block ${formatPrefix(block)}`, { ip });
  }
  return Number(addr - block.addr);
}

/** The block of length `blockLen` that contains `ip`. */
export function blockContaining(ip: string, blockLen: number): Prefix {
  const { family, addr } = parseIp(ip);
  if (blockLen > familyBits(family))
    throw new IpamArithError(`block length ${blockLen} too long for IPv${family}`, { ip });
  return { family, addr: addr & ~hostMask(family, blockLen), len: blockLen };
}

/** How many blocks of length `blockLen` a pool holds. */
export function blockCount(pool: Prefix, blockLen: number): bigint {
  if (blockLen < pool.len) return 0n;
  return 1n << BigInt(blockLen - pool.len);
}

/** The `index`-th block of the pool (0-based). */
export function nthBlock(pool: Prefix, blockLen: number, index: bigint): Prefix {
  const count = blockCount(pool, blockLen);
  if (index < 0n || index >= count) {
    throw new IpamArithError(`block index ${index} outside pool ${formatPrefix(pool)} (${count} blocks)`, {
      index,
    });
  }
  const step = 1n << BigInt(familyBits(pool.family) - blockLen);
  return { family: pool.family, addr: pool.addr + index * step, len: blockLen };
}

/** All blocks of the pool in address order. Lazy: an IPv6 pool may hold 2^70 blocks. */
export function* carveBlocks(pool: Prefix, blockLen: number): Generator<Prefix> {
  const count = blockCount(pool, blockLen);
  for (let i = 0n; i < count; i++) yield nthBlock(pool, blockLen, i);
}

/**
 * The first block of the pool whose CIDR is not in `taken`, scanning from block index `start`
 * and wrapping around; null when every block is taken. Cost is O(|taken| + 1) probes for a
 * contiguous run, so even huge IPv6 pools answer immediately.
 */
export function findFreeBlock(
  pool: Prefix,
  blockLen: number,
  taken: ReadonlySet<string>,
  start = 0n,
): Prefix | null {
  const count = blockCount(pool, blockLen);
  if (count === 0n) return null;
  const limit = BigInt(taken.size) + 1n < count ? BigInt(taken.size) + 1n : count;
  for (let i = 0n; i < limit; i++) {
    const b = nthBlock(pool, blockLen, (start + i) % count);
    if (!taken.has(formatPrefix(b))) return b;
  }
  return null;
}

/** Whether `block` lies within `pool`. */
export function poolContainsBlock(pool: Prefix, block: Prefix): boolean {
  return prefixContains(pool, block);
}

/** Parses a CIDR and checks its family. */
export function parseCidr(text: string, family?: Family): Prefix {
  const p = parsePrefix(text);
  if (family !== undefined && p.family !== family) {
    throw new IpamArithError(`${text} is not an IPv${family} CIDR`, { text });
  }
  return p;
}

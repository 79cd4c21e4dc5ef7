// Prefix keys: how the RIB and the Adj-RIBs-Out name a destination. An IPv4 prefix is a number
// (address × 64 + length: exact in a double, no allocation, cheap to hash); an IPv6 prefix is its
// canonical (RFC 5952) text. Text for IPv4 is made only when someone asks (status, events,
// policy, packing an UPDATE): at a million routes, building, hashing and keeping a string per
// prefix was the largest cost of ingest. PrefixMap holds IPv4 entries in its own hash table over
// typed arrays (address, length), so an IPv4 lookup allocates nothing and hashes two integers.
import { formatPrefix, parsePrefix } from '../../lib/ip.js';
import { ipv4KeyText, ipv4PrefixKey, ipv4PrefixKeyOfText } from '../codec/index.js';

declare const v6Brand: unique symbol;
/** Canonical IPv6 prefix text, branded so that arbitrary (e.g. IPv4) text cannot pass for a key. */
export type V6Key = string & { readonly [v6Brand]: true };
/** IPv4: address × 64 + length (a number); IPv6: canonical prefix text. Make one with prefixKey(). */
export type PrefixKey = number | V6Key;

export class PrefixKeyError extends Error {
  constructor(readonly input: string) {
    super(`invalid prefix "${input}": expected a.b.c.d/n or an IPv6 prefix`);
    this.name = 'PrefixKeyError';
  }
}

/** The key of an IPv4 prefix: `addr` unsigned (host bits clear), `len` 0…32 (the codec's form). */
export const v4Key: (addr: number, len: number) => number = ipv4PrefixKey;

export function keyFamily(key: PrefixKey): 4 | 6 {
  return typeof key === 'number' ? 4 : 6;
}

/** Prefix text of a key: "a.b.c.d/n" for IPv4, the stored text for IPv6. */
export function prefixText(key: PrefixKey): string {
  return typeof key === 'string' ? key : ipv4KeyText(key);
}

/**
 * The key of a prefix in text form. IPv4 host bits beyond the length are cleared (as on the wire,
 * RFC 4271 §4.3); IPv6 is made canonical. Throws PrefixKeyError on anything else.
 */
export function prefixKey(text: string): PrefixKey {
  const k = ipv4PrefixKeyOfText(text);
  if (k >= 0) return k;
  try {
    const p = parsePrefix(text, { loose: true });
    return p.family === 4 ? v4Key(Number(p.addr), p.len) : (formatPrefix(p) as V6Key);
  } catch {
    throw new PrefixKeyError(text);
  }
}

const EMPTY = 0;
const TOMBSTONE = 255;
const MIN_CAPACITY = 64;
/** Slots per block (see probe()). */
const BLOCK_BITS = 4;

/**
 * IPv4 prefixes → values: an open-addressing hash table (linear probing) over typed arrays —
 * address in an Int32Array, length + 1 in a Uint8Array (0 = empty, 255 = deleted), the value in a
 * plain array. Against a JS Map keyed by number it saves the second hash lookup of a
 * get-then-set (the slot a missed get probed is remembered for the set that follows) and the
 * Map's per-entry chain word, and it grows by one rehash into typed arrays.
 * Values must not be undefined (undefined means "absent").
 */
class V4Table<V> {
  private keys = new Int32Array(MIN_CAPACITY);
  private lens = new Uint8Array(MIN_CAPACITY);
  private vals: Array<V | undefined> = new Array<V | undefined>(MIN_CAPACITY).fill(undefined);
  /** 32 − log2(blocks): Fibonacci hashing takes the block number from the top bits of the product. */
  private shift = 32 - Math.log2(MIN_CAPACITY) + BLOCK_BITS;
  /** Live entries. */
  size = 0;
  /** Live entries + tombstones: what the load factor counts. */
  private used = 0;
  /** The last get()'s probe: its slot (≥ 0 found; < 0 the insertion point, encoded −1 − slot). */
  private memoAddr = 0;
  private memoLen = -1;
  private memoSlot = 0;

  private probe(addr: number, len: number): number {
    const keys = this.keys;
    const lens = this.lens;
    const mask = keys.length - 1;
    const tag = len + 1;
    // The network number's low 4 bits pick a slot inside a 16-slot block, the rest is hashed to
    // choose the block: neighbouring prefixes (a sorted feed, a rehash) land in neighbouring
    // slots and share cache lines, while unrelated ones still spread out.
    const net = len === 0 ? 0 : addr >>> (32 - len);
    const block = Math.imul((net >>> BLOCK_BITS) ^ Math.imul(tag, 0x27d4eb2d), 0x9e3779b1) >>> this.shift;
    let i = (block << BLOCK_BITS) | (net & ((1 << BLOCK_BITS) - 1));
    let free = -1;
    for (;;) {
      const l = lens[i]!;
      if (l === EMPTY) return -1 - (free >= 0 ? free : i);
      if (l === tag) {
        if (keys[i] === addr) return i;
      } else if (l === TOMBSTONE && free < 0) free = i;
      i = (i + 1) & mask;
    }
  }

  get(addr: number, len: number): V | undefined {
    const i = this.probe(addr, len);
    this.memoAddr = addr;
    this.memoLen = len;
    this.memoSlot = i;
    return i >= 0 ? this.vals[i] : undefined;
  }

  set(addr: number, len: number, value: V): void {
    const i = this.memoLen === len && this.memoAddr === addr ? this.memoSlot : this.probe(addr, len);
    this.memoLen = -1;
    if (i >= 0) {
      this.vals[i] = value;
      return;
    }
    const at = -1 - i;
    if (this.lens[at] === EMPTY) this.used++;
    this.lens[at] = len + 1;
    this.keys[at] = addr;
    this.vals[at] = value;
    this.size++;
    if (this.used * 4 > this.keys.length * 3) this.rehash();
  }

  delete(addr: number, len: number): boolean {
    this.memoLen = -1;
    const i = this.probe(addr, len);
    if (i < 0) return false;
    this.lens[i] = TOMBSTONE;
    this.vals[i] = undefined;
    this.size--;
    return true;
  }

  /** Into a table sized for the live entries (load ≤ 3/8 after growth), dropping tombstones. */
  private rehash(): void {
    const { keys, lens, vals } = this;
    let cap = MIN_CAPACITY;
    while (cap * 3 < this.size * 8) cap *= 2;
    this.keys = new Int32Array(cap);
    this.lens = new Uint8Array(cap);
    this.vals = new Array<V | undefined>(cap).fill(undefined);
    this.shift = 32 - Math.log2(cap) + BLOCK_BITS;
    this.used = this.size;
    this.memoLen = -1;
    for (let j = 0; j < lens.length; j++) {
      const l = lens[j]!;
      if (l === EMPTY || l === TOMBSTONE) continue;
      const at = -1 - this.probe(keys[j]!, l - 1);
      this.lens[at] = l;
      this.keys[at] = keys[j]!;
      this.vals[at] = vals[j];
    }
  }

  /**
   * Visits the entries present when the call began that are still present when their turn
   * comes, with their current value: `fn` may delete, replace or add entries (added ones are
   * not visited), even if that makes the table grow.
   */
  forEach(fn: (value: V, addr: number, len: number) => void): void {
    const n = this.size;
    const addrs = new Int32Array(n);
    const lens = new Uint8Array(n);
    let k = 0;
    for (let j = 0; j < this.lens.length; j++) {
      const l = this.lens[j]!;
      if (l === EMPTY || l === TOMBSTONE) continue;
      addrs[k] = this.keys[j]!;
      lens[k++] = l - 1;
    }
    for (let j = 0; j < k; j++) {
      const v = this.get(addrs[j]!, lens[j]!);
      if (v !== undefined) fn(v, addrs[j]!, lens[j]!);
    }
  }

  clear(): void {
    this.keys = new Int32Array(MIN_CAPACITY);
    this.lens = new Uint8Array(MIN_CAPACITY);
    this.vals = new Array<V | undefined>(MIN_CAPACITY).fill(undefined);
    this.shift = 32 - Math.log2(MIN_CAPACITY) + BLOCK_BITS;
    this.size = 0;
    this.used = 0;
    this.memoLen = -1;
  }
}

/**
 * A Map from prefix keys to values (values never undefined). IPv4 entries live in a V4Table
 * keyed by (address as a signed 32-bit integer, length); IPv6 entries in a Map by text.
 * Iteration: IPv4 in table order (no particular order), then IPv6 in insertion order; entries
 * may be deleted, replaced or added meanwhile (see V4Table.forEach).
 */
export class PrefixMap<V extends object | string | number | boolean> {
  private readonly v4 = new V4Table<V>();
  private readonly v6 = new Map<V6Key, V>();

  get size(): number {
    return this.v4.size + this.v6.size;
  }

  get(key: PrefixKey): V | undefined {
    if (typeof key === 'string') return this.v6.get(key);
    const a = Math.floor(key / 64);
    return this.v4.get(a | 0, key - a * 64);
  }

  has(key: PrefixKey): boolean {
    return this.get(key) !== undefined;
  }

  set(key: PrefixKey, value: V): void {
    if (typeof key === 'string') {
      this.v6.set(key, value);
      return;
    }
    const a = Math.floor(key / 64);
    this.v4.set(a | 0, key - a * 64, value);
  }

  delete(key: PrefixKey): boolean {
    if (typeof key === 'string') return this.v6.delete(key);
    const a = Math.floor(key / 64);
    return this.v4.delete(a | 0, key - a * 64);
  }

  clear(): void {
    this.v4.clear();
    this.v6.clear();
  }

  forEach(fn: (value: V, key: PrefixKey) => void): void {
    this.v4.forEach((v, a, len) => {
      fn(v, v4Key(a >>> 0, len));
    });
    for (const [k, v] of this.v6) fn(v, k);
  }

  /** A snapshot of the entries (for callers that want an array or a for-of). */
  entries(): Array<[PrefixKey, V]> {
    const out: Array<[PrefixKey, V]> = [];
    this.forEach((v, k) => {
      out.push([k, v]);
    });
    return out;
  }

  keys(): PrefixKey[] {
    const out: PrefixKey[] = [];
    this.forEach((_v, k) => {
      out.push(k);
    });
    return out;
  }

  [Symbol.iterator](): IterableIterator<[PrefixKey, V]> {
    return this.entries()[Symbol.iterator]();
  }
}

/**
 * The key of a prefix the codec decoded: its text is canonical by construction (lib/ip's
 * formatting), so IPv6 text is taken as is rather than parsed again.
 */
export function keyOfDecoded(family: 4 | 6, text: string): PrefixKey {
  if (family === 6) return text as V6Key;
  const k = ipv4PrefixKeyOfText(text);
  return k >= 0 ? k : prefixKey(text);
}

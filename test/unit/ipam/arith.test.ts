import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import {
  addressToOrdinal,
  blockContaining,
  blockCount,
  blockOrdinals,
  carveBlocks,
  findFreeBlock,
  IpamArithError,
  nthBlock,
  ordinalToAddress,
} from '../../../ipam/arith.js';
import { formatPrefix, parsePrefix } from '../../../lib/ip.js';

describe('ipam arith: ordinals', () => {
  it('maps ordinals to addresses and back in an IPv4 /26', () => {
    const b = parsePrefix('10.65.1.64/26');
    assert.equal(blockOrdinals(b), 64);
    assert.equal(ordinalToAddress(b, 0), '10.65.1.64');
    assert.equal(ordinalToAddress(b, 63), '10.65.1.127');
    assert.equal(addressToOrdinal(b, '10.65.1.100'), 36);
    assert.throws(() => ordinalToAddress(b, 64), IpamArithError);
    assert.throws(() => ordinalToAddress(b, -1), IpamArithError);
    assert.throws(() => addressToOrdinal(b, '10.65.1.128'), /not inside block 10.65.1.64\/26/);
  });

  it('maps ordinals in an IPv6 /122', () => {
    const b = parsePrefix('fd00:1::40/122');
    assert.equal(blockOrdinals(b), 64);
    assert.equal(ordinalToAddress(b, 0), 'fd00:1::40');
    assert.equal(ordinalToAddress(b, 63), 'fd00:1::7f');
    assert.equal(addressToOrdinal(b, 'fd00:1::41'), 1);
    assert.throws(() => addressToOrdinal(b, '10.0.0.1'), IpamArithError);
  });

  it('handles the largest and smallest block sizes', () => {
    assert.equal(blockOrdinals(parsePrefix('10.0.0.0/20')), 4096);
    assert.equal(blockOrdinals(parsePrefix('10.0.0.7/32')), 1);
    assert.equal(blockOrdinals(parsePrefix('fd00::/116')), 4096);
    assert.equal(ordinalToAddress(parsePrefix('fd00::5/128'), 0), 'fd00::5');
  });

  it('round-trips every ordinal (property, both families)', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 255 }), fc.integer({ min: 0, max: 63 }), (x, o) => {
        const b4 = parsePrefix(`10.${x}.3.0/26`);
        assert.equal(addressToOrdinal(b4, ordinalToAddress(b4, o)), o);
        const b6 = parsePrefix(`fd00:${x.toString(16)}::/122`);
        assert.equal(addressToOrdinal(b6, ordinalToAddress(b6, o)), o);
      }),
    );
  });
});

describe('ipam arith: carving pools into blocks', () => {
  it('counts and enumerates the blocks of a pool', () => {
    const pool = parsePrefix('10.65.0.0/24');
    assert.equal(blockCount(pool, 26), 4n);
    assert.deepEqual([...carveBlocks(pool, 26)].map(formatPrefix), [
      '10.65.0.0/26',
      '10.65.0.64/26',
      '10.65.0.128/26',
      '10.65.0.192/26',
    ]);
    assert.equal(blockCount(pool, 23), 0n, 'a block larger than the pool does not fit');
    assert.equal(formatPrefix(nthBlock(parsePrefix('fd00::/64'), 122, 3n)), 'fd00::c0/122');
    assert.throws(() => nthBlock(pool, 26, 4n), IpamArithError);
  });

  it('finds the block containing an address', () => {
    assert.equal(formatPrefix(blockContaining('10.65.3.77', 26)), '10.65.3.64/26');
    assert.equal(formatPrefix(blockContaining('fd00::1:ff', 122)), 'fd00::1:c0/122');
  });

  it('finds a free block, wrapping from a start index, and reports exhaustion', () => {
    const pool = parsePrefix('10.65.0.0/24');
    const taken = new Set(['10.65.0.0/26', '10.65.0.64/26']);
    assert.equal(formatPrefix(findFreeBlock(pool, 26, taken)!), '10.65.0.128/26');
    assert.equal(formatPrefix(findFreeBlock(pool, 26, new Set(['10.65.0.192/26']), 3n)!), '10.65.0.0/26');
    const all = new Set([...carveBlocks(pool, 26)].map(formatPrefix));
    assert.equal(findFreeBlock(pool, 26, all), null);
    // Taken blocks outside the pool do not hide the pool's free ones.
    assert.equal(formatPrefix(findFreeBlock(pool, 26, new Set(['10.99.0.0/26']))!), '10.65.0.0/26');
  });

  it('answers at once for a huge IPv6 pool', () => {
    const pool = parsePrefix('fd00::/48');
    assert.equal(blockCount(pool, 122), 1n << 74n);
    const free = findFreeBlock(pool, 122, new Set(['fd00::/122']), 0n);
    assert.equal(formatPrefix(free!), 'fd00::40/122');
  });

  it('never returns a taken block (property)', () => {
    fc.assert(
      fc.property(
        fc.uniqueArray(fc.integer({ min: 0, max: 15 }), { maxLength: 16 }),
        fc.integer({ min: 0, max: 15 }),
        (idx, start) => {
          const pool = parsePrefix('10.0.0.0/22');
          const taken = new Set(idx.map((i) => formatPrefix(nthBlock(pool, 26, BigInt(i)))));
          const free = findFreeBlock(pool, 26, taken, BigInt(start));
          if (taken.size === 16) assert.equal(free, null);
          else assert.ok(free && !taken.has(formatPrefix(free)));
        },
      ),
    );
  });
});

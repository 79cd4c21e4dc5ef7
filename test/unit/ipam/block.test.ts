import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  assignFromBlock,
  blockFree,
  blockIsEmpty,
  newBlock,
  releaseAddressesFromBlock,
  releaseHandleFromBlock,
} from '../../../ipam/block.js';
import {
  affinityKey,
  blockInUse,
  blockKey,
  borrowedAddresses,
  cidrToName,
  handleKey,
  IpamDataError,
  nameToCidr,
  parseAffinity,
  parseAffinityKey,
  parseBlock,
  parseHandle,
  serializeBlock,
} from '../../../ipam/model.js';

describe('ipam model: keys', () => {
  it('names blocks like Calico', () => {
    assert.equal(blockKey('10.65.0.0/26'), '/gingham/ipam/v2/assignment/ipv4/block/10.65.0.0-26');
    assert.equal(blockKey('fd00::10/122'), '/gingham/ipam/v2/assignment/ipv6/block/fd00--10-122');
    assert.equal(cidrToName('fd00:1::/122'), 'fd00-1---122');
    for (const c of ['10.65.0.0/26', 'fd00::10/122', 'fd00:1::/122', '::/116'])
      assert.equal(nameToCidr(cidrToName(c)), c);
    assert.equal(
      affinityKey('node-1', '10.65.0.64/26'),
      '/gingham/ipam/v2/host/node-1/ipv4/block/10.65.0.64-26',
    );
    assert.deepEqual(parseAffinityKey('/gingham/ipam/v2/host/n1/ipv6/block/fd00--40-122'), {
      node: 'n1',
      cidr: 'fd00::40/122',
    });
    assert.equal(parseAffinityKey('/gingham/other'), null);
    assert.equal(handleKey('net.abc.eth0'), '/gingham/ipam/v2/handle/net.abc.eth0');
  });
});

describe('ipam model: parsing', () => {
  it('round-trips a block through JSON', () => {
    const { block } = assignFromBlock(newBlock('10.65.0.0/26', 'host:n1'), 2, 'h1', { node: 'n1' });
    const back = parseBlock(serializeBlock(block));
    assert.deepEqual(back, block);
  });

  it('rejects malformed blocks with the key in the message', () => {
    assert.throws(
      () => parseBlock('{', 'k1'),
      (e: unknown) => e instanceof IpamDataError && /k1: invalid JSON/.test(e.message),
    );
    assert.throws(() => parseBlock({ cidr: '10.0.0.0/26', allocations: [] }, 'k2'), /64 entries/);
    const bad = { cidr: '10.0.0.0/30', allocations: [5, null, null, null], attributes: [] };
    assert.throws(() => parseBlock(bad), /does not index an attribute/);
    assert.throws(() => parseBlock({ cidr: 'nope', allocations: [] }), /not a CIDR/);
  });

  it('parses affinities and handles', () => {
    assert.deepEqual(parseAffinity('{"state":"confirmed","deleted":false}'), {
      state: 'confirmed',
      deleted: false,
    });
    assert.throws(() => parseAffinity('{"state":"weird"}'), /unknown affinity state/);
    assert.deepEqual(
      parseHandle('{"block":{"10.0.0.0/26":2,"10.0.0.64/26":0}}', '/gingham/ipam/v2/handle/h'),
      {
        handleID: 'h',
        block: { '10.0.0.0/26': 2 },
        deleted: false,
      },
    );
    assert.throws(() => parseHandle('{"block":{"x":-1}}'), /bad count/);
  });
});

describe('ipam block operations', () => {
  it('assigns FIFO and releases by handle, idempotently', () => {
    let b = newBlock('10.65.0.0/29', 'host:n1');
    assert.equal(blockFree(b), 8);
    const a1 = assignFromBlock(b, 2, 'h1', { node: 'n1' });
    assert.deepEqual(a1.addresses, ['10.65.0.0', '10.65.0.1']);
    const a2 = assignFromBlock(a1.block, 1, 'h2', { node: 'n1' });
    assert.deepEqual(a2.addresses, ['10.65.0.2']);
    b = a2.block;
    assert.equal(blockInUse(b), 3);
    const r1 = releaseHandleFromBlock(b, 'h1');
    assert.deepEqual(r1.addresses, ['10.65.0.0', '10.65.0.1']);
    assert.equal(r1.byHandle.get('h1'), 2);
    assert.equal(blockInUse(r1.block), 1);
    assert.equal(r1.block.attributes.length, 1, 'unused attributes are compacted away');
    // Released ordinals go to the back of the queue (delayed reuse).
    assert.deepEqual(r1.block.unallocated.slice(-2), [0, 1]);
    const again = releaseHandleFromBlock(r1.block, 'h1');
    assert.equal(again.addresses.length, 0);
    assert.equal(again.block, r1.block, 'releasing twice changes nothing');
    const r2 = releaseAddressesFromBlock(r1.block, ['10.65.0.2']);
    assert.ok(blockIsEmpty(r2.block));
    assert.equal(r2.block.sequenceNumber, 4);
  });

  it('assigns at most what is free', () => {
    const full = assignFromBlock(newBlock('10.65.0.0/30', null), 10, 'h', {});
    assert.equal(full.addresses.length, 4);
    assert.deepEqual(assignFromBlock(full.block, 1, 'h2', {}).addresses, []);
  });

  it('finds borrowed addresses: allocated by another node than the affine one', () => {
    let b = newBlock('fd00::/125', 'host:n1');
    b = assignFromBlock(b, 1, 'a', { node: 'n1' }).block;
    b = assignFromBlock(b, 2, 'b', { node: 'n2' }).block;
    assert.deepEqual(borrowedAddresses(b), ['fd00::1', 'fd00::2']);
    const unaffine = { ...b, affinity: null };
    assert.deepEqual(borrowedAddresses(unaffine), ['fd00::', 'fd00::1', 'fd00::2']);
  });
});

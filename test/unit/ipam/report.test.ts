import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { assignFromBlock, newBlock } from '../../../ipam/block.js';
import { checkReport, type IpamSnapshot, showReport } from '../../../ipam/report.js';
import { parsePool } from '../../../ipam/resources.js';

function snapshot(): IpamSnapshot {
  let b = newBlock('10.65.0.0/30', 'host:n1');
  b = assignFromBlock(b, 1, 'h1', { node: 'n1' }).block;
  b = assignFromBlock(b, 1, 'h2', { node: 'n1' }).block;
  return {
    pools: [parsePool({ metadata: { name: 'p' }, spec: { cidr: '10.65.0.0/24', blockSize: 30 } })!],
    blocks: [b],
    affinities: [{ node: 'n1', cidr: '10.65.0.0/30', active: true }],
    handles: [
      { handleID: 'h1', block: { '10.65.0.0/30': 1 }, deleted: false },
      { handleID: 'h2', block: { '10.65.0.0/30': 1 }, deleted: false },
    ],
    endpoints: [
      { name: 'w1', namespace: 'default', node: 'n1', ips: ['10.65.0.0'] },
      { name: 'w2', namespace: 'default', node: 'n1', ips: ['10.65.0.1'] },
    ],
    nodes: new Set(['n1']),
  };
}

describe('ipam reports', () => {
  it('show: per pool and per block counts in the contract shape', () => {
    const r = showReport(snapshot());
    assert.deepEqual(r, {
      pools: [{ name: 'p', cidr: '10.65.0.0/24', size: 256, inUse: 2, free: 254 }],
      blocks: [{ cidr: '10.65.0.0/30', pool: 'p', node: 'n1', inUse: 2, free: 2 }],
    });
  });

  it('check: clean snapshot', () => {
    assert.ok(checkReport(snapshot()).ok);
  });

  it('check: finds leaks, unallocated endpoint addresses, orphan affinities, handle mismatches', () => {
    const s = snapshot();
    s.endpoints = [
      { name: 'w1', namespace: 'default', node: 'n1', ips: ['10.65.0.0'] },
      { name: 'w3', namespace: 'default', node: 'n1', ips: ['10.65.0.3'] },
      { name: 'ext', namespace: 'default', node: 'n1', ips: ['192.0.2.1'] },
    ];
    s.nodes = new Set();
    s.handles[1] = { handleID: 'h2', block: { '10.65.0.0/30': 2 }, deleted: false };
    const r = checkReport(s);
    assert.equal(r.ok, false);
    assert.deepEqual(
      r.leaked.map((l) => [l.ip, l.handleId]),
      [['10.65.0.1', 'h2']],
    );
    assert.deepEqual(
      r.unallocatedEndpointAddresses,
      [{ endpoint: 'w3', namespace: 'default', ip: '10.65.0.3' }],
      'addresses outside every pool are not ours',
    );
    assert.deepEqual(r.orphanAffinities, [{ node: 'n1', cidr: '10.65.0.0/30' }]);
    assert.match(r.inconsistencies.join('\n'), /handle h2: holds 2 in 10\.65\.0\.0\/30 but the block says 1/);
  });

  it('check: a block whose affinity key is missing', () => {
    const s = snapshot();
    s.affinities = [];
    assert.match(checkReport(s).inconsistencies.join('\n'), /affine to n1 but that node has no affinity key/);
  });
});

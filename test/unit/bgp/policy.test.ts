import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  compilePolicy,
  evaluatePolicy,
  type Policy,
  type PolicyContext,
  PolicyError,
} from '../../../bgp/policy.js';
import type { RouteAttrs } from '../../../bgp/rib/attrs.js';

const base: RouteAttrs = { origin: 0, asPath: [], nextHop: '192.0.2.7', communities: [65000 * 65536 + 1] };
const ctx: PolicyContext = {
  family: 4,
  peerIbgp: true,
  local: true,
  selfNextHop: '192.0.2.1',
  originalNextHop: '192.0.2.7',
};

describe('policy', () => {
  const pools: Policy = {
    statements: [
      {
        name: 'disabled pool',
        match: { prefixes: [{ prefix: '10.66.0.0/16', maxLen: 32 }] },
        action: 'reject',
      },
      {
        name: 'blocks with community',
        match: { prefixes: [{ prefix: '10.65.0.0/16', minLen: 26, maxLen: 26 }] },
        set: { addCommunities: ['65000:100', '65000:1:2'], removeCommunities: ['65000:1'] },
        action: 'accept',
      },
      {
        name: 'borrowed /32s',
        match: { prefixes: [{ prefix: '10.65.0.0/16', minLen: 32, maxLen: 32 }] },
        action: 'accept',
      },
    ],
    defaultAction: 'reject',
  };

  it('matches prefix and length range; sets and removes communities', () => {
    const out = evaluatePolicy(pools, '10.65.3.64/26', base, ctx)!;
    assert.deepEqual(out.communities, [65000 * 65536 + 100]);
    assert.deepEqual(out.largeCommunities, [{ globalAdmin: 65000, localData1: 1, localData2: 2 }]);
    assert.ok(evaluatePolicy(pools, '10.65.3.7/32', base, ctx));
    assert.equal(evaluatePolicy(pools, '10.65.3.0/28', base, ctx), null, 'other more-specifics rejected');
    assert.equal(evaluatePolicy(pools, '10.66.0.0/26', base, ctx), null);
    assert.equal(evaluatePolicy(pools, '192.168.0.0/24', base, ctx), null, 'default reject');
    assert.equal(
      evaluatePolicy(undefined, '192.168.0.0/24', base, ctx),
      base,
      'no policy = accept unchanged',
    );
  });

  it('next hop self / keep / explicit, local-pref, match by community and peer type', () => {
    const p = (set: Policy['statements'][0]['set'], match = {}): Policy => ({
      statements: [{ match, set, action: 'accept' }],
      defaultAction: 'reject',
    });
    assert.equal(evaluatePolicy(p({ nextHop: 'self' }), '10.0.0.0/8', base, ctx)!.nextHop, '192.0.2.1');
    assert.equal(
      evaluatePolicy(p({ nextHop: 'keep' }), '10.0.0.0/8', { ...base, nextHop: '' }, ctx)!.nextHop,
      '192.0.2.7',
    );
    assert.equal(
      evaluatePolicy(p({ nextHop: '192.0.2.99' }), '10.0.0.0/8', base, ctx)!.nextHop,
      '192.0.2.99',
    );
    assert.equal(evaluatePolicy(p({ localPref: 50 }), '10.0.0.0/8', base, ctx)!.localPref, 50);
    assert.ok(evaluatePolicy(p({}, { communities: ['65000:1'] }), '10.0.0.0/8', base, ctx));
    assert.equal(evaluatePolicy(p({}, { communities: ['65000:2'] }), '10.0.0.0/8', base, ctx), null);
    assert.equal(evaluatePolicy(p({}, { peerType: 'ebgp' }), '10.0.0.0/8', base, ctx), null);
    assert.equal(evaluatePolicy(p({}, { family: 6 }), '10.0.0.0/8', base, ctx), null);
  });

  it('rejects malformed policies with context', () => {
    const bad = (prefix: string, minLen?: number): Policy => ({
      statements: [{ name: 'x', match: { prefixes: [{ prefix, minLen }] }, action: 'accept' }],
      defaultAction: 'accept',
    });
    assert.throws(() => compilePolicy(bad('10.0.0.1/8')), PolicyError);
    assert.throws(() => compilePolicy(bad('10.0.0.0/8', 4)), /statement x/);
    assert.throws(
      () =>
        compilePolicy({
          statements: [{ set: { addCommunities: ['70000:1'] }, action: 'accept' }],
          defaultAction: 'accept',
        }),
      PolicyError,
    );
  });
});

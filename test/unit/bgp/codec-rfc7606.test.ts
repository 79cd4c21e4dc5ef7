// RFC 7606 revised error handling: one test per rule, each asserting the exact outcome.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  AttrType,
  type CodecOptions,
  decodeMessage,
  encodeMessage,
  type UpdateMessage,
  UpdateSubcode,
} from '../../../bgp/codec/index.js';
import {
  AS_PATH_65001,
  BASE_ATTRS,
  NEXT_HOP_10_0_0_1,
  NLRI_192_0_2,
  ORIGIN_IGP,
  update,
} from './codec-vectors.js';

const AS4: CodecOptions = { as4: true };
const IBGP: CodecOptions = { as4: true, ibgp: true };
const EBGP: CodecOptions = { as4: true, ibgp: false };

function outcome(buf: Buffer, opts: CodecOptions = AS4) {
  const r = decodeMessage(buf, opts);
  if (!r.ok) assert.fail(`unexpected session reset: ${r.error.message}`);
  return { o: r.outcome, m: r.message as UpdateMessage };
}

function expectWithdraw(
  buf: Buffer,
  code: number,
  opts: CodecOptions = AS4,
  prefixes = ['192.0.2.0/24'],
): void {
  const { o } = outcome(buf, opts);
  assert.equal(o.kind, 'treat-as-withdraw', JSON.stringify(o));
  if (o.kind !== 'treat-as-withdraw') return;
  assert.ok(
    o.problems.some((p) => p.code === code),
    `problem for attribute ${code} in ${JSON.stringify(o.problems)}`,
  );
  assert.deepEqual(
    o.withdrawn.map((n) => n.prefix),
    prefixes,
  );
}

function expectDiscard(buf: Buffer, code: number, opts: CodecOptions = AS4): UpdateMessage {
  const { o, m } = outcome(buf, opts);
  assert.equal(o.kind, 'attribute-discard', JSON.stringify(o));
  if (o.kind === 'attribute-discard') assert.deepEqual(o.discarded, [code]);
  return m;
}

function expectReset(buf: Buffer, subcode: number, opts: CodecOptions = AS4): void {
  const r = decodeMessage(buf, opts);
  assert.ok(!r.ok, 'expected a session reset');
  assert.equal(r.error.notification.code, 3);
  assert.equal(r.error.notification.subcode, subcode);
}

const N = NLRI_192_0_2;

describe('RFC 7606 §7: per-attribute rules', () => {
  it('ORIGIN length ≠ 1 → treat-as-withdraw (§7.1)', () =>
    expectWithdraw(update('', `40 01 02 0000 ${AS_PATH_65001} ${NEXT_HOP_10_0_0_1}`, N), AttrType.Origin));
  it('ORIGIN undefined value → treat-as-withdraw (§7.1)', () =>
    expectWithdraw(update('', `40 01 01 03 ${AS_PATH_65001} ${NEXT_HOP_10_0_0_1}`, N), AttrType.Origin));
  it('AS_PATH segment overrun → treat-as-withdraw (§7.2)', () =>
    expectWithdraw(
      update('', `${ORIGIN_IGP} 40 02 06 02 02 0000fde9 ${NEXT_HOP_10_0_0_1}`, N),
      AttrType.AsPath,
    ));
  it('AS_PATH segment underrun (1 octet left) → treat-as-withdraw (§7.2)', () =>
    expectWithdraw(
      update('', `${ORIGIN_IGP} 40 02 07 02 01 0000fde9 02 ${NEXT_HOP_10_0_0_1}`, N),
      AttrType.AsPath,
    ));
  it('AS_PATH zero-length segment → treat-as-withdraw (§7.2)', () =>
    expectWithdraw(update('', `${ORIGIN_IGP} 40 02 02 02 00 ${NEXT_HOP_10_0_0_1}`, N), AttrType.AsPath));
  it('AS_PATH unknown segment type → treat-as-withdraw (§7.2)', () =>
    expectWithdraw(
      update('', `${ORIGIN_IGP} 40 02 06 05 01 0000fde9 ${NEXT_HOP_10_0_0_1}`, N),
      AttrType.AsPath,
    ));
  it('AS_CONFED segment from an external peer → treat-as-withdraw (§7.2, RFC 5065)', () => {
    const buf = update('', `${ORIGIN_IGP} 40 02 06 03 01 0000fde9 ${NEXT_HOP_10_0_0_1}`, N);
    expectWithdraw(buf, AttrType.AsPath, EBGP);
    // Unknown peer type: the confederation check is skipped.
    assert.equal(outcome(buf, AS4).o.kind, 'ok');
  });
  it('NEXT_HOP length ≠ 4 → treat-as-withdraw (§7.3)', () =>
    expectWithdraw(update('', `${ORIGIN_IGP} ${AS_PATH_65001} 40 03 05 0a00000100`, N), AttrType.NextHop));
  it('NEXT_HOP 0.0.0.0 or multicast → treat-as-withdraw (§7.3, RFC 4271 §6.3)', () => {
    expectWithdraw(update('', `${ORIGIN_IGP} ${AS_PATH_65001} 40 03 04 00000000`, N), AttrType.NextHop);
    expectWithdraw(update('', `${ORIGIN_IGP} ${AS_PATH_65001} 40 03 04 e0000001`, N), AttrType.NextHop);
  });
  it('MULTI_EXIT_DISC length ≠ 4 → treat-as-withdraw (§7.4)', () =>
    expectWithdraw(update('', `${BASE_ATTRS} 80 04 03 000001`, N), AttrType.Med));
  it('LOCAL_PREF length ≠ 4 → treat-as-withdraw (§7.5)', () =>
    expectWithdraw(update('', `${BASE_ATTRS} 40 05 03 000064`, N), AttrType.LocalPref, IBGP));
  it('keyed IPv4 NLRI (ipv4Keys): missing NEXT_HOP still noticed; treat-as-withdraw lists the prefixes as text', () => {
    const bytes = update('', `${ORIGIN_IGP} ${AS_PATH_65001}`, N);
    const r = decodeMessage(bytes, { as4: true, ipv4Keys: true });
    assert.ok(r.ok && r.message.type === 'update');
    assert.deepEqual(r.message.nlriKeys, [0xc0000200 * 64 + 24]);
    assert.equal(r.outcome.kind, 'treat-as-withdraw');
    assert.ok(r.outcome.kind === 'treat-as-withdraw');
    assert.deepEqual(r.outcome.withdrawn, [{ family: 4, prefix: '192.0.2.0/24' }]);
    assert.ok(r.outcome.problems.some((p) => p.code === AttrType.NextHop));
  });
  it('LOCAL_PREF from an external peer → discarded (§7.5)', () => {
    const m = expectDiscard(update('', `${BASE_ATTRS} 40 05 04 00000064`, N), AttrType.LocalPref, EBGP);
    assert.equal(m.attributes.localPref, undefined);
    assert.deepEqual(m.nlri, [{ family: 4, prefix: '192.0.2.0/24' }]);
  });
  it('ATOMIC_AGGREGATE length ≠ 0 → attribute-discard (§7.6)', () => {
    const m = expectDiscard(update('', `${BASE_ATTRS} 40 06 01 00`, N), AttrType.AtomicAggregate);
    assert.equal(m.attributes.atomicAggregate, undefined);
  });
  it('AGGREGATOR length ≠ 8 (4-octet session) / 6 (2-octet) → attribute-discard (§7.7)', () => {
    expectDiscard(update('', `${BASE_ATTRS} c0 07 06 fde9 0a000001`, N), AttrType.Aggregator);
    expectDiscard(
      update('', `${ORIGIN_IGP} 40 02 04 02 01 fde9 ${NEXT_HOP_10_0_0_1} c0 07 08 0000fde9 0a000001`, N),
      AttrType.Aggregator,
      { as4: false },
    );
  });
  it('COMMUNITIES length 0 or not a multiple of 4 → treat-as-withdraw (§7.8)', () => {
    expectWithdraw(update('', `${BASE_ATTRS} c0 08 00`, N), AttrType.Communities);
    expectWithdraw(update('', `${BASE_ATTRS} c0 08 05 0000000100`, N), AttrType.Communities);
  });
  it('ORIGINATOR_ID length ≠ 4 → treat-as-withdraw; from eBGP → discarded (§7.9)', () => {
    expectWithdraw(
      update('', `${BASE_ATTRS} 40 05 04 00000064 80 09 03 0a0000`, N),
      AttrType.OriginatorId,
      IBGP,
    );
    expectDiscard(update('', `${BASE_ATTRS} 80 09 04 0a000001`, N), AttrType.OriginatorId, EBGP);
  });
  it('CLUSTER_LIST length 0 or not a multiple of 4 → treat-as-withdraw; from eBGP → discarded (§7.10)', () => {
    expectWithdraw(
      update('', `${BASE_ATTRS} 40 05 04 00000064 80 0a 05 0a00000100`, N),
      AttrType.ClusterList,
      IBGP,
    );
    expectWithdraw(update('', `${BASE_ATTRS} 80 0a 00`, N), AttrType.ClusterList);
    expectDiscard(update('', `${BASE_ATTRS} 80 0a 04 0a000001`, N), AttrType.ClusterList, EBGP);
  });
  it('LARGE_COMMUNITY length 0 or not a multiple of 12 → treat-as-withdraw (RFC 8092 §6)', () => {
    expectWithdraw(
      update('', `${BASE_ATTRS} c0 20 0b 0000fde9 00000001 000000`, N),
      AttrType.LargeCommunities,
    );
  });
  it('MP_REACH_NLRI with inconsistent next-hop length → treat-as-withdraw of its NLRI (§7.11)', () => {
    const buf = update(
      '',
      `${ORIGIN_IGP} ${AS_PATH_65001} 80 0e 13 0002 01 05 fd00000001 00 40 fd00000100000000`,
    );
    expectWithdraw(buf, AttrType.MpReachNlri, AS4, ['fd00:1::/64']);
  });
  it('MP_REACH_NLRI with unparsable NLRI → session reset (§7.11, §5.3)', () =>
    expectReset(
      update(
        '',
        `${ORIGIN_IGP} ${AS_PATH_65001} 80 0e 1a 0002 01 10 fd000000000000000000000000000001 00 81 fd000001`,
      ),
      UpdateSubcode.OptionalAttributeError,
    ));
  it('MP_UNREACH_NLRI too short → session reset (§7.11)', () =>
    expectReset(update('', '80 0f 02 0002'), UpdateSubcode.OptionalAttributeError));
  it('AS4_PATH malformed → discarded, AS_PATH kept (RFC 6793 §6)', () => {
    const m = expectDiscard(
      update('', `${ORIGIN_IGP} 40 02 04 02 01 5ba0 ${NEXT_HOP_10_0_0_1} c0 11 04 02 01 0000`, N),
      AttrType.As4Path,
      { as4: false },
    );
    assert.deepEqual(m.attributes.asPath, [{ type: 'sequence', asns: [23456] }]);
  });
  it('AS4_PATH on a 4-octet session → discarded (RFC 6793 §6)', () => {
    expectDiscard(update('', `${BASE_ATTRS} c0 11 06 02 01 0000fde9`, N), AttrType.As4Path);
  });
});

describe('RFC 7606 §3 and §4: attribute list rules', () => {
  it('conflicting Optional/Transitive flags → treat-as-withdraw (§3 c)', () =>
    expectWithdraw(update('', `c0 01 01 00 ${AS_PATH_65001} ${NEXT_HOP_10_0_0_1}`, N), AttrType.Origin));
  it('missing ORIGIN / AS_PATH / NEXT_HOP with NLRI → treat-as-withdraw (§3 d)', () => {
    expectWithdraw(update('', `${AS_PATH_65001} ${NEXT_HOP_10_0_0_1}`, N), AttrType.Origin);
    expectWithdraw(update('', `${ORIGIN_IGP} ${NEXT_HOP_10_0_0_1}`, N), AttrType.AsPath);
    expectWithdraw(update('', `${ORIGIN_IGP} ${AS_PATH_65001}`, N), AttrType.NextHop);
  });
  it('missing LOCAL_PREF on iBGP → treat-as-withdraw (§3 d)', () =>
    expectWithdraw(update('', BASE_ATTRS, N), AttrType.LocalPref, IBGP));
  it('NEXT_HOP is not required when only MP_REACH_NLRI carries NLRI (RFC 4760)', () => {
    const buf = update('', `${ORIGIN_IGP} ${AS_PATH_65001} 80 0e 0d 0001 01 04 0a000001 00 18 c00002`);
    assert.equal(outcome(buf).o.kind, 'ok');
  });
  it('a pure withdrawal needs no attributes', () => assert.equal(outcome(update(N, '')).o.kind, 'ok'));
  it('a duplicate attribute is discarded, the first kept (§3 g)', () => {
    const m = expectDiscard(update('', `${BASE_ATTRS} 40 01 01 02`, N), AttrType.Origin);
    assert.equal(m.attributes.origin, 0);
  });
  it('MP_REACH_NLRI twice → session reset, Malformed Attribute List (§3 g)', () => {
    const mp = '80 0e 0d 0001 01 04 0a000001 00 18 c00002';
    expectReset(
      update('', `${ORIGIN_IGP} ${AS_PATH_65001} ${mp} ${mp}`),
      UpdateSubcode.MalformedAttributeList,
    );
  });
  it('last attribute overruns the attribute field → treat-as-withdraw (§4)', () =>
    expectWithdraw(update('', `${BASE_ATTRS} c0 08 08 00000001`, N), AttrType.Communities));
  it('fewer than 3 trailing octets → treat-as-withdraw (§4)', () =>
    expectWithdraw(update('', `${BASE_ATTRS} c0 08`, N), 0));
  it('MP_REACH_NLRI overrunning the attribute field → session reset (§4: its NLRI cannot be located)', () =>
    expectReset(
      update('', `${ORIGIN_IGP} ${AS_PATH_65001} 80 0e 20 0001 01 04 0a000001`),
      UpdateSubcode.MalformedAttributeList,
    ));
  it('withdrawn routes length overrunning the message → session reset', () =>
    expectReset(update('', '').fill(0xff, 19, 21), UpdateSubcode.MalformedAttributeList));
  it('total path attribute length overrunning the message → session reset', () => {
    const b = update('', BASE_ATTRS, N);
    b.writeUInt16BE(200, 21);
    expectReset(b, UpdateSubcode.MalformedAttributeList);
  });
  it('unparsable NLRI (prefix length 33) → session reset, Invalid Network Field (§5.3)', () =>
    expectReset(update('', BASE_ATTRS, '21 c0000200 00'), UpdateSubcode.InvalidNetworkField));
  it('unparsable withdrawn routes → session reset (§5.3)', () =>
    expectReset(update('18 c000', ''), UpdateSubcode.InvalidNetworkField));
  it('unrecognised well-known attribute → session reset (RFC 4271 §6.3)', () =>
    expectReset(update('', `${BASE_ATTRS} 40 63 01 00`, N), UpdateSubcode.UnrecognizedWellKnownAttribute));
  it('unrecognised optional non-transitive attribute → ignored silently', () => {
    const { o, m } = outcome(update('', `${BASE_ATTRS} 80 63 02 abcd`, N));
    assert.equal(o.kind, 'ok');
    assert.equal(m.attributes.unknown, undefined);
  });
  it('unrecognised optional transitive attribute → carried, re-sent with Partial set (RFC 4271 §5)', () => {
    const { o, m } = outcome(update('', `${BASE_ATTRS} c0 63 02 abcd`, N));
    assert.equal(o.kind, 'ok');
    assert.deepEqual(m.attributes.unknown, [{ flags: 0xc0, code: 99, data: Uint8Array.of(0xab, 0xcd) }]);
    const again = encodeMessage(m, AS4);
    assert.ok(again.toString('hex').includes('e06302abcd'));
  });
});

describe('RFC 7606 §2: the strongest action wins', () => {
  it('attribute-discard + treat-as-withdraw → treat-as-withdraw', () => {
    const { o } = outcome(update('', `${BASE_ATTRS} 40 06 01 00 c0 08 03 000001`, N));
    assert.equal(o.kind, 'treat-as-withdraw');
    if (o.kind === 'treat-as-withdraw')
      assert.deepEqual(o.problems.map((p) => p.action).sort(), ['attribute-discard', 'treat-as-withdraw']);
  });
  it('treat-as-withdraw + session reset → session reset', () =>
    expectReset(
      update('', `40 01 01 09 ${AS_PATH_65001} ${NEXT_HOP_10_0_0_1} 40 63 01 00`, N),
      UpdateSubcode.UnrecognizedWellKnownAttribute,
    ));
  it('treat-as-withdraw lists withdrawn, IPv4 and MP NLRI together', () => {
    const buf = update(
      '10 0a01',
      `40 01 01 07 ${AS_PATH_65001} ${NEXT_HOP_10_0_0_1} 80 0e 1e 0002 01 10 fd000000000000000000000000000001 00 40 fd00000100000000`,
      N,
    );
    expectWithdraw(buf, AttrType.Origin, AS4, ['10.1.0.0/16', '192.0.2.0/24', 'fd00:1::/64']);
  });
});

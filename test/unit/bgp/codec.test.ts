// Byte-exact vectors for the BGP codec, hand-assembled from the RFC layouts (comments name each field).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  type BgpMessage,
  type CodecOptions,
  decodeMessage,
  encodeMessage,
  endOfRib,
  endOfRibFamily,
  ipv4KeyLength,
  ipv4KeyText,
  ipv4PrefixKey,
  MessageFramer,
  type OpenMessage,
  packUpdates,
  shutdownCommunication,
  shutdownNotification,
  type UpdateMessage,
} from '../../../bgp/codec/index.js';
import { h, MARKER, msg, update } from './codec-vectors.js';

const AS4: CodecOptions = { as4: true };
const AS2: CodecOptions = { as4: false };

function decodeOk(buf: Buffer, opts: CodecOptions = AS4): BgpMessage {
  const r = decodeMessage(buf, opts);
  if (!r.ok) assert.fail(`decode failed: ${r.error.message}`);
  assert.deepEqual(r.outcome, { kind: 'ok' });
  return r.message;
}

function vector(name: string, m: BgpMessage, wire: Buffer, opts: CodecOptions = AS4): void {
  it(`${name}: encodes byte-exact and decodes back`, () => {
    assert.equal(encodeMessage(m, opts).toString('hex'), wire.toString('hex'));
    assert.deepEqual(decodeOk(wire, opts), m);
  });
}

describe('codec: fixed vectors', () => {
  vector('KEEPALIVE', { type: 'keepalive' }, h(`${MARKER} 0013 04`));

  vector(
    'NOTIFICATION Cease/Administrative Shutdown',
    { type: 'notification', code: 6, subcode: 2, data: new Uint8Array(0) },
    h(`${MARKER} 0015 03 06 02`),
  );

  vector(
    'ROUTE-REFRESH IPv4 unicast',
    { type: 'route-refresh', afi: 1, safi: 1, subtype: 0 },
    h(`${MARKER} 0017 05 0001 00 01`),
  );

  vector(
    'ROUTE-REFRESH BoRR IPv6 (RFC 7313)',
    { type: 'route-refresh', afi: 2, safi: 1, subtype: 1 },
    h(`${MARKER} 0017 05 0002 01 01`),
  );

  const open: OpenMessage = {
    type: 'open',
    version: 4,
    myAs: 65001,
    holdTime: 90,
    bgpId: '10.0.0.1',
    capabilities: [
      { kind: 'multiprotocol', afi: 1, safi: 1 },
      { kind: 'route-refresh' },
      { kind: 'as4', asn: 65001 },
    ],
  };
  vector(
    'OPEN with MP, route refresh, 4-octet AS',
    open,
    h(`${MARKER} 002d 01
       04 fde9 005a 0a000001     # version, My AS 65001, hold 90, id 10.0.0.1
       10 02 0e                  # opt params 16 octets: one Capabilities parameter of 14
       01 04 0001 00 01          # MP IPv4 unicast
       02 00                     # route refresh
       41 04 0000fde9            # 4-octet AS 65001`),
  );

  vector(
    'OPEN with graceful restart, enhanced route refresh, add-path, unknown capability',
    {
      type: 'open',
      version: 4,
      myAs: 23456,
      holdTime: 9,
      bgpId: '192.0.2.1',
      capabilities: [
        {
          kind: 'graceful-restart',
          restarting: true,
          notification: false,
          restartTime: 120,
          families: [
            { afi: 1, safi: 1, forwardingPreserved: true },
            { afi: 2, safi: 1, forwardingPreserved: false },
          ],
        },
        { kind: 'enhanced-route-refresh' },
        { kind: 'add-path', families: [{ afi: 1, safi: 1, mode: 'both' }] },
        { kind: 'as4', asn: 4200000000 },
        { kind: 'unknown', code: 73, data: Uint8Array.of(1, 2, 3) },
      ],
    },
    h(`${MARKER} 003e 01
       04 5ba0 0009 c0000201     # My AS = AS_TRANS 23456
       21 02 1f                  # 33 octets of params, one parameter of 31
       40 0a 8078 0001 01 80 0002 01 00   # GR: R bit, 120 s; v4 F bit; v6
       46 00                     # enhanced route refresh
       45 04 0001 01 03          # add-path IPv4 unicast send+receive
       41 04 fa56ea00            # 4-octet AS 4200000000
       49 03 010203              # unknown capability 73`),
  );

  vector(
    'UPDATE IPv4 (4-octet session)',
    {
      type: 'update',
      withdrawn: [{ family: 4, prefix: '10.9.0.0/16' }],
      attributes: { origin: 0, asPath: [{ type: 'sequence', asns: [65001] }], nextHop: '10.0.0.1' },
      nlri: [
        { family: 4, prefix: '192.0.2.0/24' },
        { family: 4, prefix: '10.0.0.0/8' },
      ],
    },
    update('10 0a09', '40 01 01 00  40 02 06 02 01 0000fde9  40 03 04 0a000001', '18 c00002  08 0a'),
  );

  vector(
    'UPDATE IPv4 (2-octet session)',
    {
      type: 'update',
      withdrawn: [],
      attributes: { origin: 2, asPath: [{ type: 'sequence', asns: [65001, 65002] }], nextHop: '10.0.0.1' },
      nlri: [{ family: 4, prefix: '0.0.0.0/0' }],
    },
    update('', '40 01 01 02  40 02 06 02 02 fde9 fdea  40 03 04 0a000001', '00'),
    AS2,
  );

  vector(
    'UPDATE with every optional attribute',
    {
      type: 'update',
      withdrawn: [],
      attributes: {
        origin: 1,
        asPath: [
          { type: 'sequence', asns: [65001, 65002] },
          { type: 'set', asns: [1, 2] },
        ],
        nextHop: '192.0.2.1',
        med: 100,
        localPref: 200,
        atomicAggregate: true,
        aggregator: { asn: 65001, address: '10.0.0.9' },
        communities: [0xfde90064, 0xffffff01],
        originatorId: '10.0.0.7',
        clusterList: ['10.0.0.8', '1.2.3.4'],
        largeCommunities: [{ globalAdmin: 65001, localData1: 1, localData2: 2 }],
        unknown: [{ flags: 0xe0, code: 99, data: Uint8Array.of(0xab) }],
      },
      nlri: [{ family: 4, prefix: '198.51.100.128/25' }],
    },
    update(
      '',
      `40 01 01 01                               # ORIGIN EGP
       40 02 14 02 02 0000fde9 0000fdea 01 02 00000001 00000002  # AS_PATH seq + set
       40 03 04 c0000201                         # NEXT_HOP
       80 04 04 00000064                         # MED 100
       40 05 04 000000c8                         # LOCAL_PREF 200
       40 06 00                                  # ATOMIC_AGGREGATE
       c0 07 08 0000fde9 0a000009                # AGGREGATOR
       c0 08 08 fde90064 ffffff01                # COMMUNITIES incl. NO_EXPORT
       80 09 04 0a000007                         # ORIGINATOR_ID
       80 0a 08 0a000008 01020304                # CLUSTER_LIST
       c0 20 0c 0000fde9 00000001 00000002       # LARGE_COMMUNITY
       e0 63 01 ab                               # unknown optional transitive (Partial kept)`,
      '19 c6336480',
    ),
  );

  vector(
    'UPDATE IPv6 via MP_REACH with link-local next hop, and MP_UNREACH',
    {
      type: 'update',
      withdrawn: [],
      attributes: {
        origin: 0,
        asPath: [],
        localPref: 100,
        mpReach: {
          afi: 2,
          safi: 1,
          nextHop: 'fd00::1',
          linkLocalNextHop: 'fe80::1',
          nlri: [
            { family: 6, prefix: 'fd00:1::/64' },
            { family: 6, prefix: '2001:db8::/32' },
          ],
        },
        mpUnreach: { afi: 2, safi: 1, nlri: [{ family: 6, prefix: 'fd00:2::/48' }] },
      },
      nlri: [],
    },
    update(
      '',
      `40 01 01 00  40 02 00  40 05 04 00000064
       80 0e 33 0002 01 20 fd000000000000000000000000000001 fe800000000000000000000000000001 00
          40 fd00000100000000  20 20010db8
       80 0f 0a 0002 01 30 fd0000020000`,
    ),
  );

  vector(
    'UPDATE IPv4 via MP_REACH',
    {
      type: 'update',
      withdrawn: [],
      attributes: {
        origin: 0,
        asPath: [],
        mpReach: { afi: 1, safi: 1, nextHop: '10.0.0.1', nlri: [{ family: 4, prefix: '10.65.0.0/26' }] },
      },
      nlri: [],
    },
    update('', '40 01 01 00  40 02 00  80 0e 0e 0001 01 04 0a000001 00 1a 0a410000'),
  );

  vector(
    'UPDATE with ADD-PATH path identifiers',
    {
      type: 'update',
      withdrawn: [{ family: 4, prefix: '10.1.0.0/16', pathId: 7 }],
      attributes: { origin: 0, asPath: [], nextHop: '10.0.0.1' },
      nlri: [{ family: 4, prefix: '10.2.0.0/16', pathId: 1 }],
    },
    update('00000007 10 0a01', '40 01 01 00  40 02 00  40 03 04 0a000001', '00000001 10 0a02'),
    { as4: true, addPath: { receive: new Set(['1/1']), send: new Set(['1/1']) } },
  );

  vector('End-of-RIB IPv4', endOfRib({ afi: 1, safi: 1 }), h(`${MARKER} 0017 02 0000 0000`));
  vector('End-of-RIB IPv6', endOfRib({ afi: 2, safi: 1 }), h(`${MARKER} 001d 02 0000 0006 800f03 0002 01`));
});

describe('codec: IPv4 prefix keys (ipv4Keys)', () => {
  const KEYED: CodecOptions = { as4: true, ipv4Keys: true };
  const attrs = '40 01 01 00  40 02 00  40 03 04 0a000001';
  const keyed = (buf: Buffer, opts: CodecOptions = KEYED): UpdateMessage => {
    const r = decodeMessage(buf, opts);
    if (!r.ok || r.message.type !== 'update') return assert.fail('not an UPDATE');
    return r.message;
  };

  it('decodes withdrawn and NLRI to address × 64 + length, trailing host bits cleared', () => {
    // withdrawn 10.1.0.0/16; NLRI 0.0.0.0/0, 192.0.2.1/32, 198.51.100.255/25 (host bits set on the wire)
    const m = keyed(update('10 0a01', attrs, '00  20 c0000201  19 c63364ff'));
    assert.deepEqual(m.withdrawn, []);
    assert.deepEqual(m.nlri, []);
    assert.deepEqual(m.withdrawnKeys, [ipv4PrefixKey(0x0a010000, 16)]);
    assert.deepEqual(m.nlriKeys!.map(ipv4KeyText), ['0.0.0.0/0', '192.0.2.1/32', '198.51.100.128/25']);
    assert.deepEqual(m.nlriKeys!.map(ipv4KeyLength), [0, 32, 25]);
    assert.equal(ipv4KeyText(ipv4PrefixKey(0xffffffff, 32)), '255.255.255.255/32');
  });

  it('a bad prefix length or an overrun is still 3/10 Invalid Network Field', () => {
    for (const nlri of ['21 0a000000 00', '18 0a00']) {
      const r = decodeMessage(update('', attrs, nlri), KEYED);
      assert.ok(!r.ok);
      assert.deepEqual([r.error.notification.code, r.error.notification.subcode], [3, 10], nlri);
    }
  });

  it('End-of-RIB is recognised, a keyed withdraw-only UPDATE is not one', () => {
    assert.deepEqual(endOfRibFamily(keyed(h(`${MARKER} 0017 02 0000 0000`))), { afi: 1, safi: 1 });
    assert.equal(endOfRibFamily(keyed(update('10 0a01', ''))), null);
  });

  it('with ADD-PATH received for IPv4 the option is ignored (keys carry no path id)', () => {
    const m = keyed(update('', attrs, '00000001 10 0a02'), {
      ...KEYED,
      addPath: { receive: new Set(['1/1']) },
    });
    assert.equal(m.nlriKeys, undefined);
    assert.deepEqual(m.nlri, [{ family: 4, prefix: '10.2.0.0/16', pathId: 1 }]);
  });

  it('keys encode like the Nlri they stand for; not with ADD-PATH send', () => {
    const base: UpdateMessage = {
      type: 'update',
      withdrawn: [],
      attributes: { origin: 0, asPath: [], nextHop: '10.0.0.1' },
      nlri: [],
    };
    const viaKeys = encodeMessage({ ...base, nlriKeys: [ipv4PrefixKey(0x0a020000, 16)] }, AS4);
    const viaText = encodeMessage({ ...base, nlri: [{ family: 4, prefix: '10.2.0.0/16' }] }, AS4);
    assert.equal(viaKeys.toString('hex'), viaText.toString('hex'));
    assert.throws(
      () => encodeMessage({ ...base, nlriKeys: [0] }, { as4: true, addPath: { send: new Set(['1/1']) } }),
      /path identifier/,
    );
  });
});

describe('codec: decoding details', () => {
  it('accepts the extended-length flag on short attributes and clears host bits in prefixes', () => {
    const m = decodeOk(
      update('', '50 01 0001 00  50 02 0006 02 01 0000fde9  40 03 04 0a000001', '18 c00002'),
    ) as UpdateMessage;
    assert.equal(m.attributes.origin, 0);
    assert.deepEqual(m.attributes.asPath, [{ type: 'sequence', asns: [65001] }]);
  });

  it('clears trailing host bits of an NLRI (RFC 4271 §4.3)', () => {
    const m = decodeOk(update('', '40 01 01 00  40 02 00  40 03 04 0a000001', '17 c00003')) as UpdateMessage;
    assert.deepEqual(m.nlri, [{ family: 4, prefix: '192.0.2.0/23' }]);
  });

  it('uses 2-byte AS numbers and AS_TRANS on a 2-octet session (RFC 6793 §4.2.2)', () => {
    const m: UpdateMessage = {
      type: 'update',
      withdrawn: [],
      attributes: {
        origin: 0,
        asPath: [{ type: 'sequence', asns: [65001, 4200000000] }],
        nextHop: '10.0.0.1',
        aggregator: { asn: 4200000001, address: '10.0.0.2' },
      },
      nlri: [{ family: 4, prefix: '192.0.2.0/24' }],
    };
    const wire = update(
      '',
      `40 01 01 00
       40 02 06 02 02 fde9 5ba0                    # AS_TRANS stands in
       40 03 04 0a000001
       c0 07 06 5ba0 0a000002                      # AGGREGATOR with AS_TRANS
       c0 11 0a 02 02 0000fde9 fa56ea00            # AS4_PATH
       c0 12 08 fa56ea01 0a000002                  # AS4_AGGREGATOR`,
      '18 c00002',
    );
    assert.equal(encodeMessage(m, AS2).toString('hex'), wire.toString('hex'));
    assert.deepEqual(decodeOk(wire, AS2), m);
  });

  it('merges AS4_PATH: leading ASes of AS_PATH kept (RFC 6793 §4.2.3)', () => {
    // AS_PATH [100 23456 23456 200? no: 100 AS_TRANS AS_TRANS], AS4_PATH [4200000000 4200000001]
    const wire = update(
      '',
      `40 01 01 00  40 02 08 02 03 0064 5ba0 5ba0  40 03 04 0a000001
       c0 11 0a 02 02 fa56ea00 fa56ea01`,
      '18 c00002',
    );
    const m = decodeOk(wire, AS2) as UpdateMessage;
    assert.deepEqual(m.attributes.asPath, [{ type: 'sequence', asns: [100, 4200000000, 4200000001] }]);
  });

  it('ignores an AS4_PATH longer than AS_PATH', () => {
    const wire = update(
      '',
      `40 01 01 00  40 02 04 02 01 5ba0  40 03 04 0a000001  c0 11 0a 02 02 fa56ea00 fa56ea01`,
      '18 c00002',
    );
    const m = decodeOk(wire, AS2) as UpdateMessage;
    assert.deepEqual(m.attributes.asPath, [{ type: 'sequence', asns: [23456] }]);
  });

  it('ignores AS4 attributes when AGGREGATOR holds a real 2-octet AS', () => {
    const wire = update(
      '',
      `40 01 01 00  40 02 04 02 01 5ba0  40 03 04 0a000001  c0 07 06 0064 0a000002
       c0 11 06 02 01 fa56ea00  c0 12 08 fa56ea01 0a000002`,
      '18 c00002',
    );
    const m = decodeOk(wire, AS2) as UpdateMessage;
    assert.deepEqual(m.attributes.asPath, [{ type: 'sequence', asns: [23456] }]);
    assert.deepEqual(m.attributes.aggregator, { asn: 100, address: '10.0.0.2' });
  });

  it('detects End-of-RIB markers and nothing else', () => {
    assert.deepEqual(endOfRibFamily(endOfRib({ afi: 2, safi: 1 })), { afi: 2, safi: 1 });
    assert.deepEqual(endOfRibFamily(decodeOk(h(`${MARKER} 0017 02 0000 0000`)) as UpdateMessage), {
      afi: 1,
      safi: 1,
    });
    const withdraw = decodeOk(update('18 c00002', '')) as UpdateMessage;
    assert.equal(endOfRibFamily(withdraw), null);
    const v6w: UpdateMessage = {
      type: 'update',
      withdrawn: [],
      attributes: { mpUnreach: { afi: 2, safi: 1, nlri: [{ family: 6, prefix: '::/0' }] } },
      nlri: [],
    };
    assert.equal(endOfRibFamily(v6w), null);
  });
});

describe('codec: RFC 9072 extended optional parameters', () => {
  const many: OpenMessage = {
    type: 'open',
    version: 4,
    myAs: 65001,
    holdTime: 9,
    bgpId: '10.0.0.1',
    capabilities: Array.from({ length: 30 }, (_, k) => ({
      kind: 'unknown' as const,
      code: 200 + (k % 50),
      data: new Uint8Array(8).fill(k),
    })),
  };

  it('encodes the extended form only when parameters exceed 255 octets', () => {
    const wire = encodeMessage(many, AS4);
    // 30 capabilities × 10 octets = 300: Non-Ext OP Len 255, Non-Ext OP Type 255, Ext OP Len, then
    // one parameter with a 2-octet length.
    assert.equal(wire[28], 255);
    assert.equal(wire[29], 255);
    assert.equal(wire.readUInt16BE(30), 303);
    assert.equal(wire[32], 2);
    assert.equal(wire.readUInt16BE(33), 300);
    assert.deepEqual(decodeOk(wire), many);
    const small = encodeMessage({ ...many, capabilities: many.capabilities.slice(0, 2) }, AS4);
    assert.equal(small[28], 22); // classic: 2 + 2×10
  });

  it('decodes the extended form even for short parameter lists', () => {
    const wire = msg(1, '04 fde9 0009 0a000001  ff ff 0009  02 0006 41 04 0000fde9');
    const m = decodeOk(wire) as OpenMessage;
    assert.deepEqual(m.capabilities, [{ kind: 'as4', asn: 65001 }]);
  });
});

describe('codec: packing', () => {
  it('splits 5000 IPv4 and 3000 IPv6 prefixes into UPDATEs of at most 4096 octets', () => {
    const v4 = Array.from({ length: 5000 }, (_, k) => ({
      family: 4 as const,
      prefix: `10.${k >> 8}.${k & 255}.0/24`,
    }));
    const v6 = Array.from({ length: 3000 }, (_, k) => ({
      family: 6 as const,
      prefix: `fd00:${(k + 1).toString(16)}::/64`,
    }));
    const ups = packUpdates(
      {
        attributes: {
          origin: 0,
          asPath: [{ type: 'sequence', asns: [65001] }],
          nextHop: '10.0.0.1',
          communities: [1, 2],
        },
        announce: [...v4, ...v6],
        withdraw: [
          { family: 6, prefix: 'fd01::/64' },
          { family: 4, prefix: '10.255.0.0/16' },
        ],
        ipv6NextHop: { nextHop: 'fd00::1' },
      },
      AS4,
    );
    const got4: string[] = [];
    const got6: string[] = [];
    const withdrawn: string[] = [];
    for (const u of ups) {
      const wire = encodeMessage(u, AS4);
      assert.ok(wire.length <= 4096);
      const d = decodeOk(wire) as UpdateMessage;
      got4.push(...d.nlri.map((x) => x.prefix));
      got6.push(...(d.attributes.mpReach?.nlri.map((x) => x.prefix) ?? []));
      withdrawn.push(
        ...d.withdrawn.map((x) => x.prefix),
        ...(d.attributes.mpUnreach?.nlri.map((x) => x.prefix) ?? []),
      );
      if (d.nlri.length > 0) assert.equal(d.attributes.nextHop, '10.0.0.1');
      if (d.attributes.mpReach) assert.equal(d.attributes.nextHop, undefined);
    }
    assert.deepEqual(
      got4,
      v4.map((x) => x.prefix),
    );
    assert.deepEqual(
      got6,
      v6.map((x) => x.prefix),
    );
    assert.deepEqual(withdrawn.sort(), ['10.255.0.0/16', 'fd01::/64']);
    // Dense: 5000 /24 at 4 octets each need at least 5 messages; no more than 6.
    assert.ok(ups.filter((u) => u.nlri.length > 0).length <= 6);
  });
});

describe('codec: framing', () => {
  const ka = encodeMessage({ type: 'keepalive' }, AS4);
  const up = update('', '40 01 01 00  40 02 00  40 03 04 0a000001', '18 c00002');
  const stream = Buffer.concat([ka, up, ka]);

  it('yields whole messages however the stream is cut', () => {
    for (const size of [1, 2, 7, 19, 20, 64, stream.length]) {
      const f = new MessageFramer();
      const out: string[] = [];
      for (let i = 0; i < stream.length; i += size) {
        for (const fr of f.push(stream.subarray(i, i + size))) {
          assert.ok(fr.ok);
          out.push(fr.bytes.toString('hex'));
        }
      }
      assert.deepEqual(
        out,
        [ka, up, ka].map((b) => b.toString('hex')),
        `chunk size ${size}`,
      );
      assert.equal(f.pending, 0);
    }
  });

  it('a message inside one chunk comes out as a view of it; a cut one is joined once', () => {
    const f = new MessageFramer();
    const chunk = Buffer.concat([ka, up, ka.subarray(0, 5)]);
    const frames = [...f.push(chunk)];
    assert.equal(frames.length, 2);
    for (const fr of frames) assert.ok(fr.ok && fr.bytes.buffer === chunk.buffer, 'no copy');
    assert.equal(f.pending, 5);
    const rest = [...f.push(Buffer.concat([ka.subarray(5), up]))];
    assert.deepEqual(
      rest.map((fr) => (fr.ok ? fr.bytes.toString('hex') : 'error')),
      [ka, up].map((b) => b.toString('hex')),
    );
    assert.equal(f.pending, 0);
  });

  it('stops at a header error with the right NOTIFICATION', () => {
    const f = new MessageFramer();
    const bad = Buffer.from(ka);
    bad[3] = 0;
    const frames = [...f.push(Buffer.concat([ka, bad, ka]))];
    assert.equal(frames.length, 2);
    const e = frames[1]!;
    assert.ok(!e.ok);
    assert.equal(e.error.notification.code, 1);
    assert.equal(e.error.notification.subcode, 1);
    assert.deepEqual([...f.push(ka)], []);
  });
});

describe('codec: header and message errors', () => {
  const cases: Array<[string, Buffer, number, number, string?]> = [
    ['bad marker', h(`${'ff'.repeat(15)}fe 0013 04`), 1, 1],
    ['length below 19', h(`${MARKER} 0012 04`), 1, 2, '0012'],
    ['length above 4096', h(`${MARKER} 1001 04`), 1, 2, '1001'],
    ['unknown type', h(`${MARKER} 0013 07`), 1, 3, '07'],
    ['KEEPALIVE with a body', h(`${MARKER} 0014 04 00`), 1, 2, '0014'],
    ['OPEN shorter than 29', msg(1, '04 fde9 005a 0a000001'), 1, 2, '001c'],
    ['UPDATE shorter than 23', h(`${MARKER} 0016 02 000000`), 1, 2, '0016'],
    ['ROUTE-REFRESH of wrong length', msg(5, '0001 00 01 00'), 7, 1],
    ['OPEN parameters overrun', msg(1, '04 fde9 005a 0a000001 08 02 06 41 04 0000'), 2, 0],
    ['OPEN malformed capability', msg(1, '04 fde9 005a 0a000001 05 02 03 41 01 00'), 2, 0],
  ];
  for (const [name, wire, code, subcode, data] of cases) {
    it(`${name} → NOTIFICATION ${code}/${subcode}`, () => {
      const r = decodeMessage(wire, AS4);
      assert.ok(!r.ok, 'expected an error');
      assert.equal(r.error.notification.code, code);
      assert.equal(r.error.notification.subcode, subcode);
      if (data !== undefined) assert.equal(Buffer.from(r.error.notification.data).toString('hex'), data);
    });
  }
});

describe('codec: encoding refuses bad input with a typed error', () => {
  const bad = ['10.0.0.0', '10.0.0.0/33', '10.0.0/24', 'fd00::/129', '10.0.0.0/24 ', 'x/8', '300.0.0.0/8'];
  for (const prefix of bad) {
    it(`NLRI "${prefix}"`, () => {
      const family = prefix.includes(':') ? 6 : 4;
      assert.throws(
        () =>
          encodeMessage(
            { type: 'update', withdrawn: [{ family, prefix }], attributes: {}, nlri: [] },
            { as4: true },
          ),
        (e: Error) => e.name === 'BgpEncodeError',
      );
    });
  }
  it('an UPDATE over 4096 octets', () => {
    const nlri = Array.from({ length: 1100 }, (_, k) => ({
      family: 4 as const,
      prefix: `10.${k >> 8}.${k & 255}.0/24`,
    }));
    assert.throws(
      () =>
        encodeMessage(
          { type: 'update', withdrawn: [], attributes: { origin: 0, asPath: [], nextHop: '10.0.0.1' }, nlri },
          { as4: true },
        ),
      (e: Error) => e.name === 'BgpEncodeError',
    );
  });
});

describe('codec: shutdown communication (RFC 9003)', () => {
  it('encodes byte-exact and reads back, UTF-8 included', () => {
    const n = shutdownNotification(2, 'maintenance ✓');
    assert.equal(
      encodeMessage(n, AS4).toString('hex'),
      h(`${MARKER} 0025 03 06 02 0f ${Buffer.from('maintenance ✓').toString('hex')}`).toString('hex'),
    );
    const back = decodeOk(encodeMessage(n, AS4));
    assert.equal(back.type === 'notification' && shutdownCommunication(back), 'maintenance ✓');
  });
  it('ignores absent, truncated, non-UTF-8 or misplaced text', () => {
    assert.equal(shutdownCommunication(shutdownNotification(4)), null);
    assert.equal(shutdownCommunication({ code: 6, subcode: 2, data: Uint8Array.of(5, 0x61) }), null);
    assert.equal(shutdownCommunication({ code: 6, subcode: 2, data: Uint8Array.of(1, 0xff) }), null);
    assert.equal(shutdownCommunication({ code: 6, subcode: 3, data: Uint8Array.of(1, 0x61) }), null);
    assert.throws(
      () => shutdownNotification(2, 'x'.repeat(256)),
      (e: Error) => e.name === 'BgpEncodeError',
    );
  });
});

// Mutation fuzzing of the decoder: valid messages, mutated, must never throw, never hang, and
// always come back as a typed result. FUZZ_ITERATIONS (default 200000) and FUZZ_SEED control the run:
//   FUZZ_ITERATIONS=5000000 node scripts/run-tests.mjs test/unit/bgp/fuzz
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  BgpEncodeError,
  type BgpMessage,
  type CodecOptions,
  decodeMessage,
  encodeMessage,
  MessageFramer,
  packUpdates,
} from '../../../bgp/codec/index.js';

const ITERATIONS = Number(process.env.FUZZ_ITERATIONS ?? 200_000);
const SEED = Number(process.env.FUZZ_SEED ?? Date.now() % 0x7fffffff);
/**
 * Per-call bound: a decode of ≤ 4096 octets taking longer than this twice in a row is a hang
 * (once can be a GC pause or a busy machine; normal calls take microseconds).
 */
const MAX_CALL_MS = 250;

/** xorshift32: reproducible from the printed seed. */
function rng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x;
  };
}

const OPTION_SETS: CodecOptions[] = [
  { as4: true },
  { as4: false },
  { as4: true, ibgp: true },
  { as4: true, ibgp: false, addPath: { receive: new Set(['1/1', '2/1']) } },
];

function corpus(): Buffer[] {
  const o = { as4: true };
  const msgs: BgpMessage[] = [
    { type: 'keepalive' },
    { type: 'notification', code: 6, subcode: 2, data: Uint8Array.of(3, 98, 121, 101) },
    { type: 'route-refresh', afi: 2, safi: 1, subtype: 1 },
    {
      type: 'open',
      version: 4,
      myAs: 65001,
      holdTime: 9,
      bgpId: '10.0.0.1',
      capabilities: [
        { kind: 'multiprotocol', afi: 1, safi: 1 },
        { kind: 'multiprotocol', afi: 2, safi: 1 },
        { kind: 'route-refresh' },
        { kind: 'enhanced-route-refresh' },
        { kind: 'as4', asn: 4200000000 },
        {
          kind: 'graceful-restart',
          restarting: true,
          notification: true,
          restartTime: 120,
          families: [{ afi: 1, safi: 1, forwardingPreserved: true }],
        },
        { kind: 'add-path', families: [{ afi: 1, safi: 1, mode: 'both' }] },
        { kind: 'unknown', code: 73, data: Uint8Array.of(4, 104, 111, 115, 116) },
      ],
    },
    {
      type: 'update',
      withdrawn: [{ family: 4, prefix: '10.9.0.0/16' }],
      attributes: {
        origin: 0,
        asPath: [
          { type: 'sequence', asns: [65001, 4200000000] },
          { type: 'set', asns: [1, 2, 3] },
        ],
        nextHop: '10.0.0.1',
        med: 5,
        localPref: 100,
        atomicAggregate: true,
        aggregator: { asn: 65001, address: '10.0.0.1' },
        communities: [1, 2, 0xffffff01],
        largeCommunities: [{ globalAdmin: 1, localData1: 2, localData2: 3 }],
        originatorId: '10.0.0.7',
        clusterList: ['10.0.0.8'],
        unknown: [{ flags: 0xc0, code: 99, data: Uint8Array.of(1, 2) }],
        mpReach: {
          afi: 2,
          safi: 1,
          nextHop: 'fd00::1',
          linkLocalNextHop: 'fe80::1',
          nlri: [
            { family: 6, prefix: 'fd00:1::/64' },
            { family: 6, prefix: '::/0' },
          ],
        },
        mpUnreach: { afi: 2, safi: 1, nlri: [{ family: 6, prefix: 'fd00:2::/48' }] },
      },
      nlri: [
        { family: 4, prefix: '192.0.2.0/24' },
        { family: 4, prefix: '10.65.0.0/26' },
        { family: 4, prefix: '10.65.0.7/32' },
      ],
    },
  ];
  const out = msgs.map((m) => encodeMessage(m, o));
  // A 2-octet session UPDATE (AS4_PATH / AS4_AGGREGATOR present) and a dense packed UPDATE.
  out.push(
    encodeMessage(
      {
        type: 'update',
        withdrawn: [],
        attributes: {
          origin: 2,
          asPath: [{ type: 'sequence', asns: [100, 4200000001] }],
          nextHop: '10.0.0.2',
          aggregator: { asn: 4200000002, address: '10.0.0.2' },
        },
        nlri: [{ family: 4, prefix: '198.51.100.0/24' }],
      },
      { as4: false },
    ),
  );
  const dense = packUpdates(
    {
      attributes: { origin: 0, asPath: [], nextHop: '10.0.0.1' },
      announce: Array.from({ length: 300 }, (_, k) => ({
        family: 4 as const,
        prefix: `10.${k >> 8}.${k & 255}.0/24`,
      })),
      withdraw: [],
    },
    o,
  );
  out.push(encodeMessage(dense[0]!, o));
  return out;
}

function mutate(src: Buffer, r: () => number): Buffer {
  let b = Buffer.from(src);
  const n = 1 + (r() % 4);
  for (let k = 0; k < n; k++) {
    const op = r() % 8;
    const at = r() % Math.max(1, b.length);
    switch (op) {
      case 0: // flip a bit
        b[at] = b[at]! ^ (1 << (r() % 8));
        break;
      case 1: // random byte
        b[at] = r() & 255;
        break;
      case 2: // interesting values
        b[at] = [0, 1, 0x7f, 0x80, 0xfe, 0xff, 0x10, 0x40][r() % 8]!;
        break;
      case 3: // truncate
        b = b.subarray(0, at);
        break;
      case 4: // insert random bytes
        b = Buffer.concat([
          b.subarray(0, at),
          Buffer.from(Array.from({ length: 1 + (r() % 8) }, () => r() & 255)),
          b.subarray(at),
        ]);
        break;
      case 5: // delete a run
        b = Buffer.concat([b.subarray(0, at), b.subarray(at + 1 + (r() % 8))]);
        break;
      case 6: // duplicate a run (repeats attributes, NLRI, capabilities)
        {
          const len = 1 + (r() % 16);
          b = Buffer.concat([b.subarray(0, at + len), b.subarray(at, at + len), b.subarray(at + len)]);
        }
        break;
      default: // 16-bit field to a random value
        if (at + 1 < b.length) b.writeUInt16BE(r() & 0xffff, at);
    }
  }
  // Mostly keep the header consistent so mutations reach the body parsers.
  if (b.length >= 19 && r() % 4 !== 0) {
    b.fill(0xff, 0, 16);
    b.writeUInt16BE(Math.min(b.length, 0xffff), 16);
  }
  return b;
}

describe(`decoder fuzz (${ITERATIONS} mutations, seed ${SEED})`, () => {
  it('no exception escapes, no call exceeds the time bound, results are well-formed', () => {
    const r = rng(SEED);
    const seeds = corpus();
    const seen = { ok: 0, reset: 0, withdraw: 0, discard: 0 };
    let slowest = 0;
    let slowestInput = '';
    for (let i = 0; i < ITERATIONS; i++) {
      const input = mutate(seeds[r() % seeds.length]!, r);
      const opts = OPTION_SETS[r() % OPTION_SETS.length]!;
      const t0 = performance.now();
      let res: ReturnType<typeof decodeMessage>;
      try {
        res = decodeMessage(input, opts);
      } catch (e) {
        assert.fail(`decodeMessage threw on ${input.toString('hex')} (seed ${SEED}, iteration ${i}): ${e}`);
      }
      let dt = performance.now() - t0;
      if (dt >= MAX_CALL_MS) {
        const t1 = performance.now();
        decodeMessage(input, opts);
        dt = performance.now() - t1;
      }
      if (dt > slowest) {
        slowest = dt;
        slowestInput = input.toString('hex');
      }
      assert.ok(dt < MAX_CALL_MS, `decode took ${dt.toFixed(1)} ms twice on ${input.toString('hex')}`);
      if (!res.ok) {
        seen.reset++;
        const n = res.error.notification;
        assert.ok(n.code >= 1 && n.code <= 7, `NOTIFICATION code ${n.code}`);
        if (i % 4 === 0) {
          const k = decodeMessage(input, { ...opts, ipv4Keys: true });
          assert.ok(!k.ok, `keyed decode took what the text decode refused: ${input.toString('hex')}`);
          assert.deepEqual(k.error.notification, n);
        }
        continue;
      }
      if (res.outcome.kind === 'treat-as-withdraw') seen.withdraw++;
      else if (res.outcome.kind === 'attribute-discard') seen.discard++;
      else seen.ok++;
      // The keyed IPv4 decode (what the speaker uses) must reach the same verdict.
      if (i % 4 === 0) {
        const k = decodeMessage(input, { ...opts, ipv4Keys: true });
        assert.ok(k.ok, `keyed decode refused what the text decode took: ${input.toString('hex')}`);
        assert.deepEqual(k.outcome, res.outcome, `keyed outcome differs on ${input.toString('hex')}`);
      }
      // Whatever decoded must re-encode (or be refused with a typed error) and decode again.
      if (i % 8 === 0) {
        try {
          const again = decodeMessage(encodeMessage(res.message, opts), opts);
          assert.ok(
            again.ok || again.error.notification.code === 3,
            'a re-encoded message no longer decodes',
          );
        } catch (e) {
          if (!(e instanceof BgpEncodeError)) throw e;
        }
      }
    }
    // The mutations must reach every outcome, or the fuzzer is not exercising the rules.
    assert.ok(seen.ok > 0 && seen.reset > 0 && seen.withdraw > 0 && seen.discard > 0, JSON.stringify(seen));
    console.log(`fuzz: ${JSON.stringify(seen)}, slowest call ${slowest.toFixed(2)} ms on ${slowestInput}`);
  });

  it('the framer survives arbitrary byte streams and arbitrary cuts', () => {
    const r = rng(SEED ^ 0x5a5a5a5a);
    const seeds = corpus();
    for (let i = 0; i < Math.max(1000, ITERATIONS / 100); i++) {
      const stream = Buffer.concat(
        Array.from({ length: 1 + (r() % 6) }, () => mutate(seeds[r() % seeds.length]!, r)),
      );
      const f = new MessageFramer();
      let at = 0;
      while (at < stream.length) {
        const n = 1 + (r() % 200);
        for (const fr of f.push(stream.subarray(at, at + n))) {
          if (fr.ok) assert.ok(fr.bytes.length >= 19 && fr.bytes.length <= 4096);
          else assert.equal(fr.error.notification.code, 1);
        }
        at += n;
      }
    }
  });
});

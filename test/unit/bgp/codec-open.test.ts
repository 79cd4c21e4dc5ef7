// OPEN validation per RFC 4271 §6.2 (with RFC 6793, RFC 5492, RFC 6286 refinements).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { AS_TRANS, type OpenMessage, OpenSubcode, openAsn, validateOpen } from '../../../bgp/codec/index.js';

const base: OpenMessage = {
  type: 'open',
  version: 4,
  myAs: 65001,
  holdTime: 9,
  bgpId: '10.0.0.2',
  capabilities: [{ kind: 'as4', asn: 65001 }],
};

function sub(open: Partial<OpenMessage>, expect = {}): number | null {
  const n = validateOpen({ ...base, ...open }, expect);
  if (n !== null) assert.equal(n.code, 2);
  return n?.subcode ?? null;
}

describe('OPEN validation', () => {
  it('accepts a good OPEN', () =>
    assert.equal(sub({}, { peerAs: 65001, localBgpId: '10.0.0.1', localAs: 65001 }), null));
  it('version ≠ 4 → Unsupported Version Number, data = 4', () => {
    const n = validateOpen({ ...base, version: 3 });
    assert.equal(n?.subcode, OpenSubcode.UnsupportedVersionNumber);
    assert.deepEqual([...(n?.data ?? [])], [0, 4]);
  });
  it('hold time 1 or 2 → Unacceptable Hold Time; 0 and 3 accepted', () => {
    assert.equal(sub({ holdTime: 1 }), OpenSubcode.UnacceptableHoldTime);
    assert.equal(sub({ holdTime: 2 }), OpenSubcode.UnacceptableHoldTime);
    assert.equal(sub({ holdTime: 0 }), null);
    assert.equal(sub({ holdTime: 3 }), null);
  });
  it('unexpected peer AS → Bad Peer AS', () =>
    assert.equal(sub({}, { peerAs: 65002 }), OpenSubcode.BadPeerAs));
  it('4-octet AS: the capability decides, My AS must agree (RFC 6793)', () => {
    const big = { myAs: AS_TRANS, capabilities: [{ kind: 'as4' as const, asn: 4200000000 }] };
    assert.equal(sub(big, { peerAs: 4200000000 }), null);
    assert.equal(openAsn({ ...base, ...big }), 4200000000);
    assert.equal(sub({ myAs: 65002 }), OpenSubcode.BadPeerAs);
    assert.equal(sub({ ...big, myAs: 65001 }), OpenSubcode.BadPeerAs);
    assert.equal(sub({ myAs: AS_TRANS, capabilities: [] }), OpenSubcode.BadPeerAs);
    assert.equal(sub({ myAs: 0, capabilities: [] }), OpenSubcode.BadPeerAs);
  });
  it('BGP identifier 0.0.0.0, or equal to ours on iBGP → Bad BGP Identifier', () => {
    assert.equal(sub({ bgpId: '0.0.0.0' }), OpenSubcode.BadBgpIdentifier);
    assert.equal(
      sub({ bgpId: '10.0.0.1' }, { localBgpId: '10.0.0.1', localAs: 65001 }),
      OpenSubcode.BadBgpIdentifier,
    );
    // eBGP peers may share an identifier (RFC 6286 §2.1).
    assert.equal(sub({ bgpId: '10.0.0.1' }, { localBgpId: '10.0.0.1', localAs: 65000 }), null);
  });
  it('non-capability optional parameter → Unsupported Optional Parameter', () =>
    assert.equal(
      sub({ unknownParams: [{ type: 1, data: Uint8Array.of(0) }] }),
      OpenSubcode.UnsupportedOptionalParameter,
    ));
  it('required capability absent → Unsupported Capability with the capability as data', () => {
    const n = validateOpen(base, { requiredCapabilities: [1] });
    assert.equal(n?.subcode, OpenSubcode.UnsupportedCapability);
    assert.deepEqual([...(n?.data ?? [])], [1, 0]);
  });
});

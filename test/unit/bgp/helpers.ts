// Shared helpers for the BGP speaker tests: speakers on 127.0.0.x loopback addresses with
// kernel-chosen ports, and polling.
import { type PeerConfig, Speaker, type SpeakerConfig } from '../../../bgp/speaker.js';

export async function waitFor<T>(
  what: string,
  f: () => T | undefined | null | false | Promise<T | undefined | null | false>,
  timeoutMs = 10_000,
): Promise<T> {
  const t0 = Date.now();
  for (;;) {
    const v = await f();
    if (v) return v;
    if (Date.now() - t0 > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

export interface TestSpeaker {
  speaker: Speaker;
  address: string;
  port: number;
}

/** A started speaker listening on `address` (a 127.0.0.x address) and a free port. */
export async function startSpeaker(
  address: string,
  cfg: Omit<SpeakerConfig, 'listen'>,
): Promise<TestSpeaker> {
  const speaker = new Speaker({ ...cfg, listen: { host: address, port: 0 } });
  await speaker.start();
  return { speaker, address, port: speaker.listenAddress()!.port };
}

/** Peer config for reaching `to` from `from`, fast timers. */
export function peerOf(
  from: TestSpeaker,
  to: TestSpeaker,
  asn: number,
  extra: Partial<PeerConfig> = {},
): PeerConfig {
  return {
    address: to.address,
    port: to.port,
    asn,
    localAddress: from.address,
    holdTimeSec: 9,
    connectRetrySec: 1,
    idleHoldMinSec: 0.2,
    idleHoldMaxSec: 1,
    ...extra,
  };
}

export function established(s: Speaker, address: string): boolean {
  return s.peers().find((p) => p.address === address)?.state === 'Established';
}

export function route(s: Speaker, prefix: string) {
  return s.locRib().find((r) => r.prefix === prefix);
}

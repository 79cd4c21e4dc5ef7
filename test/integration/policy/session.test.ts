// The persistent `nft -j -i` session against a real kernel: each transaction's success or error is
// reported on its own (an error does not leak into the next answer), transactions run in order, a
// dead nft process is replaced by the next call, and a 1-element change is fast.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import { NftSession, NftSessionError } from '../../../policy/session.js';
import { isRoot, Netns } from '../../harness/netns.js';

const skip = !isRoot() ? 'needs root (network namespaces)' : false;
const T = { family: 'inet', table: 'gsess' };

function listSet(ns: Netns, set: string): string {
  const r = spawnSync('ip', ['netns', 'exec', ns.name, 'nft', 'list', 'set', 'inet', T.table, set], {
    encoding: 'utf8',
  });
  return r.stdout;
}

describe('NftSession (persistent nft -j -i in a namespace)', { skip }, () => {
  let ns: Netns;
  let s: NftSession;
  before(() => {
    ns = Netns.create('gps');
    s = new NftSession({ prefix: ['ip', 'netns', 'exec', ns.name] });
  });
  after(() => {
    s?.close();
    ns?.destroy();
  });

  it('applies transactions and reports each error on its own', async () => {
    await s.transaction([
      { add: { table: { family: T.family, name: T.table } } },
      { add: { set: { ...T, name: 'addrs', type: 'ipv4_addr' } } },
    ]);
    await s.transaction([{ add: { element: { ...T, name: 'addrs', elem: ['10.1.0.1'] } } }]);
    await assert.rejects(
      s.transaction([{ add: { element: { ...T, name: 'missing', elem: ['10.1.0.2'] } } }]),
      (e: unknown) => e instanceof NftSessionError && /Error:/.test(e.output),
    );
    // The failed transaction was atomic and the session still answers correctly afterwards.
    await assert.rejects(
      s.transaction([
        { add: { element: { ...T, name: 'addrs', elem: ['10.1.0.3'] } } },
        { delete: { element: { ...T, name: 'addrs', elem: ['10.9.9.9'] } } },
      ]),
      NftSessionError,
    );
    await s.transaction([{ add: { element: { ...T, name: 'addrs', elem: ['10.1.0.4'] } } }]);
    const listed = listSet(ns, 'addrs');
    assert.match(listed, /10\.1\.0\.1/);
    assert.match(listed, /10\.1\.0\.4/);
    assert.doesNotMatch(listed, /10\.1\.0\.3/);
  });

  it('runs concurrent callers in order, one answer each', async () => {
    const results = await Promise.allSettled(
      [1, 2, 3, 4, 5, 6].map((i) =>
        s.transaction([
          i === 3
            ? { delete: { element: { ...T, name: 'addrs', elem: ['10.7.7.7'] } } }
            : { add: { element: { ...T, name: 'addrs', elem: [`10.2.0.${i}`] } } },
        ]),
      ),
    );
    assert.deepEqual(
      results.map((r) => r.status),
      ['fulfilled', 'fulfilled', 'rejected', 'fulfilled', 'fulfilled', 'fulfilled'],
    );
    const listed = listSet(ns, 'addrs');
    for (const i of [1, 2, 4, 5, 6]) assert.match(listed, new RegExp(`10\\.2\\.0\\.${i}\\b`));
  });

  it('starts a new nft after the old one died', async () => {
    s.close();
    await s.transaction([{ add: { element: { ...T, name: 'addrs', elem: ['10.3.0.1'] } } }]);
    assert.match(listSet(ns, 'addrs'), /10\.3\.0\.1/);
  });

  it('changes one element in well under 50 ms once warm', async () => {
    await s.warm();
    const times: number[] = [];
    for (let i = 0; i < 5; i++) {
      const t0 = performance.now();
      await s.transaction([{ add: { element: { ...T, name: 'addrs', elem: [`10.4.0.${i}`] } } }]);
      times.push(performance.now() - t0);
    }
    times.sort((a, b) => a - b);
    assert.ok(times[2]! < 50, `median ${times[2]} ms`);
  });
});

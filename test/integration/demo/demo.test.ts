// `make demo` end to end: two node namespaces, agents with a BGP mesh, pods from gingham-cni in
// agent mode, routed traffic across nodes, a NetworkPolicy enforced. The script removes what it
// made; this test also checks that nothing of it is left (namespaces, processes).
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { test } from 'node:test';
import { isRoot } from '../../harness/netns.js';

const skip = isRoot() ? false : 'needs root';

test('examples/demo-cluster.sh runs the two-node demo and cleans up', {
  skip,
  timeout: 240_000,
}, async () => {
  assert.ok(
    existsSync('dist/cli/main.js') && existsSync('dist/cni/gingham-cni.cjs'),
    'dist/ is missing: run `npm run build` first (make test does)',
  );
  const out: string[] = [];
  const child = spawn('bash', ['examples/demo-cluster.sh'], { stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout.on('data', (b: Buffer) => out.push(b.toString()));
  child.stderr.on('data', (b: Buffer) => out.push(b.toString()));
  const code = await new Promise<number | null>((resolve) => child.on('exit', (c) => resolve(c)));
  const text = out.join('');
  assert.equal(code, 0, `demo failed:\n${text.slice(-4000)}`);

  const id = /netns (ghd[0-9a-f]{6})-n1/.exec(text)?.[1];
  assert.ok(id, 'the demo names its namespaces');
  // Pods on one node and across nodes answered, over a BGP-learned route.
  assert.match(text, /Established/);
  // Pods were plumbed in agent mode, through each node agent's own CNI socket.
  assert.match(text, /agent on node-1 is ready, CNI socket \S+\/cni-node-1\.sock/);
  assert.match(text, /agent on node-2 is ready, CNI socket \S+\/cni-node-2\.sock/);
  assert.match(text, /creating pods through gingham-cni in agent mode/);
  assert.match(text, /via 10\.99\.0\.12 dev eth0 proto 80 onlink/);
  assert.equal((text.match(/2 packets transmitted, 2 received/g) ?? []).length, 4);
  assert.match(text, /web-1 → web-2 \(denied\)/);
  assert.match(text, /Verdict: DENIED/);
  assert.match(text, /table inet gingham/);

  const left = spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' }).stdout;
  assert.ok(!left.includes(id), `namespaces left behind:\n${left}`);
  const procs = spawnSync('ps', ['-eo', 'args'], { encoding: 'utf8' }).stdout;
  assert.ok(
    !/gingham-demo\.|--node node-[12] --ip 10\.99\.0\.1[12]/.test(procs),
    `processes left:\n${procs}`,
  );
});

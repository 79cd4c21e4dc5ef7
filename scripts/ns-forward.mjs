#!/usr/bin/env node
import { unlinkSync } from 'node:fs';
// Byte forwarder between two endpoints, each `unix:/path` or `HOST:PORT`:
//   node scripts/ns-forward.mjs LISTEN TARGET
// The demo and tests use it to let processes inside a node network namespace reach the
// etcd that runs on the host's loopback: unix socket files are not namespaced, so no
// interface or route of the host is touched. Prints "ready" once listening.
import { createConnection, createServer } from 'node:net';

function parse(spec) {
  if (spec.startsWith('unix:')) return { path: spec.slice(5) };
  const i = spec.lastIndexOf(':');
  if (i < 0) throw new Error(`endpoint "${spec}" is neither unix:/path nor HOST:PORT`);
  return { host: spec.slice(0, i), port: Number(spec.slice(i + 1)) };
}

const [listenSpec, targetSpec] = process.argv.slice(2);
if (!listenSpec || !targetSpec) {
  console.error('usage: ns-forward.mjs LISTEN TARGET   (each unix:/path or HOST:PORT)');
  process.exit(2);
}
const listen = parse(listenSpec);
const target = parse(targetSpec);
const srv = createServer((c) => {
  const u = createConnection(target);
  // Latency matters (the agent benchmark measures through this); no-ops on unix sockets.
  c.setNoDelay(true);
  u.setNoDelay(true);
  c.pipe(u);
  u.pipe(c);
  const end = () => {
    c.destroy();
    u.destroy();
  };
  for (const s of [c, u]) {
    s.on('error', end);
    s.on('close', end);
  }
});
srv.on('error', (e) => {
  console.error(`ns-forward: ${listenSpec}: ${e.message}`);
  process.exit(1);
});
if (listen.path) {
  try {
    unlinkSync(listen.path);
  } catch {}
  srv.listen(listen.path, () => console.log('ready'));
} else {
  srv.listen(listen.port, listen.host, () => console.log('ready'));
}
for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => process.exit(0));

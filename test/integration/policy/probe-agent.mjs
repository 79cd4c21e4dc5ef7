// Runs inside one workload network namespace: serves TCP and UDP on the given ports (each answers with
// the peer's address) and runs probes on request. Protocol: one JSON object per line on stdin
// ({id, kind: 'tcp'|'udp'|'ping', host, port, timeoutMs}), one JSON reply per line on stdout
// ({id, ok, peer?}). Plain JS so it starts fast under `ip netns exec`.
import { spawn } from 'node:child_process';
import dgram from 'node:dgram';
import { existsSync } from 'node:fs';
import net from 'node:net';
import readline from 'node:readline';

const ports = process.argv.slice(2).map(Number);
let ready = 0;
// IPv4 and IPv6 (v6-only sockets, so IPv4 peers are not seen as ::ffff:a.b.c.d), TCP and UDP.
const total = ports.length * 4;
const onReady = () => {
  ready++;
  if (ready === total) process.stdout.write(`${JSON.stringify({ ready: true })}\n`);
};
for (const port of ports) {
  for (const [host, udpType] of [
    ['0.0.0.0', 'udp4'],
    ['::', 'udp6'],
  ]) {
    const v6 = udpType === 'udp6';
    const srv = net.createServer((s) => {
      s.on('error', () => {});
      s.end(`${s.remoteAddress}\n`);
    });
    // Without IPv6 in the namespace the v6 sockets fail; the agent still serves IPv4.
    srv.on('error', () => v6 && onReady());
    srv.listen({ port, host, ipv6Only: v6 }, onReady);
    const u = dgram.createSocket({ type: udpType, ipv6Only: v6 });
    u.on('error', () => v6 && onReady());
    u.on('message', (_msg, rinfo) => u.send(`${rinfo.address}\n`, rinfo.port, rinfo.address));
    u.bind(port, host, onReady);
  }
}

function reply(id, ok, peer) {
  process.stdout.write(`${JSON.stringify({ id, ok, ...(peer ? { peer } : {}) })}\n`);
}

function tcpProbe({ id, host, port, timeoutMs }) {
  let done = false;
  let data = '';
  const s = net.connect({ host, port });
  const finish = (ok) => {
    if (done) return;
    done = true;
    clearTimeout(t);
    s.destroy();
    reply(id, ok, ok ? data.trim() : undefined);
  };
  const t = setTimeout(() => finish(false), timeoutMs);
  s.on('data', (d) => {
    data += d;
  });
  s.on('end', () => finish(true));
  s.on('error', () => finish(false));
}

// Each UDP probe takes the next source port of a private range. With a kernel-chosen port, a probe
// could reuse the 5-tuple of an earlier probe that was allowed: its conntrack entry (30 s) is
// "established" and is let through by the fast path before any policy — a policy change in
// between would look like it did not apply. A counter does not repeat within a test run.
let nextUdpPort = 20000 + Math.floor(Math.random() * 20000);

function udpProbe({ id, host, port, timeoutMs }) {
  const u = dgram.createSocket(host.includes(':') ? 'udp6' : 'udp4');
  const srcPort = nextUdpPort;
  nextUdpPort = nextUdpPort >= 59999 ? 20000 : nextUdpPort + 1;
  let done = false;
  const finish = (ok, peer) => {
    if (done) return;
    done = true;
    clearTimeout(t);
    u.close();
    reply(id, ok, peer);
  };
  const t = setTimeout(() => finish(false), timeoutMs);
  u.on('message', (m) => finish(true, String(m).trim()));
  u.on('error', () => finish(false));
  u.bind(srcPort, () => u.send('probe', port, host));
}

// iputils ping if installed, else busybox's (Debian busybox-static).
const PING = ['/bin/ping', '/usr/bin/ping'].find((p) => existsSync(p));
const pingArgv = PING ? [PING] : ['busybox', 'ping'];

function pingProbe({ id, host, timeoutMs }) {
  const wait = String(Math.max(1, Math.ceil(timeoutMs / 1000)));
  const p = spawn(pingArgv[0], [...pingArgv.slice(1), '-q', '-c', '1', '-W', wait, host], {
    stdio: 'ignore',
  });
  p.on('error', () => reply(id, false));
  p.on('exit', (code) => reply(id, code === 0));
}

readline.createInterface({ input: process.stdin }).on('line', (line) => {
  const req = JSON.parse(line);
  if (req.kind === 'tcp') tcpProbe(req);
  else if (req.kind === 'udp') udpProbe(req);
  else pingProbe(req);
});
process.stdin.on('end', () => process.exit(0));

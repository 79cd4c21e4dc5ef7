// Starts a real etcd (Debian etcd-server) on 127.0.0.1 with free ports and a temp data dir.
// Every instance is stopped by PID and its directory removed, even when a test fails.
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      srv.close(() => (typeof addr === 'object' && addr ? resolve(addr.port) : reject(new Error('no port'))));
    });
  });
}

export interface EtcdInstance {
  endpoint: string;
  dataDir: string;
  pid(): number | undefined;
  /** SIGTERM and wait; data is kept so start() resumes it. */
  stop(): Promise<void>;
  start(): Promise<void>;
  /** Stop and remove everything. Idempotent. */
  destroy(): Promise<void>;
}

const live = new Set<EtcdInstance>();
process.on('exit', () => {
  for (const e of live) {
    const pid = e.pid();
    if (pid) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {}
    }
    try {
      rmSync(e.dataDir, { recursive: true, force: true });
    } catch {}
  }
});

// A process killed by a signal has exitCode null and signalCode set (etcd re-raises SIGTERM).
function alive(p: ChildProcess | undefined): boolean {
  return !!p && p.exitCode === null && p.signalCode === null;
}

async function waitHealthy(endpoint: string, timeoutMs: number, proc: ChildProcess): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (!alive(proc)) throw new Error(`etcd exited with code ${proc.exitCode ?? proc.signalCode}`);
    try {
      const r = await fetch(`${endpoint}/health`);
      if (r.ok) return;
    } catch {}
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`etcd at ${endpoint} not healthy after ${timeoutMs} ms`);
}

export async function startEtcd(opts: { quotaBytes?: number } = {}): Promise<EtcdInstance> {
  const dir = mkdtempSync(join(tmpdir(), 'gingham-etcd-'));
  const clientPort = await freePort();
  const peerPort = await freePort();
  const endpoint = `http://127.0.0.1:${clientPort}`;
  let proc: ChildProcess | undefined;
  const args = [
    '--name',
    'test',
    '--data-dir',
    join(dir, 'data'),
    '--listen-client-urls',
    endpoint,
    '--advertise-client-urls',
    endpoint,
    '--listen-peer-urls',
    `http://127.0.0.1:${peerPort}`,
    '--initial-advertise-peer-urls',
    `http://127.0.0.1:${peerPort}`,
    '--initial-cluster',
    `test=http://127.0.0.1:${peerPort}`,
    '--quota-backend-bytes',
    String(opts.quotaBytes ?? 4 * 1024 * 1024 * 1024),
    '--log-level',
    'error',
  ];
  const inst: EtcdInstance = {
    endpoint,
    dataDir: dir,
    pid: () => (alive(proc) ? proc?.pid : undefined),
    async start() {
      if (alive(proc)) return;
      proc = spawn('etcd', args, { stdio: ['ignore', 'ignore', 'ignore'] });
      await waitHealthy(endpoint, 15000, proc);
    },
    async stop() {
      const p = proc;
      if (!p || !alive(p)) return;
      await new Promise<void>((resolve) => {
        p.once('exit', () => resolve());
        p.kill('SIGTERM');
        setTimeout(() => alive(p) && p.kill('SIGKILL'), 5000).unref();
      });
    },
    async destroy() {
      await inst.stop();
      rmSync(dir, { recursive: true, force: true });
      live.delete(inst);
    },
  };
  live.add(inst);
  try {
    await inst.start();
  } catch (e) {
    await inst.destroy();
    throw e;
  }
  return inst;
}

// Starts a real etcd (Debian etcd-server) on 127.0.0.1 with free ports and a temp data dir;
// optionally serving https only, with client-certificate auth, from a test CA made by openssl.
// Every instance is stopped by PID and its directory removed, even when a test fails.
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import https from 'node:https';
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

/** PEM files a client of a TLS etcd uses: the CA that signed etcd's certificate, its own pair. */
export interface EtcdClientTls {
  ca: string;
  cert: string;
  key: string;
}

/**
 * A CA, a server certificate for 127.0.0.1 and a client certificate, all signed by the CA (EC keys,
 * valid one day), in `dir`.
 */
export function makeTestCerts(dir: string): EtcdClientTls & { serverCert: string; serverKey: string } {
  const openssl = (args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'ignore' });
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  openssl([
    'req',
    '-x509',
    ...ec,
    '-days',
    '1',
    '-subj',
    '/CN=gingham-test-ca',
    '-keyout',
    'ca.key',
    '-out',
    'ca.crt',
  ]);
  writeFileSync(
    join(dir, 'server.ext'),
    'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n',
  );
  writeFileSync(join(dir, 'client.ext'), 'extendedKeyUsage=clientAuth\n');
  for (const who of ['server', 'client']) {
    openssl(['req', ...ec, '-subj', `/CN=${who}`, '-keyout', `${who}.key`, '-out', `${who}.csr`]);
    openssl([
      ...['x509', '-req', '-in', `${who}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial'],
      ...['-days', '1', '-extfile', `${who}.ext`, '-out', `${who}.crt`],
    ]);
  }
  return {
    ca: join(dir, 'ca.crt'),
    cert: join(dir, 'client.crt'),
    key: join(dir, 'client.key'),
    serverCert: join(dir, 'server.crt'),
    serverKey: join(dir, 'server.key'),
  };
}

export interface EtcdInstance {
  endpoint: string;
  dataDir: string;
  /** With `tls`: the client's files (etcd then requires a client certificate). */
  tls?: EtcdClientTls;
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

/** Client TLS material for the health probe (read once per wait, not per poll). */
type ProbeTls = { ca: Buffer; cert: Buffer; key: Buffer };

function healthy(endpoint: string, tls: ProbeTls | undefined): Promise<boolean> {
  if (!tls) return fetch(`${endpoint}/health`).then((r) => r.ok);
  return new Promise((resolve, reject) => {
    const req = https.get(`${endpoint}/health`, tls, (res) => {
      res.resume();
      resolve(res.statusCode === 200);
    });
    req.on('error', reject);
  });
}

async function waitHealthy(
  endpoint: string,
  timeoutMs: number,
  proc: ChildProcess,
  files?: EtcdClientTls,
): Promise<void> {
  const tls = files
    ? { ca: readFileSync(files.ca), cert: readFileSync(files.cert), key: readFileSync(files.key) }
    : undefined;
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (!alive(proc)) throw new Error(`etcd exited with code ${proc.exitCode ?? proc.signalCode}`);
    try {
      if (await healthy(endpoint, tls)) return;
    } catch {}
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`etcd at ${endpoint} not healthy after ${timeoutMs} ms`);
}

/** The ETCD_* variables that name a TLS etcd's client files, as the agent, plugins and CLI read them. */
export function etcdTlsEnv(tls: EtcdClientTls): Record<string, string> {
  return { ETCD_CA_CERT_FILE: tls.ca, ETCD_CERT_FILE: tls.cert, ETCD_KEY_FILE: tls.key };
}

export async function startEtcd(opts: { quotaBytes?: number; tls?: boolean } = {}): Promise<EtcdInstance> {
  const dir = mkdtempSync(join(tmpdir(), 'gingham-etcd-'));
  const clientPort = await freePort();
  const peerPort = await freePort();
  const endpoint = `${opts.tls ? 'https' : 'http'}://127.0.0.1:${clientPort}`;
  let certs: ReturnType<typeof makeTestCerts> | undefined;
  if (opts.tls) {
    mkdirSync(join(dir, 'tls'));
    try {
      certs = makeTestCerts(join(dir, 'tls'));
    } catch (e) {
      rmSync(dir, { recursive: true, force: true });
      throw e;
    }
  }
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
    ...(certs
      ? [
          ...['--cert-file', certs.serverCert, '--key-file', certs.serverKey],
          ...['--trusted-ca-file', certs.ca, '--client-cert-auth'],
        ]
      : []),
  ];
  const tls = certs ? { ca: certs.ca, cert: certs.cert, key: certs.key } : undefined;
  const inst: EtcdInstance = {
    endpoint,
    dataDir: dir,
    ...(tls ? { tls } : {}),
    pid: () => (alive(proc) ? proc?.pid : undefined),
    async start() {
      if (alive(proc)) return;
      proc = spawn('etcd', args, { stdio: ['ignore', 'ignore', 'ignore'] });
      await waitHealthy(endpoint, 15000, proc, tls);
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

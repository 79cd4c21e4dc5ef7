// A small etcd v3 client over etcd's built-in JSON gRPC-gateway (POST /v3/kv/*, base64 keys and
// values; etcd ≥ 3.4 serves it on the client port). The CNI plugin uses it instead of the etcd3
// package: loading etcd3 (+ grpc) costs ~120 ms per process, node:http costs nothing extra.
// Semantics match the store: CAS on mod revision, where 0n means "must not exist".
// https endpoints are spoken to with the client TLS material an operator names (readEtcdTls).
import { readFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';

export class EtcdUnavailableError extends Error {
  constructor(
    readonly endpoints: string[],
    override readonly cause: unknown,
  ) {
    super(`etcd unavailable at ${endpoints.join(',')}: ${(cause as Error)?.message ?? String(cause)}`);
    this.name = 'EtcdUnavailableError';
  }
}

export class EtcdRequestError extends Error {
  constructor(
    readonly path: string,
    readonly status: number,
    readonly body: string,
  ) {
    super(`etcd ${path} answered ${status}: ${body.slice(0, 300)}`);
    this.name = 'EtcdRequestError';
  }
}

/**
 * A TLS file setting that cannot be used. `setting` is the name the operator set it under (a
 * network-configuration key or an environment variable), so the message says where to look.
 */
export class EtcdTlsConfigError extends Error {
  constructor(
    readonly setting: string,
    readonly path: string | undefined,
    readonly detail: string,
  ) {
    super(`${setting}${path === undefined ? '' : ` (${path})`}: ${detail}`);
    this.name = 'EtcdTlsConfigError';
  }
}

/** Client TLS for https endpoints, as PEM bytes; without `ca` the system's trusted CAs apply. */
export interface EtcdTls {
  ca?: Buffer;
  cert?: Buffer;
  key?: Buffer;
}

/** One TLS file setting: its path and the name it was set under. */
export interface EtcdTlsFile {
  setting: string;
  path: string;
}

/**
 * Reads the CA, client certificate and client key files (each optional, but a certificate needs
 * its key and a key its certificate). undefined when none is set.
 */
export function readEtcdTls(files: {
  ca?: EtcdTlsFile;
  cert?: EtcdTlsFile;
  key?: EtcdTlsFile;
}): EtcdTls | undefined {
  const { ca, cert, key } = files;
  if (!ca && !cert && !key) return undefined;
  if (cert && !key)
    throw new EtcdTlsConfigError(cert.setting, cert.path, 'a client certificate needs its key (none is set)');
  if (key && !cert)
    throw new EtcdTlsConfigError(key.setting, key.path, 'a client key needs its certificate (none is set)');
  const read = (f: EtcdTlsFile): Buffer => {
    try {
      const b = readFileSync(f.path);
      if (!b.includes('-----BEGIN ')) throw new Error('not a PEM file');
      return b;
    } catch (e) {
      const err = e as NodeJS.ErrnoException;
      throw new EtcdTlsConfigError(f.setting, f.path, `cannot use it: ${err.code ?? err.message}`);
    }
  };
  const tls: EtcdTls = {};
  if (ca) tls.ca = read(ca);
  if (cert) tls.cert = read(cert);
  if (key) tls.key = read(key);
  return tls;
}

/** The TLS file settings in $ETCD_CA_CERT_FILE, $ETCD_CERT_FILE and $ETCD_KEY_FILE (as the store reads them). */
export function envTlsFiles(env: NodeJS.ProcessEnv = process.env): {
  ca?: EtcdTlsFile;
  cert?: EtcdTlsFile;
  key?: EtcdTlsFile;
} {
  const files: { ca?: EtcdTlsFile; cert?: EtcdTlsFile; key?: EtcdTlsFile } = {};
  for (const [which, setting] of [
    ['ca', 'ETCD_CA_CERT_FILE'],
    ['cert', 'ETCD_CERT_FILE'],
    ['key', 'ETCD_KEY_FILE'],
  ] as const) {
    const path = env[setting];
    if (path) files[which] = { setting, path };
  }
  return files;
}

/** The TLS material the ETCD_* environment names. */
export function etcdTlsFromEnv(env: NodeJS.ProcessEnv = process.env): EtcdTls | undefined {
  return readEtcdTls(envTlsFiles(env));
}

export interface KeyValue {
  key: string;
  value: Buffer;
  modRevision: bigint;
  createRevision: bigint;
}

/** A compare on one key's mod revision (0n: the key must not exist). */
export interface ModRevisionCompare {
  key: string;
  modRevision: bigint;
}

/** `range`: every key with this prefix (reads in a transaction share one revision and one request). */
export type TxnOp =
  | { put: string; value: string | Buffer }
  | { delete: string }
  | { get: string }
  | { range: string };

export interface TxnResult {
  succeeded: boolean;
  revision: bigint;
  /** For `get` ops of the branch that ran, in order. */
  gets: (KeyValue | null)[];
  /** For `range` ops of the branch that ran, in order. */
  ranges: KeyValue[][];
}

/** The subset of an etcd client the allocator needs. */
export interface KvClient {
  get(key: string): Promise<KeyValue | null>;
  range(prefix: string): Promise<{ kvs: KeyValue[]; revision: bigint }>;
  txn(compares: ModRevisionCompare[], success: TxnOp[], failure?: TxnOp[]): Promise<TxnResult>;
  close(): void;
}

const b64 = (s: string | Buffer) => (Buffer.isBuffer(s) ? s : Buffer.from(s)).toString('base64');

/** The key just past every key with this prefix (etcd range_end for a prefix scan). */
export function prefixEnd(prefix: string): Buffer {
  const b = Buffer.from(prefix);
  for (let i = b.length - 1; i >= 0; i--) {
    if (b[i]! < 0xff) {
      const out = Buffer.from(b.subarray(0, i + 1));
      out[i] = b[i]! + 1;
      return out;
    }
  }
  return Buffer.from([0]);
}

interface RawKv {
  key: string;
  value?: string;
  mod_revision?: string;
  create_revision?: string;
}

function toKv(r: RawKv): KeyValue {
  return {
    key: Buffer.from(r.key, 'base64').toString(),
    value: Buffer.from(r.value ?? '', 'base64'),
    modRevision: BigInt(r.mod_revision ?? '0'),
    createRevision: BigInt(r.create_revision ?? '0'),
  };
}

function opJson(op: TxnOp): unknown {
  if ('put' in op) return { request_put: { key: b64(op.put), value: b64(op.value) } };
  if ('delete' in op) return { request_delete_range: { key: b64(op.delete) } };
  if ('range' in op)
    return { request_range: { key: b64(op.range), range_end: prefixEnd(op.range).toString('base64') } };
  return { request_range: { key: b64(op.get) } };
}

/** Parses "http://a:2379,http://b:2379" (or an array) into base URLs. */
export function parseEndpoints(spec: string | string[]): string[] {
  const list = (Array.isArray(spec) ? spec : spec.split(',')).map((s) => s.trim()).filter(Boolean);
  return list.map((e) => (/^(https?|unix):\/\//.test(e) ? e : `http://${e}`).replace(/(.)\/+$/, '$1'));
}

export class EtcdLite implements KvClient {
  private readonly agent = new http.Agent({ keepAlive: true, maxSockets: 16 });
  /** For https endpoints, made on first use. */
  private tlsAgent: https.Agent | undefined;
  private current = 0;

  constructor(
    readonly endpoints: string[],
    private readonly timeoutMs = 5000,
    private readonly tls?: EtcdTls,
  ) {
    if (endpoints.length === 0)
      throw new EtcdUnavailableError(endpoints, new Error('no etcd endpoints configured'));
  }

  private secureAgent(): https.Agent {
    this.tlsAgent ??= new https.Agent({ keepAlive: true, maxSockets: 16, ...this.tls });
    return this.tlsAgent;
  }

  private post(base: string, path: string, body: unknown): Promise<unknown> {
    // "unix:///run/etcd.sock": etcd's unix listener, reachable from any network namespace.
    const target = base.startsWith('unix://')
      ? { socketPath: base.slice('unix://'.length), path }
      : { host: new URL(base).hostname.replace(/^\[(.*)\]$/, '$1'), port: new URL(base).port || 2379, path };
    const data = JSON.stringify(body);
    const secure = base.startsWith('https:');
    return new Promise((resolve, reject) => {
      const req = (secure ? https : http).request(
        {
          ...target,
          method: 'POST',
          agent: secure ? this.secureAgent() : this.agent,
          headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(data) },
          timeout: this.timeoutMs,
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString();
            if (res.statusCode !== 200) return reject(new EtcdRequestError(path, res.statusCode ?? 0, text));
            try {
              resolve(JSON.parse(text));
            } catch (e) {
              reject(new EtcdRequestError(path, res.statusCode, `invalid JSON: ${(e as Error).message}`));
            }
          });
          res.on('error', reject);
        },
      );
      req.on('timeout', () => req.destroy(new Error(`timed out after ${this.timeoutMs} ms`)));
      req.on('error', reject);
      req.end(data);
    });
  }

  /** Tries each endpoint in turn (sticking to the last good one); HTTP-level errors are not retried. */
  private async call(path: string, body: unknown): Promise<Record<string, unknown>> {
    let lastErr: unknown;
    for (let i = 0; i < this.endpoints.length; i++) {
      const idx = (this.current + i) % this.endpoints.length;
      try {
        const r = (await this.post(this.endpoints[idx]!, path, body)) as Record<string, unknown>;
        this.current = idx;
        return r;
      } catch (e) {
        if (e instanceof EtcdRequestError) throw e;
        lastErr = e;
      }
    }
    throw new EtcdUnavailableError(this.endpoints, lastErr);
  }

  async get(key: string): Promise<KeyValue | null> {
    const r = await this.call('/v3/kv/range', { key: b64(key) });
    const kvs = (r.kvs as RawKv[] | undefined) ?? [];
    return kvs.length > 0 ? toKv(kvs[0]!) : null;
  }

  async range(prefix: string): Promise<{ kvs: KeyValue[]; revision: bigint }> {
    const r = await this.call('/v3/kv/range', {
      key: b64(prefix),
      range_end: prefixEnd(prefix).toString('base64'),
    });
    const header = r.header as { revision?: string } | undefined;
    return {
      kvs: ((r.kvs as RawKv[] | undefined) ?? []).map(toKv),
      revision: BigInt(header?.revision ?? '0'),
    };
  }

  async txn(compares: ModRevisionCompare[], success: TxnOp[], failure: TxnOp[] = []): Promise<TxnResult> {
    const r = await this.call('/v3/kv/txn', {
      compare: compares.map((c) => ({
        key: b64(c.key),
        target: 'MOD',
        result: 'EQUAL',
        mod_revision: c.modRevision.toString(),
      })),
      success: success.map(opJson),
      failure: failure.map(opJson),
    });
    const succeeded = r.succeeded === true;
    const ops = succeeded ? success : failure;
    const responses = (r.responses as Record<string, { kvs?: RawKv[] }>[] | undefined) ?? [];
    const gets: (KeyValue | null)[] = [];
    const ranges: KeyValue[][] = [];
    ops.forEach((op, i) => {
      const kvs = responses[i]?.response_range?.kvs ?? [];
      if ('get' in op) gets.push(kvs.length > 0 ? toKv(kvs[0]!) : null);
      else if ('range' in op) ranges.push(kvs.map(toKv));
    });
    const header = r.header as { revision?: string } | undefined;
    return { succeeded, revision: BigInt(header?.revision ?? '0'), gets, ranges };
  }

  close(): void {
    this.agent.destroy();
    this.tlsAgent?.destroy();
  }
}

// The agent's CNI server: gingham-cni in agent mode (cni/thin.ts) hands each call here over a
// unix socket (protocol: cni/agent-protocol.ts). The commands are cni/commands.ts, the same as the
// plugin runs directly; what the agent adds is what a fresh process has to build per call: an etcd
// client with its connections open, the allocator's last-block hint, loaded code.
//
// Calls run concurrently; allocations of this node are serialized inside the allocator and
// committed by compare-and-swap, as with concurrent plugin processes.
import { chmod, mkdir, unlink } from 'node:fs/promises';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { dirname } from 'node:path';
import type { Logger } from 'pino';
import {
  type AgentResponse,
  formatPlainResponse,
  MAX_MESSAGE_BYTES,
  parseRequest,
  wantsPlainReply,
} from '../../cni/agent-protocol.js';
import { type CniContext, cniCommands } from '../../cni/commands.js';
import type { NetConf } from '../../cni/config.js';
import { iprouteDataplaneWith, type WorkloadDataplane } from '../../cni/dataplane.js';
import { CniCode, CniError } from '../../cni/errors.js';
import { invoke } from '../../cni/skel.js';
import { newAllocatorMemory } from '../../ipam/allocator.js';
import type { KvClient } from '../../ipam/etcd-lite.js';
import type { Family } from '../../lib/ip.js';
import { WarmBatchRunner } from './warm.js';

export const DEFAULT_CNI_SOCKET = '/var/run/gingham/cni.sock';
/** How long stop() waits for calls in flight before closing anyway. */
const STOP_WAIT_MS = 10_000;
/** How long a connection may take to send its request. */
const REQUEST_READ_MS = 10_000;

export interface CniServerOptions {
  socketPath: string;
  /** This agent's node: every call acts for it. */
  node: string;
  /** The datastore client, shared by all calls (owned by the caller). */
  kv: KvClient;
  logger: Logger;
  /**
   * The kernel side (default: the plugin's iproute2 batches, from processes started ahead; the
   * pair is created while IPAM runs).
   */
  dataplane?: WorkloadDataplane;
}

export class CniServerError extends Error {
  constructor(
    readonly socketPath: string,
    message: string,
  ) {
    super(`CNI socket ${socketPath}: ${message}`);
    this.name = 'CniServerError';
  }
}

/** Whether something accepts connections at `path` (another agent still running). */
function listening(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(path);
    s.on('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.on('error', () => resolve(false));
  });
}

export class CniServer {
  private server: Server | null = null;
  private readonly calls = new Set<Promise<void>>();
  private readonly lastBlock = new Map<Family, string>();
  /** What the allocator last saw of this node's blocks and handles: a DEL of an ADD made here is one request. */
  private readonly allocatorMemory = newAllocatorMemory();
  private readonly log: Logger;
  private warm: WarmBatchRunner | null = null;
  private dataplane: WorkloadDataplane | null = null;

  constructor(private readonly opts: CniServerOptions) {
    this.log = opts.logger;
  }

  get socketPath(): string {
    return this.opts.socketPath;
  }

  /** Calls being served now. */
  get inFlight(): number {
    return this.calls.size;
  }

  async start(): Promise<void> {
    const path = this.opts.socketPath;
    await mkdir(dirname(path), { recursive: true, mode: 0o755 });
    if (await listening(path)) throw new CniServerError(path, 'another process is serving it');
    // A socket file left by an agent that did not stop cleanly.
    await unlink(path).catch((e: NodeJS.ErrnoException) => {
      if (e.code !== 'ENOENT') throw new CniServerError(path, `cannot remove the old file: ${e.message}`);
    });
    const server = createServer((sock) => this.accept(sock));
    await new Promise<void>((resolve, reject) => {
      server.once('error', (e) => reject(new CniServerError(path, e.message)));
      server.listen(path, () => resolve());
    });
    server.on('error', (e) => this.log.error({ err: e.message, socket: path }, 'CNI socket error'));
    // Only root (the runtime's plugin) may ask the agent to plumb workloads.
    await chmod(path, 0o600);
    this.server = server;
    if (this.opts.dataplane) this.dataplane = this.opts.dataplane;
    else {
      this.warm = new WarmBatchRunner();
      this.dataplane = iprouteDataplaneWith(this.warm, true);
    }
    this.log.info({ socket: path }, 'CNI server listening');
  }

  /** Stops accepting, lets calls in flight finish (bounded), removes the socket file. */
  async stop(): Promise<void> {
    const server = this.server;
    if (!server) return;
    this.server = null;
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    let timer: NodeJS.Timeout | undefined;
    const waited = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, STOP_WAIT_MS);
      timer.unref();
    });
    await Promise.race([Promise.all([closed, ...this.calls]), waited]);
    clearTimeout(timer);
    this.warm?.close();
    this.warm = null;
    await unlink(this.opts.socketPath).catch(() => undefined);
  }

  private accept(sock: Socket): void {
    const chunks: Buffer[] = [];
    let size = 0;
    let started = false;
    sock.on('error', () => undefined); // a client that went away: its call still completes
    // A client that connects and never sends its request line holds nothing for long.
    sock.setTimeout(REQUEST_READ_MS, () => {
      if (!started) sock.destroy();
    });
    sock.on('data', (d: Buffer) => {
      if (started) return;
      size += d.length;
      chunks.push(d);
      const nl = d.indexOf(0x0a);
      if (nl < 0 && size <= MAX_MESSAGE_BYTES) return;
      started = true;
      sock.setTimeout(0);
      const text = Buffer.concat(chunks).toString();
      const line = size > MAX_MESSAGE_BYTES ? null : text.slice(0, text.indexOf('\n'));
      // A request too large to read still gets its refusal in the form its client reads (the C
      // client puts "reply" first).
      const plain = wantsPlainReply(line ?? text.slice(0, 256));
      const call = this.serve(line).then((resp) => {
        if (!sock.destroyed) sock.end(plain ? formatPlainResponse(resp) : `${JSON.stringify(resp)}\n`);
      });
      this.calls.add(call);
      void call.finally(() => {
        this.calls.delete(call);
        // Idle again: replace the processes the calls used (not while another call runs).
        if (this.calls.size === 0) setImmediate(() => this.warm?.refill(() => this.calls.size > 0));
      });
    });
  }

  /** One call: the request line (null when too large) → the answer. */
  private async serve(line: string | null): Promise<AgentResponse> {
    const t0 = performance.now();
    let req: ReturnType<typeof parseRequest>;
    try {
      if (line === null) throw new Error(`request larger than ${MAX_MESSAGE_BYTES} bytes`);
      req = parseRequest(line);
    } catch (e) {
      this.log.warn({ err: (e as Error).message }, 'CNI server: bad request');
      return {
        v: 1,
        exitCode: 1,
        output: new CniError(CniCode.IoFailure, `gingham agent: ${(e as Error).message}`).toJSON('1.1.0'),
      };
    }
    const lines: string[] = [];
    let last = t0;
    const ctx: CniContext = {
      node: (conf) => this.nodeFor(conf),
      open: () => ({ kv: this.opts.kv, release: () => undefined }),
      lastBlock: this.lastBlock,
      allocatorMemory: this.allocatorMemory,
    };
    if (this.dataplane) ctx.dataplane = this.dataplane;
    if (req.trace) {
      ctx.trace = (phase) => {
        const now = performance.now();
        lines.push(`${phase}: +${(now - last).toFixed(1)} ms`);
        last = now;
      };
    }
    const o = await invoke(cniCommands(ctx), req.env, req.stdin);
    const ms = performance.now() - t0;
    const fields = {
      command: req.env.CNI_COMMAND,
      containerId: req.env.CNI_CONTAINERID,
      ifname: req.env.CNI_IFNAME,
      ms: Math.round(ms * 10) / 10,
    };
    if (o.exitCode === 0) this.log.debug(fields, 'CNI call done');
    else this.log.warn({ ...fields, error: o.output }, 'CNI call failed');
    const resp: AgentResponse = { v: 1, exitCode: o.exitCode };
    if (o.output !== undefined) resp.output = o.output;
    if (req.trace) resp.trace = [...lines, `total in agent: ${ms.toFixed(1)} ms`];
    return resp;
  }

  /** The agent acts for its own node; a configuration naming another node is a mistake. */
  private nodeFor(conf: NetConf): string {
    const named = conf.nodename ?? (conf.ipam?.nodename as string | undefined);
    if (named !== undefined && named !== this.opts.node) {
      throw new CniError(
        CniCode.InvalidNetworkConfig,
        `network configuration names node "${named}" but the agent at ${this.opts.socketPath} serves node "${this.opts.node}"`,
      );
    }
    return this.opts.node;
  }
}

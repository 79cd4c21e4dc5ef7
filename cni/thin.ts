// gingham-cni in agent mode (entry: cni/plugin.ts, when the network configuration has
// `agent_socket`): a thin client that hands the call to the node's agent over its unix socket
// (cni/agent-protocol.ts), prints the answer and exits with its code. The agent holds the etcd
// connection, the allocator's hint and the dataplane; this process only pays for Node's start.
// Loads nothing but node:net and the protocol (it is bundled alone: gingham-cni-thin.bundle.cjs).
//
// When the agent cannot be reached (no socket, connection refused, no answer in time, connection
// dropped before the answer) the call fails with CNI error 11, "try again later", naming the
// socket; STATUS answers 50, "plugin not available" (CNI 1.1). Nothing was done in either case,
// except when the agent died in the middle of a call: the runtime's DEL (or GC) cleans up then.
import { connect } from 'node:net';
import { type AgentRequest, MAX_MESSAGE_BYTES, parseResponse } from './agent-protocol.js';
import { CniCode } from './errors.js';

const DEFAULT_TIMEOUT_MS = 60_000;

export interface ThinOutcome {
  exitCode: 0 | 1;
  output?: unknown;
  /** The agent's phase timings, when asked for. */
  trace?: string[];
}

function cniVars(env: NodeJS.ProcessEnv): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(env)) if (k.startsWith('CNI_') && v !== undefined) out[k] = v;
  return out;
}

function configVersion(stdin: string): string {
  try {
    const v = (JSON.parse(stdin) as { cniVersion?: unknown }).cniVersion;
    if (typeof v === 'string' && /^\d+\.\d+\.\d+$/.test(v)) return v;
  } catch {}
  return '1.1.0';
}

/** The error answered when the agent is not there to ask. */
export function unreachable(command: string, socket: string, why: string, version: string): ThinOutcome {
  const status = command === 'STATUS';
  return {
    exitCode: 1,
    output: {
      cniVersion: version,
      code: status ? CniCode.NotAvailable : CniCode.TryAgainLater,
      msg: `gingham agent not reachable at ${socket}: ${why}`,
      details: `is the gingham agent running on this node with --cni-socket ${socket}?`,
    },
  };
}

/** Forwards one call to the agent at `socket`. Never rejects: failures are CNI error outcomes. */
export function forward(
  socket: string,
  stdin: string,
  env: NodeJS.ProcessEnv,
  timeoutMs = Number(env.GINGHAM_CNI_AGENT_TIMEOUT_MS ?? DEFAULT_TIMEOUT_MS),
): Promise<ThinOutcome> {
  const command = env.CNI_COMMAND ?? '';
  const version = configVersion(stdin);
  const req: AgentRequest = { v: 1, env: cniVars(env), stdin };
  if (env.GINGHAM_CNI_TRACE === '1') req.trace = true;
  return new Promise((resolve) => {
    let done = false;
    const chunks: Buffer[] = [];
    let size = 0;
    const finish = (o: ThinOutcome) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      sock.destroy();
      resolve(o);
    };
    const fail = (why: string) => finish(unreachable(command, socket, why, version));
    const sock = connect(socket);
    const timer = setTimeout(() => fail(`no answer within ${timeoutMs} ms`), timeoutMs);
    sock.on('connect', () => sock.write(`${JSON.stringify(req)}\n`));
    sock.on('data', (d: Buffer) => {
      size += d.length;
      if (size > MAX_MESSAGE_BYTES) return fail(`answer larger than ${MAX_MESSAGE_BYTES} bytes`);
      chunks.push(d);
    });
    sock.on('error', (e: NodeJS.ErrnoException) => fail(e.code ? `${e.code} (${e.message})` : e.message));
    // Closed without a readable end (reset): after 'end' or 'error' this is a no-op.
    sock.on('close', () => fail('the agent closed the connection without answering'));
    sock.on('end', () => {
      const text = Buffer.concat(chunks).toString().trim();
      if (text === '') return fail('the agent closed the connection without answering');
      try {
        const r = parseResponse(text);
        const o: ThinOutcome = { exitCode: r.exitCode };
        if (r.output !== undefined) o.output = r.output;
        if (r.trace) o.trace = r.trace;
        finish(o);
      } catch (e) {
        fail((e as Error).message);
      }
    });
  });
}

/** Runs this process's call through the agent named by the configuration's `agent_socket`. */
export function run(stdin: string): void {
  const t0 = performance.now();
  const tracing = process.env.GINGHAM_CNI_TRACE === '1';
  let socket = '';
  try {
    socket = String((JSON.parse(stdin) as { agent_socket?: unknown }).agent_socket ?? '');
  } catch {}
  void forward(socket, stdin, process.env).then((o) => {
    if (tracing) {
      // The epoch times let the caller split its wall time: exec before Node started (nsenter,
      // the shebang's env), and process exit after the answer.
      const now = performance.now();
      const lines = [
        `[gingham-cni] process started at ${performance.timeOrigin.toFixed(1)} (epoch ms)`,
        `[gingham-cni] thin client loaded at ${t0.toFixed(1)} ms since process start`,
        ...(o.trace ?? []).map((l) => `[gingham-cni agent] ${l}`),
        `[gingham-cni] agent answered: +${(now - t0).toFixed(1)} ms`,
        `[gingham-cni] answer printed at ${(performance.timeOrigin + now).toFixed(1)} (epoch ms)`,
      ];
      process.stderr.write(`${lines.join('\n')}\n`);
    }
    const out = o.output === undefined ? '' : `${JSON.stringify(o.output)}\n`;
    process.stdout.write(out, () => process.exit(o.exitCode));
  });
}

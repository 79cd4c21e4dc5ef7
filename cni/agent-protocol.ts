// The protocol between gingham-cni in agent mode (cni/thin.ts) and the agent's CNI server
// (agent/cni/server.ts), over a unix stream socket. One call per connection; each side sends one
// line of JSON and the server closes the connection after its answer:
//
//   → {"v":1,"env":{"CNI_COMMAND":"ADD","CNI_CONTAINERID":…,…},"stdin":"<network configuration>"}
//   ← {"v":1,"exitCode":0,"output":{<CNI result>}}          exitCode 1: output is a CNI error object
//
// `env` holds the call's CNI_* variables, `stdin` the configuration text exactly as the runtime
// gave it; the agent runs the same dispatch as the plugin does (cni/skel.ts invoke), so `output`
// is what the plugin prints and `exitCode` what it exits with. `trace: true` in the request asks
// for the agent's phase timings in the answer (`trace: ["add: ipam: +3.1 ms", …]`).
//
// `"reply":"plain"` in the request asks for the answer as text a client can pass on without a
// JSON parser (the C client, cni/gingham-cni.c):
//
//   ← 0\n                      the exit code, "0" or "1", alone on the first line
//     #add: ipam: +3.1 ms\n    trace lines, each after a "#" (only when asked for)
//     {<CNI result>}\n         exactly what the plugin prints (nothing when it prints nothing)
// No imports: this module is part of the thin client's bundle.

export const PROTOCOL_VERSION = 1;
/** Either side refuses a message larger than this (a configuration is a few kB). */
export const MAX_MESSAGE_BYTES = 1 << 20;

export interface AgentRequest {
  v: typeof PROTOCOL_VERSION;
  env: Record<string, string>;
  stdin: string;
  trace?: boolean;
  /** The answer's form: a JSON line (absent) or plain text (see above). */
  reply?: 'plain';
}

export interface AgentResponse {
  v: typeof PROTOCOL_VERSION;
  exitCode: 0 | 1;
  /** The JSON the plugin prints (result, or CNI error object); absent when nothing is printed. */
  output?: unknown;
  trace?: string[];
}

export class ProtocolError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ProtocolError';
  }
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function parseLine(text: string, what: string): Record<string, unknown> {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw new ProtocolError(`${what} is not JSON: ${(e as Error).message}`);
  }
  if (!isObject(v)) throw new ProtocolError(`${what} is not a JSON object`);
  if (v.v !== PROTOCOL_VERSION)
    throw new ProtocolError(`${what} has protocol version ${String(v.v)}, expected ${PROTOCOL_VERSION}`);
  return v;
}

export function parseRequest(text: string): AgentRequest {
  const v = parseLine(text, 'request');
  if (!isObject(v.env) || !Object.values(v.env).every((x) => typeof x === 'string'))
    throw new ProtocolError('request "env" must be an object of strings');
  if (typeof v.stdin !== 'string') throw new ProtocolError('request "stdin" must be a string');
  const out: AgentRequest = {
    v: PROTOCOL_VERSION,
    env: v.env as Record<string, string>,
    stdin: v.stdin,
  };
  if (v.trace === true) out.trace = true;
  if (v.reply !== undefined && v.reply !== 'plain')
    throw new ProtocolError(`request "reply" must be "plain" when present, not ${JSON.stringify(v.reply)}`);
  if (v.reply === 'plain') out.reply = 'plain';
  return out;
}

/**
 * Whether a request line asks for a plain answer, read without trusting the line: a request that
 * fails to parse is still answered in the form its client reads.
 */
export function wantsPlainReply(line: string): boolean {
  return /"reply"\s*:\s*"plain"/.test(line);
}

/** An answer in plain form (see the top of this file). */
export function formatPlainResponse(r: AgentResponse): string {
  let text = `${r.exitCode}\n`;
  for (const t of r.trace ?? []) text += `#${t.replace(/\n/g, ' ')}\n`;
  if (r.output !== undefined) text += `${JSON.stringify(r.output)}\n`;
  return text;
}

export function parseResponse(text: string): AgentResponse {
  const v = parseLine(text, 'answer');
  if (v.exitCode !== 0 && v.exitCode !== 1) throw new ProtocolError('answer "exitCode" must be 0 or 1');
  const out: AgentResponse = { v: PROTOCOL_VERSION, exitCode: v.exitCode };
  if (v.output !== undefined) out.output = v.output;
  if (Array.isArray(v.trace)) out.trace = v.trace.map(String);
  return out;
}

// The executable shell shared by gingham-cni and gingham-ipam: read env and stdin, dispatch,
// print the result or a CNI error object on stdout, exit 0 / 1.
import { readFileSync } from 'node:fs';
import { type CniEnv, type NetConf, parseEnv, parseNetConf, SUPPORTED_VERSIONS } from './config.js';
import { CniCode, CniError } from './errors.js';

export type Handler = (conf: NetConf, env: CniEnv) => Promise<unknown>;

export interface PluginHandlers {
  add: Handler;
  del: Handler;
  check: Handler;
  status: Handler;
  gc: Handler;
  toCniError: (e: unknown) => CniError;
}

function readStdin(): string {
  try {
    return readFileSync(0, 'utf8');
  } catch {
    return '';
  }
}

function versionHint(stdin: string): string {
  try {
    const v = JSON.parse(stdin) as { cniVersion?: unknown };
    if (typeof v.cniVersion === 'string' && (SUPPORTED_VERSIONS as readonly string[]).includes(v.cniVersion))
      return v.cniVersion;
  } catch {}
  return '1.1.0';
}

/** What one invocation ends in: the process exit code and the JSON printed on stdout (if any). */
export interface Outcome {
  exitCode: 0 | 1;
  output?: unknown;
}

/**
 * Runs one CNI invocation: `env` holds the CNI_* variables, `stdin` the network configuration.
 * Pure dispatch (nothing printed): the executable and the agent's CNI server both go through here,
 * so checks, versions and error objects are the same on both paths.
 */
export async function invoke(h: PluginHandlers, env: NodeJS.ProcessEnv, stdin: string): Promise<Outcome> {
  let version = versionHint(stdin);
  try {
    const e = parseEnv(env);
    if (e.command === 'VERSION') {
      return { exitCode: 0, output: { cniVersion: '1.1.0', supportedVersions: SUPPORTED_VERSIONS } };
    }
    if (stdin.trim() === '') throw new CniError(CniCode.DecodeFailure, 'no network configuration on stdin');
    const conf = parseNetConf(stdin);
    version = conf.cniVersion;
    const handler = { ADD: h.add, DEL: h.del, CHECK: h.check, STATUS: h.status, GC: h.gc }[e.command];
    if ((e.command === 'STATUS' || e.command === 'GC') && !conf.cniVersion.startsWith('1.1')) {
      throw new CniError(
        CniCode.IncompatibleVersion,
        `${e.command} needs cniVersion 1.1.0 (config has ${conf.cniVersion})`,
      );
    }
    if (e.command === 'CHECK' && conf.cniVersion.startsWith('0.3')) {
      throw new CniError(
        CniCode.IncompatibleVersion,
        `CHECK needs cniVersion ≥ 0.4.0 (config has ${conf.cniVersion})`,
      );
    }
    const out = await handler(conf, e);
    return out === undefined ? { exitCode: 0 } : { exitCode: 0, output: out };
  } catch (err) {
    return { exitCode: 1, output: h.toCniError(err).toJSON(version) };
  }
}

/**
 * Runs one CNI invocation of this process and returns the exit code (output already written).
 * `stdin` when the launcher has read it already (cni/plugin.ts reads it to choose the mode).
 */
export async function runPlugin(
  h: PluginHandlers,
  env: NodeJS.ProcessEnv = process.env,
  stdin?: string,
): Promise<number> {
  const text = stdin ?? (env.CNI_COMMAND === 'VERSION' ? '' : readStdin());
  const o = await invoke(h, env, text);
  if (o.output !== undefined) process.stdout.write(`${JSON.stringify(o.output)}\n`);
  return o.exitCode;
}

/** Entry point helper: run, then exit once stdout is flushed (keep-alive sockets must not hold us). */
export function main(h: PluginHandlers, stdin?: string): void {
  // Whatever escapes still ends as a CNI error object on stdout, never a bare stack trace.
  const fatal = (e: unknown) => {
    process.stdout.write(`${JSON.stringify(h.toCniError(e).toJSON('1.1.0'))}\n`, () => process.exit(1));
  };
  process.on('uncaughtException', fatal);
  process.on('unhandledRejection', fatal);
  runPlugin(h, process.env, stdin).then(
    (code) => {
      process.exitCode = code;
      process.stdout.write('', () => process.exit(code));
    },
    (e) => {
      process.stdout.write(
        `${JSON.stringify({ cniVersion: '1.1.0', code: CniCode.IoFailure, msg: String(e) })}\n`,
        () => process.exit(1),
      );
    },
  );
}

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

/** Runs one CNI invocation and returns the process exit code (output already written). */
export async function runPlugin(h: PluginHandlers, env: NodeJS.ProcessEnv = process.env): Promise<number> {
  const stdin = env.CNI_COMMAND === 'VERSION' ? '' : readStdin();
  let version = versionHint(stdin);
  try {
    const e = parseEnv(env);
    if (e.command === 'VERSION') {
      process.stdout.write(
        `${JSON.stringify({ cniVersion: '1.1.0', supportedVersions: SUPPORTED_VERSIONS })}\n`,
      );
      return 0;
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
    if (out !== undefined) process.stdout.write(`${JSON.stringify(out)}\n`);
    return 0;
  } catch (err) {
    const ce = h.toCniError(err);
    process.stdout.write(`${JSON.stringify(ce.toJSON(version))}\n`);
    return 1;
  }
}

/** Entry point helper: run, then exit once stdout is flushed (keep-alive sockets must not hold us). */
export function main(h: PluginHandlers): void {
  // Whatever escapes still ends as a CNI error object on stdout, never a bare stack trace.
  const fatal = (e: unknown) => {
    process.stdout.write(`${JSON.stringify(h.toCniError(e).toJSON('1.1.0'))}\n`, () => process.exit(1));
  };
  process.on('uncaughtException', fatal);
  process.on('unhandledRejection', fatal);
  runPlugin(h).then(
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

// iproute2 as a bulk writer (`ip -batch`, measured ~2× faster than netlink for thousands of routes,
// deps.md §1) and for the few operations the netlink package makes awkward (creating a vxlan link).
import { spawn } from 'node:child_process';
import { GINGHAM_ROUTE_PROTOCOL } from '../../lib/constants.js';

export class IprouteError extends Error {
  constructor(
    readonly args: readonly string[],
    readonly exitCode: number | null,
    readonly stderr: string,
  ) {
    super(`ip ${args.join(' ')} failed (${exitCode}): ${stderr.trim().slice(0, 500)}`);
    this.name = 'IprouteError';
  }
}

export function runIp(args: readonly string[], input?: string, cmd = 'ip'): Promise<string> {
  return new Promise((resolve, reject) => {
    const p = spawn(cmd, args, { stdio: [input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    p.stdout!.on('data', (b: Buffer) => out.push(b));
    p.stderr!.on('data', (b: Buffer) => err.push(b));
    p.on('error', (e) => reject(new IprouteError(args, null, e.message)));
    p.on('close', (code) => {
      if (code === 0) resolve(Buffer.concat(out).toString('utf8'));
      else reject(new IprouteError(args, code, Buffer.concat(err).toString('utf8')));
    });
    if (p.stdin) {
      // ip may exit before reading all of stdin (e.g. a fatal parse error): that is not our crash.
      p.stdin.on('error', () => undefined);
      p.stdin.end(input);
    }
  });
}

/**
 * Feeds lines to `ip -force -batch -`: every line is attempted (ip stops at the first failure
 * without -force). Returns the failed line numbers' messages; the caller re-dumps to learn the truth.
 */
export async function ipBatch(lines: readonly string[], cmd = 'ip'): Promise<string[]> {
  if (lines.length === 0) return [];
  try {
    await runIp(['-force', '-batch', '-'], `${lines.join('\n')}\n`, cmd);
    return [];
  } catch (e) {
    if (e instanceof IprouteError) return e.stderr.split('\n').filter((l) => l.trim() !== '');
    throw e;
  }
}

export async function ipJson<T>(args: readonly string[]): Promise<T> {
  const text = await runIp(['-json', ...args]);
  return (text.trim() === '' ? [] : JSON.parse(text)) as T;
}

/**
 * Whether routes of ours (our protocol number, IPv4 or IPv6) are in the kernel: at start-up this
 * tells a restart (the dataplane survived) from a first start. Errors count as "no".
 */
export async function ownRoutesPresent(protocol = GINGHAM_ROUTE_PROTOCOL): Promise<boolean> {
  for (const family of ['-4', '-6']) {
    try {
      const text = await runIp([family, 'route', 'show', 'table', 'all', 'proto', String(protocol)]);
      if (text.trim() !== '') return true;
    } catch {}
  }
  return false;
}

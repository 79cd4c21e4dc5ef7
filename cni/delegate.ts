// Delegation to another plugin (CNI spec "Delegated plugins"): find the executable named by
// `ipam.type` in CNI_PATH and run it with the call's CNI_* environment (CNI_COMMAND possibly
// overridden) and the same network configuration on stdin. The call's variables are passed
// explicitly: in agent mode the process running us is the agent, not the runtime's child.
import { spawn } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { join } from 'node:path';
import { CniCode, CniError } from './errors.js';

export function findPlugin(type: string, path: string[]): string {
  for (const dir of path) {
    const p = join(dir, type);
    try {
      accessSync(p, constants.X_OK);
      return p;
    } catch {}
  }
  throw new CniError(
    CniCode.InvalidNetworkConfig,
    `plugin "${type}" not found in CNI_PATH (${path.join(':') || 'empty'})`,
  );
}

/** Runs a delegated plugin; returns its parsed stdout (undefined when empty), or throws its CNI error. */
export function delegate(
  type: string,
  command: string,
  stdin: string,
  path: string[],
  vars: Record<string, string>,
): Promise<unknown> {
  const exe = findPlugin(type, path);
  return new Promise((resolve, reject) => {
    const p = spawn(exe, [], {
      env: { ...process.env, ...vars, CNI_COMMAND: command },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    p.stdout.on('data', (d: Buffer) => {
      out += d;
    });
    p.stderr.on('data', (d: Buffer) => {
      err += d;
    });
    p.on('error', (e) => reject(new CniError(CniCode.IoFailure, `running ${exe}: ${e.message}`)));
    p.stdin.on('error', () => undefined); // EPIPE when the plugin exits without reading: its exit status tells
    p.on('close', (code) => {
      let parsed: unknown;
      try {
        parsed = out.trim() ? JSON.parse(out) : undefined;
      } catch {
        return reject(
          new CniError(CniCode.DecodeFailure, `${type} ${command} printed invalid JSON`, out.slice(0, 500)),
        );
      }
      if (code === 0) return resolve(parsed);
      const o = (parsed ?? {}) as { code?: number; msg?: string; details?: string };
      reject(
        new CniError(
          typeof o.code === 'number' ? o.code : CniCode.IpamFailure,
          `${type} ${command}: ${o.msg ?? (err.trim() || `exit code ${code}`)}`,
          o.details ?? '',
        ),
      );
    });
    p.stdin.end(stdin);
  });
}

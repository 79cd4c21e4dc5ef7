// Sysctl driver: /proc/sys follows the caller's network namespace, so plain file I/O is enough.
// Reads before writing (a write that changes nothing is still a write); remembers what it set so an
// incremental pass only touches new paths; a full resync re-reads everything. Synchronous on
// purpose: a /proc/sys access takes microseconds, a thread-pool round trip per file costs more.
import { readFileSync, writeFileSync } from 'node:fs';

export class SysctlError extends Error {
  constructor(
    readonly path: string,
    readonly value: string,
    cause: unknown,
  ) {
    super(`sysctl ${path}=${value}: ${cause instanceof Error ? cause.message : String(cause)}`);
    this.name = 'SysctlError';
  }
}

export interface SysctlApplyResult {
  written: number;
  /** Paths that do not exist (interface not there yet, IPv6 disabled on it). */
  missing: string[];
  errors: SysctlError[];
}

export class SysctlDriver {
  private known = new Map<string, string>();

  constructor(private readonly root = '/proc/sys') {}

  /** Forget what we believe, so the next apply re-reads every path. */
  resync(): void {
    this.known.clear();
  }

  async apply(want: ReadonlyMap<string, { path: string; value: string }>): Promise<SysctlApplyResult> {
    const res: SysctlApplyResult = { written: 0, missing: [], errors: [] };
    for (const k of this.known.keys()) if (!want.has(k)) this.known.delete(k);
    for (const { path, value } of want.values()) {
      if (this.known.get(path) === value) continue;
      const file = `${this.root}/${path}`;
      let cur: string;
      try {
        cur = readFileSync(file, 'utf8').trim();
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'ENOENT') res.missing.push(path);
        else res.errors.push(new SysctlError(path, value, e));
        continue;
      }
      if (cur !== value) {
        try {
          writeFileSync(file, value);
          res.written++;
        } catch (e) {
          res.errors.push(new SysctlError(path, value, e));
          continue;
        }
      }
      this.known.set(path, value);
    }
    return res;
  }
}

// Helpers shared by the CLI commands: argument parsing with per-command help, opening the store
// with short timeouts, and turning errors into one clear line and an exit code.
import { type ParseArgsConfig, parseArgs } from 'node:util';
import type { EtcdStore } from '../store/index.js';
import { EtcdUnavailableError, StoreError } from '../store/index.js';

export class UsageError extends Error {}

/** What every command module provides (see the table in cli/main.ts). */
export interface Command {
  run(argv: string[]): Promise<number>;
}

/** The CLI talks to etcd with short timeouts: a person is waiting. */
export const CLI_TIMEOUTS = { dialTimeoutMs: 5000, requestTimeoutMs: 5000, unavailableRetryMs: 3000 };

export async function openCliStore(): Promise<EtcdStore> {
  const { openStore } = await import('../store/index.js');
  return openStore(CLI_TIMEOUTS);
}

export type Options = NonNullable<ParseArgsConfig['options']>;

export interface Parsed {
  values: Record<string, string | boolean | string[] | boolean[] | undefined>;
  positionals: string[];
}

/** parseArgs with --help handling: returns null when help was printed. */
export function parseCommandArgs(argv: string[], options: Options, help: string): Parsed | null {
  let parsed: Parsed;
  try {
    parsed = parseArgs({
      args: argv,
      options: { ...options, help: { type: 'boolean', short: 'h' } },
      allowPositionals: true,
      strict: true,
    });
  } catch (e) {
    throw new UsageError(`${(e as Error).message}\n\n${help}`);
  }
  if (parsed.values.help) {
    process.stdout.write(`${help}\n`);
    return null;
  }
  return parsed;
}

export function str(v: unknown): string | undefined {
  return typeof v === 'string' ? v : undefined;
}

/** One line (or a short block) for the user; exit code 1. */
export function reportError(e: unknown): number {
  if (e instanceof UsageError) process.stderr.write(`error: ${e.message}\n`);
  else if (e instanceof EtcdUnavailableError) process.stderr.write(`error: ${e.message}\n`);
  else if (e instanceof StoreError) process.stderr.write(`error: ${e.message}\n`);
  else if (e instanceof Error && 'code' in e && typeof e.code === 'string' && e.code.startsWith('E')) {
    process.stderr.write(`error: ${e.message}\n`); // file system errors: ENOENT and friends
  } else process.stderr.write(`error: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
  return 1;
}

/** Runs a command body with a store, always closing it; errors become exit code 1. */
export async function withStore(body: (store: EtcdStore) => Promise<number>): Promise<number> {
  let store: EtcdStore | undefined;
  try {
    store = await openCliStore();
    return await body(store);
  } catch (e) {
    return reportError(e);
  } finally {
    await store?.close();
  }
}

#!/usr/bin/env node
// `gingham`: the command-line front end. Dispatches on the first word through a lazy table so that
// a command's dependencies (etcd3 and gRPC, the BGP speaker, …) load only when it runs.
// Global flag: --etcd-endpoints URL[,URL…] (anywhere on the line) sets ETCD_ENDPOINTS for every command.

import type { Command } from './common.js';

export type { Command };

type Loader = () => Promise<Command>;

/** Loads a command module that another part of Gingham provides; absent until that part lands. */
export function optional(
  specifier: string,
  load: () => Promise<{ run(argv: string[]): Promise<number> }>,
): Loader {
  return async () => {
    try {
      return await load();
    } catch (e) {
      // Only the command module itself being absent means "not available"; a module that exists
      // but misses one of its own imports is a real error and must surface as one.
      const err = e as NodeJS.ErrnoException;
      const path = /Cannot find module '([^']+)'/.exec(err.message ?? '')?.[1] ?? '';
      const stem = specifier.replace(/^\.\//, '/').replace(/\.js$/, '');
      const missing =
        err.code === 'ERR_MODULE_NOT_FOUND' && (path.endsWith(`${stem}.js`) || path.endsWith(`${stem}.ts`));
      if (missing) throw new CommandUnavailableError(specifier);
      throw e;
    }
  };
}

export class CommandUnavailableError extends Error {
  constructor(readonly specifier: string) {
    super(`this command is not available in this build (${specifier} is not installed)`);
  }
}

// One line per command. Keys are the words users type.
export const commands: Record<string, Loader> = {
  apply: () => import('./commands/apply.js').then((m) => m.applyCommand),
  create: () => import('./commands/apply.js').then((m) => m.createCommand),
  replace: () => import('./commands/apply.js').then((m) => m.replaceCommand),
  delete: () => import('./commands/delete.js'),
  get: () => import('./commands/get.js'),
  label: () => import('./commands/label.js'),
  version: () => import('./commands/version.js'),
  ipam: optional('./commands/ipam.js', () => import('./commands/ipam.js' as string)),
  node: optional('./commands/node.js', () => import('./commands/node.js' as string)),
  policy: optional('./commands/policy.js', () => import('./commands/policy.js' as string)),
  agent: optional('./commands/agent.js', () => import('./commands/agent.js' as string)),
  reflector: optional('./commands/reflector.js', () => import('./commands/reflector.js' as string)),
};

const SUMMARY: Record<string, string> = {
  apply: 'Create or update resources from a file (-f FILE, - for stdin)',
  create: 'Create resources from a file; fails for ones that exist',
  replace: 'Replace existing resources from a file',
  delete: 'Delete resources by kind and name, or from a file',
  get: 'Show resources (-o yaml|json|wide|name)',
  label: 'Add, change or remove labels on a resource',
  version: 'Print the version',
  ipam: 'IP address management: show, check, release, configure',
  node: 'Node status and diagnostics',
  policy: "Render a node's nftables ruleset; explain which policy decides a flow",
  agent: 'Run the per-node agent',
  reflector: 'Run a BGP route reflector (no dataplane)',
};

export function usage(): string {
  const width = Math.max(...Object.keys(commands).map((c) => c.length));
  const lines = Object.keys(commands).map((c) => `  ${c.padEnd(width)}  ${SUMMARY[c] ?? ''}`);
  return [
    'Usage: gingham [--etcd-endpoints URL[,URL...]] COMMAND [ARGS...]',
    '',
    'Routed, policy-enforcing container networking (Calico v3 resources on etcd).',
    '',
    'Commands:',
    ...lines,
    '',
    'Global options:',
    '  --etcd-endpoints URLS  etcd client URLs, comma-separated (default $ETCD_ENDPOINTS or http://127.0.0.1:2379)',
    '  -h, --help             Show help; "gingham COMMAND --help" for a command',
    '',
    'TLS: $ETCD_CA_CERT_FILE, $ETCD_CERT_FILE, $ETCD_KEY_FILE.',
  ].join('\n');
}

/** Removes --etcd-endpoints from argv (any position) and exports it for the store. */
export function takeGlobalFlags(argv: string[]): string[] {
  const rest: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--') {
      rest.push(...argv.slice(i));
      break;
    }
    if (a === '--etcd-endpoints') {
      const v = argv[++i];
      if (v === undefined) throw new Error('--etcd-endpoints needs a value');
      process.env.ETCD_ENDPOINTS = v;
    } else if (a.startsWith('--etcd-endpoints=')) {
      process.env.ETCD_ENDPOINTS = a.slice('--etcd-endpoints='.length);
    } else rest.push(a);
  }
  return rest;
}

export async function main(argv: string[]): Promise<number> {
  let args: string[];
  try {
    args = takeGlobalFlags(argv);
  } catch (e) {
    process.stderr.write(`error: ${(e as Error).message}\n`);
    return 1;
  }
  const word = args[0];
  if (word === undefined || word === '-h' || word === '--help' || word === 'help') {
    (word === undefined ? process.stderr : process.stdout).write(`${usage()}\n`);
    return word === undefined ? 1 : 0;
  }
  if (word === '--version' || word === '-v') return main(['version']);
  const load = Object.hasOwn(commands, word) ? commands[word] : undefined;
  if (!load) {
    process.stderr.write(`error: unknown command "${word}"\n\n${usage()}\n`);
    return 1;
  }
  let cmd: Command;
  try {
    cmd = await load();
  } catch (e) {
    if (e instanceof CommandUnavailableError) {
      process.stderr.write(`error: gingham ${word}: ${e.message}\n`);
      return 1;
    }
    throw e;
  }
  return cmd.run(args.slice(1));
}

// Run only as the program, not when imported by tests.
const invoked = process.argv[1] ?? '';
if (/(^|\/)main\.(js|ts)$/.test(invoked) || /gingham$/.test(invoked)) {
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
      // Commands close what they open; should a library keep a handle alive, do not hang.
      setTimeout(() => process.exit(code), 2000).unref();
    },
    (e: unknown) => {
      process.stderr.write(`error: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
      process.exitCode = 1;
    },
  );
}

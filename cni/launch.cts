// How the CNI executables start (gingham-cni.cjs, gingham-ipam.cjs; plugin.js and ipam-plugin.js
// are the same as ES modules). CommonJS on purpose: Node 20 starts a CommonJS entry 20–40 ms
// sooner than an ES module one on these machines (the ES module loader is set up only when an
// ES module is loaded), and in agent mode that start is most of a call.
//
// The code to run is a single-file CommonJS bundle when the build made one and it is not older
// than the modules, else the modules themselves. Why a bundle: Node loads ~20 ES modules in
// ~40 ms, one file in ~5 ms. Bundles are made by `node dist/cni/bundle.js`. Every loaded module
// exports `run(stdin)`.
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

function mtime(p: string): number {
  try {
    return statSync(p).mtimeMs;
  } catch {
    return -1;
  }
}

/** The network configuration on stdin ('' when there is none, as for VERSION). */
export function readStdin(): string {
  if (process.env.CNI_COMMAND === 'VERSION') return '';
  try {
    return readFileSync(0, 'utf8');
  } catch {
    return '';
  }
}

/**
 * Whether the configuration asks for agent mode (an absolute path in `agent_socket`). Anything
 * else, including text that is not JSON, goes to the direct plugin, whose parser reports it.
 */
export function wantsAgent(stdin: string): boolean {
  if (!stdin.includes('"agent_socket"')) return false;
  try {
    const v = (JSON.parse(stdin) as { agent_socket?: unknown }).agent_socket;
    return typeof v === 'string' && v.startsWith('/');
  } catch {
    return false;
  }
}

/** Loads `bundleName` (or, without a fresh bundle, `moduleName`) from `dir` and runs it. */
export async function load(
  dir: string,
  bundleName: string,
  moduleName: string,
  stdin: string,
): Promise<void> {
  const bundle = join(dir, bundleName);
  const modules = join(dir, moduleName);
  const b = mtime(bundle);
  const useBundle = b >= 0 && b >= mtime(modules);
  if (process.env.GINGHAM_CNI_TRACE === '1')
    process.stderr.write(`[gingham-cni] loading ${useBundle ? bundle : modules}\n`);
  const m = (useBundle ? require(bundle) : await import(pathToFileURL(modules).href)) as {
    run(stdin: string): void;
  };
  m.run(stdin);
}

/**
 * VERSION's answer, the same object cni/skel.ts `invoke` gives (test/unit/cni/launch.test.ts
 * keeps the two equal). Here so that VERSION is answered before any bundle is loaded: it needs
 * none of the plugin's code, and a runtime asks it of every plugin in a chain.
 */
export const VERSION_ANSWER = {
  cniVersion: '1.1.0',
  supportedVersions: ['0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0'],
} as const;

/** Answers VERSION from this file (true), or leaves the call to the loaded code (false). */
function answeredVersion(): boolean {
  if (process.env.CNI_COMMAND !== 'VERSION') return false;
  process.stdout.write(`${JSON.stringify(VERSION_ANSWER)}\n`, () => process.exit(0));
  return true;
}

/** Even a failure to load ends as a CNI error object on stdout, never a bare stack trace. */
function fatal(e: unknown): void {
  const msg = e instanceof Error ? e.message : String(e);
  process.stdout.write(`${JSON.stringify({ cniVersion: '1.1.0', code: 5, msg: `gingham: ${msg}` })}\n`, () =>
    process.exit(1),
  );
}

/** gingham-cni: the thin client when the configuration names an agent socket, else the plugin. */
export function launchCni(dir: string): void {
  if (answeredVersion()) return;
  const stdin = readStdin();
  const run = wantsAgent(stdin)
    ? load(dir, 'gingham-cni-thin.bundle.cjs', 'thin.js', stdin)
    : load(dir, 'gingham-cni.bundle.cjs', 'plugin-main.js', stdin);
  run.catch(fatal);
}

/** gingham-ipam. */
export function launchIpam(dir: string): void {
  if (answeredVersion()) return;
  load(dir, 'gingham-ipam.bundle.cjs', 'ipam-plugin-main.js', readStdin()).catch(fatal);
}

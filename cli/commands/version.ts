// gingham version: the client's version; with --etcd also the etcd cluster's.
import { readFileSync } from 'node:fs';
import { parseCommandArgs, reportError, withStore } from '../common.js';

const HELP = [
  'Usage: gingham version [--etcd]',
  '',
  'Print the Gingham version. --etcd also asks the etcd cluster for its version.',
].join('\n');

/** package.json is two levels above cli/commands/ in the source tree and three above dist/cli/commands/. */
export function packageVersion(): string {
  for (const rel of ['../../package.json', '../../../package.json']) {
    try {
      const pkg = JSON.parse(readFileSync(new URL(rel, import.meta.url), 'utf8')) as {
        name?: string;
        version?: string;
      };
      if (pkg.name === 'gingham' && pkg.version) return pkg.version;
    } catch {}
  }
  return 'unknown';
}

export async function run(argv: string[]): Promise<number> {
  try {
    const args = parseCommandArgs(argv, { etcd: { type: 'boolean' } }, HELP);
    if (!args) return 0;
    process.stdout.write(`Client Version:  ${packageVersion()}\nNode.js:         ${process.version}\n`);
    if (args.values.etcd !== true) return 0;
    return await withStore(async (store) => {
      const status = await store.client.maintenance.status();
      process.stdout.write(`etcd Version:    ${status.version} (${store.endpoints.join(',')})\n`);
      return 0;
    });
  } catch (e) {
    return reportError(e);
  }
}

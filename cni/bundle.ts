// Post-build step: bundles each CNI executable's modules into one CommonJS file next to it
// (dist/cni/gingham-cni.bundle.cjs, gingham-ipam.bundle.cjs, and the agent-mode thin client
// gingham-cni-thin.bundle.cjs), which cni/launch.cts prefers.
// Uses esbuild when it is installed (it comes with tsx, a dev dependency); without it the
// executables simply load their modules. Run after tsc: `node dist/cni/bundle.js`.
import { chmodSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';

interface EsbuildLike {
  build(opts: Record<string, unknown>): Promise<unknown>;
}

const dir = import.meta.dirname;
// The executables (tsc writes files without the execute bit).
for (const exe of ['gingham-cni.cjs', 'gingham-ipam.cjs', 'plugin.js', 'ipam-plugin.js'])
  chmodSync(join(dir, exe), 0o755);
let esbuild: EsbuildLike;
try {
  esbuild = (await import('esbuild' as string)) as EsbuildLike;
} catch {
  process.stderr.write(
    'cni/bundle: esbuild not installed; the CNI plugins will load their modules (slower start)\n',
  );
  process.exit(0);
}
for (const [entry, out] of [
  ['plugin-main.js', 'gingham-cni.bundle.cjs'],
  ['ipam-plugin-main.js', 'gingham-ipam.bundle.cjs'],
  ['thin.js', 'gingham-cni-thin.bundle.cjs'],
] as const) {
  await esbuild.build({
    entryPoints: [join(dir, entry)],
    outfile: join(dir, out),
    bundle: true,
    platform: 'node',
    format: 'cjs',
    target: 'node20',
    logLevel: 'warning',
  });
}
// The thin client must stay thin: it may load node:net and nothing heavy (its whole point is a
// fast start). A bundle that requires more than this list fails the build.
const THIN_ALLOWED = new Set(['node:net']);
const thin = readFileSync(join(dir, 'gingham-cni-thin.bundle.cjs'), 'utf8');
const required = [...thin.matchAll(/require\(["']([^"']+)["']\)/g)].map((m) => m[1]!);
const extra = required.filter((r) => !THIN_ALLOWED.has(r));
if (extra.length > 0) {
  process.stderr.write(
    `cni/bundle: the thin client bundle requires ${extra.join(', ')}; only node:net is allowed\n`,
  );
  process.exit(1);
}
// Bundles of earlier builds (ES module format), no longer loaded.
for (const old of ['gingham-cni.bundle.mjs', 'gingham-ipam.bundle.mjs'])
  rmSync(join(dir, old), { force: true });

// Post-build step: bundles each CNI executable's modules into one CommonJS file next to it
// (dist/cni/gingham-cni.bundle.cjs, gingham-ipam.bundle.cjs), which cni/entry.ts prefers.
// Uses esbuild when it is installed (it comes with tsx, a dev dependency); without it the
// executables simply load their modules. Run after tsc: `node dist/cni/bundle.js`.
import { rmSync } from 'node:fs';
import { join } from 'node:path';

interface EsbuildLike {
  build(opts: Record<string, unknown>): Promise<unknown>;
}

const dir = import.meta.dirname;
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
// Bundles of earlier builds (ES module format), no longer loaded.
for (const old of ['gingham-cni.bundle.mjs', 'gingham-ipam.bundle.mjs'])
  rmSync(join(dir, old), { force: true });

// Post-build step: bundles each CNI executable's modules into one file next to it
// (dist/cni/gingham-cni.bundle.mjs, gingham-ipam.bundle.mjs), which cni/entry.ts prefers.
// Uses esbuild when it is installed (it comes with tsx, a dev dependency); without it the
// executables simply load their modules. Run after tsc: `node dist/cni/bundle.js`.
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
  ['plugin-main.js', 'gingham-cni.bundle.mjs'],
  ['ipam-plugin-main.js', 'gingham-ipam.bundle.mjs'],
] as const) {
  await esbuild.build({
    entryPoints: [join(dir, entry)],
    outfile: join(dir, out),
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    logLevel: 'warning',
  });
}

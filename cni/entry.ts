// Loading for the two executables: a single-file CommonJS bundle when the build made one and it
// is not older than the modules, else the modules themselves. Why a bundle: Node loads ~20 ES
// modules in ~40 ms, one file in ~5 ms. Why CommonJS: Node 20's ES module loader costs another
// ~10 ms per process start over require() of the same code (measured: VERSION, min of 25 runs,
// 90.7 ms as .cjs vs 103.5 ms as .mjs). Bundles are made by `node dist/cni/bundle.js`.
import { statSync } from 'node:fs';
import { createRequire } from 'node:module';

function mtime(u: URL): number {
  try {
    return statSync(u).mtimeMs;
  } catch {
    return -1;
  }
}

export async function load(base: string, bundleName: string, moduleName: string): Promise<void> {
  const bundle = new URL(bundleName, base);
  const modules = new URL(moduleName, base);
  const b = mtime(bundle);
  const useBundle = b >= 0 && b >= mtime(modules);
  if (process.env.GINGHAM_CNI_TRACE === '1')
    process.stderr.write(`[gingham-cni] loading ${(useBundle ? bundle : modules).pathname}\n`);
  if (useBundle) createRequire(base)(bundle.pathname);
  else await import(modules.href);
}

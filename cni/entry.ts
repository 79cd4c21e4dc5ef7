// Loading for the two executables: a single-file bundle when the build made one and it is not
// older than the modules (Node loads ~20 ES modules in ~40 ms, one file in ~5 ms: an eighth of a
// CNI call), else the modules themselves. Bundles are made by `node dist/cni/bundle.js`.
import { statSync } from 'node:fs';

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
  const chosen = b >= 0 && b >= mtime(modules) ? bundle : modules;
  if (process.env.GINGHAM_CNI_TRACE === '1')
    process.stderr.write(`[gingham-cni] loading ${chosen.pathname}\n`);
  await import(chosen.href);
}

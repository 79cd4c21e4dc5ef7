// Phase timings on stderr when GINGHAM_CNI_TRACE=1 (stdout belongs to the CNI protocol).
const enabled = process.env.GINGHAM_CNI_TRACE === '1';
const t0 = performance.now();
let last = t0;

export function trace(phase: string): void {
  if (!enabled) return;
  const now = performance.now();
  process.stderr.write(
    `[gingham-cni] ${phase}: +${(now - last).toFixed(1)} ms (at ${now.toFixed(1)} ms since process start)\n`,
  );
  last = now;
}

// V8 settings the agent applies to itself, imported first by its entries (agent/main.ts,
// cli/commands/agent.ts) so they hold before the rest of the agent is loaded and allocates.
//
// V8's young generation starts at 1 MB per semi-space and grows to 16 MB under allocation: with
// 100k endpoints each isolate (main thread, policy worker) then keeps up to ~48 MB of mostly
// garbage young space committed. `--max-semi-space-size` cannot change once the heap exists, but
// the growth factor is read at each grow: 1 keeps the semi-spaces at their initial size. A scavenge
// costs what survives, not the space's size, so collections get more frequent, not longer.
// Measured in docs/agent.md (Memory). An operator's own young-generation flag (node flags or
// NODE_OPTIONS) is left to decide.
//
// V8 clamps the (process-wide) growth factor to at least 2 whenever it sets up a heap, including a
// worker thread's: workers are started through `startWorkerWithYoungGen`, which sets it again once
// the worker is online and gives the worker a young generation of its own size.
import v8 from 'node:v8';

const YOUNG_GEN_FLAG =
  /^--(semi[-_]space[-_]growth[-_]factor|max[-_]semi[-_]space[-_]size|min[-_]semi[-_]space[-_]size)\b/;

/**
 * Starts a worker thread whose young generation is `semiSpaceMb` per semi-space from the start
 * (its heap is set up from the process-wide flags, where the growth factor 1 would keep it at
 * 1 MB; a worker that allocates per-apply garbage needs more, or it promotes it all).
 */
export function startWorkerWithYoungGen<W extends { once(ev: 'online', f: () => void): unknown }>(
  semiSpaceMb: number,
  start: (resourceLimits: { maxYoungGenerationSizeMb: number }) => W,
): W {
  // V8's young generation is two semi-spaces plus one of the same size for large young objects.
  const resourceLimits = { maxYoungGenerationSizeMb: 3 * semiSpaceMb };
  if (!young()) v8.setFlagsFromString(`--min-semi-space-size=${semiSpaceMb}`);
  const w = start(resourceLimits);
  // Once its heap exists: the next worker starts from the default again, and the growth factor
  // its set-up reset is 1 again.
  w.once('online', () => {
    if (!young()) v8.setFlagsFromString('--min-semi-space-size=0');
    limitYoungGeneration();
  });
  return w;
}

/** The operator gave a young-generation flag of their own. */
function young(): boolean {
  const given = [...process.execArgv, ...(process.env.NODE_OPTIONS ?? '').split(/\s+/)];
  return given.some((a) => YOUNG_GEN_FLAG.test(a));
}

export function limitYoungGeneration(): void {
  if (!young()) v8.setFlagsFromString('--semi-space-growth-factor=1');
}

limitYoungGeneration();

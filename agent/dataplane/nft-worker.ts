// Worker thread running the policy seam: compiling policy for 100k endpoints takes hundreds of
// milliseconds, which must not block the event loop that programs routes. Messages in:
// {type:'events'|'pools'|'schedule'|'close'}; out: {type:'error'|'applied'}.
import v8 from 'node:v8';
import { parentPort, workerData } from 'node:worker_threads';
import pino from 'pino';
import * as policyModule from '../../policy/index.js';
import type { ResourceEvent } from '../../store/index.js';
import type { PoolInput } from '../calc/model.js';
import { PolicyDataplane } from './nft.js';

export type ToWorker =
  | { type: 'events'; events: ResourceEvent[]; batchEndpoints: number }
  | { type: 'pools'; pools: PoolInput[] }
  | { type: 'schedule'; full: boolean }
  | { type: 'close' };

export type FromWorker =
  | { type: 'error'; message: string }
  | { type: 'applied'; report: { mode: string; commands: number; durationMs: number } };

const data = workerData as { node: string; logLevel: string };
const port = parentPort!;
const log = pino({ level: data.logLevel, base: { component: 'agent-policy', node: data.node } });
const post = (m: FromWorker): void => port.postMessage(m);
const policy = new PolicyDataplane(
  data.node,
  log,
  {
    onError: (err) => post({ type: 'error', message: err.message }),
    onApplied: (report) => {
      // This thread's heap is not in the agent's metrics (those are the main thread's): at debug
      // level each apply logs it, so memory can be told apart per thread (bench AGENT_BENCH_DEBUG).
      if (log.isLevelEnabled('debug')) log.debug({ heap: heapMb() }, 'policy worker heap');
      post({
        type: 'applied',
        report: { mode: report.mode, commands: report.commands, durationMs: report.durationMs },
      });
    },
  },
  policyModule,
);

/** V8 heap figures of this thread in MB (total, used, and per space used/size). */
function heapMb(): Record<string, number> {
  const mb = (n: number): number => Math.round((n / 2 ** 20) * 10) / 10;
  const h = v8.getHeapStatistics();
  const out: Record<string, number> = { total: mb(h.total_heap_size), used: mb(h.used_heap_size) };
  for (const s of v8.getHeapSpaceStatistics()) if (s.space_size > 0) out[s.space_name] = mb(s.space_size);
  return out;
}

port.on('message', (m: ToWorker) => {
  switch (m.type) {
    case 'events':
      policy.onEvents(m.events, m.batchEndpoints);
      break;
    case 'pools':
      policy.setPools(m.pools);
      break;
    case 'schedule':
      policy.schedule(m.full);
      break;
    case 'close':
      policy.close();
      port.close();
      break;
  }
});

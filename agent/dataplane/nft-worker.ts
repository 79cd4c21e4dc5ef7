// Worker thread running the policy seam: compiling policy for 100k endpoints takes hundreds of
// milliseconds, which must not block the event loop that programs routes. Messages in:
// {type:'events'|'pools'|'schedule'|'close'}; out: {type:'error'|'applied'}.
import { parentPort, workerData } from 'node:worker_threads';
import pino from 'pino';
import * as policyModule from '../../policy/index.js';
import type { ResourceEvent } from '../../store/index.js';
import type { PoolInput } from '../calc/model.js';
import { PolicyDataplane } from './nft.js';

export type ToWorker =
  | { type: 'events'; events: ResourceEvent[] }
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
    onApplied: (report) =>
      post({
        type: 'applied',
        report: { mode: report.mode, commands: report.commands, durationMs: report.durationMs },
      }),
  },
  policyModule,
);

port.on('message', (m: ToWorker) => {
  switch (m.type) {
    case 'events':
      policy.onEvents(m.events);
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

// `ip -batch -` processes started ahead of time for the agent's CNI server. Starting a process from
// the agent costs its event loop 10–20 ms (fork of a few hundred MB, measured on the 2-core test
// machines), twice per ADD; a process started while the agent is idle and waiting on its stdin
// makes that cost disappear from the call. The commands are exactly the plugin's (cni/dataplane.ts
// builds them); only when the process starts differs.
//
//   host side:      `ip -batch -`, waiting for its lines
//   container side: `sh` that reads the target namespace (a line "n" + name, or "p" + path) and
//                   then execs `ip -n NAME -batch -` or `nsenter --net=PATH ip -batch -`, which
//                   read the remaining lines. `read` takes one line at a time from a pipe, so the
//                   lines meant for ip are left for it.
//
// A call that finds no idle process (a burst) starts one as the plugin does. Refilling is the
// owner's call (refill()), when no call is in flight: a start blocks the event loop, and should
// not sit between two steps of a call.
import { type ChildProcess, spawn } from 'node:child_process';
import { type ExecResult, type IpBatchRunner, netnsTarget, spawnBatchRunner } from '../../cni/dataplane.js';

const CONTAINER_HELPER =
  'IFS= read -r mode && IFS= read -r target || exit 97\n' +
  'if [ "$mode" = n ]; then exec ip -n "$target" -batch -; fi\n' +
  'exec nsenter --net="$target" ip -batch -';

type Kind = 'host' | 'container';

/** A started process whose output is collected from the start, waiting for its stdin. */
class Waiting {
  private stdout = '';
  private stderr = '';
  private exited: ExecResult | null = null;
  private readonly done: Promise<ExecResult>;

  constructor(readonly proc: ChildProcess) {
    proc.stdout!.on('data', (d: Buffer) => {
      this.stdout += d;
    });
    proc.stderr!.on('data', (d: Buffer) => {
      this.stderr += d;
    });
    proc.stdin!.on('error', () => undefined); // exited without reading: its status tells
    this.done = new Promise((resolve) => {
      proc.on('error', (e) => {
        this.exited ??= { code: -1, stdout: this.stdout, stderr: `${String(proc.spawnfile)}: ${e.message}` };
        resolve(this.exited);
      });
      proc.on('close', (code) => {
        this.exited ??= { code: code ?? -1, stdout: this.stdout, stderr: this.stderr };
        resolve(this.exited);
      });
    });
  }

  /** Still waiting for input (not exited, e.g. killed while idle). */
  get alive(): boolean {
    return this.exited === null && this.proc.exitCode === null && this.proc.signalCode === null;
  }

  run(input: string): Promise<ExecResult> {
    this.proc.stdin!.end(input);
    return this.done;
  }
}

/** Idle processes kept per kind: what an ADD (two host batches, one container batch) and a DEL use. */
const DEFAULT_SIZE: Record<Kind, number> = { host: 3, container: 1 };

export class WarmBatchRunner implements IpBatchRunner {
  private readonly idle: Record<Kind, Waiting[]> = { host: [], container: [] };
  private filling = false;
  private closed = false;

  /** `size`: idle processes kept per kind (a burst beyond it starts processes on demand). */
  constructor(private readonly size: Record<Kind, number> = DEFAULT_SIZE) {
    this.refill();
  }

  batch(lines: string[], netns?: string): Promise<ExecResult> {
    const body = `${lines.join('\n')}\n`;
    if (netns === undefined) return this.take('host').run(body);
    // A path with a line break cannot go through the helper's line protocol.
    if (netns.includes('\n')) return spawnBatchRunner.batch(lines, netns);
    const t = netnsTarget(netns);
    const head = 'name' in t ? `n\n${t.name}\n` : `p\n${t.path}\n`;
    return this.take('container').run(head + body);
  }

  /** Ends the idle processes (by their PIDs). */
  close(): void {
    this.closed = true;
    for (const kind of ['host', 'container'] as const) {
      for (const w of this.idle[kind].splice(0)) w.proc.kill('SIGKILL');
    }
  }

  private start(kind: Kind): Waiting {
    const p =
      kind === 'host'
        ? spawn('ip', ['-batch', '-'], { stdio: ['pipe', 'pipe', 'pipe'] })
        : spawn('sh', ['-c', CONTAINER_HELPER], { stdio: ['pipe', 'pipe', 'pipe'] });
    return new Waiting(p);
  }

  private take(kind: Kind): Waiting {
    const list = this.idle[kind];
    let w = list.shift();
    while (w && !w.alive) w = list.shift();
    return w ?? this.start(kind);
  }

  /**
   * Starts processes until each kind has `size` idle ones, one per turn of the event loop (so a
   * connection arriving meanwhile is not kept waiting for all of them). `busy` is asked before
   * each start: the owner stops the refill while a call is in flight.
   */
  refill(busy: () => boolean = () => false): void {
    if (this.filling || this.closed) return;
    this.filling = true;
    const step = (): void => {
      if (this.closed || busy()) {
        this.filling = false;
        return;
      }
      for (const kind of ['host', 'container'] as const) {
        const list = this.idle[kind];
        for (let i = list.length - 1; i >= 0; i--) if (!list[i]!.alive) list.splice(i, 1);
        if (list.length < this.size[kind]) {
          list.push(this.start(kind));
          setImmediate(step);
          return;
        }
      }
      this.filling = false;
    };
    step();
  }
}

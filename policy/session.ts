// A persistent `nft -j -i` process fed one transaction per line over stdin.
//
// Why: a spawned `nft -j -f FILE` costs a process start, a netns entry and — worst — a fresh cache:
// nft 1.0.6 reads the table back from the kernel before every transaction, which is ~1 s for a table
// holding 100k set elements. The interactive process keeps its cache warm between commands (it
// re-reads only when the kernel's generation moved under it), so a 1-element set change costs a few
// milliseconds instead of tens (docs/policy.md, "Applying").
//
// Framing: nft prints nothing on success and errors on stderr, one command at a time, in order. After
// each transaction we send a sentinel that always fails — `list table inet <nonce>` — and read stderr up
// to the sentinel's error: whatever came before it is the transaction's own error output. A JSON line
// is one transaction (nft commits each input line on its own).

import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import type { Readable, Writable } from 'node:stream';
import type { NftCommand } from './nft.js';

export class NftSessionError extends Error {
  constructor(
    readonly operation: string,
    readonly output: string,
    readonly commandCount: number,
  ) {
    super(`nft session ${operation} failed (${commandCount} commands): ${output.trim()}`);
    this.name = 'NftSessionError';
  }
}

export interface NftSessionOptions {
  /** The nft binary (default "nft"). */
  nft?: string;
  /** argv prefix to run nft elsewhere, e.g. ['ip', 'netns', 'exec', 'node1']. */
  prefix?: string[];
  /** A transaction with no answer in this time kills the process (default 120 s). */
  timeoutMs?: number;
}

interface Pending {
  child: ChildProcessWithoutNullStreams;
  marker: string;
  resolve(output: string): void;
  reject(err: Error): void;
}

type Unreffable = { unref?: () => void; ref?: () => void };

export class NftSession {
  private child: ChildProcessWithoutNullStreams | null = null;
  private buf = '';
  private pending: Pending | null = null;
  private queue: Promise<unknown> = Promise.resolve();
  private seq = 0;
  private readonly nonce = `ghsync${process.pid.toString(36)}${Math.random().toString(36).slice(2, 8)}`;

  constructor(private readonly opts: NftSessionOptions = {}) {}

  /** Runs one atomic transaction; rejects with the nft error text when nft refused it. */
  transaction(cmds: readonly NftCommand[], operation = 'transaction'): Promise<void> {
    const line = JSON.stringify({ nftables: cmds });
    return this.enqueue(async () => {
      const out = await this.roundTrip(line);
      if (/Error:/.test(out)) throw new NftSessionError(operation, out, cmds.length);
    });
  }

  /** Waits until nft answered a no-op: fills its cache after someone else changed the ruleset. */
  warm(): Promise<void> {
    return this.enqueue(async () => void (await this.roundTrip(null)));
  }

  /** Ends the process (by its own pid); the next transaction starts a new one. */
  close(): void {
    const c = this.child;
    this.child = null;
    if (c && c.exitCode === null) {
      c.stdin.end();
      c.kill();
    }
  }

  private enqueue<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn, fn);
    this.queue = run.catch(() => undefined);
    return run;
  }

  private start(): ChildProcessWithoutNullStreams {
    const prefix = this.opts.prefix ?? [];
    const argv = [...prefix, this.opts.nft ?? 'nft', '-j', '-i'];
    const c = spawn(argv[0]!, argv.slice(1), { stdio: ['pipe', 'pipe', 'pipe'] });
    this.buf = '';
    c.stderr.setEncoding('utf8');
    c.stderr.on('data', (d: string) => {
      if (this.child !== c) return;
      this.buf += d;
      this.check();
    });
    c.stdout.resume(); // nothing we send lists anything; drain whatever comes
    const fail = (why: string) => {
      if (this.child === c) this.child = null;
      const p = this.pending;
      if (p?.child !== c) return; // an old process (closed) going away: not this request's business
      this.pending = null;
      p.reject(new NftSessionError('session', `${why}: ${this.buf}`, 0));
    };
    c.on('error', (e) => fail(`nft could not run (${e.message})`));
    c.on('exit', (code, signal) => fail(`nft exited (code ${code}, signal ${signal})`));
    c.stdin.on('error', () => undefined); // EPIPE after exit: reported through 'exit'
    this.child = c;
    this.idle(c);
    return c;
  }

  /** An idle session must not keep the agent (or a test) alive. */
  private idle(c: ChildProcessWithoutNullStreams): void {
    c.unref();
    for (const s of [c.stdin, c.stdout, c.stderr] as (Readable | Writable)[]) (s as Unreffable).unref?.();
  }

  private busy(c: ChildProcessWithoutNullStreams): void {
    c.ref();
    for (const s of [c.stdin, c.stdout, c.stderr] as (Readable | Writable)[]) (s as Unreffable).ref?.();
  }

  private roundTrip(line: string | null): Promise<string> {
    const c = this.child ?? this.start();
    const marker = `list table inet ${this.nonce}${++this.seq}\n`;
    this.busy(c);
    return new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending = null;
        this.close();
        reject(new NftSessionError('session', `no answer in ${this.opts.timeoutMs ?? 120_000} ms`, 0));
      }, this.opts.timeoutMs ?? 120_000);
      const done = () => {
        clearTimeout(timer);
        if (this.child === c) this.idle(c);
      };
      this.pending = {
        child: c,
        marker,
        resolve: (out) => {
          done();
          resolve(out);
        },
        reject: (err) => {
          done();
          reject(err);
        },
      };
      c.stdin.write(line === null ? marker : `${line}\n${marker}`);
    });
  }

  /** Splits the answer off at the sentinel's error (the line before it is "Error: …"). */
  private check(): void {
    const p = this.pending;
    if (!p) return;
    const at = this.buf.indexOf(p.marker);
    if (at < 0) return;
    const end = this.buf.indexOf('\n', at + p.marker.length); // the caret line under the sentinel
    if (end < 0) return;
    const errLine = this.buf.lastIndexOf('\n', at - 2) + 1; // start of "Error: …" before the marker
    const out = this.buf.slice(0, errLine);
    this.buf = this.buf.slice(end + 1);
    this.pending = null;
    p.resolve(out);
  }
}

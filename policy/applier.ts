// The applier: puts a compiled ruleset into the kernel with `nft -j -f FILE`, one atomic transaction
// per call. The thin shell around the pure compiler and diff.
//
// - First apply, and every resync: full atomic replace (`add table; delete table; add table; …`).
// - Otherwise: only the difference against the last applied ruleset (diff.ts).
// - nft 1.0.6 cannot read a Node pipe as stdin (deps.md §3): a full replace goes through a temp file.
// - Incremental transactions go, one JSON line each, to a persistent `nft -j -i` (session.ts): no
//   process start, a warm cache — a few ms for a set-element change instead of ~50–100 ms.
// - A failed transaction changes nothing (nft transactions are atomic): the previous ruleset stays in
//   force. An incremental failure is retried once, then the whole table is rebuilt in one transaction.
//   If that fails too the error is thrown and the old ruleset is still in place — never an open one.

import { execFile, spawn } from 'node:child_process';
import { closeSync, constants, mkdtempSync, openSync, rmSync, writeFileSync } from 'node:fs';
import { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { finished } from 'node:stream/promises';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { type DiffSummary, diffRulesets } from './diff.js';
import { fullReplaceChunks, type NftCommand, type NftRuleset } from './nft.js';
import { NftSession } from './session.js';

export class NftError extends Error {
  constructor(
    readonly operation: string,
    readonly exitCode: number | null,
    readonly stderr: string,
    readonly commandCount: number,
  ) {
    super(`nft ${operation} failed (exit ${exitCode}, ${commandCount} commands): ${stderr.trim()}`);
    this.name = 'NftError';
  }
}

export interface NftApplierOptions {
  /** The nft binary (default "nft"). */
  nft?: string;
  /** Our table's name (default "gingham"); must match the compiled ruleset's. */
  table?: string;
  /** argv prefix to run nft elsewhere, e.g. ['ip', 'netns', 'exec', 'node1']. */
  prefix?: string[];
  /** Incremental attempts before the full rebuild (default 2). */
  attempts?: number;
  /**
   * Send incremental transactions to one persistent `nft -j -i` process (session.ts) instead of
   * spawning nft per transaction: a few ms instead of tens (default true).
   */
  session?: boolean;
  /** Called for notable events (retry, rebuild). */
  onEvent?: (event: string, detail: Record<string, unknown>) => void;
}

export interface RuleCounter {
  chain: string;
  comment: string;
  packets: number;
  bytes: number;
}

export interface ApplyReport {
  mode: 'full' | 'incremental' | 'noop' | 'rebuild';
  commands: number;
  durationMs: number;
  /**
   * Of durationMs, the time spent building the JSON text (full replace only; for profiling). The
   * text is streamed to nft as it is made, so this overlaps nft's parsing of the text before it.
   */
  textMs?: number;
  summary?: DiffSummary;
}

export class NftApplier {
  private readonly nft: string;
  readonly table: string;
  private readonly prefix: string[];
  private readonly attempts: number;
  private last: NftRuleset | null = null;
  private desired: NftRuleset | null = null;
  private readonly session: NftSession | null;

  constructor(private readonly opts: NftApplierOptions = {}) {
    this.nft = opts.nft ?? 'nft';
    this.table = opts.table ?? 'gingham';
    this.prefix = opts.prefix ?? [];
    this.attempts = Math.max(1, opts.attempts ?? 2);
    this.session = opts.session === false ? null : new NftSession({ nft: this.nft, prefix: this.prefix });
  }

  /** The ruleset last put into the kernel successfully (null before the first apply). */
  get applied(): NftRuleset | null {
    return this.last;
  }

  /** Replaces the whole table atomically. */
  async applyFull(rs: NftRuleset): Promise<ApplyReport> {
    this.checkTable(rs);
    this.desired = rs;
    const t0 = performance.now();
    const { textMs } = await this.transactionStream(fullReplaceChunks(rs), 'full replace', commandCount(rs));
    this.last = rs;
    return { mode: 'full', commands: commandCount(rs), durationMs: performance.now() - t0, textMs };
  }

  /** Applies only the difference against the last applied ruleset, in one transaction. */
  async apply(rs: NftRuleset): Promise<ApplyReport> {
    this.checkTable(rs);
    this.desired = rs;
    if (!this.last) return this.applyFull(rs);
    const t0 = performance.now();
    const d = diffRulesets(this.last, rs);
    if (!d) return this.applyFull(rs);
    if (d.commands.length === 0) {
      this.last = rs;
      return { mode: 'noop', commands: 0, durationMs: performance.now() - t0, summary: d.summary };
    }
    let lastErr: unknown;
    for (let i = 0; i < this.attempts; i++) {
      try {
        await this.incremental(d.commands);
        this.last = rs;
        return {
          mode: 'incremental',
          commands: d.commands.length,
          durationMs: performance.now() - t0,
          summary: d.summary,
        };
      } catch (e) {
        lastErr = e;
        this.opts.onEvent?.('nft-retry', { attempt: i + 1, error: String(e) });
      }
    }
    // The kernel may hold something other than what we think (someone flushed our table?): rebuild.
    this.opts.onEvent?.('nft-rebuild', { error: String(lastErr) });
    const r = await this.applyFull(rs);
    return { ...r, mode: 'rebuild', durationMs: performance.now() - t0 };
  }

  /** Full atomic replace of the desired ruleset (periodic resync, or after an outside change). */
  async resync(): Promise<ApplyReport> {
    if (!this.desired) return { mode: 'noop', commands: 0, durationMs: 0 };
    return this.applyFull(this.desired);
  }

  /** Reads our table back as nft JSON (with handles and counters). */
  async list(): Promise<unknown> {
    const out = await this.exec(['-j', 'list', 'table', 'inet', this.table], 'list');
    return JSON.parse(out);
  }

  /**
   * Rule counters of our table, for metrics and for checking which rule traffic hit: every rule the
   * compiler renders has a counter, and most a comment naming tier, policy, direction and rule.
   */
  async counters(): Promise<RuleCounter[]> {
    const listing = (await this.list()) as { nftables: Record<string, unknown>[] };
    const out: RuleCounter[] = [];
    for (const item of listing.nftables) {
      const rule = item.rule as
        | { chain: string; comment?: string; expr?: Record<string, unknown>[] }
        | undefined;
      if (!rule?.expr) continue;
      for (const e of rule.expr) {
        const c = e.counter as { packets: number; bytes: number } | undefined;
        if (c)
          out.push({ chain: rule.chain, comment: rule.comment ?? '', packets: c.packets, bytes: c.bytes });
      }
    }
    return out;
  }

  /** Removes our table (agent shutdown with cleanup, tests). Absent table is fine. */
  async deleteTable(): Promise<void> {
    const t = { family: 'inet', name: this.table };
    await this.transaction([{ add: { table: t } }, { delete: { table: t } }], 'delete table');
    this.last = null;
  }

  /** Runs one JSON transaction as is (bench baseline, tooling). */
  async transaction(cmds: NftCommand[], operation = 'transaction'): Promise<void> {
    await this.transactionText(JSON.stringify({ nftables: cmds }), operation, cmds.length);
  }

  /** One transaction given as nft JSON text, through a temp file (`nft -j -f FILE`). */
  private async transactionText(text: string, operation: string, count: number): Promise<void> {
    // A private directory per transaction, removed right after: nothing is left behind even if
    // the process dies between transactions or close() is never called.
    const dir = mkdtempSync(join(tmpdir(), 'gingham-nft-'));
    const file = join(dir, 'tx.json');
    try {
      writeFileSync(file, text);
      await this.exec(['-j', '-f', file], operation, count);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }

  /**
   * One transaction whose text is made while nft reads it, through a named pipe (FIFO) in a private
   * temp dir: nft's process start and its JSON parsing (about a third of its time for a full table)
   * overlap the making of the text. Still one atomic transaction: nft parses all of its input before
   * it evaluates or commits anything, and a text cut short is a parse error that changes nothing.
   *
   * Never blocks on the FIFO: we open a read end first (non-blocking), so opening the write end
   * returns at once; that read end becomes nft's stdin and is closed here, so while nft lives it holds
   * a read end, and once it is gone none is left and a write fails (EPIPE) instead of hanging. Its
   * exit status and stderr are what is reported.
   *
   * nft's own open of the FIFO blocks until a writer is present, so our write end must not be closed
   * before nft has opened it. A text longer than the pipe can hold guarantees that: our last write
   * completes only after nft has read part of it. So the first STREAM_MIN bytes are made before nft
   * starts, and a text that ends within them (a small table) goes through a temp file instead.
   */
  private async transactionStream(
    pieces: Iterable<string>,
    operation: string,
    count: number,
  ): Promise<{ textMs: number }> {
    const it = pieces[Symbol.iterator]();
    let textMs = 0;
    const t0 = performance.now();
    let head = '';
    let small = false;
    while (head.length < STREAM_MIN) {
      const n = it.next();
      if (n.done) {
        small = true;
        break;
      }
      head += n.value;
    }
    textMs += performance.now() - t0;
    if (small) {
      await this.transactionText(head, operation, count);
      return { textMs };
    }
    const dir = mkdtempSync(join(tmpdir(), 'gingham-nft-'));
    try {
      const fifo = join(dir, 'tx.json');
      await run('mkfifo', ['-m', '600', fifo], `${operation} (mkfifo)`);
      const rfd = openSync(fifo, constants.O_RDONLY | constants.O_NONBLOCK);
      let wfd: number;
      try {
        wfd = openSync(fifo, constants.O_WRONLY | constants.O_NONBLOCK);
      } catch (e) {
        closeSync(rfd);
        throw e;
      }
      const argv = [...this.prefix, this.nft, '-j', '-f', fifo];
      let exited: Promise<{ code: number | null; stderr: string }>;
      try {
        const child = spawn(argv[0]!, argv.slice(1), { stdio: [rfd, 'ignore', 'pipe'] });
        exited = new Promise((resolve) => {
          let stderr = '';
          child.stderr?.setEncoding('utf8');
          child.stderr?.on('data', (d: string) => {
            stderr += d;
          });
          child.once('error', (e) => resolve({ code: null, stderr: e.message }));
          child.once('close', (code, signal) => resolve({ code, stderr: stderr || `signal ${signal}` }));
        });
      } catch (e) {
        closeSync(wfd);
        throw e;
      } finally {
        closeSync(rfd);
      }
      const out = new Socket({ fd: wfd, readable: false, writable: true });
      let writeErr: Error | null = null;
      let textErr: unknown = null;
      out.on('error', (e) => {
        writeErr = e;
      });
      try {
        for (let done = false; !done && !writeErr && !out.destroyed; ) {
          const t = performance.now();
          let batch = head;
          head = '';
          while (batch.length < STREAM_CHUNK) {
            const n = it.next();
            if (n.done) {
              done = true;
              break;
            }
            batch += n.value;
          }
          textMs += performance.now() - t;
          // Buffered beyond one chunk: wait until nft has taken it (the pipe still holds up to 64 KiB
          // for nft to parse while the next chunk is made); else let the event loop write it now.
          if (batch && !out.write(batch) && out.writableLength > STREAM_CHUNK) await drained(out);
          else await nextTurn();
        }
      } catch (e) {
        textErr = e;
      }
      // On a failure while making the text, nft gets a cut-off text: a parse error, nothing changes.
      if (textErr || writeErr || out.destroyed) out.destroy();
      else {
        out.end();
        await finished(out).catch(() => {}); // a write error is in writeErr
      }
      const r = await exited;
      if (textErr) throw textErr;
      if (r.code !== 0) throw new NftError(operation, r.code, r.stderr, count);
      if (writeErr) throw new NftError(operation, r.code, `writing to nft: ${String(writeErr)}`, count);
      return { textMs };
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }

  /**
   * One transaction through the persistent session when there is one (a session that died is
   * restarted by the next call), else through a spawned nft.
   */
  async incremental(cmds: NftCommand[], operation = 'incremental update'): Promise<void> {
    if (!this.session) return this.transaction(cmds, operation);
    try {
      await this.session.transaction(cmds, operation);
    } catch (e) {
      const msg = e instanceof Error ? e.message : String(e);
      throw new NftError(operation, null, msg, cmds.length);
    }
  }

  /** Ends the persistent nft session, if any (temp files live only during a transaction). */
  close(): void {
    this.session?.close();
  }

  private checkTable(rs: NftRuleset): void {
    if (rs.table !== this.table)
      throw new NftError(
        'apply',
        null,
        `ruleset is for table "${rs.table}", applier owns "${this.table}"`,
        0,
      );
  }

  private exec(args: string[], operation: string, count = 0): Promise<string> {
    const argv = [...this.prefix, this.nft, ...args];
    return new Promise((resolve, reject) => {
      execFile(
        argv[0]!,
        argv.slice(1),
        { maxBuffer: 512 * 1024 * 1024, encoding: 'utf8' },
        (err, stdout, stderr) => {
          if (err) {
            const code = typeof err.code === 'number' ? err.code : null;
            reject(new NftError(operation, code, stderr || err.message, count));
          } else resolve(stdout);
        },
      );
    });
  }
}

/** Text handed to nft per write when streaming (nft's own reads are 4 KiB, the pipe holds 64 KiB). */
const STREAM_CHUNK = 128 * 1024;
/**
 * Texts shorter than this go through a temp file: streaming needs a text longer than a pipe can
 * hold (64 KiB by default, 1 MiB at most unless raised by fcntl, which neither side does).
 */
const STREAM_MIN = 2 * 1024 * 1024;

/** Resolves when the socket has flushed its buffer, failed or closed. */
function drained(s: Socket): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      s.off('drain', done);
      s.off('error', done);
      s.off('close', done);
      resolve();
    };
    s.on('drain', done);
    s.on('error', done);
    s.on('close', done);
  });
}

/** Runs a helper command; rejects with an NftError naming it. */
function run(cmd: string, args: string[], operation: string): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, (err, _stdout, stderr) => {
      if (err)
        reject(
          new NftError(operation, typeof err.code === 'number' ? err.code : null, stderr || err.message, 0),
        );
      else resolve();
    });
  });
}

/** Commands in a full replace (for reports): table ×3, chains, sets, maps, rules. */
function commandCount(rs: NftRuleset): number {
  let n = 3 + rs.chains.size * 1 + rs.sets.size + rs.maps.size;
  for (const c of rs.chains.values()) n += c.rules.length;
  return n;
}

// A guarded rtnetlink request socket (deps.md §1). The `netlink` package aborts the process when a
// socket overflows, closes the socket on errors and swallows listener exceptions, so every use goes
// through here:
//   - a 4 MiB receive buffer (the kernel doubles it) and at most 128 requests in flight;
//   - every request has a timeout; a timeout or a socket 'error' drops the socket, the next request
//     opens a new one, and `onReset` tells the owner to do a full resync;
//   - 'invalid' is always listened to (it is where swallowed exceptions surface);
//   - this socket never joins a multicast group: route notification bursts cannot reach it.
import { createRtNetlink, type RtNetlinkSocket } from 'netlink';

export const MAX_IN_FLIGHT = 128;
const RECV_BUFFER = 4 * 1024 * 1024;
const REQUEST_TIMEOUT_MS = 5000;

/** A failed rtnetlink request: which operation, on what, and the errno name when the kernel gave one. */
export class NetlinkRequestError extends Error {
  constructor(
    readonly op: string,
    readonly target: string,
    readonly errno: string | undefined,
    cause: unknown,
  ) {
    super(`netlink ${op} ${target} failed: ${cause instanceof Error ? cause.message : String(cause)}`);
    this.name = 'NetlinkRequestError';
  }
}

/**
 * A delete that failed because the object is already gone: the route, neighbour or FDB entry went
 * with its device (a CNI DEL removes the veth first). The wanted state holds, so not an error.
 */
export function alreadyGone(err: unknown): boolean {
  return (
    err instanceof NetlinkRequestError &&
    (err.errno === 'ESRCH' || err.errno === 'ENOENT' || err.errno === 'ENODEV')
  );
}

/** The package's errors are plain `Error('Request rejected: EEXIST')`: recover the errno name. */
export function errnoOf(err: unknown): string | undefined {
  const m = err instanceof Error ? /\b(E[A-Z0-9]{2,})\b/.exec(err.message) : null;
  return m?.[1];
}

export class Rtnl {
  private sock: RtNetlinkSocket | null = null;
  private inFlight = 0;
  private readonly waiters: Array<() => void> = [];
  /** Bumped whenever the socket is replaced; lets callers notice a reset happened. */
  generation = 0;

  constructor(
    private readonly hooks: { onReset?: (why: Error) => void; onInvalid?: (err: unknown) => void } = {},
  ) {}

  private socket(): RtNetlinkSocket {
    if (this.sock) return this.sock;
    // The typings declare both buffer sizes required (deps.md defect 4).
    const s = createRtNetlink({ ref: false, recvBufferSize: RECV_BUFFER, sendBufferSize: RECV_BUFFER });
    s.socket.on('error', (err) => this.reset(s, err instanceof Error ? err : new Error(String(err))));
    s.on('invalid', (err) => this.hooks.onInvalid?.(err));
    this.sock = s;
    return s;
  }

  private reset(which: RtNetlinkSocket, why: Error): void {
    if (this.sock !== which) return;
    this.sock = null;
    this.generation++;
    try {
      which.socket.close();
    } catch {
      // already closed by the native side
    }
    this.hooks.onReset?.(why);
  }

  private async acquire(): Promise<void> {
    if (this.inFlight < MAX_IN_FLIGHT) {
      this.inFlight++;
      return;
    }
    await new Promise<void>((resolve) => this.waiters.push(resolve));
  }

  private release(): void {
    const next = this.waiters.shift();
    if (next) next();
    else this.inFlight--;
  }

  /** Runs one request with the in-flight bound and a timeout. Errors become NetlinkRequestError. */
  async request<T>(
    op: string,
    target: string,
    fn: (s: RtNetlinkSocket, opts: { timeout: number }) => Promise<T>,
  ): Promise<T> {
    await this.acquire();
    const s = this.socket();
    try {
      return await fn(s, { timeout: REQUEST_TIMEOUT_MS });
    } catch (err) {
      const errno = errnoOf(err);
      // No errno = the socket itself failed (timeout, closed): start over with a new one.
      if (errno === undefined) this.reset(s, err instanceof Error ? err : new Error(String(err)));
      throw new NetlinkRequestError(op, target, errno, err);
    } finally {
      this.release();
    }
  }

  close(): void {
    const s = this.sock;
    this.sock = null;
    if (s) s.socket.close();
  }
}

/** Runs `jobs` with at most `limit` concurrently; collects errors instead of stopping at the first. */
export async function runBounded<T>(
  items: readonly T[],
  limit: number,
  job: (x: T) => Promise<void>,
): Promise<unknown[]> {
  const errors: unknown[] = [];
  let i = 0;
  const worker = async (): Promise<void> => {
    while (i < items.length) {
      const x = items[i++]!;
      try {
        await job(x);
      } catch (e) {
        errors.push(e);
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return errors;
}

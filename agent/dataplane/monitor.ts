// Link notifications: a workload veth that appears after its endpoint (or goes away) should be
// reconciled at once, not at the next periodic resync. This socket joins the LINK group only —
// never route groups, so a burst of thousands of route changes cannot overflow it (deps.md §1).
// A socket error means events were lost: the owner is told to do a full resync.
import { createRtNetlink, type RtNetlinkSocket } from 'netlink';
import { isOwnedLink } from './links.js';

export class LinkMonitor {
  private sock: RtNetlinkSocket | null = null;
  private closed = false;

  constructor(
    private readonly hooks: {
      onLinkChange: (name: string) => void;
      onLost: (why: Error) => void;
      onInvalid?: (err: unknown) => void;
    },
  ) {}

  start(): void {
    if (this.closed) return;
    const s = createRtNetlink({ ref: false, recvBufferSize: 4 * 1024 * 1024, sendBufferSize: 256 * 1024 });
    s.addMembership('LINK');
    s.on('message', (msgs) => {
      for (const m of msgs) {
        if (m.kind !== 'link') continue;
        const name = m.attrs.ifname;
        if (name && isOwnedLink(name)) this.hooks.onLinkChange(name);
      }
    });
    s.on('invalid', (err) => this.hooks.onInvalid?.(err));
    s.socket.on('error', (err) => {
      if (this.sock !== s) return;
      this.sock = null;
      try {
        s.socket.close();
      } catch {
        // the native side may have closed it already
      }
      this.hooks.onLost(err instanceof Error ? err : new Error(String(err)));
      setTimeout(() => this.start(), 100);
    });
    this.sock = s;
  }

  close(): void {
    this.closed = true;
    this.sock?.socket.close();
    this.sock = null;
  }
}

// HTTP endpoints: /metrics (Prometheus) and /healthz, /readyz. One server per address; when the
// health address equals the metrics address both are served by one server.
import { createServer, type Server } from 'node:http';

export interface HttpHandlers {
  metrics?: () => Promise<{ contentType: string; body: string }>;
  health?: () => { live: boolean; ready: boolean; detail: unknown; unreadyPools: string[] };
}

export class AddressError extends Error {
  constructor(readonly address: string) {
    super(`invalid listen address "${address}" (expected HOST:PORT)`);
    this.name = 'AddressError';
  }
}

export function parseHostPort(addr: string): { host: string; port: number } {
  const i = addr.lastIndexOf(':');
  const port = Number(addr.slice(i + 1));
  if (i < 0 || !Number.isInteger(port) || port < 0 || port > 65535) throw new AddressError(addr);
  return { host: addr.slice(0, i).replace(/^\[|\]$/g, '') || '0.0.0.0', port };
}

export async function serve(addr: string, h: HttpHandlers): Promise<Server> {
  const { host, port } = parseHostPort(addr);
  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    const json = (code: number, body: unknown): void => {
      res.writeHead(code, { 'content-type': 'application/json' });
      res.end(`${JSON.stringify(body)}\n`);
    };
    if (url.pathname === '/metrics' && h.metrics) {
      h.metrics().then(
        (m) => {
          res.writeHead(200, { 'content-type': m.contentType });
          res.end(m.body);
        },
        (e: unknown) => json(500, { error: String(e) }),
      );
      return;
    }
    if ((url.pathname === '/healthz' || url.pathname === '/livez') && h.health) {
      const s = h.health();
      json(s.live ? 200 : 503, { live: s.live });
      return;
    }
    if (url.pathname === '/readyz' && h.health) {
      const s = h.health();
      // `?pool=NAME`: readiness for one pool (IPIP pools are never ready on a kernel without ipip).
      const pool = url.searchParams.get('pool');
      const ready = pool === null ? s.ready : s.ready && !s.unreadyPools.includes(pool);
      json(ready ? 200 : 503, { ready, ...(s.detail as object) });
      return;
    }
    json(404, { error: 'not found' });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  return server;
}

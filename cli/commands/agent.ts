// `gingham agent`: the per-node daemon. Lazily loaded by cli/main.ts.
// First: V8 settings for the agent, before the rest of it loads (see the module).
import '../../agent/v8-flags.js';
import { parseArgs } from 'node:util';
import pino from 'pino';
import type { RemoteRouteSource } from '../../agent/calc/model.js';

const USAGE = `usage: gingham agent --node NAME [options]

  --node NAME                 this node's name (default: $NODENAME, else the hostname)
  --etcd-endpoints URLS       comma-separated etcd client URLs (default: $ETCD_ENDPOINTS or http://127.0.0.1:2379)
  --ip ADDR[/LEN]             this node's IPv4 address (default: autodetect)
  --ip6 ADDR[/LEN]            this node's IPv6 address (default: autodetect)
  --ip-autodetect METHOD      first-found | interface=REGEX | can-reach=ADDR | cidr=CIDR[,CIDR]
                              (default: $IP_AUTODETECTION_METHOD or first-found)
  --remote-routes MODE        how unencapsulated remote blocks are routed:
                                bgp    (default) learned from BGP; none derived from IPAM
                                static routed from IPAM data: via <node ip> onlink
                              (default: $GINGHAM_REMOTE_ROUTES or bgp)
  --policy on|off             program policy and natOutgoing in the nftables table "inet gingham" (default on)
  --bgp on|off                run the BGP speaker: announce this node's blocks, install learned routes
                              (default on; off when --remote-routes static)
  --metrics-addr HOST:PORT    Prometheus /metrics (default 127.0.0.1:9091)
  --health-addr HOST:PORT     /healthz and /readyz (default: same server as metrics)
  --route-refresh SECONDS     full resync period (default: FelixConfiguration routeRefreshInterval, 90 s)
  --cni-socket PATH           serve gingham-cni in agent mode on this unix socket
                              (default /var/run/gingham/cni.sock; '' disables it)
  --log-level LEVEL           trace | debug | info | warn | error (default info)
`;

const STOP_DEADLINE_MS = 5000;

export async function run(argv: string[]): Promise<number> {
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        node: { type: 'string' },
        'etcd-endpoints': { type: 'string' },
        ip: { type: 'string' },
        ip6: { type: 'string' },
        'ip-autodetect': { type: 'string' },
        'remote-routes': { type: 'string' },
        policy: { type: 'string' },
        bgp: { type: 'string' },
        'metrics-addr': { type: 'string' },
        'health-addr': { type: 'string' },
        'route-refresh': { type: 'string' },
        'log-level': { type: 'string' },
        'cni-socket': { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
    }));
  } catch (e) {
    process.stderr.write(`${(e as Error).message}\n${USAGE}`);
    return 2;
  }
  if (values.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  const str = (k: string): string | undefined =>
    typeof values[k] === 'string' ? (values[k] as string) : undefined;
  const { hostname } = await import('node:os');
  const nodeName = str('node') ?? process.env.NODENAME ?? hostname();
  const remote = str('remote-routes') ?? process.env.GINGHAM_REMOTE_ROUTES ?? 'bgp';
  if (remote !== 'bgp' && remote !== 'static') {
    process.stderr.write(`--remote-routes must be bgp or static, not "${remote}"\n`);
    return 2;
  }
  const refresh = str('route-refresh');
  const policy = str('policy') ?? 'on';
  if (policy !== 'on' && policy !== 'off') {
    process.stderr.write(`--policy must be on or off, not "${policy}"\n`);
    return 2;
  }
  const bgp = str('bgp') ?? (remote === 'static' ? 'off' : 'on');
  if (bgp !== 'on' && bgp !== 'off') {
    process.stderr.write(`--bgp must be on or off, not "${bgp}"\n`);
    return 2;
  }
  const logger = pino({
    level: str('log-level') ?? process.env.LOG_LEVEL ?? 'info',
    base: { component: 'agent', node: nodeName },
  });

  const { openStore, parseEtcdEndpoints } = await import('../../store/index.js');
  const { Agent } = await import('../../agent/agent.js');
  const { parseMethod } = await import('../../agent/autodetect.js');
  const autodetect = str('ip-autodetect') ?? process.env.IP_AUTODETECTION_METHOD ?? 'first-found';
  try {
    parseMethod(autodetect);
  } catch (e) {
    process.stderr.write(`${(e as Error).message}\n`);
    return 2;
  }
  const store = await openStore({ endpoints: parseEtcdEndpoints(str('etcd-endpoints')) });
  // Our routes still in the kernel mean this is a restart: announce graceful restart with the
  // R bit so peers keep forwarding to us while the sessions come back (RFC 4724), and keep the
  // routes learned before the restart until BGP has learned them again. Read before the agent
  // starts programming, which would make a first start look like a restart.
  let restarting = false;
  if (bgp === 'on') {
    const { ownRoutesPresent } = await import('../../agent/dataplane/iproute.js');
    restarting = await ownRoutesPresent();
  }
  const agent = new Agent({
    nodeName,
    holdLearnedRoutes: restarting,
    store,
    logger,
    ip: str('ip'),
    ip6: str('ip6'),
    autodetect,
    metricsAddr: str('metrics-addr') ?? '127.0.0.1:9091',
    healthAddr: str('health-addr'),
    remoteRoutes: remote as RemoteRouteSource,
    policy: policy === 'on',
    logLevel: str('log-level') ?? process.env.LOG_LEVEL ?? 'info',
    routeRefreshMs: refresh === undefined ? undefined : Number(refresh) * 1000,
  });
  try {
    await agent.start();
  } catch (e) {
    logger.fatal({ err: (e as Error).message }, 'agent failed to start');
    await agent.stop();
    await store.close();
    return 1;
  }
  logger.info({ node: nodeName }, 'agent started');
  const cniServer = await startCniServer(str('cni-socket'), nodeName, store.endpoints, logger);
  let runner: import('../../agent/bgp/runner.js').BgpRunner | null = null;
  if (bgp === 'on') {
    const { BgpRunner } = await import('../../agent/bgp/runner.js');
    runner = new BgpRunner({
      nodeName,
      store,
      logger: logger.child({ component: 'bgp' }),
      registry: agent.metrics.registry,
      onLearned: (routes) => agent.setLearnedRoutes(routes),
      onRelearned: () => agent.releaseLearnedRoutes(),
      gracefulRestart: { restartTimeSec: 120, restarting },
    });
    runner.start();
    logger.info({ restarting }, 'BGP speaker started');
  }
  // Runs until signalled. Stopping leaves the dataplane in place (a restart must be hitless).
  return await new Promise<number>((resolve) => {
    let stopping = false;
    const stop = (sig: string): void => {
      if (stopping) {
        // A second signal: the operator does not want to wait for the orderly stop.
        logger.warn({ signal: sig }, 'second signal; exiting now');
        resolve(1);
        return;
      }
      stopping = true;
      logger.info({ signal: sig }, 'stopping; dataplane left as it is');
      // Closing watches or the store can wait on an unreachable etcd; the dataplane is left as it
      // is anyway, so a stop never takes longer than this.
      const deadline = setTimeout(() => {
        logger.warn({ afterMs: STOP_DEADLINE_MS }, 'orderly stop did not finish; exiting');
        resolve(0);
      }, STOP_DEADLINE_MS);
      deadline.unref();
      void (cniServer ? cniServer.stop() : Promise.resolve())
        .then(() => (runner ? runner.stop({ graceful: true }) : undefined))
        .then(() => agent.stop())
        .then(() => store.close())
        .catch((e: unknown) => logger.warn({ err: (e as Error).message }, 'error while stopping'))
        .finally(() => {
          clearTimeout(deadline);
          resolve(0);
        });
    };
    process.on('SIGTERM', () => stop('SIGTERM'));
    process.on('SIGINT', () => stop('SIGINT'));
  });
}

/**
 * The CNI server (agent/cni/server.ts) on `path` ('' = off). It talks to etcd through the plugin's
 * JSON-gateway client, with the TLS files the store uses ($ETCD_*). A socket it cannot serve is
 * logged, not fatal: routing must go on.
 */
async function startCniServer(
  flag: string | undefined,
  node: string,
  endpoints: string[],
  logger: import('pino').Logger,
): Promise<{ stop(): Promise<void> } | null> {
  const { DEFAULT_CNI_SOCKET, CniServer } = await import('../../agent/cni/server.js');
  const path = flag ?? DEFAULT_CNI_SOCKET;
  if (path === '') return null;
  const log = logger.child({ component: 'cni' });
  const { EtcdLite, etcdTlsFromEnv, parseEndpoints } = await import('../../ipam/etcd-lite.js');
  let kv: InstanceType<typeof EtcdLite>;
  try {
    kv = new EtcdLite(parseEndpoints(endpoints), undefined, etcdTlsFromEnv());
  } catch (e) {
    log.error({ socket: path, err: (e as Error).message }, 'CNI server not started');
    return null;
  }
  const server = new CniServer({ socketPath: path, node, kv, logger: log });
  try {
    await server.start();
  } catch (e) {
    log.error({ err: (e as Error).message }, 'CNI server not started');
    kv.close();
    return null;
  }
  return {
    async stop() {
      await server.stop();
      kv.close();
    },
  };
}

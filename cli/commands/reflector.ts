// `gingham reflector --node NAME`: the BGP speaker alone, as a route reflector for a dedicated
// reflector deployment — configured from the store like an agent's speaker, no kernel programming.
import { hostname } from 'node:os';
import { parseCommandArgs, reportError, str } from '../common.js';

const HELP = [
  'Usage: gingham reflector --node NAME [options]',
  '',
  'Runs a BGP route reflector for NAME: its Node resource gives the address, AS and',
  'spec.bgp.routeReflectorClusterID; BGPPeers and BGPConfiguration give its peers.',
  'Routes are reflected, never installed in the kernel.',
  '',
  'Options:',
  '  --node NAME             the Node resource (default $NODENAME, else this host name)',
  '  --listen-address ADDR   address to accept BGP sessions on (default: all)',
  '  --metrics-addr H:P      Prometheus /metrics (default 127.0.0.1:9092; "none" to disable)',
  '  --log-level LEVEL       trace | debug | info | warn | error (default info)',
  '  --etcd-endpoints URLS   etcd client URLs (default $ETCD_ENDPOINTS or http://127.0.0.1:2379)',
].join('\n');

export async function run(argv: string[]): Promise<number> {
  let parsed: ReturnType<typeof parseCommandArgs>;
  try {
    parsed = parseCommandArgs(
      argv,
      {
        node: { type: 'string' },
        'listen-address': { type: 'string' },
        'metrics-addr': { type: 'string' },
        'log-level': { type: 'string' },
        'etcd-endpoints': { type: 'string' },
      },
      HELP,
    );
  } catch (e) {
    return reportError(e);
  }
  if (!parsed) return 0;
  const v = parsed.values;
  const nodeName = str(v.node) ?? process.env.NODENAME ?? hostname();
  const { default: pino } = await import('pino');
  const logger = pino({
    level: str(v['log-level']) ?? process.env.LOG_LEVEL ?? 'info',
    base: { component: 'reflector', node: nodeName },
  });
  const [{ openStore, parseEtcdEndpoints }, { BgpRunner }, { Registry }, { serve }] = await Promise.all([
    import('../../store/index.js'),
    import('../../agent/bgp/runner.js'),
    import('prom-client'),
    import('../../agent/http.js'),
  ]);
  const store = await openStore({ endpoints: parseEtcdEndpoints(str(v['etcd-endpoints'])) });
  const registry = new Registry();
  const runner = new BgpRunner({
    nodeName,
    store,
    logger,
    registry,
    reflectorOnly: true,
    listenHost: str(v['listen-address']),
    gracefulRestart: { restartTimeSec: 120 },
  });
  const metricsAddr = str(v['metrics-addr']) ?? '127.0.0.1:9092';
  const server =
    metricsAddr === 'none'
      ? null
      : await serve(metricsAddr, {
          metrics: async () => ({ contentType: registry.contentType, body: await registry.metrics() }),
          health: () => ({
            live: true,
            ready: runner.current !== null,
            detail: { node: nodeName },
            unreadyPools: [],
          }),
        });
  runner.start();
  logger.info({ node: nodeName }, 'route reflector started');
  return await new Promise<number>((resolve) => {
    const stop = (sig: string): void => {
      logger.info({ signal: sig }, 'stopping route reflector');
      void runner
        .stop()
        .then(() => new Promise<void>((r) => (server ? server.close(() => r()) : r())))
        .then(() => store.close())
        .finally(() => resolve(0));
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
  });
}

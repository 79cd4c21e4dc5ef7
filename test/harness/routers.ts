// Real BGP routers for interop tests: BIRD 2, GoBGP 3 and FRR 8, each in its own network
// namespace with its own config, control socket and pid file, started in the foreground as our
// child and stopped by PID. Plus a LAN (a bridge in a namespace of its own) to join them, and the
// Gingham speaker fixture (test/fixtures/bgp-speaker.ts) run the same way.
// Nothing here touches the host's root namespace except creating/deleting namespaces.
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { Netns, run, vethBetween } from './netns.js';

// ---- process bookkeeping ---------------------------------------------------------------------

const livePids = new Set<number>();
/** Everything started through this module and not yet stopped: stopEverything() ends them all. */
const liveRouters = new Set<{ stop(): Promise<void> }>();
process.on('exit', () => {
  for (const pid of livePids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {}
  }
});

export class RouterError extends Error {
  constructor(
    readonly router: string,
    readonly what: string,
    readonly detail: string,
  ) {
    super(`${router}: ${what}: ${detail}`);
    this.name = 'RouterError';
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Polls `probe` until it returns a value other than undefined/false, or throws after `timeoutMs`. */
export async function waitFor<T>(
  what: string,
  probe: () => T | undefined | false | Promise<T | undefined | false>,
  timeoutMs = 20_000,
  intervalMs = 200,
): Promise<T> {
  const end = Date.now() + timeoutMs;
  let lastErr: unknown;
  for (;;) {
    try {
      const v = await probe();
      if (v !== undefined && v !== false) return v;
    } catch (e) {
      lastErr = e;
    }
    if (Date.now() > end) {
      throw new Error(
        `timed out after ${timeoutMs} ms waiting for ${what}${lastErr ? `: ${String(lastErr)}` : ''}`,
      );
    }
    await sleep(intervalMs);
  }
}

/** A foreground daemon we started; stop() is SIGTERM then SIGKILL, by PID. */
class Daemon {
  readonly exited: Promise<number | null>;
  private exitCode: number | null | undefined;
  constructor(
    readonly name: string,
    readonly child: ChildProcess,
  ) {
    if (child.pid === undefined) throw new RouterError(name, 'start', 'spawn failed');
    livePids.add(child.pid);
    this.exited = new Promise((resolve) => {
      child.once('exit', (code) => {
        livePids.delete(child.pid!);
        this.exitCode = code;
        resolve(code);
      });
    });
  }
  get pid(): number {
    return this.child.pid!;
  }
  get running(): boolean {
    return this.exitCode === undefined;
  }
  async stop(signal: NodeJS.Signals = 'SIGTERM', graceMs = 5000): Promise<void> {
    if (!this.running) return;
    try {
      process.kill(this.pid, signal);
    } catch {}
    const t = setTimeout(() => {
      try {
        process.kill(this.pid, 'SIGKILL');
      } catch {}
    }, graceMs);
    await this.exited;
    clearTimeout(t);
  }
}

function spawnIn(ns: Netns, name: string, cmd: string, args: string[], logFile: string): Daemon {
  const fd = openSync(logFile, 'a');
  const child = spawn('ip', ['netns', 'exec', ns.name, cmd, ...args], { stdio: ['ignore', fd, fd] });
  return new Daemon(name, child);
}

function tempDir(prefix: string): string {
  const d = mkdtempSync(join(tmpdir(), prefix));
  chmodSync(d, 0o777); // FRR daemons drop to the frr user and must write here
  return d;
}

// ---- the LAN ----------------------------------------------------------------------------------

export interface LanHost {
  ns: Netns;
  v4: string;
  v6: string;
}

/**
 * N namespaces on one bridge: host i has eth0 with 10.99.0.(i+1)/24 and fd99::(i+1)/64.
 * The bridge lives in a namespace of its own, so labs never see each other.
 */
export class Lan {
  readonly hosts: LanHost[] = [];
  private constructor(readonly fabric: Netns) {}

  static create(count: number): Lan {
    const fabric = Netns.create('gbf');
    const lan = new Lan(fabric);
    try {
      fabric.ip('link', 'add', 'br0', 'type', 'bridge');
      fabric.ip('link', 'set', 'br0', 'up');
      for (let i = 0; i < count; i++) {
        const ns = Netns.create('gbh');
        const v4 = `10.99.0.${i + 1}`;
        const v6 = `fd99::${i + 1}`;
        lan.hosts.push({ ns, v4, v6 });
        vethBetween(ns, 'eth0', fabric, `p${i}`);
        fabric.ip('link', 'set', `p${i}`, 'master', 'br0');
        ns.ip('addr', 'add', `${v4}/24`, 'dev', 'eth0');
        ns.ip('-6', 'addr', 'add', `${v6}/64`, 'dev', 'eth0', 'nodad');
      }
    } catch (e) {
      lan.destroy();
      throw e;
    }
    return lan;
  }

  host(i: number): LanHost {
    const h = this.hosts[i];
    if (!h) throw new RouterError('lan', 'host', `no host ${i}`);
    return h;
  }

  destroy(): void {
    for (const h of this.hosts) h.ns.destroy();
    this.fabric.destroy();
  }
}

// ---- common route shape -------------------------------------------------------------------------

/** A route as a router reports it, reduced to what interop tests compare. */
export interface RouterRoute {
  prefix: string;
  nextHop: string;
  asPath: number[];
  localPref?: number;
  med?: number;
  communities: string[];
  originatorId?: string;
  clusterList?: string[];
  best: boolean;
  stale?: boolean;
  /** Peer / protocol it came from. */
  from: string;
}

// ---- BIRD 2 ---------------------------------------------------------------------------------------

export class Bird {
  private constructor(
    readonly ns: Netns,
    readonly dir: string,
    private readonly daemon: Daemon,
  ) {}

  get ctl(): string {
    return join(this.dir, 'bird.ctl');
  }
  get pid(): number {
    return this.daemon.pid;
  }

  /** Starts `bird -f` in `ns` with `config` (the full bird.conf text). */
  static async start(ns: Netns, config: string): Promise<Bird> {
    const dir = tempDir('gbird-');
    const conf = join(dir, 'bird.conf');
    writeFileSync(conf, config);
    const check = spawnSync('bird', ['-p', '-c', conf], { encoding: 'utf8' });
    if (check.status !== 0) {
      rmSync(dir, { recursive: true, force: true });
      throw new RouterError('bird', 'config', `${check.stderr}\n${config}`);
    }
    const d = spawnIn(
      ns,
      'bird',
      'bird',
      ['-f', '-c', conf, '-s', join(dir, 'bird.ctl'), '-P', join(dir, 'bird.pid')],
      join(dir, 'bird.log'),
    );
    const b = new Bird(ns, dir, d);
    liveRouters.add(b);
    try {
      await waitFor(
        'bird control socket',
        () => b.birdc('show status').includes('Daemon is up'),
        10_000,
        100,
      );
    } catch (e) {
      await b.stop();
      throw new RouterError('bird', 'start', `${String(e)}\n${b.log()}`);
    }
    return b;
  }

  birdc(cmd: string): string {
    const r = spawnSync('birdc', ['-s', this.ctl, ...cmd.split(' ')], { encoding: 'utf8' });
    return r.stdout;
  }

  log(): string {
    try {
      return readFileSync(join(this.dir, 'bird.log'), 'utf8');
    } catch {
      return '';
    }
  }

  /** "Established", "Active", ... for a BGP protocol. */
  bgpState(protocol: string): string {
    const m = /BGP state:\s+(\S+)/.exec(this.birdc(`show protocols all ${protocol}`));
    return m?.[1] ?? 'unknown';
  }

  async waitEstablished(protocol: string, timeoutMs = 30_000): Promise<void> {
    await waitFor(`BIRD ${protocol} Established`, () => this.bgpState(protocol) === 'Established', timeoutMs);
  }

  /** Parses `show route [table T] [protocol P] all`. */
  routes(opts: { table?: string; protocol?: string; exportOf?: string } = {}): RouterRoute[] {
    let cmd = 'show route';
    if (opts.exportOf) cmd += ` export ${opts.exportOf}`;
    if (opts.table) cmd += ` table ${opts.table}`;
    if (opts.protocol) cmd += ` protocol ${opts.protocol}`;
    return parseBirdRoutes(this.birdc(`${cmd} all`));
  }

  configure(config: string): void {
    writeFileSync(join(this.dir, 'bird.conf'), config);
    this.birdc('configure');
  }

  async stop(): Promise<void> {
    liveRouters.delete(this);
    await this.daemon.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** `show route all` attribute lines → RouterRoute fields. */
const BIRD_ATTRS: Array<[RegExp, (r: RouterRoute, v: string) => void]> = [
  [/^via (\S+)/, (r, v) => (r.nextHop ||= v)],
  [/^BGP\.next_hop: (\S+)/, (r, v) => (r.nextHop = v)],
  [/^BGP\.as_path:\s*(.*)$/, (r, v) => (r.asPath = v.split(/\s+/).filter(Boolean).map(Number))],
  [/^BGP\.local_pref: (\d+)/, (r, v) => (r.localPref = Number(v))],
  [/^BGP\.med: (\d+)/, (r, v) => (r.med = Number(v))],
  [/^BGP\.originator_id: (\S+)/, (r, v) => (r.originatorId = v)],
  [/^BGP\.cluster_list: (.*)$/, (r, v) => (r.clusterList = v.trim().split(/\s+/))],
  [
    /^BGP\.community: (.*)$/,
    (r, v) => (r.communities = [...v.matchAll(/\((\d+),(\d+)\)/g)].map((x) => `${x[1]}:${x[2]}`)),
  ],
];

export function parseBirdRoutes(text: string): RouterRoute[] {
  const out: RouterRoute[] = [];
  let prefix = '';
  let cur: RouterRoute | null = null;
  for (const line of text.split('\n')) {
    // "10.0.0.0/24          unicast [spk 12:00:00.000] * (100) [AS65001i]"
    // "                     unicast [spk2 ...] (100) [AS65002i]"  (another route, same prefix)
    const head = /^(\S+)?\s+\S+\s+\[(\S+)[^\]]*\]\s*(\*)?/.exec(line);
    if (head && !line.startsWith('\t') && /\[.*\]/.test(line) && !line.startsWith('Table')) {
      if (head[1]) prefix = head[1];
      cur = { prefix, nextHop: '', asPath: [], communities: [], best: head[3] === '*', from: head[2]! };
      out.push(cur);
      continue;
    }
    if (!cur) continue;
    const t = line.trim();
    for (const [re, apply] of BIRD_ATTRS) {
      const m = re.exec(t);
      if (m) {
        apply(cur, m[1]!);
        break;
      }
    }
  }
  return out;
}

// ---- GoBGP 3 ------------------------------------------------------------------------------------

interface GobgpPathJson {
  nlri: { prefix: string };
  attrs: Array<Record<string, unknown> & { type: number }>;
  best?: boolean;
  stale?: boolean;
  'neighbor-ip'?: string;
}

export class Gobgp {
  private constructor(
    readonly ns: Netns,
    readonly dir: string,
    private readonly daemon: Daemon,
  ) {}

  get pid(): number {
    return this.daemon.pid;
  }

  /** Starts gobgpd in `ns` with `toml`; its gRPC API listens on the namespace's loopback. */
  static async start(ns: Netns, toml: string): Promise<Gobgp> {
    const dir = tempDir('ggobgp-');
    const conf = join(dir, 'gobgpd.toml');
    writeFileSync(conf, toml);
    const d = spawnIn(
      ns,
      'gobgpd',
      'gobgpd',
      ['-f', conf, '-t', 'toml', '--api-hosts', '127.0.0.1:50051', '--pprof-disable', '-p'],
      join(dir, 'gobgpd.log'),
    );
    const g = new Gobgp(ns, dir, d);
    liveRouters.add(g);
    try {
      await waitFor('gobgpd API', () => g.cli(['global']).includes('AS'), 10_000, 100);
    } catch (e) {
      await g.stop();
      throw new RouterError('gobgpd', 'start', `${String(e)}\n${g.log()}`);
    }
    return g;
  }

  cli(args: string[]): string {
    return this.ns.exec('gobgp', ['-u', '127.0.0.1', '-p', '50051', ...args], { allowFail: true });
  }

  json<T>(args: string[]): T {
    const out = this.cli(['-j', ...args]);
    try {
      return JSON.parse(out) as T;
    } catch {
      throw new RouterError('gobgp', args.join(' '), `not JSON: ${out.slice(0, 300)}`);
    }
  }

  log(): string {
    try {
      return readFileSync(join(this.dir, 'gobgpd.log'), 'utf8');
    } catch {
      return '';
    }
  }

  neighborState(address: string): string {
    const n = this.json<Array<{ state: { neighbor_address: string; session_state: number } }>>(['neighbor']);
    const s = n.find((x) => x.state.neighbor_address === address)?.state.session_state;
    return s === 6 ? 'Established' : String(s);
  }

  async waitEstablished(address: string, timeoutMs = 30_000): Promise<void> {
    await waitFor(
      `GoBGP ${address} Established`,
      () => this.neighborState(address) === 'Established',
      timeoutMs,
    );
  }

  /** `gobgp -j global rib -a ipv4|ipv6` (Loc-RIB), or a neighbor's adj-in/adj-out. */
  routes(
    family: 4 | 6,
    view?: { neighbor: string; table: 'adj-in' | 'adj-out' | 'accepted' },
  ): RouterRoute[] {
    const a = family === 4 ? 'ipv4' : 'ipv6';
    const args = view ? ['neighbor', view.neighbor, view.table, '-a', a] : ['global', 'rib', '-a', a];
    const out = this.cli(['-j', ...args]).trim();
    if (out === '' || out === 'null') return [];
    const j = JSON.parse(out) as Record<string, GobgpPathJson[]>;
    const routes: RouterRoute[] = [];
    for (const [prefix, paths] of Object.entries(j)) {
      for (const p of paths) routes.push(gobgpRoute(prefix, p));
    }
    return routes;
  }

  addRoute(prefix: string, nextHop: string, extra: string[] = []): void {
    const fam = prefix.includes(':') ? 'ipv6' : 'ipv4';
    const out = this.cli(['global', 'rib', 'add', '-a', fam, prefix, 'nexthop', nextHop, ...extra]);
    if (out.trim() !== '') throw new RouterError('gobgp', `rib add ${prefix}`, out);
  }

  delRoute(prefix: string): void {
    const fam = prefix.includes(':') ? 'ipv6' : 'ipv4';
    this.cli(['global', 'rib', 'del', '-a', fam, prefix]);
  }

  async stop(): Promise<void> {
    liveRouters.delete(this);
    await this.daemon.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

function gobgpRoute(prefix: string, p: GobgpPathJson): RouterRoute {
  const r: RouterRoute = {
    prefix,
    nextHop: '',
    asPath: [],
    communities: [],
    best: p.best === true,
    from: p['neighbor-ip'] ?? '',
  };
  if (p.stale) r.stale = true;
  for (const a of p.attrs) {
    switch (a.type) {
      case 2: {
        const segs = (a.as_paths as Array<{ asns: number[] }> | undefined) ?? [];
        r.asPath = segs.flatMap((s) => s.asns);
        break;
      }
      case 3:
        r.nextHop = String(a.nexthop);
        break;
      case 4:
        r.med = Number(a.metric);
        break;
      case 5:
        r.localPref = Number(a.value);
        break;
      case 8:
        r.communities = ((a.communities as number[] | undefined) ?? []).map(
          (c) => `${c >>> 16}:${c & 0xffff}`,
        );
        break;
      case 9:
        r.originatorId = String(a.value);
        break;
      case 10:
        r.clusterList = (a.value as string[] | undefined) ?? [];
        break;
      case 14:
        r.nextHop = String(a.nexthop);
        break;
    }
  }
  return r;
}

// ---- FRR 8 --------------------------------------------------------------------------------------

interface FrrPathJson {
  valid?: boolean;
  bestpath?: boolean;
  path?: string;
  locPrf?: number;
  metric?: number;
  peerId?: string;
  nexthops?: Array<{ ip: string; afi: string; scope?: string; used?: boolean }>;
  community?: { string: string };
  stale?: boolean;
}

export class Frr {
  private constructor(
    readonly ns: Netns,
    readonly dir: string,
    private readonly zebra: Daemon,
    private bgpd: Daemon,
  ) {}

  get pid(): number {
    return this.bgpd.pid;
  }

  private static bgpdArgs(dir: string): string[] {
    return [
      '-f',
      join(dir, 'bgpd.conf'),
      '-i',
      join(dir, 'bgpd.pid'),
      '--vty_socket',
      dir,
      '-z',
      join(dir, 'zserv.api'),
      '-A',
      '127.0.0.1',
      '-P',
      '0',
    ];
  }

  /**
   * Crash bgpd (SIGKILL; zebra and the kernel routes stay) and start it again. Whether it comes
   * back as a graceful-restarting speaker is up to its config (`bgp graceful-restart`,
   * `bgp graceful-restart preserve-fw-state`); FRR 8.4's bgpd has no command-line switch for it.
   */
  async crashAndRestartBgpd(opts: { downMs?: number } = {}): Promise<void> {
    await this.bgpd.stop('SIGKILL');
    await sleep(opts.downMs ?? 0);
    rmSync(join(this.dir, 'bgpd.pid'), { force: true });
    this.bgpd = spawnIn(
      this.ns,
      'bgpd',
      '/usr/lib/frr/bgpd',
      Frr.bgpdArgs(this.dir),
      join(this.dir, 'bgpd.log'),
    );
    try {
      await waitFor(
        'bgpd vty after restart',
        () => this.vtysh('show bgp summary json').trim().startsWith('{'),
        15_000,
        200,
      );
    } catch (e) {
      throw new RouterError(
        'bgpd',
        'restart',
        `${String(e)}\n${safeRead(join(this.dir, 'bgpd.log')).slice(-3000)}`,
      );
    }
  }

  /** Starts zebra and bgpd in `ns`, bgpd reading `bgpdConf`. */
  static async start(ns: Netns, bgpdConf: string): Promise<Frr> {
    const dir = tempDir('gfrr-');
    const zconf = join(dir, 'zebra.conf');
    const bconf = join(dir, 'bgpd.conf');
    writeFileSync(zconf, 'hostname zebra\n');
    writeFileSync(bconf, bgpdConf);
    chmodSync(zconf, 0o666);
    chmodSync(bconf, 0o666);
    const common = ['--vty_socket', dir, '-z', join(dir, 'zserv.api'), '-A', '127.0.0.1', '-P', '0'];
    const zebra = spawnIn(
      ns,
      'zebra',
      '/usr/lib/frr/zebra',
      ['-f', zconf, '-i', join(dir, 'zebra.pid'), ...common],
      join(dir, 'zebra.log'),
    );
    try {
      await waitFor(
        'zebra zserv socket',
        () => spawnSync('test', ['-S', join(dir, 'zserv.api')]).status === 0,
        10_000,
        100,
      );
    } catch (e) {
      await zebra.stop();
      throw new RouterError('zebra', 'start', `${String(e)}\n${safeRead(join(dir, 'zebra.log'))}`);
    }
    const bgpd = spawnIn(ns, 'bgpd', '/usr/lib/frr/bgpd', Frr.bgpdArgs(dir), join(dir, 'bgpd.log'));
    const f = new Frr(ns, dir, zebra, bgpd);
    liveRouters.add(f);
    try {
      await waitFor('bgpd vty', () => f.vtysh('show bgp summary json').trim().startsWith('{'), 15_000, 200);
    } catch (e) {
      const logs = f.log();
      await f.stop();
      throw new RouterError('frr', 'start', `${String(e)}\n${logs}`);
    }
    return f;
  }

  vtysh(cmd: string): string {
    const r = spawnSync('vtysh', ['--vty_socket', this.dir, '-d', 'bgpd', '-c', cmd], { encoding: 'utf8' });
    return r.stdout;
  }

  json<T>(cmd: string): T {
    const out = this.vtysh(cmd);
    try {
      return JSON.parse(out) as T;
    } catch {
      throw new RouterError('frr', cmd, `not JSON: ${out.slice(0, 300)}`);
    }
  }

  log(): string {
    return `${safeRead(join(this.dir, 'zebra.log'))}\n${safeRead(join(this.dir, 'bgpd.log'))}`;
  }

  neighborState(address: string): string {
    const j =
      this.json<Record<string, { peers?: Record<string, { state: string }> }>>('show bgp summary json');
    for (const afi of Object.values(j)) {
      const s = afi.peers?.[address]?.state;
      if (s) return s;
    }
    return 'unknown';
  }

  async waitEstablished(address: string, timeoutMs = 30_000): Promise<void> {
    await waitFor(
      `FRR ${address} Established`,
      () => this.neighborState(address) === 'Established',
      timeoutMs,
    );
  }

  routes(family: 4 | 6): RouterRoute[] {
    const j = this.json<{ routes?: Record<string, FrrPathJson[]> }>(
      `show bgp ${family === 4 ? 'ipv4' : 'ipv6'} unicast json`,
    );
    const out: RouterRoute[] = [];
    for (const [prefix, paths] of Object.entries(j.routes ?? {})) {
      for (const p of paths) {
        const nh = p.nexthops?.find((n) => n.scope !== 'link-local') ?? p.nexthops?.[0];
        const r: RouterRoute = {
          prefix,
          nextHop: nh?.ip ?? '',
          asPath: (p.path ?? '').split(/\s+/).filter(Boolean).map(Number),
          communities: p.community?.string ? p.community.string.split(' ') : [],
          best: p.bestpath === true,
          from: p.peerId ?? '',
        };
        if (p.locPrf !== undefined) r.localPref = p.locPrf;
        if (p.metric !== undefined) r.med = p.metric;
        if (p.stale) r.stale = true;
        out.push(r);
      }
    }
    return out;
  }

  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    liveRouters.delete(this);
    await this.bgpd.stop(signal);
    await this.zebra.stop(signal);
    rmSync(this.dir, { recursive: true, force: true });
  }
}

function safeRead(p: string): string {
  try {
    return readFileSync(p, 'utf8');
  } catch {
    return '';
  }
}

// ---- the Gingham speaker fixture ------------------------------------------------------------------

type Reply = { id: number; ok: true; result: unknown } | { id: number; ok: false; error: string };

/**
 * Our Speaker in a child process inside `ns` (test/fixtures/bgp-speaker.ts), driven over
 * stdin/stdout JSON lines. kill9() is a crash; start() again with the same config is the restart.
 */
export class SpeakerProc {
  private nextId = 1;
  private readonly waiting = new Map<number, (r: Reply) => void>();
  readonly events: Array<Record<string, unknown>> = [];
  private constructor(
    readonly ns: Netns,
    readonly configFile: string,
    private readonly daemon: Daemon,
    readonly logFile: string,
    /** The temp dir we made for the config, removed on stop(). */
    private readonly ownDir: string | null,
  ) {
    daemon.child.stdin!.on('error', () => {}); // a crashed speaker: calls fail via `exited`
    const rl = createInterface({ input: daemon.child.stdout! });
    rl.on('line', (line) => {
      let msg: Record<string, unknown>;
      try {
        msg = JSON.parse(line) as Record<string, unknown>;
      } catch {
        return;
      }
      if (typeof msg.id === 'number') {
        this.waiting.get(msg.id)?.(msg as Reply);
        this.waiting.delete(msg.id);
      } else this.events.push(msg);
    });
    void daemon.exited.then(() => {
      for (const [id, w] of this.waiting) w({ id, ok: false, error: 'speaker process exited' });
      this.waiting.clear();
    });
  }

  get pid(): number {
    return this.daemon.pid;
  }
  get running(): boolean {
    return this.daemon.running;
  }

  /** Starts the fixture with `config` (see test/fixtures/bgp-speaker.ts for the shape). */
  static async start(ns: Netns, config: unknown, configFile?: string): Promise<SpeakerProc> {
    const ownDir = configFile === undefined ? mkdtempSync(join(tmpdir(), 'gspk-')) : null;
    const file = configFile ?? join(ownDir!, 'speaker.json');
    writeFileSync(file, JSON.stringify(config));
    const logFile = `${file}.log`;
    const fd = openSync(logFile, 'a');
    const child = spawn(
      'ip',
      ['netns', 'exec', ns.name, process.execPath, '--import', 'tsx', 'test/fixtures/bgp-speaker.ts', file],
      { stdio: ['pipe', 'pipe', fd] },
    );
    const s = new SpeakerProc(ns, file, new Daemon('speaker', child), logFile, ownDir);
    liveRouters.add(s);
    await waitFor('speaker ready', () => s.events.some((e) => e.event === 'ready'), 20_000, 50).catch((e) => {
      throw new RouterError('speaker', 'start', `${String(e)}\n${safeRead(logFile)}`);
    });
    return s;
  }

  async call<T = unknown>(cmd: string, args: Record<string, unknown> = {}): Promise<T> {
    if (!this.running) throw new RouterError('speaker', cmd, 'not running');
    const id = this.nextId++;
    const p = new Promise<Reply>((resolve) => this.waiting.set(id, resolve));
    this.daemon.child.stdin!.write(`${JSON.stringify({ id, cmd, ...args })}\n`);
    const r = await p;
    if (!r.ok) throw new RouterError('speaker', cmd, r.error);
    return r.result as T;
  }

  log(): string {
    return safeRead(this.logFile);
  }

  /** Crash: SIGKILL, no NOTIFICATION, no cleanup in the process. */
  async kill9(): Promise<void> {
    liveRouters.delete(this);
    await this.daemon.stop('SIGKILL');
    if (this.ownDir) rmSync(this.ownDir, { recursive: true, force: true });
  }

  async stop(): Promise<void> {
    liveRouters.delete(this);
    if (this.running) {
      await Promise.race([this.call('stop').catch(() => {}), sleep(3000)]);
    }
    await this.daemon.stop();
    if (this.ownDir) rmSync(this.ownDir, { recursive: true, force: true });
  }
}

/**
 * A raw BGP peer (test/fixtures/bgp-raw-peer.ts) in `ns`, connected to host:port: it completes
 * the OPEN exchange and then writes whatever bytes a test gives it.
 */
export class RawPeer {
  readonly events: Array<{ event: string; message?: Record<string, unknown>; error?: string }> = [];
  private constructor(private readonly daemon: Daemon) {
    // The peer may exit (session reset) while a test is still writing: EPIPE is expected then.
    daemon.child.stdin!.on('error', () => {});
    createInterface({ input: daemon.child.stdout! }).on('line', (line) => {
      try {
        this.events.push(JSON.parse(line) as RawPeer['events'][number]);
      } catch {}
    });
  }

  /**
   * Connects and completes the OPEN exchange. A speaker in Idle (backing off after an error)
   * closes the connection at once; then this tries again, until `timeoutMs`.
   */
  static async connect(
    ns: Netns,
    host: string,
    port: number,
    asn: number,
    routerId: string,
    timeoutMs = 20_000,
  ): Promise<RawPeer> {
    const deadline = Date.now() + timeoutMs;
    const args = [
      'netns',
      'exec',
      ns.name,
      process.execPath,
      '--import',
      'tsx',
      'test/fixtures/bgp-raw-peer.ts',
    ];
    for (;;) {
      const child = spawn('ip', [...args, host, String(port), String(asn), routerId], {
        stdio: ['pipe', 'pipe', 'inherit'],
      });
      const p = new RawPeer(new Daemon('raw-peer', child));
      liveRouters.add(p);
      const up = await waitFor(
        'raw peer established or closed',
        () => (p.events.some((e) => e.event === 'established') ? 'up' : p.closed ? 'closed' : undefined),
        Math.max(1000, deadline - Date.now()),
        50,
      );
      if (up === 'up') return p;
      await p.stop();
      if (Date.now() > deadline)
        throw new RouterError('raw-peer', 'connect', `no session with ${host}:${port}`);
      await sleep(200);
    }
  }

  send(bytes: Uint8Array): void {
    this.daemon.child.stdin!.write(
      `${JSON.stringify({ cmd: 'send', hex: Buffer.from(bytes).toString('hex') })}\n`,
    );
  }

  get closed(): boolean {
    return this.events.some((e) => e.event === 'closed');
  }

  /** Messages received of one type. */
  received(type: string): Array<Record<string, unknown>> {
    return this.events.filter((e) => e.event === 'recv' && e.message?.type === type).map((e) => e.message!);
  }

  async stop(): Promise<void> {
    liveRouters.delete(this);
    await this.daemon.stop();
  }
}

/** Stops every router and speaker this process started and has not stopped (for `after` hooks). */
export async function stopEverything(): Promise<void> {
  await Promise.all([...liveRouters].map((r) => r.stop().catch(() => {})));
}

/** Stops everything given, ignoring failures (for `after` hooks). */
export async function stopAll(...things: Array<{ stop(): Promise<void> } | undefined>): Promise<void> {
  await Promise.all(things.map((t) => t?.stop().catch(() => {})));
}

export { run };

// The dataplane: one driver per kernel object kind, applied in dependency order
// (links → routes → neighbours/FDB → sysctls; routes first so a new endpoint is reachable as
// early as possible, its sysctls follow in the same pass). An incremental apply diffs against each driver's
// cached view of the kernel; a full resync dumps the kernel first. Nothing is ever flushed.
import type { DesiredState } from '../calc/model.js';
import { type LinkChange, LinkDriver } from './links.js';
import { NeighbourDriver } from './neighbours.js';
import { type KernelRoute, RouteDriver } from './routes.js';
import { Rtnl } from './rtnl.js';
import { SysctlDriver } from './sysctls.js';

export type DriverName = 'links' | 'sysctls' | 'routes' | 'neighbours' | 'netlink';

export class DriverError extends Error {
  constructor(
    readonly driver: DriverName,
    override readonly cause: unknown,
  ) {
    super(`${driver}: ${cause instanceof Error ? cause.message : String(cause)}`);
    this.name = 'DriverError';
  }
}

export interface ApplyReport {
  full: boolean;
  linkChanges: LinkChange[];
  routes: { added: number; replaced: number; deleted: number; usedBatch: boolean };
  neighbours: { written: number; deleted: number };
  sysctlsWritten: number;
  pendingRoutes: string[];
  errors: DriverError[];
  durationMs: number;
  /** Time spent per driver (dumps included), for logs and tuning. */
  phaseMs: Partial<Record<DriverName, number>>;
}

export class Dataplane {
  readonly rtnl: Rtnl;
  readonly links: LinkDriver;
  readonly routes: RouteDriver;
  readonly neighbours: NeighbourDriver;
  readonly sysctls: SysctlDriver;

  constructor(hooks: { onSocketReset?: (why: Error) => void; onInvalid?: (err: unknown) => void } = {}) {
    this.rtnl = new Rtnl({ onReset: hooks.onSocketReset, onInvalid: hooks.onInvalid });
    this.links = new LinkDriver(this.rtnl);
    this.routes = new RouteDriver(this.rtnl, this.links);
    this.neighbours = new NeighbourDriver(this.rtnl, this.links);
    this.sysctls = new SysctlDriver();
  }

  /**
   * Reconciles the kernel to `desired`. `full`: dump everything first (start, errors, periodic).
   * `linksChanged`: re-read links only (a workload veth appeared or vanished).
   */
  async apply(
    desired: DesiredState,
    opts: {
      full: boolean;
      linksChanged?: boolean;
      ipipOk: boolean;
      /** Kernel routes of ours to leave in place although not desired (see Agent.holdLearned). */
      keepRoute?: (r: KernelRoute) => boolean;
      /**
       * The route keys that changed in `desired` since the previous apply (ignored on a full or
       * links pass): only those are compared. Undefined = compare every route.
       */
      changedRoutes?: ReadonlySet<string>;
    },
  ): Promise<ApplyReport> {
    const t0 = performance.now();
    const report: ApplyReport = {
      full: opts.full,
      linkChanges: [],
      routes: { added: 0, replaced: 0, deleted: 0, usedBatch: false },
      neighbours: { written: 0, deleted: 0 },
      sysctlsWritten: 0,
      pendingRoutes: [],
      errors: [],
      durationMs: 0,
      phaseMs: {},
    };
    const step = async (driver: DriverName, f: () => Promise<void>): Promise<boolean> => {
      const t = performance.now();
      try {
        await f();
        return true;
      } catch (e) {
        report.errors.push(new DriverError(driver, e));
        return false;
      } finally {
        report.phaseMs[driver] = (report.phaseMs[driver] ?? 0) + performance.now() - t;
      }
    };
    if (opts.full || opts.linksChanged) {
      if (!(await step('links', async () => void (await this.links.dump())))) {
        report.durationMs = performance.now() - t0;
        return report; // without link indexes nothing else can be compared safely
      }
    }
    if (opts.full) {
      await step('routes', async () => void (await this.routes.dump()));
      await step('neighbours', () => this.neighbours.dump());
      this.sysctls.resync();
    }
    await step('links', async () => {
      report.linkChanges.push(
        ...(await this.links.reconcileTunnels(desired.tunnels, desired.retainTunnels, opts.ipipOk)),
      );
      const up = await this.links.ensureUp(desired.workloadIfaces);
      report.linkChanges.push(...up.changes);
      if (up.errors.length > 0) throw up.errors[0];
    });
    await step('routes', async () => {
      const only = opts.full || opts.linksChanged ? undefined : opts.changedRoutes;
      const r = await this.routes.apply(desired.routes, { keep: opts.keepRoute, only });
      report.routes = { added: r.added, replaced: r.replaced, deleted: r.deleted, usedBatch: r.usedBatch };
      report.pendingRoutes = r.pending;
      if (r.errors.length > 0) throw r.errors[0];
    });
    await step('neighbours', async () => {
      const r = await this.neighbours.apply(desired.neighs, desired.fdb);
      report.neighbours = { written: r.written, deleted: r.deleted };
      if (r.errors.length > 0) throw r.errors[0];
    });
    await step('sysctls', async () => {
      const r = await this.sysctls.apply(desired.sysctls);
      report.sysctlsWritten = r.written;
      if (r.errors.length > 0) throw r.errors[0];
    });
    report.durationMs = performance.now() - t0;
    return report;
  }

  close(): void {
    this.rtnl.close();
  }
}

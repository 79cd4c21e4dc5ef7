// Route driver: reconciles the main table's protocol-80 routes (and only those) to the desired set.
// Dump → diff → smallest change. Small changes go over the guarded netlink request socket
// (sub-millisecond, in-process). Large ones (initial sync of thousands of routes) go as hand-encoded
// messages, hundreds per sendmsg (routebatch.ts): measured 3–5× faster than `ip -batch`, which
// deps.md had found 2× faster than per-request netlink; `ip -force -batch` remains the fallback
// when the batch socket itself fails.

import type { rt } from 'netlink';
import { GINGHAM_ROUTE_PROTOCOL } from '../../lib/constants.js';
import { bytesToIp, type Family, ipToBytes, parsePrefix } from '../../lib/ip.js';
import { type NextHopSpec, type RouteSpec, routeKey } from '../calc/model.js';
import { ipBatch } from './iproute.js';
import type { LinkDriver } from './links.js';
import {
  type BatchOp,
  decodeMultipath,
  encodeMultipath,
  type KernelHop,
  RouteBatchError,
  sortHops,
  writeRouteBatch,
} from './routebatch.js';
import { alreadyGone, MAX_IN_FLIGHT, type Rtnl, runBounded } from './rtnl.js';

/** Our protocol number is not in the package's enum of well-known protocols. */
const PROTO = GINGHAM_ROUTE_PROTOCOL as unknown as rt.RouteProtocol;

const MAIN_TABLE = 254;
const RTNH_F_ONLINK = 4;
const NLM_F_REPLACE_CREATE = 0x100 | 0x400;
/** At or above this many writes in one apply, use the batched writer. */
export const BATCH_THRESHOLD = 256;

export interface KernelRoute {
  family: Family;
  dst: string;
  type: 'unicast' | 'blackhole' | 'other';
  oif?: number;
  via?: string;
  onlink: boolean;
  scope: 'link' | 'universe' | 'other';
  /** The next hops of a multipath route (RTA_MULTIPATH), in canonical order (sortHops). */
  multipath?: KernelHop[];
}

export interface RouteApplyResult {
  added: number;
  replaced: number;
  deleted: number;
  /** Desired routes whose device does not exist yet. */
  pending: string[];
  errors: unknown[];
  usedBatch: boolean;
}

/**
 * Equal in every attribute the agent controls. IPv6 has no route scope; blackholes no device.
 * A multipath route is equal when its set of next hops (address, interface, onlink) is equal,
 * whatever order either side lists them in; `wantHops` are the desired hops with resolved indexes.
 */
export function sameRoute(
  want: RouteSpec,
  wantOif: number | undefined,
  have: KernelRoute,
  wantHops?: readonly KernelHop[],
): boolean {
  if (want.type !== have.type) return false;
  if (want.family === 4 && want.scope !== have.scope) return false;
  if (want.type === 'blackhole') return true;
  if (wantHops || have.multipath) {
    if (!wantHops || !have.multipath || wantHops.length !== have.multipath.length) return false;
    const a = sortHops(wantHops);
    const b = sortHops(have.multipath);
    return a.every((h, i) => h.oif === b[i]!.oif && h.via === b[i]!.via && h.onlink === b[i]!.onlink);
  }
  return wantOif === have.oif && (want.via ?? undefined) === have.via && want.onlink === have.onlink;
}

/** The `ip -batch` line for a route (also the documentation of the exact route form we program). */
export function routeBatchLine(
  op: 'replace' | 'del',
  r: Pick<RouteSpec, 'dst' | 'type' | 'dev' | 'via' | 'onlink' | 'scope' | 'multipath'>,
): string {
  const parts = ['route', op];
  if (r.type === 'blackhole') parts.push('blackhole');
  parts.push(r.dst);
  if (op === 'replace' && r.type !== 'blackhole' && r.multipath && r.multipath.length > 0) {
    // `nexthop` specs must come last: ip reads everything after the first one as next hops.
    parts.push('proto', String(GINGHAM_ROUTE_PROTOCOL));
    for (const h of r.multipath) {
      parts.push('nexthop', 'via', h.via, 'dev', h.dev, 'weight', '1');
      if (h.onlink) parts.push('onlink');
    }
    return parts.join(' ');
  }
  if (op === 'replace' && r.type !== 'blackhole') {
    if (r.via) parts.push('via', r.via);
    if (r.dev) parts.push('dev', r.dev);
    if (r.onlink) parts.push('onlink');
    if (r.scope === 'link') parts.push('scope', 'link');
  }
  parts.push('proto', String(GINGHAM_ROUTE_PROTOCOL));
  return parts.join(' ');
}

export class RouteDriver {
  /** What we believe the kernel holds (our routes only), keyed like desired routes. */
  private actual = new Map<string, KernelRoute>();
  /** Desired routes waiting for their device, key → dst (kept across applies for `only`). */
  private readonly pending = new Map<string, string>();

  constructor(
    private readonly rtnl: Rtnl,
    private readonly links: LinkDriver,
    private readonly ipCmd = 'ip',
  ) {}

  get size(): number {
    return this.actual.size;
  }

  async dump(): Promise<Map<string, KernelRoute>> {
    const out = new Map<string, KernelRoute>();
    for (const family of [2, 10]) {
      const msgs = await this.rtnl.request('dump', `routes family ${family}`, (s, o) =>
        s.getRoutes({ family }, undefined, o),
      );
      for (const m of msgs) {
        // The kernel ignores dump filters here (deps.md): filter client-side.
        if ((m.data.protocol as unknown) !== GINGHAM_ROUTE_PROTOCOL) continue;
        const table = m.attrs.table ?? m.data.table;
        if (table !== MAIN_TABLE) continue;
        const fam: Family = m.data.family === 2 ? 4 : 6;
        const len = m.data.dstLen ?? 0;
        const dstIp = m.attrs.dst ? bytesToIp(m.attrs.dst) : fam === 4 ? '0.0.0.0' : '::';
        const dst = `${dstIp}/${len}`;
        const type =
          m.data.type === 'UNICAST' || m.data.type === 1
            ? 'unicast'
            : m.data.type === 'BLACKHOLE' || m.data.type === 6
              ? 'blackhole'
              : 'other';
        const scope =
          m.data.scope === 'LINK' || m.data.scope === 253
            ? 'link'
            : m.data.scope === 'UNIVERSE' || m.data.scope === 0
              ? 'universe'
              : 'other';
        out.set(routeKey({ family: fam, dst }), {
          family: fam,
          dst,
          type,
          oif: m.attrs.oif,
          via: m.attrs.gateway ? bytesToIp(m.attrs.gateway) : undefined,
          onlink: ((m.data.flags?.__unknown ?? 0) & RTNH_F_ONLINK) !== 0,
          scope,
          ...(m.attrs.multipath ? { multipath: decodeMultipath(m.attrs.multipath) } : {}),
        });
      }
    }
    this.actual = out;
    return out;
  }

  /**
   * Diff `desired` against the cached kernel state and apply. Call `dump()` first for a full resync.
   * `only`: the keys that may have changed since the previous apply (the calculation knows them
   * after an endpoint event); the rest is not compared, which keeps an endpoint add O(1) instead of
   * O(routes). Without it every route is compared.
   */
  async apply(
    desired: ReadonlyMap<string, RouteSpec>,
    opts: { keep?: (r: KernelRoute) => boolean; only?: ReadonlySet<string> } = {},
  ): Promise<RouteApplyResult> {
    const res: RouteApplyResult = {
      added: 0,
      replaced: 0,
      deleted: 0,
      pending: [],
      errors: [],
      usedBatch: false,
    };
    const writes: Array<{
      key: string;
      spec: RouteSpec;
      oif: number | undefined;
      hops: KernelHop[] | undefined;
      replace: boolean;
    }> = [];
    const pendingKeys = new Set<string>();
    const only = opts.only;
    if (!only) this.pending.clear();
    const consider = (key: string, spec: RouteSpec): void => {
      const oif = spec.dev === undefined ? undefined : this.links.index(spec.dev);
      const hops = spec.multipath ? this.resolveHops(spec.multipath) : undefined;
      if (spec.type === 'unicast' && (spec.multipath ? hops === undefined : oif === undefined)) {
        this.pending.set(key, spec.dst);
        pendingKeys.add(key);
        return;
      }
      this.pending.delete(key);
      const have = this.actual.get(key);
      if (have && sameRoute(spec, oif, have, hops)) return;
      writes.push({ key, spec, oif, hops, replace: have !== undefined });
    };
    const deletes: Array<[string, KernelRoute]> = [];
    const maybeDelete = (key: string, have: KernelRoute): void => {
      if (pendingKeys.has(key)) deletes.push([key, have]);
      else if (!desired.has(key) && !opts.keep?.(have)) deletes.push([key, have]);
    };
    if (only) {
      for (const key of only) {
        const spec = desired.get(key);
        if (spec) consider(key, spec);
        else this.pending.delete(key);
        const have = this.actual.get(key);
        if (have) maybeDelete(key, have);
      }
    } else {
      for (const [key, spec] of desired) consider(key, spec);
      for (const [key, have] of this.actual) maybeDelete(key, have);
    }
    for (const dst of this.pending.values()) res.pending.push(dst);
    if (writes.length + deletes.length >= BATCH_THRESHOLD) {
      res.usedBatch = true;
      const ops: BatchOp[] = [
        ...deletes.map(
          ([, r]): BatchOp => ({
            op: 'delete',
            route: {
              family: r.family,
              dst: r.dst,
              type: r.type === 'blackhole' ? 'blackhole' : 'unicast',
              onlink: false,
              scope: 'universe',
            },
          }),
        ),
        ...writes.map((w): BatchOp => ({ op: 'replace', route: w.spec, oif: w.oif, hops: w.hops })),
      ];
      let failed = false;
      try {
        await writeRouteBatch(ops);
      } catch (e) {
        failed = true;
        if (e instanceof RouteBatchError) {
          res.errors.push(e);
        } else {
          // The batch socket itself failed: replay through iproute2 (replace/delete are idempotent).
          const lines = ops.map((o) =>
            routeBatchLine(o.op === 'delete' ? 'del' : 'replace', {
              ...o.route,
              dev: o.op === 'replace' ? this.devOf(o) : undefined,
            }),
          );
          const failures = await ipBatch(lines, this.ipCmd);
          if (failures.length > 0)
            res.errors.push(new Error(`ip -batch: ${failures.slice(0, 5).join('; ')}`));
        }
      }
      if (failed) {
        await this.dump();
      } else {
        for (const [k] of deletes) this.actual.delete(k);
        for (const w of writes) this.actual.set(w.key, toKernel(w.spec, w.oif, w.hops));
      }
      res.deleted = deletes.length;
      for (const w of writes) w.replace ? res.replaced++ : res.added++;
      return res;
    }
    res.errors.push(
      ...(await runBounded(deletes, MAX_IN_FLIGHT, async ([k, r]) => {
        await this.delete(r).catch((err: unknown) => {
          if (!alreadyGone(err)) throw err;
        });
        this.actual.delete(k);
        res.deleted++;
      })),
    );
    res.errors.push(
      ...(await runBounded(writes, MAX_IN_FLIGHT, async (w) => {
        await this.replace(w.spec, w.oif, w.hops);
        this.actual.set(w.key, toKernel(w.spec, w.oif, w.hops));
        w.replace ? res.replaced++ : res.added++;
      })),
    );
    return res;
  }

  /** Interface indexes for every hop, or undefined while any device does not exist yet. */
  private resolveHops(hops: readonly NextHopSpec[]): KernelHop[] | undefined {
    const out: KernelHop[] = [];
    for (const h of hops) {
      const oif = this.links.index(h.dev);
      if (oif === undefined) return undefined;
      out.push({ via: h.via, oif, onlink: h.onlink });
    }
    return sortHops(out);
  }

  private devOf(o: BatchOp): string | undefined {
    return o.oif === undefined ? undefined : this.links.nameOf(o.oif);
  }

  private replace(r: RouteSpec, oif: number | undefined, hops?: readonly KernelHop[]): Promise<unknown> {
    const p = parsePrefix(r.dst);
    return this.rtnl.request('replace-route', r.dst, (s, o) =>
      s.newRoute(
        {
          family: r.family === 4 ? 2 : 10,
          dstLen: p.len,
          table: MAIN_TABLE,
          protocol: PROTO,
          scope: r.scope === 'link' && r.family === 4 ? 'LINK' : 'UNIVERSE',
          type: r.type === 'blackhole' ? 'BLACKHOLE' : 'UNICAST',
          // A multipath route carries onlink per hop (rtnh_flags), not in rtm_flags.
          flags: r.onlink && !hops ? { __unknown: RTNH_F_ONLINK } : {},
        },
        {
          dst: Buffer.from(ipToBytes(r.dst.split('/')[0]!)),
          ...(hops
            ? { multipath: encodeMultipath(hops) }
            : {
                ...(r.type === 'unicast' ? { oif } : {}),
                ...(r.via ? { gateway: Buffer.from(ipToBytes(r.via)) } : {}),
              }),
        },
        { ...o, flags: NLM_F_REPLACE_CREATE },
      ),
    );
  }

  private delete(r: KernelRoute): Promise<unknown> {
    const p = parsePrefix(r.dst);
    return this.rtnl.request('delete-route', r.dst, (s, o) =>
      s.delRoute(
        {
          family: r.family === 4 ? 2 : 10,
          dstLen: p.len,
          table: MAIN_TABLE,
          // Deleting with our protocol makes the kernel refuse to remove anyone else's route.
          protocol: PROTO,
          scope: 'NOWHERE',
        },
        { dst: Buffer.from(ipToBytes(r.dst.split('/')[0]!)) },
        o,
      ),
    );
  }
}

function toKernel(r: RouteSpec, oif: number | undefined, hops?: KernelHop[]): KernelRoute {
  return {
    family: r.family,
    dst: r.dst,
    type: r.type,
    oif: r.type === 'unicast' ? oif : undefined,
    via: r.via,
    onlink: r.onlink,
    scope: r.family === 6 ? 'universe' : r.scope,
    ...(hops ? { multipath: hops } : {}),
  };
}

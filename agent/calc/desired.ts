// The calculation layer: resources in, desired dataplane state out. Pure — the same input gives the
// same output, so restarts reprogram nothing that was right and every rule here is unit-tested.
// Modelled on Felix's calc graph + route/vxlan managers, flattened into one recomputation: with
// hundreds of local endpoints and thousands of remote blocks a full pass costs ~1 ms.
import { INTERFACE_PREFIX } from '../../lib/constants.js';
import {
  type Family,
  formatPrefix,
  parseIp,
  parsePrefix,
  prefixContains,
  prefixContainsIp,
} from '../../lib/ip.js';
import {
  type CalcInput,
  compareNextHops,
  type DesiredState,
  type FdbSpec,
  fdbKey,
  type NeighSpec,
  type NextHopSpec,
  type NodeInput,
  neighKey,
  type PoolInput,
  type Problem,
  type RouteKind,
  type RouteSpec,
  routeKey,
} from './model.js';

export const VXLAN_DEVICE_V4 = 'vxlan.gingham';
/** 14 characters: interface names have at most 15 (IFNAMSIZ); Calico's `vxlan-v6.` form would not fit. */
export const VXLAN_DEVICE_V6 = 'vxlan6.gingham';
export const IPIP_DEVICE = 'tunl0';

/** Higher wins when two sources want the same prefix. Local knowledge beats remote, IPAM beats BGP. */
const PRECEDENCE: Record<RouteKind, number> = {
  workload: 6,
  blackhole: 5,
  vxlan: 3,
  ipip: 3,
  crosssubnet: 3,
  static: 2,
  learned: 1,
};

function canonical(prefix: string): string {
  return formatPrefix(parsePrefix(prefix, { loose: true }));
}

function addrOnly(cidr: string): string {
  const i = cidr.indexOf('/');
  return i < 0 ? cidr : cidr.slice(0, i);
}

/** Per-interface sysctls Felix sets on a workload interface (calico.md, WEP row). */
export function workloadSysctls(
  iface: string,
  opts: { v6: boolean; allowSpoofing: boolean },
): Array<{ path: string; value: string }> {
  const out = [
    { path: `net/ipv4/conf/${iface}/forwarding`, value: '1' },
    { path: `net/ipv4/conf/${iface}/proxy_arp`, value: '1' },
    { path: `net/ipv4/neigh/${iface}/proxy_delay`, value: '0' },
    { path: `net/ipv4/conf/${iface}/route_localnet`, value: '1' },
    { path: `net/ipv4/conf/${iface}/rp_filter`, value: opts.allowSpoofing ? '0' : '1' },
  ];
  if (opts.v6) {
    out.push(
      { path: `net/ipv6/conf/${iface}/accept_ra`, value: '0' },
      { path: `net/ipv6/conf/${iface}/proxy_ndp`, value: '1' },
      { path: `net/ipv6/conf/${iface}/forwarding`, value: '1' },
    );
  }
  return out;
}

/** True when `other` lies inside one of the subnets this node is directly attached to. */
export function sameSubnet(self: NodeInput, otherIp: string): boolean {
  const { family, addr } = parseIp(otherIp);
  const mine = [self.ipv4Address, self.ipv6Address, ...(self.addresses ?? [])].filter(
    (a): a is string => a?.includes('/') === true,
  );
  return mine.some((cidr) => prefixContainsIp(parsePrefix(cidr, { loose: true }), addr, family));
}

/**
 * Memo for computeDesired across calls (the agent recomputes on every event). Entries are keyed by
 * the input objects themselves (an endpoint or block object is replaced, never mutated, when it
 * changes), and block results also by `CalcInput.remoteVersion`, which the caller bumps whenever
 * anything they depend on changes (nodes, pools, settings, host facts). Without a cache, or without
 * a remoteVersion, everything is computed afresh: the result is the same either way.
 */
export interface CalcCache {
  endpoints: WeakMap<
    object,
    {
      allowSpoofing: boolean;
      routes: RouteSpec[];
      neighs: NeighSpec[];
      sysctls: Array<{ path: string; value: string }>;
    }
  >;
  blocks: WeakMap<object, { version: number; routes: RouteSpec[]; problems: Problem[] }>;
  /** The node-wide part of the last result, valid for (remoteVersion, blocksVersion). */
  base?: { remoteVersion: number; blocksVersion: number; state: DesiredState };
  /** Update the previous result in place when only endpoints changed (see newCalcCache). */
  inPlace: boolean;
  /** inPlace: the previous result and what it was computed from. */
  last?: LastResult;
  /**
   * After each call: the route keys the call changed when it updated the previous result in place;
   * null when it computed afresh (anything may have changed).
   */
  changedRoutes: Set<string> | null;
}

interface LastResult {
  remoteVersion: number;
  blocksVersion: number;
  learned: readonly unknown[];
  allowSpoofing: boolean;
  /** The endpoint objects the state holds (endpoints are replaced, never mutated, on change). */
  endpoints: Set<object>;
  /**
   * No key an endpoint contributes (route, neighbour, sysctl path, interface) is wanted by
   * anything else: each endpoint's part can be removed or added without a precedence decision.
   */
  clean: boolean;
  state: DesiredState;
}

/**
 * `inPlace`: with hundreds of local endpoints and thousands of blocks, copying the node-wide part
 * for every endpoint event costs milliseconds and garbage that outlives the young generation (GC
 * pauses on the programming path). In place, an endpoint-only change removes and adds just that
 * endpoint's routes, neighbours and sysctls in the previous result, and the result of the previous
 * call is updated: the caller must not keep one result while asking for the next. The result is
 * the same as a fresh computation (unit-tested against one); anything else (node-wide change, new
 * learned routes, a key two sources want) is computed afresh.
 */
export function newCalcCache(opts: { inPlace?: boolean } = {}): CalcCache {
  return {
    endpoints: new WeakMap(),
    blocks: new WeakMap(),
    inPlace: opts.inPlace === true,
    changedRoutes: null,
  };
}

function emptyState(): DesiredState {
  return {
    routes: new Map(),
    neighs: new Map(),
    fdb: new Map(),
    tunnels: new Map(),
    retainTunnels: new Set(),
    workloadIfaces: new Set(),
    sysctls: new Map(),
    problems: [],
    unreadyPools: new Set(),
  };
}

function cloneState(s: DesiredState): DesiredState {
  return {
    routes: new Map(s.routes),
    neighs: new Map(s.neighs),
    fdb: new Map(s.fdb),
    tunnels: new Map(s.tunnels),
    retainTunnels: new Set(s.retainTunnels),
    workloadIfaces: new Set(s.workloadIfaces),
    sysctls: new Map(s.sysctls),
    problems: [...s.problems],
    unreadyPools: new Set(s.unreadyPools),
  };
}

/** Writers into one DesiredState; routes go through the precedence rule. */
function writers(out: DesiredState) {
  return {
    addRoute(r: RouteSpec): void {
      const k = routeKey(r);
      const prev = out.routes.get(k);
      if (prev && PRECEDENCE[prev.kind] >= PRECEDENCE[r.kind]) {
        if (PRECEDENCE[prev.kind] === PRECEDENCE[r.kind] && prev.kind !== 'learned') {
          out.problems.push({
            code: 'route-conflict',
            subject: r.dst,
            message: `${r.dst}: two ${r.kind} sources; keeping ${prev.dev ?? prev.via ?? prev.type}`,
          });
        }
        return;
      }
      out.routes.set(k, r);
    },
    addNeigh(n: NeighSpec): void {
      out.neighs.set(neighKey(n), n);
    },
    addFdb(f: FdbSpec): void {
      out.fdb.set(fdbKey(f), f);
    },
    sysctl(path: string, value: string): void {
      out.sysctls.set(path, { path, value });
    },
  };
}

export function computeDesired(input: CalcInput, cache?: CalcCache): DesiredState {
  // The node-wide part (pools, tunnels, VTEPs, blocks) changes far less often than endpoints:
  // with versions from the caller it is computed once and copied for each endpoint change.
  const cacheable =
    cache !== undefined && input.remoteVersion !== undefined && input.blocksVersion !== undefined;
  let out: DesiredState;
  const hit =
    cacheable &&
    cache.base?.remoteVersion === input.remoteVersion &&
    cache.base?.blocksVersion === input.blocksVersion;
  if (hit && cache.inPlace && cache.last) {
    const updated = updateEndpointsInPlace(input, cache, cache.last);
    if (updated) return updated;
  }
  if (cache) cache.changedRoutes = null;
  if (hit) {
    out = cloneState(cache.base!.state);
  } else {
    out = emptyState();
    computeBase(input, cache, out);
    if (cacheable)
      cache.base = {
        remoteVersion: input.remoteVersion!,
        blocksVersion: input.blocksVersion!,
        state: cloneState(out),
      };
  }
  const endpointsClean = addEndpoints(input, cache, out);
  const learnedClean = addLearned(input, out);
  if (cacheable && cache.inPlace) {
    cache.last = {
      remoteVersion: input.remoteVersion!,
      blocksVersion: input.blocksVersion!,
      learned: input.learned,
      allowSpoofing: input.settings.allowSpoofing,
      endpoints: new Set(input.endpoints),
      clean: endpointsClean && learnedClean,
      state: out,
    };
  }
  return out;
}

type EndpointPart = {
  allowSpoofing: boolean;
  routes: RouteSpec[];
  neighs: NeighSpec[];
  sysctls: Array<{ path: string; value: string }>;
};

/** An endpoint's routes, neighbours and sysctls (memoised per endpoint object). */
function endpointPart(
  ep: CalcInput['endpoints'][number],
  allowSpoofing: boolean,
  cache: CalcCache | undefined,
): EndpointPart {
  const cached = cache?.endpoints.get(ep);
  if (cached && cached.allowSpoofing === allowSpoofing) return cached;
  const dev = ep.interfaceName;
  const c: EndpointPart = { allowSpoofing, routes: [], neighs: [], sysctls: [] };
  const nets = ep.ipNetworks.map((n) => parsePrefix(n, { loose: true }));
  const v6 = nets.some((n) => n.family === 6);
  c.sysctls = workloadSysctls(dev, { v6, allowSpoofing });
  for (const n of nets) {
    const dst = formatPrefix(n);
    c.routes.push({
      family: n.family,
      dst,
      kind: 'workload',
      type: 'unicast',
      dev,
      onlink: false,
      scope: 'link',
    });
    if (ep.mac && (n.family === 4 ? n.len === 32 : n.len === 128)) {
      c.neighs.push({ family: n.family, dev, ip: addrOnly(dst), mac: ep.mac.toLowerCase() });
    }
  }
  cache?.endpoints.set(ep, c);
  return c;
}

/** Own only what we create: an endpoint naming a foreign interface is not ours to configure. */
const ownsInterface = (ep: CalcInput['endpoints'][number]): boolean =>
  ep.interfaceName.startsWith(INTERFACE_PREFIX);

/** Adds every endpoint's part; false when some key was already wanted (by anyone). */
function addEndpoints(input: CalcInput, cache: CalcCache | undefined, out: DesiredState): boolean {
  const { settings } = input;
  const { addRoute, addNeigh } = writers(out);
  let clean = true;
  for (const ep of input.endpoints) {
    if (!ownsInterface(ep)) continue;
    const dev = ep.interfaceName;
    if (out.workloadIfaces.has(dev)) clean = false;
    out.workloadIfaces.add(dev);
    const c = endpointPart(ep, settings.allowSpoofing, cache);
    for (const x of c.sysctls) {
      if (out.sysctls.has(x.path)) clean = false;
      out.sysctls.set(x.path, x);
    }
    for (const r of c.routes) {
      if (out.routes.has(routeKey(r))) clean = false;
      addRoute(r);
    }
    for (const n of c.neighs) {
      if (out.neighs.has(neighKey(n))) clean = false;
      addNeigh(n);
    }
  }
  return clean;
}

/**
 * The in-place path of computeDesired: the node-wide part and learned routes are those of `last`,
 * and only endpoints differ. Removes the parts of endpoints that are gone and adds those of new
 * ones (a changed endpoint is both). Returns null, having changed nothing, when that is not
 * equivalent to a fresh computation: some key of a new endpoint is already wanted, or the last
 * result had such a collision.
 */
function updateEndpointsInPlace(input: CalcInput, cache: CalcCache, last: LastResult): DesiredState | null {
  if (
    !last.clean ||
    last.learned !== input.learned ||
    last.allowSpoofing !== input.settings.allowSpoofing ||
    last.remoteVersion !== input.remoteVersion ||
    last.blocksVersion !== input.blocksVersion
  )
    return null;
  const added: CalcInput['endpoints'][number][] = [];
  for (const ep of input.endpoints) if (!last.endpoints.has(ep)) added.push(ep);
  const removed: CalcInput['endpoints'][number][] = [];
  if (last.endpoints.size !== input.endpoints.length - added.length) {
    const now = new Set<object>(input.endpoints);
    for (const ep of last.endpoints) if (!now.has(ep)) removed.push(ep as CalcInput['endpoints'][number]);
  }
  const out = last.state;
  const allow = input.settings.allowSpoofing;
  // Keys the removals free, then check that every new key is free (and not wanted twice).
  const freed = new Set<string>();
  for (const ep of removed) {
    if (!ownsInterface(ep)) continue;
    const c = cache.endpoints.get(ep);
    if (!c) return null; // cannot happen: every endpoint in `last` was memoised
    freed.add(`i|${ep.interfaceName}`);
    for (const x of c.sysctls) freed.add(`s|${x.path}`);
    for (const r of c.routes) freed.add(`r|${routeKey(r)}`);
    for (const n of c.neighs) freed.add(`n|${neighKey(n)}`);
  }
  const taken = new Set<string>();
  const free = (key: string, inState: boolean): boolean => {
    if ((inState && !freed.has(key)) || taken.has(key)) return false;
    taken.add(key);
    return true;
  };
  for (const ep of added) {
    if (!ownsInterface(ep)) continue;
    const c = endpointPart(ep, allow, cache);
    const dev = ep.interfaceName;
    if (!free(`i|${dev}`, out.workloadIfaces.has(dev))) return null;
    for (const x of c.sysctls) if (!free(`s|${x.path}`, out.sysctls.has(x.path))) return null;
    for (const r of c.routes) if (!free(`r|${routeKey(r)}`, out.routes.has(routeKey(r)))) return null;
    for (const n of c.neighs) if (!free(`n|${neighKey(n)}`, out.neighs.has(neighKey(n)))) return null;
  }
  const changed = new Set<string>();
  for (const ep of removed) {
    last.endpoints.delete(ep);
    if (!ownsInterface(ep)) continue;
    const c = cache.endpoints.get(ep)!;
    out.workloadIfaces.delete(ep.interfaceName);
    for (const x of c.sysctls) out.sysctls.delete(x.path);
    for (const r of c.routes) {
      const k = routeKey(r);
      out.routes.delete(k);
      changed.add(k);
    }
    for (const n of c.neighs) out.neighs.delete(neighKey(n));
  }
  for (const ep of added) {
    last.endpoints.add(ep);
    if (!ownsInterface(ep)) continue;
    const c = endpointPart(ep, allow, cache);
    out.workloadIfaces.add(ep.interfaceName);
    for (const x of c.sysctls) out.sysctls.set(x.path, x);
    for (const r of c.routes) {
      const k = routeKey(r);
      out.routes.set(k, r);
      changed.add(k);
    }
    for (const n of c.neighs) out.neighs.set(neighKey(n), n);
  }
  cache.changedRoutes = changed;
  return out;
}

/** Adds the learned routes; false when one was shadowed by an endpoint's route. */
function addLearned(input: CalcInput, out: DesiredState): boolean {
  const { host } = input;
  const { addRoute } = writers(out);
  const uplink = (family: Family): string | undefined => (family === 4 ? host.uplinkV4 : host.uplinkV6);
  let clean = true;
  for (const l of input.learned) {
    const p = parsePrefix(l.prefix, { loose: true });
    // Canonical hop set (sorted, deduplicated) so equal sets give equal specs whatever the order
    // BGP reported them in: a resync or restart must see no difference.
    const byKey = new Map<string, NextHopSpec>();
    for (const hop of l.nextHops) {
      const dev = hop.dev ?? uplink(p.family);
      if (!dev) continue;
      byKey.set(`${hop.via}|${dev}`, { via: hop.via, dev, onlink: hop.onlink ?? true });
    }
    const hops = [...byKey.values()].sort(compareNextHops);
    const first = hops[0];
    if (!first) continue;
    const base = {
      family: p.family,
      dst: formatPrefix(p),
      kind: 'learned',
      type: 'unicast',
      scope: 'universe',
    } as const;
    if (out.routes.get(routeKey(base))?.kind === 'workload') clean = false;
    if (hops.length === 1) addRoute({ ...base, dev: first.dev, via: first.via, onlink: first.onlink });
    else addRoute({ ...base, onlink: false, multipath: hops });
  }
  return clean;
}

function computeBase(input: CalcInput, cache: CalcCache | undefined, out: DesiredState): void {
  const { self, settings, host } = input;
  const { addRoute, addNeigh, addFdb, sysctl } = writers(out);

  // Global: the node forwards.
  sysctl('net/ipv4/ip_forward', '1');
  sysctl('net/ipv6/conf/all/forwarding', '1');

  // ---- pools and encapsulation ----
  const pools = input.pools.map((p) => ({ pool: p, prefix: parsePrefix(p.cidr, { loose: true }) }));
  const poolOf = (cidr: string): PoolInput | undefined => {
    const p = parsePrefix(cidr, { loose: true });
    return pools.find((x) => prefixContains(x.prefix, p))?.pool;
  };
  const vxlanV4 = pools.some((x) => x.prefix.family === 4 && x.pool.vxlanMode !== 'Never');
  const vxlanV6 = pools.some((x) => x.prefix.family === 6 && x.pool.vxlanMode !== 'Never');
  const ipip = pools.some((x) => x.prefix.family === 4 && x.pool.ipipMode !== 'Never');

  const vxlanDev = (family: Family): string => (family === 4 ? VXLAN_DEVICE_V4 : VXLAN_DEVICE_V6);
  const tunnelAddr = (n: NodeInput, family: Family): string | undefined =>
    family === 4 ? n.ipv4VXLANTunnelAddr : n.ipv6VXLANTunnelAddr;
  const vtepMac = (n: NodeInput, family: Family): string | undefined =>
    family === 4 ? n.vxlanTunnelMACAddr : n.vxlanTunnelMACAddrV6;
  const nodeIp = (n: NodeInput, family: Family): string | undefined => {
    const a = family === 4 ? n.ipv4Address : n.ipv6Address;
    return a === undefined ? undefined : addrOnly(a);
  };
  const uplink = (family: Family): string | undefined => (family === 4 ? host.uplinkV4 : host.uplinkV6);

  for (const family of [4, 6] as const) {
    if (family === 4 ? !vxlanV4 : !vxlanV6) continue;
    const name = vxlanDev(family);
    const addr = tunnelAddr(self, family);
    const mac = vtepMac(self, family);
    const local = nodeIp(self, family);
    if (!addr || !mac || !local) {
      out.retainTunnels.add(name);
      out.problems.push({
        code: 'no-tunnel-address',
        subject: name,
        message: `VXLAN is in use but this node lacks ${!addr ? 'a tunnel address' : !mac ? 'a VTEP MAC' : `an IPv${family} address`}`,
      });
    } else {
      out.tunnels.set(name, {
        kind: 'vxlan',
        name,
        family,
        vni: settings.vxlanVNI,
        port: settings.vxlanPort,
        local,
        parent: uplink(family),
        mac: mac.toLowerCase(),
        mtu: family === 4 ? settings.vxlanMTU : settings.vxlanMTUV6,
        address: `${addr}/${family === 4 ? 32 : 128}`,
      });
    }
    // One FDB entry and one permanent neighbour per remote VTEP (Felix's vxlanfdb).
    for (const n of input.nodes.values()) {
      if (n.name === input.nodeName) continue;
      const ra = tunnelAddr(n, family);
      const rm = vtepMac(n, family);
      const rip = nodeIp(n, family);
      if (!ra || !rm || !rip) continue;
      addFdb({ dev: name, mac: rm.toLowerCase(), dst: rip });
      addNeigh({ family, dev: name, ip: ra, mac: rm.toLowerCase() });
    }
  }

  if (ipip) {
    const ipipPools = pools.filter((x) => x.pool.ipipMode !== 'Never').map((x) => x.pool.name);
    if (!host.ipipSupported) {
      out.problems.push({
        code: 'ipip-unsupported',
        subject: IPIP_DEVICE,
        message: `pools ${ipipPools.join(', ')} use IPIP but this kernel has no ipip module (tunl0 cannot exist)`,
      });
      for (const p of ipipPools) out.unreadyPools.add(p);
    }
    if (self.ipv4IPIPTunnelAddr) {
      out.tunnels.set(IPIP_DEVICE, {
        kind: 'ipip',
        name: IPIP_DEVICE,
        address: `${self.ipv4IPIPTunnelAddr}/32`,
      });
    } else {
      out.problems.push({
        code: 'no-tunnel-address',
        subject: IPIP_DEVICE,
        message: 'IPIP is in use but this node has no IPIP tunnel address',
      });
    }
  }

  /** The route that carries `dst` (a remote block or borrowed /32) to node `nodeName`, or null. */
  const remoteRoute = (
    dst: string,
    family: Family,
    nodeName: string,
    problems: Problem[],
  ): RouteSpec | null => {
    const node = input.nodes.get(nodeName);
    if (!node) return null;
    const pool = poolOf(dst);
    const ip = nodeIp(node, family);
    const direct = (kind: RouteKind): RouteSpec | null => {
      const dev = uplink(family);
      if (!ip) return null;
      if (!dev) {
        problems.push({
          code: 'no-uplink',
          subject: dst,
          message: `no interface holds this node's IPv${family} address`,
        });
        return null;
      }
      return { family, dst, kind, type: 'unicast', dev, via: ip, onlink: true, scope: 'universe' };
    };
    if (pool && pool.vxlanMode !== 'Never') {
      if (pool.vxlanMode === 'CrossSubnet' && ip && sameSubnet(self, ip)) return direct('crosssubnet');
      const ra = tunnelAddr(node, family);
      if (!ra || !vtepMac(node, family)) {
        problems.push({
          code: 'remote-vtep-incomplete',
          subject: nodeName,
          message: `node ${nodeName} has no VXLAN tunnel address/MAC yet; ${dst} not routed`,
        });
        return null;
      }
      return {
        family,
        dst,
        kind: 'vxlan',
        type: 'unicast',
        dev: vxlanDev(family),
        via: ra,
        onlink: true,
        scope: 'universe',
      };
    }
    if (pool && family === 4 && pool.ipipMode !== 'Never') {
      if (pool.ipipMode === 'CrossSubnet' && ip && sameSubnet(self, ip)) return direct('crosssubnet');
      if (!ip) return null;
      return {
        family,
        dst,
        kind: 'ipip',
        type: 'unicast',
        dev: IPIP_DEVICE,
        via: ip,
        onlink: true,
        scope: 'universe',
      };
    }
    if (settings.remoteRouteSource === 'static') return direct('static');
    return null;
  };

  // ---- blocks: own → blackhole; remote → routed to their node; borrowed → /32 to the borrower ----
  const version = input.remoteVersion;
  for (const b of input.blocks) {
    let c = cache?.blocks.get(b);
    if (!c || version === undefined || c.version !== version) {
      c = { version: version ?? -1, routes: [], problems: [] };
      const prefix = parsePrefix(b.cidr, { loose: true });
      const dst = formatPrefix(prefix);
      if (b.affinity === input.nodeName) {
        c.routes.push({
          family: prefix.family,
          dst,
          kind: 'blackhole',
          type: 'blackhole',
          onlink: false,
          scope: 'universe',
        });
      } else if (b.affinity !== null) {
        const r = remoteRoute(dst, prefix.family, b.affinity, c.problems);
        if (r) c.routes.push(r);
      }
      for (const x of b.borrowed) {
        if (x.node === input.nodeName || x.node === b.affinity) continue;
        const r = remoteRoute(canonical(x.ip), prefix.family, x.node, c.problems);
        if (r) c.routes.push(r);
      }
      if (version !== undefined) cache?.blocks.set(b, c);
    }
    for (const r of c.routes) addRoute(r);
    out.problems.push(...c.problems);
  }
}

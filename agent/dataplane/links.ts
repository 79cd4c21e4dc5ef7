// Link driver: the agent's own links only — workload veths (`gh*`, created by the CNI plugin; the
// agent brings them up) and the tunnel devices it creates (vxlan.gingham, vxlan6.gingham, tunl0).
// Other interfaces are only read (for their index), never changed.
import { existsSync } from 'node:fs';
import { ifla } from 'netlink';
import { INTERFACE_PREFIX } from '../../lib/constants.js';
import { IPIP_DEVICE, VXLAN_DEVICE_V4, VXLAN_DEVICE_V6 } from '../calc/desired.js';
import type { TunnelSpec, VxlanLinkSpec } from '../calc/model.js';
import { ipJson, runIp } from './iproute.js';
import { type Rtnl, runBounded } from './rtnl.js';

export interface LinkInfo {
  name: string;
  index: number;
  up: boolean;
  kind?: string;
  mac?: string;
}

export const OWNED_TUNNELS = [VXLAN_DEVICE_V4, VXLAN_DEVICE_V6];

export function isOwnedLink(name: string): boolean {
  return name.startsWith(INTERFACE_PREFIX) || OWNED_TUNNELS.includes(name);
}

function macText(b: Buffer | undefined): string | undefined {
  return b && b.length === 6 ? [...b].map((x) => x.toString(16).padStart(2, '0')).join(':') : undefined;
}

/** True when this kernel can have an IPIP device (module built in or loadable and loaded). */
export function ipipSupported(): boolean {
  return existsSync('/proc/sys/net/ipv4/conf/tunl0') || existsSync('/sys/module/ipip');
}

interface IpVxlanJson {
  ifname: string;
  address?: string;
  mtu?: number;
  operstate?: string;
  flags?: string[];
  linkinfo?: {
    info_kind?: string;
    info_data?: {
      id?: number;
      local?: string;
      local6?: string;
      port?: number;
      learning?: boolean;
      link?: string;
    };
  };
}
interface IpAddrJson {
  addr_info?: Array<{ local: string; prefixlen: number; family: string; scope?: string }>;
}

export interface LinkChange {
  link: string;
  action: 'up' | 'create' | 'recreate' | 'set-mac' | 'set-mtu' | 'addr' | 'delete';
}

export class LinkDriver {
  /** name → info, refreshed by `dump()`. */
  links = new Map<string, LinkInfo>();

  constructor(private readonly rtnl: Rtnl) {}

  async dump(): Promise<Map<string, LinkInfo>> {
    const msgs = await this.rtnl.request('dump', 'links', (s, o) => s.getLinks(undefined, undefined, o));
    const out = new Map<string, LinkInfo>();
    for (const m of msgs) {
      const name = m.attrs.ifname;
      if (!name || m.data.index === undefined) continue;
      let kind: string | undefined;
      if (m.attrs.linkinfo) {
        try {
          kind = ifla.parseInfo(m.attrs.linkinfo).kind;
        } catch {
          kind = undefined;
        }
      }
      out.set(name, {
        name,
        index: m.data.index,
        up: m.data.flags?.up === true,
        kind,
        mac: macText(m.attrs.address),
      });
    }
    this.links = out;
    return out;
  }

  index(name: string): number | undefined {
    return this.links.get(name)?.index;
  }

  nameOf(index: number): string | undefined {
    for (const l of this.links.values()) if (l.index === index) return l.name;
    return undefined;
  }

  /** Brings the workload interfaces that exist up; absent ones wait for the CNI plugin. */
  async ensureUp(names: Iterable<string>): Promise<{ changes: LinkChange[]; errors: unknown[] }> {
    const down = [...names]
      .map((n) => this.links.get(n))
      .filter((l): l is LinkInfo => l !== undefined && !l.up);
    const changes: LinkChange[] = [];
    const errors = await runBounded(down, 32, async (l) => {
      await this.rtnl.request('set-up', l.name, (s, o) =>
        s.setLink({ index: l.index, change: { up: true }, flags: { up: true } }, {}, o),
      );
      l.up = true;
      changes.push({ link: l.name, action: 'up' });
    });
    return { changes, errors };
  }

  /** Creates, corrects or removes the agent's tunnel devices. Only recreates on immutable mismatch. */
  async reconcileTunnels(
    desired: ReadonlyMap<string, TunnelSpec>,
    retain: ReadonlySet<string>,
    ipipOk: boolean,
  ): Promise<LinkChange[]> {
    const changes: LinkChange[] = [];
    for (const name of OWNED_TUNNELS) {
      const want = desired.get(name);
      const have = this.links.has(name);
      if (!want && have && !retain.has(name)) {
        await runIp(['link', 'del', name]);
        changes.push({ link: name, action: 'delete' });
      } else if (want?.kind === 'vxlan') {
        changes.push(...(await this.reconcileVxlan(want)));
      }
    }
    const ipip = desired.get(IPIP_DEVICE);
    // tunl0 is the kernel's fallback device: bring it up and address it; never create or delete it.
    if (ipip?.kind === 'ipip' && ipipOk && this.links.has(IPIP_DEVICE)) {
      await runIp(['link', 'set', IPIP_DEVICE, 'up']);
      await this.ensureAddress(IPIP_DEVICE, ipip.address, changes);
    }
    if (changes.length > 0) await this.dump();
    return changes;
  }

  private async reconcileVxlan(want: VxlanLinkSpec): Promise<LinkChange[]> {
    const changes: LinkChange[] = [];
    let cur: IpVxlanJson | undefined;
    if (this.links.has(want.name)) {
      [cur] = await ipJson<IpVxlanJson[]>(['-d', 'link', 'show', 'dev', want.name]);
    }
    const data = cur?.linkinfo?.info_data;
    const local = want.family === 4 ? data?.local : data?.local6;
    const immutableOk =
      cur !== undefined &&
      cur.linkinfo?.info_kind === 'vxlan' &&
      data?.id === want.vni &&
      data?.port === want.port &&
      local === want.local &&
      (want.parent === undefined || data?.link === want.parent);
    if (cur && !immutableOk) {
      await runIp(['link', 'del', want.name]);
      changes.push({ link: want.name, action: 'recreate' });
      cur = undefined;
    }
    if (!cur) {
      const args = ['link', 'add', want.name, 'address', want.mac];
      if (want.mtu > 0) args.push('mtu', String(want.mtu));
      args.push(
        'type',
        'vxlan',
        'id',
        String(want.vni),
        'dstport',
        String(want.port),
        'local',
        want.local,
        'nolearning',
      );
      if (want.parent) args.push('dev', want.parent);
      await runIp(args);
      if (changes.length === 0) changes.push({ link: want.name, action: 'create' });
    } else {
      if (cur.address?.toLowerCase() !== want.mac) {
        await runIp(['link', 'set', want.name, 'address', want.mac]);
        changes.push({ link: want.name, action: 'set-mac' });
      }
      if (want.mtu > 0 && cur.mtu !== want.mtu) {
        await runIp(['link', 'set', want.name, 'mtu', String(want.mtu)]);
        changes.push({ link: want.name, action: 'set-mtu' });
      }
    }
    if (!cur?.flags?.includes('UP')) {
      await runIp(['link', 'set', want.name, 'up']);
      if (cur) changes.push({ link: want.name, action: 'up' });
    }
    await this.ensureAddress(want.name, want.address, changes);
    return changes;
  }

  /** Makes `addr` the only global address on an owned tunnel device. */
  private async ensureAddress(dev: string, addr: string, changes: LinkChange[]): Promise<void> {
    const [info] = await ipJson<IpAddrJson[]>(['addr', 'show', 'dev', dev]);
    const have = (info?.addr_info ?? [])
      .filter((a) => a.scope !== 'link')
      .map((a) => `${a.local}/${a.prefixlen}`);
    if (!have.includes(addr)) {
      await runIp(['addr', 'add', addr, 'dev', dev]);
      changes.push({ link: dev, action: 'addr' });
    }
    for (const stale of have.filter((a) => a !== addr)) {
      await runIp(['addr', 'del', stale, 'dev', dev]);
      changes.push({ link: dev, action: 'addr' });
    }
  }
}

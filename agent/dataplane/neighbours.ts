// Neighbour driver: permanent ARP/NDP entries (workload IP → workload MAC on its veth; remote VTEP
// tunnel address → VTEP MAC on the vxlan device) and VXLAN FDB entries (VTEP MAC → remote node IP).
// Only entries on links the agent owns are read, compared or removed.
import { bytesToIp, type Family, ipToBytes } from '../../lib/ip.js';
import { type FdbSpec, fdbKey, type NeighSpec, neighKey } from '../calc/model.js';
import { isOwnedLink, type LinkDriver } from './links.js';
import { alreadyGone, MAX_IN_FLIGHT, type Rtnl, runBounded } from './rtnl.js';

const AF_BRIDGE = 7;
const NLM_F_REPLACE_CREATE = 0x100 | 0x400;

const macText = (b: Buffer | undefined): string =>
  b ? [...b].map((x) => x.toString(16).padStart(2, '0')).join(':') : '';
const macBytes = (m: string): Buffer => Buffer.from(m.split(':').map((x) => Number.parseInt(x, 16)));

export interface NeighApplyResult {
  written: number;
  deleted: number;
  pending: number;
  errors: unknown[];
}

export class NeighbourDriver {
  private neighs = new Map<string, NeighSpec>();
  private fdb = new Map<string, FdbSpec>();

  constructor(
    private readonly rtnl: Rtnl,
    private readonly links: LinkDriver,
  ) {}

  async dump(): Promise<void> {
    const neighs = new Map<string, NeighSpec>();
    for (const family of [2, 10]) {
      const msgs = await this.rtnl.request('dump', `neighbours family ${family}`, (s, o) =>
        s.getNeighbors({ family }, undefined, o),
      );
      for (const m of msgs) {
        const dev = m.data.ifindex === undefined ? undefined : this.links.nameOf(m.data.ifindex);
        if (!dev || !isOwnedLink(dev) || !m.data.state?.permanent || !m.attrs.dst) continue;
        const n: NeighSpec = {
          family: (family === 2 ? 4 : 6) as Family,
          dev,
          ip: bytesToIp(m.attrs.dst),
          mac: macText(m.attrs.lladdr),
        };
        neighs.set(neighKey(n), n);
      }
    }
    const fdb = new Map<string, FdbSpec>();
    const msgs = await this.rtnl.request('dump', 'fdb', (s, o) =>
      s.getNeighbors({ family: AF_BRIDGE }, undefined, o),
    );
    for (const m of msgs) {
      const dev = m.data.ifindex === undefined ? undefined : this.links.nameOf(m.data.ifindex);
      if (!dev || !isOwnedLink(dev) || !m.attrs.dst || !m.attrs.lladdr) continue;
      const f: FdbSpec = { dev, mac: macText(m.attrs.lladdr), dst: bytesToIp(m.attrs.dst) };
      fdb.set(fdbKey(f), f);
    }
    this.neighs = neighs;
    this.fdb = fdb;
  }

  async apply(
    wantNeigh: ReadonlyMap<string, NeighSpec>,
    wantFdb: ReadonlyMap<string, FdbSpec>,
  ): Promise<NeighApplyResult> {
    const res: NeighApplyResult = { written: 0, deleted: 0, pending: 0, errors: [] };
    const neighWrites = [...wantNeigh].filter(([k, n]) => {
      if (this.links.index(n.dev) === undefined) {
        res.pending++;
        return false;
      }
      return this.neighs.get(k)?.mac !== n.mac;
    });
    const neighDeletes = [...this.neighs].filter(([k]) => !wantNeigh.has(k));
    const fdbWrites = [...wantFdb].filter(
      ([k, f]) => this.links.index(f.dev) !== undefined && this.fdb.get(k)?.dst !== f.dst,
    );
    const fdbDeletes = [...this.fdb].filter(([k]) => !wantFdb.has(k));

    res.errors.push(
      ...(await runBounded(neighDeletes, MAX_IN_FLIGHT, async ([k, n]) => {
        const ifindex = this.links.index(n.dev);
        if (ifindex !== undefined) {
          await this.rtnl
            .request('delete-neigh', `${n.ip} dev ${n.dev}`, (s, o) =>
              s.delNeighbor(
                { family: n.family === 4 ? 2 : 10, ifindex },
                { dst: Buffer.from(ipToBytes(n.ip)) },
                o,
              ),
            )
            .catch((err: unknown) => {
              if (!alreadyGone(err)) throw err;
            });
        }
        this.neighs.delete(k);
        res.deleted++;
      })),
      ...(await runBounded(fdbDeletes, MAX_IN_FLIGHT, async ([k, f]) => {
        const ifindex = this.links.index(f.dev);
        if (ifindex !== undefined) {
          await this.rtnl
            .request('delete-fdb', `${f.mac} dev ${f.dev}`, (s, o) =>
              s.delNeighbor(
                { family: AF_BRIDGE, ifindex, flags: { self: true } },
                { lladdr: macBytes(f.mac), dst: Buffer.from(ipToBytes(f.dst)) },
                o,
              ),
            )
            .catch((err: unknown) => {
              if (!alreadyGone(err)) throw err;
            });
        }
        this.fdb.delete(k);
        res.deleted++;
      })),
      ...(await runBounded(neighWrites, MAX_IN_FLIGHT, async ([k, n]) => {
        const ifindex = this.links.index(n.dev)!;
        await this.rtnl.request('replace-neigh', `${n.ip} dev ${n.dev}`, (s, o) =>
          s.newNeighbor(
            { family: n.family === 4 ? 2 : 10, ifindex, state: { permanent: true } },
            { dst: Buffer.from(ipToBytes(n.ip)), lladdr: macBytes(n.mac) },
            { ...o, flags: NLM_F_REPLACE_CREATE },
          ),
        );
        this.neighs.set(k, n);
        res.written++;
      })),
      ...(await runBounded(fdbWrites, MAX_IN_FLIGHT, async ([k, f]) => {
        const ifindex = this.links.index(f.dev)!;
        await this.rtnl.request('replace-fdb', `${f.mac} dev ${f.dev}`, (s, o) =>
          s.newNeighbor(
            { family: AF_BRIDGE, ifindex, state: { permanent: true }, flags: { self: true } },
            { lladdr: macBytes(f.mac), dst: Buffer.from(ipToBytes(f.dst)) },
            { ...o, flags: NLM_F_REPLACE_CREATE },
          ),
        );
        this.fdb.set(k, f);
        res.written++;
      })),
    );
    return res;
  }
}

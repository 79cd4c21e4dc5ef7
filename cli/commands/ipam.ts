// gingham ipam show|check|release: IPAM reports and repair, straight on the IPAM keys in etcd.
import { Allocator } from '../../ipam/allocator.js';
import { EtcdLite, etcdTlsFromEnv, parseEndpoints } from '../../ipam/etcd-lite.js';
import {
  type CheckReport,
  checkReport,
  loadSnapshot,
  type ShowReport,
  showReport,
} from '../../ipam/report.js';
import { ipFamily } from '../../lib/ip.js';
import { parseCommandArgs, reportError, str, UsageError } from '../common.js';

const HELP = [
  'Usage: gingham ipam show [--show-blocks] [-o json]',
  '       gingham ipam check [-o json]',
  '       gingham ipam release --ip IP',
  '',
  'show     per pool: size, addresses in use, free; with --show-blocks also per block: CIDR, pool,',
  '         affine node, in use, free. -o json prints {"pools":[…],"blocks":[…]}.',
  'check    finds leaked addresses (allocated, no workload endpoint), endpoint addresses that are',
  '         not allocated, affinities to nodes that do not exist, and block/handle inconsistencies.',
  '         Exit code 0 when clean, 1 when it found problems.',
  'release  frees an allocated address (whoever holds it); an emptied block returns to its pool.',
  '',
  'Options:',
  '  --show-blocks           list blocks too (show)',
  '  -o, --output json       JSON instead of a table',
  '  --ip IP                 the address to release',
  '  --etcd-endpoints URLS   etcd client URLs (default $ETCD_ENDPOINTS or http://127.0.0.1:2379)',
].join('\n');

function table(rows: (string | number | null)[][]): string {
  const cells = rows.map((r) => r.map((c) => (c === null ? '-' : String(c))));
  const widths = cells[0]!.map((_, i) => Math.max(...cells.map((r) => r[i]!.length)));
  return cells
    .map((r) =>
      r
        .map((c, i) => c.padEnd(widths[i]!))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}

function renderShow(r: ShowReport, showBlocks: boolean): string {
  const out = [
    table([
      ['POOL', 'CIDR', 'SIZE', 'IN USE', 'FREE'],
      ...r.pools.map((p) => [p.name, p.cidr, p.size, p.inUse, p.free]),
    ]),
  ];
  if (showBlocks) {
    out.push(
      '',
      table([
        ['BLOCK', 'POOL', 'NODE', 'IN USE', 'FREE'],
        ...r.blocks.map((b) => [b.cidr, b.pool, b.node, b.inUse, b.free]),
      ]),
    );
  }
  return `${out.join('\n')}\n`;
}

function renderCheck(r: CheckReport): string {
  const lines: string[] = [];
  for (const l of r.leaked)
    lines.push(
      `leaked: ${l.ip} (block ${l.block}, handle ${l.handleId ?? '-'}, node ${l.node ?? '-'}) has no workload endpoint`,
    );
  for (const u of r.unallocatedEndpointAddresses)
    lines.push(`unallocated: endpoint ${u.namespace}/${u.endpoint} uses ${u.ip}, which is not allocated`);
  for (const a of r.orphanAffinities)
    lines.push(`orphan affinity: node ${a.node} (does not exist) holds block ${a.cidr}`);
  for (const i of r.inconsistencies) lines.push(`inconsistent: ${i}`);
  lines.push(r.ok ? 'IPAM is consistent: no problems found.' : `${lines.length} problem(s) found.`);
  return `${lines.join('\n')}\n`;
}

export async function run(argv: string[]): Promise<number> {
  let kv: EtcdLite | undefined;
  try {
    const args = parseCommandArgs(
      argv,
      { 'show-blocks': { type: 'boolean' }, output: { type: 'string', short: 'o' }, ip: { type: 'string' } },
      HELP,
    );
    if (!args) return 0;
    const [sub, ...extra] = args.positionals;
    if (extra.length > 0) throw new UsageError(`unexpected argument "${extra[0]}"`);
    const output = str(args.values.output);
    if (output !== undefined && output !== 'json')
      throw new UsageError(`-o ${output}: only json is supported`);
    kv = new EtcdLite(
      parseEndpoints(process.env.ETCD_ENDPOINTS || 'http://127.0.0.1:2379'),
      undefined,
      etcdTlsFromEnv(),
    );
    switch (sub) {
      case 'show': {
        const r = showReport(await loadSnapshot(kv));
        process.stdout.write(
          output === 'json'
            ? `${JSON.stringify(r, null, 2)}\n`
            : renderShow(r, args.values['show-blocks'] === true),
        );
        return 0;
      }
      case 'check': {
        const r = checkReport(await loadSnapshot(kv));
        process.stdout.write(output === 'json' ? `${JSON.stringify(r, null, 2)}\n` : renderCheck(r));
        return r.ok ? 0 : 1;
      }
      case 'release': {
        const ip = str(args.values.ip);
        if (!ip) throw new UsageError(`release needs --ip IP\n\n${HELP}`);
        if (ipFamily(ip) === null) throw new UsageError(`--ip ${ip}: not an IPv4 or IPv6 address`);
        const released = await new Allocator(kv, { node: '' }).releaseAddresses([ip]);
        if (released.length === 0) {
          process.stderr.write(`error: ${ip} is not allocated\n`);
          return 1;
        }
        process.stdout.write(`released ${released.join(', ')}\n`);
        return 0;
      }
      case undefined:
        throw new UsageError(`a subcommand is required\n\n${HELP}`);
      default:
        throw new UsageError(`unknown ipam subcommand "${sub}"\n\n${HELP}`);
    }
  } catch (e) {
    return reportError(e);
  } finally {
    kv?.close();
  }
}

// Rendering resources for `gingham get`: yaml, json, name, and tables (default and wide).
import { stringify } from 'yaml';
import type { Kind, Resource } from '../store/api.js';
import { type KindInfo, kindInfo } from '../store/kinds.js';

export type OutputFormat = 'table' | 'wide' | 'yaml' | 'json' | 'name';

export function parseOutputFormat(v: string | undefined): OutputFormat {
  if (v === undefined || v === 'ps' || v === 'table') return 'table';
  if (v === 'wide' || v === 'yaml' || v === 'json' || v === 'name') return v;
  throw new Error(`unknown output format "${v}" (expected yaml, json, wide or name)`);
}

/** `{"apiVersion": …, "kind": "<Kind>List", "items": […]}` */
export function listObject(
  info: KindInfo,
  items: Resource[],
): { apiVersion: string; kind: string; items: Resource[] } {
  return { apiVersion: info.apiVersion, kind: `${info.wireKind}List`, items };
}

type Spec = Record<string, unknown>;
interface Column {
  header: string;
  value(r: Resource): string;
  /** Only with -o wide. */
  wide?: boolean;
}

function spec(r: Resource): Spec {
  return (r.spec ?? {}) as Spec;
}
function field(path: string): (r: Resource) => string {
  return (r) => {
    let v: unknown = r.spec;
    for (const p of path.split('.')) v = v && typeof v === 'object' ? (v as Spec)[p] : undefined;
    return show(v);
  };
}
function show(v: unknown): string {
  if (v === undefined || v === null || v === '') return '';
  if (Array.isArray(v)) return v.map(show).join(',');
  if (typeof v === 'object') return JSON.stringify(v);
  return String(v);
}
function labels(r: Resource): string {
  return Object.entries(r.metadata.labels ?? {})
    .map(([k, v]) => `${k}=${v}`)
    .join(',');
}
function selectorOf(key: string): (r: Resource) => string {
  return (r) => {
    const sel = spec(r)[key] as
      | { matchLabels?: Record<string, string>; matchExpressions?: unknown[] }
      | undefined;
    if (!sel) return '';
    const parts = Object.entries(sel.matchLabels ?? {}).map(([k, v]) => `${k}=${v}`);
    if (sel.matchExpressions?.length) parts.push(`+${sel.matchExpressions.length} expr`);
    return parts.length ? parts.join(',') : '<all>';
  };
}

const COLUMNS: Record<Kind, Column[]> = {
  Node: [
    { header: 'ASN', value: field('bgp.asNumber') },
    { header: 'IPV4', value: field('bgp.ipv4Address') },
    { header: 'IPV6', value: field('bgp.ipv6Address'), wide: true },
    { header: 'RR-CLUSTER-ID', value: field('bgp.routeReflectorClusterID'), wide: true },
    { header: 'VXLAN-TUNNEL', value: field('ipv4VXLANTunnelAddr'), wide: true },
  ],
  IPPool: [
    { header: 'CIDR', value: field('cidr') },
    { header: 'SELECTOR', value: field('nodeSelector') },
    { header: 'BLOCKSIZE', value: field('blockSize'), wide: true },
    { header: 'IPIP', value: field('ipipMode'), wide: true },
    { header: 'VXLAN', value: field('vxlanMode'), wide: true },
    { header: 'NAT', value: field('natOutgoing'), wide: true },
    { header: 'DISABLED', value: field('disabled'), wide: true },
  ],
  IPAMConfiguration: [
    { header: 'STRICTAFFINITY', value: field('strictAffinity') },
    { header: 'MAXBLOCKSPERHOST', value: field('maxBlocksPerHost') },
    { header: 'AUTOALLOCATEBLOCKS', value: field('autoAllocateBlocks'), wide: true },
  ],
  BGPConfiguration: [
    { header: 'LOGSEVERITY', value: field('logSeverityScreen') },
    { header: 'MESHENABLED', value: field('nodeToNodeMeshEnabled') },
    { header: 'ASNUMBER', value: field('asNumber') },
    { header: 'LISTENPORT', value: field('listenPort'), wide: true },
  ],
  BGPPeer: [
    { header: 'PEERIP', value: (r) => show(spec(r).peerIP ?? spec(r).peerSelector) },
    { header: 'NODE', value: (r) => show(spec(r).node ?? spec(r).nodeSelector ?? '(global)') },
    { header: 'ASN', value: field('asNumber') },
    { header: 'KEEPALIVE', value: field('keepaliveTime'), wide: true },
  ],
  WorkloadEndpoint: [
    { header: 'WORKLOAD', value: field('workload') },
    { header: 'NODE', value: field('node') },
    { header: 'NETWORKS', value: field('ipNetworks') },
    { header: 'INTERFACE', value: field('interfaceName') },
    { header: 'PROFILES', value: field('profiles'), wide: true },
    { header: 'MAC', value: field('mac'), wide: true },
  ],
  HostEndpoint: [
    { header: 'NODE', value: field('node') },
    { header: 'INTERFACE', value: field('interfaceName') },
    { header: 'IPS', value: field('expectedIPs') },
    { header: 'PROFILES', value: field('profiles'), wide: true },
  ],
  NetworkPolicy: [
    { header: 'TIER', value: field('tier'), wide: true },
    { header: 'ORDER', value: field('order') },
    { header: 'SELECTOR', value: field('selector') },
    { header: 'TYPES', value: field('types'), wide: true },
  ],
  GlobalNetworkPolicy: [
    { header: 'TIER', value: field('tier'), wide: true },
    { header: 'ORDER', value: field('order') },
    { header: 'SELECTOR', value: field('selector') },
    { header: 'TYPES', value: field('types'), wide: true },
  ],
  Profile: [{ header: 'LABELS-TO-APPLY', value: field('labelsToApply'), wide: true }],
  Tier: [
    { header: 'ORDER', value: field('order') },
    { header: 'DEFAULTACTION', value: field('defaultAction') },
  ],
  NetworkSet: [{ header: 'NETS', value: field('nets') }],
  GlobalNetworkSet: [{ header: 'NETS', value: field('nets') }],
  FelixConfiguration: [
    { header: 'INTERFACEPREFIX', value: field('interfacePrefix'), wide: true },
    { header: 'LOGSEVERITY', value: field('logSeverityScreen'), wide: true },
  ],
  Namespace: [],
  K8sNetworkPolicy: [
    { header: 'POD-SELECTOR', value: selectorOf('podSelector') },
    { header: 'POLICY-TYPES', value: field('policyTypes'), wide: true },
  ],
};

export function table(kind: Kind, items: Resource[], wide: boolean): string {
  const info = kindInfo(kind);
  const cols: Column[] = [];
  if (info.namespaced) cols.push({ header: 'NAMESPACE', value: (r) => r.metadata.namespace ?? '' });
  cols.push({ header: 'NAME', value: (r) => r.metadata.name });
  cols.push(...COLUMNS[kind].filter((c) => wide || !c.wide));
  if (wide) cols.push({ header: 'LABELS', value: labels });
  const rows = [cols.map((c) => c.header), ...items.map((r) => cols.map((c) => c.value(r)))];
  const widths = cols.map((_, i) => Math.max(...rows.map((row) => row[i]!.length)));
  return rows
    .map((row) =>
      row
        .map((cell, i) => (i === row.length - 1 ? cell : cell.padEnd(widths[i]!)))
        .join('   ')
        .trimEnd(),
    )
    .join('\n');
}

export function render(kind: Kind, items: Resource[], format: OutputFormat, single: boolean): string {
  const info = kindInfo(kind);
  switch (format) {
    case 'json':
      return JSON.stringify(single ? items[0] : listObject(info, items), null, 2);
    case 'yaml':
      return stringify(single ? items[0] : listObject(info, items)).trimEnd();
    case 'name':
      return items.map((r) => `${info.singular}/${r.metadata.name}`).join('\n');
    case 'wide':
    case 'table':
      return table(kind, items, format === 'wide');
  }
}

// `gingham node status`: the BGP sessions of a node, read from the status its agent (or
// reflector) publishes in the store — so it works from any machine, like calicoctl node status.
import { hostname } from 'node:os';
import type { BgpStatusDoc } from '../../agent/bgp/runner.js';
import { parseCommandArgs, reportError, str, UsageError, withStore } from '../common.js';

const HELP = [
  'Usage: gingham node status [--node NAME] [-o json]',
  '',
  'Shows the BGP peers of a node: address, type, state, since, info, prefixes received/advertised.',
  '',
  'Options:',
  '  --node NAME             the node (default $NODENAME, else this host name)',
  '  -o, --output json       JSON: {"node": …, "peers": [{"address", "type", "state", "since",',
  '                          "prefixesReceived", "prefixesAdvertised"}]}',
  '  --etcd-endpoints URLS   etcd client URLs (default $ETCD_ENDPOINTS or http://127.0.0.1:2379)',
].join('\n');

/** Status older than this means the publisher is probably gone. */
const STALE_MS = 60_000;

export interface NodeStatusJson {
  node: string;
  peers: Array<{
    address: string;
    type: string;
    state: string;
    since: string;
    prefixesReceived: number;
    prefixesAdvertised: number;
  }>;
}

export function toJson(doc: BgpStatusDoc): NodeStatusJson {
  return {
    node: doc.node,
    peers: doc.peers.map((p) => ({
      address: p.address,
      type: p.type,
      state: p.state,
      since: p.since,
      prefixesReceived: p.prefixesReceived,
      prefixesAdvertised: p.prefixesAdvertised,
    })),
  };
}

function boxTable(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = `+${widths.map((w) => '-'.repeat(w + 2)).join('+')}+`;
  const fmt = (r: string[]) => `|${r.map((c, i) => ` ${c.padEnd(widths[i]!)} `).join('|')}|`;
  return [line, fmt(header), line, ...rows.map(fmt), line].join('\n');
}

function sinceText(iso: string, now: Date): string {
  const t = new Date(iso);
  if (Number.isNaN(t.getTime())) return iso;
  const sameDay = t.toISOString().slice(0, 10) === now.toISOString().slice(0, 10);
  return sameDay ? t.toISOString().slice(11, 19) : t.toISOString().slice(0, 10);
}

/** The calicoctl-like text view. */
export function renderTable(doc: BgpStatusDoc, now = new Date()): string {
  const out: string[] = [];
  const age = now.getTime() - new Date(doc.updated).getTime();
  out.push(
    `BGP status of node ${doc.node} (router id ${doc.routerId}, AS ${doc.asn}), reported ${doc.updated}`,
  );
  if (age > STALE_MS)
    out.push(`WARNING: the report is ${Math.round(age / 1000)} s old: is the agent on ${doc.node} running?`);
  for (const fam of [4, 6] as const) {
    const peers = doc.peers.filter((p) => p.address.includes(':') === (fam === 6));
    out.push('', `IPv${fam} BGP status`);
    if (peers.length === 0) {
      out.push(`No IPv${fam} peers found.`);
      continue;
    }
    out.push(
      boxTable(
        ['PEER ADDRESS', 'PEER TYPE', 'STATE', 'SINCE', 'INFO', 'RECEIVED', 'ADVERTISED'],
        peers.map((p) => [
          p.address,
          p.type,
          p.state === 'Established' ? 'up' : 'start',
          sinceText(p.since, now),
          p.state === 'Established' || !p.lastError ? p.state : `${p.state} (${p.lastError})`,
          String(p.prefixesReceived),
          String(p.prefixesAdvertised),
        ]),
      ),
    );
  }
  return `${out.join('\n')}\n`;
}

export async function run(argv: string[]): Promise<number> {
  let parsed: ReturnType<typeof parseCommandArgs>;
  try {
    parsed = parseCommandArgs(
      argv,
      { node: { type: 'string' }, output: { type: 'string', short: 'o' } },
      HELP,
    );
  } catch (e) {
    return reportError(e);
  }
  if (!parsed) return 0;
  const [sub, ...extra] = parsed.positionals;
  if (sub !== 'status' || extra.length > 0)
    return reportError(new UsageError(`expected "status"\n\n${HELP}`));
  const output = str(parsed.values.output);
  if (output !== undefined && output !== 'json' && output !== 'table') {
    return reportError(new UsageError(`-o must be json or table, not "${output}"`));
  }
  const node = str(parsed.values.node) ?? process.env.NODENAME ?? hostname();
  const { bgpStatusKey } = await import('../../agent/bgp/runner.js');
  return withStore(async (store) => {
    const kv = await store.kvGet(bgpStatusKey(node));
    if (!kv) {
      process.stderr.write(`error: no BGP status for node "${node}" (is its agent running with BGP?)\n`);
      return 1;
    }
    const doc = JSON.parse(kv.value.toString('utf8')) as BgpStatusDoc;
    process.stdout.write(output === 'json' ? `${JSON.stringify(toJson(doc), null, 2)}\n` : renderTable(doc));
    return 0;
  });
}

// gingham policy render | explain: the policy compiler and evaluator from the command line.
// `render` works from files only (no etcd, no root): the dry run users and tests rely on.
// `explain` reads the cluster from etcd, or from files with -f.
import { ExplainError, explain, formatExplanation } from '../../policy/explain.js';
import { buildModel, compileModel, type Problem, toNftJson } from '../../policy/index.js';
import { POLICY_SOURCE_KINDS } from '../../policy/kinds.js';
import type { Kind, Resource } from '../../store/index.js';
import { loadManifest } from '../../store/manifest.js';
import { parseCommandArgs, reportError, str, UsageError, withStore } from '../common.js';

const HELP = [
  'Usage: gingham policy render --node NAME -f FILE [-f FILE...] [--table NAME] [--compact] [--check]',
  '       gingham policy explain --from NS/POD --to NS/POD --protocol TCP|UDP|ICMP [--port N] [-o text|json] [-f FILE...]',
  '',
  'render   Print the nftables ruleset (nft -j JSON, one atomic transaction) that node NAME',
  '         would enforce for the resources in the files. Needs neither etcd nor root.',
  '         Problems (invalid selectors, missing tiers, named ports that resolve to nothing)',
  '         go to stderr; --check makes errors exit 1.',
  'explain  Show, for both directions (egress of --from, ingress of --to), which tier, policy and',
  '         rule - or profile, or default - decides a new connection, and the verdict.',
  '         --from/--to take NS/POD, a HostEndpoint name, or an IP address. Reads etcd unless',
  '         -f files are given.',
  '',
  'Options:',
  '  -f, --filename FILE     manifest (YAML or JSON, several documents); repeatable; - for stdin',
  '  --node NAME             the node to render for (render)',
  '  --table NAME            nft table name (default gingham)',
  '  --compact               one-line JSON (render)',
  '  -o, --output FORMAT     text (default) or json (explain)',
  '  --etcd-endpoints URLS   etcd client URLs (explain without -f)',
].join('\n');

/** Where a command writes (tests pass their own; the node:test runner owns the real stdout). */
export interface Io {
  out(s: string): void;
  err(s: string): void;
}
const stdio: Io = { out: (s) => void process.stdout.write(s), err: (s) => void process.stderr.write(s) };
let io: Io = stdio;

/** Kinds the policy model reads from the store. */
const POLICY_KINDS: Kind[] = [...POLICY_SOURCE_KINDS, 'WorkloadEndpoint', 'IPPool'];

async function loadFiles(files: string[]): Promise<Resource[]> {
  const out: Resource[] = [];
  for (const f of files) for (const e of await loadManifest(f)) out.push(e.resource);
  return out;
}

function printProblems(ps: Problem[]): void {
  for (const p of ps) {
    const msg = p.message.replace(/\n/g, '\n    ');
    io.err(`${p.severity}: ${p.object}: ${msg}\n`);
  }
}

function files(v: unknown): string[] {
  if (Array.isArray(v)) return v.filter((x): x is string => typeof x === 'string');
  return typeof v === 'string' ? [v] : [];
}

async function render(argv: string[]): Promise<number> {
  const args = parseCommandArgs(
    argv,
    {
      node: { type: 'string' },
      filename: { type: 'string', short: 'f', multiple: true },
      table: { type: 'string' },
      compact: { type: 'boolean' },
      check: { type: 'boolean' },
    },
    HELP,
  );
  if (!args) return 0;
  const node = str(args.values.node);
  const fs = files(args.values.filename);
  if (!node) throw new UsageError(`--node is required\n\n${HELP}`);
  if (fs.length === 0) throw new UsageError(`at least one -f FILE is required\n\n${HELP}`);
  const resources = await loadFiles(fs);
  const model = buildModel({ node, resources });
  const table = str(args.values.table);
  const r = compileModel(model, table ? { table } : {});
  const json = toNftJson(r.ruleset);
  io.out(`${args.values.compact ? JSON.stringify(json) : JSON.stringify(json, null, 2)}\n`);
  printProblems(r.problems);
  const locals = model.endpoints.filter((e) => e.node === node && e.iface).length;
  if (locals === 0) io.err(`note: node "${node}" has no local endpoints with an interface in these files\n`);
  return args.values.check && r.problems.some((p) => p.severity === 'error') ? 1 : 0;
}

async function explainCmd(argv: string[]): Promise<number> {
  const args = parseCommandArgs(
    argv,
    {
      from: { type: 'string' },
      to: { type: 'string' },
      port: { type: 'string' },
      protocol: { type: 'string' },
      output: { type: 'string', short: 'o' },
      filename: { type: 'string', short: 'f', multiple: true },
    },
    HELP,
  );
  if (!args) return 0;
  const from = str(args.values.from);
  const to = str(args.values.to);
  const protocol = str(args.values.protocol) ?? 'TCP';
  const portText = str(args.values.port);
  const output = str(args.values.output) ?? 'text';
  if (!from || !to) throw new UsageError(`--from and --to are required\n\n${HELP}`);
  if (!['TCP', 'UDP', 'ICMP', 'SCTP', 'ICMPV6'].includes(protocol.toUpperCase())) {
    throw new UsageError(`--protocol must be TCP, UDP, ICMP, ICMPv6 or SCTP, not "${protocol}"`);
  }
  if (portText !== undefined && !/^\d{1,5}$/.test(portText))
    throw new UsageError(`--port must be a number, not "${portText}"`);
  const port = portText === undefined ? undefined : Number(portText);
  if (port !== undefined && port > 65535) throw new UsageError('--port must be ≤ 65535');
  if (output !== 'text' && output !== 'json')
    throw new UsageError(`-o must be text or json, not "${output}"`);

  const run = (resources: Resource[]): number => {
    const model = buildModel({ node: '', resources });
    let x: ReturnType<typeof explain>;
    try {
      x = explain(model, { from, to, protocol, ...(port !== undefined ? { port } : {}) });
    } catch (e) {
      if (e instanceof ExplainError) {
        io.err(`error: ${e.message}\n`);
        return 1;
      }
      throw e;
    }
    if (output === 'json') io.out(`${JSON.stringify({ ...x, problems: model.problems }, null, 2)}\n`);
    else {
      io.out(formatExplanation(x));
      printProblems(model.problems);
    }
    return 0;
  };
  const fs = files(args.values.filename);
  if (fs.length > 0) return run(await loadFiles(fs));
  return withStore(async (store) => {
    const lists = await Promise.all(POLICY_KINDS.map((k) => store.list(k)));
    return run(lists.flatMap((l) => l.items));
  });
}

export async function run(argv: string[], out: Io = stdio): Promise<number> {
  const [sub, ...rest] = argv;
  io = out;
  try {
    switch (sub) {
      case 'render':
        return await render(rest);
      case 'explain':
        return await explainCmd(rest);
      case undefined:
      case '-h':
      case '--help':
        io.out(`${HELP}\n`);
        return sub === undefined ? 1 : 0;
      default:
        throw new UsageError(`unknown subcommand "${sub}"\n\n${HELP}`);
    }
  } catch (e) {
    if (
      e instanceof UsageError ||
      (e instanceof Error && (e.name === 'ExplainError' || e.name === 'PolicyModelError'))
    ) {
      io.err(`error: ${e.message}\n`);
      return 1;
    }
    return reportError(e);
  } finally {
    io = stdio;
  }
}

// gingham label KIND NAME key=value... [--overwrite] | key-   (compare-and-swap on the object)
import { ConflictError, resolveKind, validateResource } from '../../store/index.js';
import { parseCommandArgs, reportError, str, UsageError, withStore } from '../common.js';

const HELP = [
  'Usage: gingham label KIND NAME KEY=VALUE... [--overwrite] [-n NAMESPACE]',
  '       gingham label KIND NAME KEY-...',
  '',
  'Add labels (KEY=VALUE), change them (needs --overwrite) or remove them (KEY-).',
  '',
  'Options:',
  '  --overwrite             allow changing the value of an existing label',
  '  -n, --namespace NS      namespace of a namespaced kind (default "default")',
  '  --etcd-endpoints URLS   etcd client URLs',
].join('\n');

export type LabelChange = { op: 'set'; key: string; value: string } | { op: 'remove'; key: string };

export function parseLabelChanges(words: string[]): LabelChange[] {
  return words.map((w) => {
    const eq = w.indexOf('=');
    if (eq > 0) return { op: 'set', key: w.slice(0, eq), value: w.slice(eq + 1) };
    if (w.endsWith('-') && w.length > 1) return { op: 'remove', key: w.slice(0, -1) };
    throw new UsageError(`"${w}" is neither KEY=VALUE nor KEY-`);
  });
}

/** Applies the changes to a label map; throws UsageError when a change is not allowed. */
export function applyLabelChanges(
  labels: Record<string, string>,
  changes: LabelChange[],
  overwrite: boolean,
): Record<string, string> {
  const out = { ...labels };
  for (const c of changes) {
    if (c.op === 'remove') {
      if (!(c.key in out)) throw new UsageError(`label "${c.key}" not found`);
      delete out[c.key];
    } else {
      if (c.key in out && out[c.key] !== c.value && !overwrite) {
        throw new UsageError(
          `label "${c.key}" already has value "${out[c.key]}"; use --overwrite to change it`,
        );
      }
      out[c.key] = c.value;
    }
  }
  return out;
}

export async function run(argv: string[]): Promise<number> {
  try {
    const args = parseCommandArgs(
      argv,
      { overwrite: { type: 'boolean' }, namespace: { type: 'string', short: 'n' } },
      HELP,
    );
    if (!args) return 0;
    const [kindWord, name, ...words] = args.positionals;
    if (!kindWord || !name || words.length === 0)
      throw new UsageError(`KIND, NAME and at least one label are required\n\n${HELP}`);
    const info = resolveKind(kindWord);
    const nsFlag = str(args.values.namespace);
    if (!info.namespaced && nsFlag) throw new UsageError(`${info.kind} is not namespaced: drop -n`);
    const namespace = info.namespaced ? (nsFlag ?? 'default') : undefined;
    const changes = parseLabelChanges(words);
    const overwrite = args.values.overwrite === true;
    return await withStore(async (store) => {
      // Read-modify-write with CAS; retry if someone else wrote in between.
      for (let attempt = 0; ; attempt++) {
        const cur = await store.get(info.kind, name, namespace);
        const next = structuredClone(cur);
        const labels = applyLabelChanges(cur.metadata.labels ?? {}, changes, overwrite);
        if (Object.keys(labels).length > 0) next.metadata.labels = labels;
        else delete next.metadata.labels;
        validateResource(next, { kind: info.wireKind, name, namespace });
        try {
          const out = await store.update(next);
          process.stdout.write(
            `${info.kind} ${namespace ? `${namespace}/` : ''}${name} labeled (resourceVersion ${out.metadata.resourceVersion})\n`,
          );
          return 0;
        } catch (e) {
          if (e instanceof ConflictError && attempt < 3) continue;
          throw e;
        }
      }
    });
  } catch (e) {
    return reportError(e);
  }
}

// gingham get KIND [NAME] [-n NS | -A] [-o yaml|json|wide|name]
import type { Resource } from '../../store/api.js';
import { KINDS, NotFoundError, resolveKind } from '../../store/index.js';
import { parseCommandArgs, reportError, str, UsageError, withStore } from '../common.js';
import { parseOutputFormat, render } from '../output.js';

const HELP = [
  'Usage: gingham get KIND [NAME] [-n NAMESPACE | -A] [-o yaml|json|wide|name]',
  '',
  'Show resources. Without NAME, lists every object of the kind (for namespaced kinds: in',
  'namespace "default" unless -n or -A). -o json/yaml print the object for one NAME and',
  '{"apiVersion":…,"kind":"<Kind>List","items":[…]} for a list.',
  '',
  'Options:',
  '  -n, --namespace NS      namespace of a namespaced kind',
  '  -A, --all-namespaces    every namespace',
  '  -o, --output FORMAT     yaml, json, wide or name (default: a table)',
  '  --etcd-endpoints URLS   etcd client URLs',
  '',
  'Kinds (any of the names):',
  ...KINDS.map(
    (k) => `  ${[k.singular, k.plural, ...k.shortNames].join(', ')}${k.namespaced ? '  (namespaced)' : ''}`,
  ),
].join('\n');

export async function run(argv: string[]): Promise<number> {
  try {
    const args = parseCommandArgs(
      argv,
      {
        namespace: { type: 'string', short: 'n' },
        'all-namespaces': { type: 'boolean', short: 'A' },
        output: { type: 'string', short: 'o' },
      },
      HELP,
    );
    if (!args) return 0;
    const [kindWord, name, ...extra] = args.positionals;
    if (!kindWord) throw new UsageError(`KIND is required\n\n${HELP}`);
    if (extra.length > 0) throw new UsageError(`unexpected argument "${extra[0]}"`);
    const info = resolveKind(kindWord);
    const format = parseOutputFormat(str(args.values.output));
    const all = args.values['all-namespaces'] === true;
    const nsFlag = str(args.values.namespace);
    if (all && nsFlag) throw new UsageError('-n and -A cannot be used together');
    if (all && name) throw new UsageError('-A lists a kind; give no NAME');
    if (!info.namespaced && nsFlag) throw new UsageError(`${info.kind} is not namespaced: drop -n`);
    const namespace = info.namespaced ? (all ? undefined : (nsFlag ?? 'default')) : undefined;
    return await withStore(async (store) => {
      let items: Resource[];
      if (name) {
        const r = await store.tryGet(info.kind, name, namespace);
        if (!r) throw new NotFoundError(info.kind, name, namespace);
        items = [r];
      } else {
        items = (await store.list(info.kind, { namespace })).items;
      }
      const text = render(info.kind, items, format, name !== undefined);
      if (text) process.stdout.write(`${text}\n`);
      return 0;
    });
  } catch (e) {
    return reportError(e);
  }
}

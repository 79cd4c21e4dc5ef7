// gingham delete KIND NAME [-n NS]  |  gingham delete -f FILE
import type { ResourceKey } from '../../store/api.js';
import { describeDoc, kindOf, resolveKind } from '../../store/index.js';
import { loadManifest } from '../../store/manifest.js';
import { parseCommandArgs, reportError, str, UsageError, withStore } from '../common.js';

const HELP = [
  'Usage: gingham delete KIND NAME [NAME...] [-n NAMESPACE]',
  '       gingham delete -f FILE',
  '',
  'Delete resources by kind and name, or every resource named in a manifest. With -f, a document',
  'that carries metadata.resourceVersion is deleted only if the stored object is still at it.',
  '',
  'Options:',
  '  -f, --filename FILE     manifest naming the resources ("-" for stdin)',
  '  -n, --namespace NS      namespace of a namespaced kind (default "default")',
  '  --skip-not-found        a resource that does not exist is not an error',
  '  --etcd-endpoints URLS   etcd client URLs',
].join('\n');

export async function run(argv: string[]): Promise<number> {
  try {
    const args = parseCommandArgs(
      argv,
      {
        filename: { type: 'string', short: 'f' },
        namespace: { type: 'string', short: 'n' },
        'skip-not-found': { type: 'boolean' },
      },
      HELP,
    );
    if (!args) return 0;
    const file = str(args.values.filename);
    const nsFlag = str(args.values.namespace);
    const targets: { key: ResourceKey; resourceVersion?: string; what: string }[] = [];
    if (file) {
      if (args.positionals.length > 0) throw new UsageError('give either -f FILE or KIND NAME, not both');
      for (const { resource, source } of await loadManifest(file, {
        defaultNamespace: nsFlag ?? 'default',
      })) {
        const key: ResourceKey = { kind: kindOf(resource), name: resource.metadata.name };
        if (resource.metadata.namespace !== undefined) key.namespace = resource.metadata.namespace;
        targets.push({ key, resourceVersion: resource.metadata.resourceVersion, what: describeDoc(source) });
      }
    } else {
      const [kindWord, ...names] = args.positionals;
      if (!kindWord || names.length === 0)
        throw new UsageError(`KIND and NAME are required (or -f FILE)\n\n${HELP}`);
      const info = resolveKind(kindWord);
      if (!info.namespaced && nsFlag) throw new UsageError(`${info.kind} is not namespaced: drop -n`);
      for (const name of names) {
        const key: ResourceKey = { kind: info.kind, name };
        if (info.namespaced) key.namespace = nsFlag ?? 'default';
        targets.push({ key, what: `${info.kind} ${key.namespace ? `${key.namespace}/` : ''}${name}` });
      }
    }
    const skipNotFound = args.values['skip-not-found'] === true;
    return await withStore(async (store) => {
      let failed = 0;
      for (const t of targets) {
        try {
          await store.delete(t.key, { resourceVersion: t.resourceVersion });
          process.stdout.write(
            `${t.key.kind} ${t.key.namespace ? `${t.key.namespace}/` : ''}${t.key.name} deleted\n`,
          );
        } catch (e) {
          if (skipNotFound && e instanceof Error && e.name === 'NotFoundError') continue;
          failed++;
          process.stderr.write(
            `error: ${file ? `${t.what}: ` : ''}${e instanceof Error ? e.message : String(e)}\n`,
          );
          if (e instanceof Error && e.name === 'EtcdUnavailableError') break;
        }
      }
      return failed > 0 ? 1 : 0;
    });
  } catch (e) {
    return reportError(e);
  }
}

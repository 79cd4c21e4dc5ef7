// gingham apply | create | replace -f FILE: write the resources of a manifest. Every document is
// validated first (an invalid one means nothing is written); then each is written in file order,
// and the exit code is 0 only if every write succeeded.
import type { Resource } from '../../store/api.js';
import { describeDoc, kindOf } from '../../store/index.js';
import { loadManifest } from '../../store/manifest.js';
import { type Command, parseCommandArgs, reportError, str, UsageError, withStore } from '../common.js';

type Verb = 'apply' | 'create' | 'replace';

const DONE: Record<Verb, string> = { apply: 'applied', create: 'created', replace: 'replaced' };
const WHAT: Record<Verb, string> = {
  apply: 'Create resources, or update the ones that exist.',
  create: 'Create resources; a resource that already exists is an error.',
  replace:
    'Replace existing resources; a resource that does not exist is an error. With\nmetadata.resourceVersion set, only if the stored object is still at that revision.',
};

function help(verb: Verb): string {
  return [
    `Usage: gingham ${verb} -f FILE [-n NAMESPACE]`,
    '',
    WHAT[verb],
    '',
    'FILE holds YAML documents (separated by ---) or JSON; a List (kind: List or <Kind>List) is',
    'expanded. "-" reads stdin. All documents are validated before anything is written.',
    '',
    'Options:',
    '  -f, --filename FILE    manifest to read ("-" for stdin)',
    '  -n, --namespace NS     namespace for namespaced resources that name none (default "default")',
    '  --etcd-endpoints URLS  etcd client URLs (default $ETCD_ENDPOINTS or http://127.0.0.1:2379)',
  ].join('\n');
}

function label(r: Resource): string {
  const ns = r.metadata.namespace ? `${r.metadata.namespace}/` : '';
  return `${kindOf(r)} ${ns}${r.metadata.name}`;
}

function makeCommand(verb: Verb): Command {
  return {
    async run(argv: string[]): Promise<number> {
      try {
        const args = parseCommandArgs(
          argv,
          { filename: { type: 'string', short: 'f' }, namespace: { type: 'string', short: 'n' } },
          help(verb),
        );
        if (!args) return 0;
        const file = str(args.values.filename);
        if (!file) throw new UsageError(`-f FILE is required\n\n${help(verb)}`);
        if (args.positionals.length > 0)
          throw new UsageError(`unexpected argument "${args.positionals[0]}"\n\n${help(verb)}`);
        const entries = await loadManifest(file, {
          defaultNamespace: str(args.values.namespace) ?? 'default',
        });
        return await withStore(async (store) => {
          let done = 0;
          for (const { resource, source } of entries) {
            try {
              const out =
                verb === 'create'
                  ? await store.create(resource)
                  : verb === 'replace'
                    ? await store.update(resource)
                    : await store.apply(resource);
              process.stdout.write(
                `${label(out)} ${DONE[verb]} (resourceVersion ${out.metadata.resourceVersion})\n`,
              );
              done++;
            } catch (e) {
              process.stderr.write(
                `error: ${describeDoc(source)}: ${e instanceof Error ? e.message : String(e)}\n`,
              );
              // etcd being unreachable will not get better for the next document.
              if (e instanceof Error && e.name === 'EtcdUnavailableError') break;
            }
          }
          if (done < entries.length) {
            process.stderr.write(
              `${entries.length - done} of ${entries.length} resource(s) not ${DONE[verb]}\n`,
            );
            return 1;
          }
          return 0;
        });
      } catch (e) {
        return reportError(e);
      }
    },
  };
}

export const applyCommand = makeCommand('apply');
export const createCommand = makeCommand('create');
export const replaceCommand = makeCommand('replace');

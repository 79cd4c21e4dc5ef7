// gingham-cni working directly (entry: cni/plugin.ts, when the configuration has no
// `agent_socket`): the commands of cni/commands.ts with a per-call etcd client and the node named
// by the configuration (or $NODENAME, or the host name).
import { cniCommands } from './commands.js';
import { etcdFor, nodeName } from './ipam-core.js';
import { main } from './skel.js';
import { trace } from './trace.js';

trace('modules loaded');

/** Runs this process's CNI call; `stdin` when the launcher has read it already. */
export function run(stdin?: string): void {
  main(
    cniCommands({
      node: nodeName,
      open(conf) {
        const kv = etcdFor(conf);
        return { kv, release: () => kv.close() };
      },
      trace,
    }),
    stdin,
  );
}

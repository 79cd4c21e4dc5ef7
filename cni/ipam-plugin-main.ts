// gingham-ipam: the IPAM plugin's command handlers (entry: cni/ipam-plugin.ts).
import { CniCode, CniError } from './errors.js';
import {
  etcdFor,
  ipamAdd,
  ipamCheck,
  ipamDel,
  ipamGc,
  ipamStatus,
  nodeName,
  toCniError,
} from './ipam-core.js';
import { parseResult, toVersion } from './result.js';
import { main } from './skel.js';

/** Runs this process's IPAM call; `stdin` when the launcher has read it already. */
export function run(stdin?: string): void {
  main(
    {
      toCniError,
      async add(conf, env) {
        const kv = etcdFor(conf);
        try {
          return toVersion(await ipamAdd(conf, env, { kv, node: nodeName(conf) }), conf.cniVersion);
        } finally {
          kv.close();
        }
      },
      async del(conf, env) {
        const kv = etcdFor(conf);
        try {
          await ipamDel(conf, env, { kv, node: nodeName(conf) });
        } finally {
          kv.close();
        }
      },
      async check(conf, env) {
        if (conf.prevResult === undefined)
          throw new CniError(CniCode.InvalidNetworkConfig, 'CHECK needs prevResult');
        const kv = etcdFor(conf);
        try {
          await ipamCheck(
            conf,
            env,
            { kv, node: nodeName(conf) },
            parseResult(conf.prevResult).ips.map((i) => i.address),
          );
        } finally {
          kv.close();
        }
      },
      async status(conf) {
        const kv = etcdFor(conf);
        try {
          await ipamStatus(kv);
        } finally {
          kv.close();
        }
      },
      async gc(conf) {
        const kv = etcdFor(conf);
        try {
          await ipamGc(conf, { kv, node: nodeName(conf) });
        } finally {
          kv.close();
        }
      },
    },
    stdin,
  );
}

// The store's entry point: open a connection to etcd and get an EtcdStore.
// Everything a consumer needs is re-exported from here.
import { readFileSync } from 'node:fs';
import type { EtcdStore, StoreOptions } from './etcd.js';

export * from './api.js';
export * from './errors.js';
// Types only: the implementation (and etcd3, gRPC, protobufjs behind it) loads when a store is
// opened, so commands that never touch etcd start fast.
export type { EtcdStore, KvItem, KvPutOptions, KvWatchHandlers, StoreOptions } from './etcd.js';
export * from './kinds.js';
export { loadManifest, type ManifestEntry, ManifestError, parseManifest } from './manifest.js';
export { type ValidateOptions, validateResource } from './validate.js';

export const DEFAULT_ETCD_ENDPOINT = 'http://127.0.0.1:2379';

/** Endpoints from a `--etcd-endpoints` flag, else $ETCD_ENDPOINTS, else the local default. */
export function parseEtcdEndpoints(flag?: string): string[] {
  const text = flag ?? process.env.ETCD_ENDPOINTS ?? '';
  const eps = text
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0)
    .map((s) => (/^[a-z]+:\/\//.test(s) ? s : `http://${s}`));
  return eps.length > 0 ? eps : [DEFAULT_ETCD_ENDPOINT];
}

/**
 * Opens the store. Cheap: no round trip (gRPC connects lazily), so a component can start while
 * etcd is down; the first operation reports EtcdUnavailableError if it still is.
 */
export async function openStore(opts: StoreOptions = {}): Promise<EtcdStore> {
  const endpoints = opts.endpoints?.length ? opts.endpoints : parseEtcdEndpoints();
  const caFile = opts.caFile ?? process.env.ETCD_CA_CERT_FILE;
  const certFile = opts.certFile ?? process.env.ETCD_CERT_FILE;
  const keyFile = opts.keyFile ?? process.env.ETCD_KEY_FILE;
  const creds = caFile
    ? {
        rootCertificate: readFileSync(caFile),
        certChain: certFile ? readFileSync(certFile) : undefined,
        privateKey: keyFile ? readFileSync(keyFile) : undefined,
      }
    : undefined;
  // etcd3 pulls in gRPC and protobufjs (~120 ms): load it only when a store is opened.
  const [{ Etcd3 }, { EtcdStore, etcd3Options }] = await Promise.all([import('etcd3'), import('./etcd.js')]);
  return new EtcdStore(new Etcd3(etcd3Options(endpoints, opts, creds)), endpoints, opts.unavailableRetryMs);
}

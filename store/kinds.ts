// The kind registry: one row per kind with its wire identity (apiVersion + kind), the names the
// CLI accepts (singular, plural, short), whether it is namespaced, and where it lives in etcd.
import { CALICO_API_VERSION, type Kind } from './api.js';
import { UnknownKindError } from './errors.js';

export interface KindInfo {
  /** The store's name for the kind. */
  kind: Kind;
  /** `kind` as written in manifests (differs from `kind` only for K8sNetworkPolicy). */
  wireKind: string;
  apiVersion: string;
  /** Lower-case plural, as in calicoctl and the etcd path. */
  plural: string;
  singular: string;
  shortNames: string[];
  namespaced: boolean;
  /** Path segment under /gingham/resources/v3/: `<group>/<plural>`. */
  keySegment: string;
}

function calico(kind: Kind, plural: string, shortNames: string[], namespaced = false): KindInfo {
  return {
    kind,
    wireKind: kind,
    apiVersion: CALICO_API_VERSION,
    plural,
    singular: kind.toLowerCase(),
    shortNames,
    namespaced,
    keySegment: `projectcalico.org/${plural}`,
  };
}

export const KINDS: readonly KindInfo[] = [
  calico('Node', 'nodes', ['no']),
  calico('IPPool', 'ippools', ['ipp', 'pool']),
  calico('IPAMConfiguration', 'ipamconfigurations', ['ipamconfig', 'ipamconfigs']),
  calico('BGPConfiguration', 'bgpconfigurations', ['bgpconfig', 'bgpconfigs']),
  calico('BGPPeer', 'bgppeers', ['bgpp', 'bp']),
  calico('WorkloadEndpoint', 'workloadendpoints', ['wep', 'weps'], true),
  calico('HostEndpoint', 'hostendpoints', ['hep', 'heps']),
  calico('NetworkPolicy', 'networkpolicies', ['netpol', 'netpols', 'np', 'policy', 'policies'], true),
  calico('GlobalNetworkPolicy', 'globalnetworkpolicies', ['gnp', 'gnps']),
  calico('Profile', 'profiles', ['pro']),
  calico('Tier', 'tiers', []),
  calico('NetworkSet', 'networksets', ['netset', 'netsets'], true),
  calico('GlobalNetworkSet', 'globalnetworksets', ['gns']),
  calico('FelixConfiguration', 'felixconfigurations', ['felixconfig', 'felixconfigs']),
  {
    kind: 'Namespace',
    wireKind: 'Namespace',
    apiVersion: 'v1',
    plural: 'namespaces',
    singular: 'namespace',
    shortNames: ['ns'],
    namespaced: false,
    keySegment: 'core/namespaces',
  },
  {
    kind: 'K8sNetworkPolicy',
    wireKind: 'NetworkPolicy',
    apiVersion: 'networking.k8s.io/v1',
    plural: 'k8snetworkpolicies',
    singular: 'k8snetworkpolicy',
    shortNames: ['k8snetpol', 'knp', 'networkpolicies.networking.k8s.io', 'networkpolicy.networking.k8s.io'],
    namespaced: true,
    keySegment: 'networking.k8s.io/networkpolicies',
  },
];

const byKind = new Map<Kind, KindInfo>(KINDS.map((k) => [k.kind, k]));
const byName = new Map<string, KindInfo>();
for (const k of KINDS) {
  for (const n of [k.kind, k.plural, k.singular, ...k.shortNames]) byName.set(n.toLowerCase(), k);
}

export function kindInfo(kind: Kind): KindInfo {
  const k = byKind.get(kind);
  if (!k) throw new UnknownKindError(kind);
  return k;
}

export function isKind(s: string): s is Kind {
  return byKind.has(s as Kind);
}

/** Resolves a CLI kind word (any case; singular, plural or short name). */
export function resolveKind(word: string): KindInfo {
  const k = byName.get(word.toLowerCase());
  if (!k) throw new UnknownKindError(word);
  return k;
}

/** Resolves a manifest's (apiVersion, kind) pair to the store kind. */
export function kindFromWire(apiVersion: string, kind: string): KindInfo {
  for (const k of KINDS) if (k.apiVersion === apiVersion && k.wireKind === kind) return k;
  throw new UnknownKindError(kind, apiVersion);
}

/** The store Kind of a resource read from the store or a manifest. */
export function kindOf(r: { apiVersion: string; kind: string }): Kind {
  return kindFromWire(r.apiVersion, r.kind).kind;
}

export const KEY_PREFIX = '/gingham/';
export const RESOURCE_PREFIX = `${KEY_PREFIX}resources/v3/`;

/** etcd prefix of all objects of a kind, or of one namespace of a namespaced kind. */
export function kindPrefix(kind: Kind, namespace?: string): string {
  const info = kindInfo(kind);
  const base = `${RESOURCE_PREFIX}${info.keySegment}/`;
  return info.namespaced && namespace !== undefined ? `${base}${namespace}/` : base;
}

export function resourceKeyPath(kind: Kind, name: string, namespace?: string): string {
  const info = kindInfo(kind);
  if (info.namespaced) {
    if (!namespace) throw new Error(`${kind} is namespaced: a namespace is required`);
    return `${kindPrefix(kind, namespace)}${name}`;
  }
  return `${kindPrefix(kind)}${name}`;
}

/** Inverse of resourceKeyPath for keys under kindPrefix(kind). */
export function parseResourceKeyPath(kind: Kind, key: string): { name: string; namespace?: string } | null {
  const base = kindPrefix(kind);
  if (!key.startsWith(base)) return null;
  const rest = key.slice(base.length).split('/');
  if (kindInfo(kind).namespaced) {
    return rest.length === 2 && rest[0] && rest[1] ? { namespace: rest[0], name: rest[1] } : null;
  }
  return rest.length === 1 && rest[0] ? { name: rest[0] } : null;
}

/** First key after every key that starts with `prefix` (etcd's range_end for a prefix). */
export function prefixEnd(prefix: string): Buffer {
  const b = Buffer.from(prefix);
  for (let i = b.length - 1; i >= 0; i--) {
    if (b[i]! < 0xff) {
      const out = Buffer.from(b.subarray(0, i + 1));
      out[i]! += 1;
      return out;
    }
  }
  return Buffer.from([0]);
}

// The WorkloadEndpoint the CNI plugin writes for each attachment: naming (Calico's
// <node>-k8s-<pod>-<iface> / <node>-cni-<containerID>-<iface>), the resource body, and its
// write/delete through the lightweight etcd client.
import { randomUUID } from 'node:crypto';
import type { KvClient } from '../ipam/etcd-lite.js';
import { CALICO_API_VERSION } from '../store/api.js';
import { kindPrefix, resourceKeyPath } from '../store/kinds.js';
import type { PortMapping } from './config.js';

export const NETWORK_ANNOTATION = 'cni.gingham.io/network';

export interface WorkloadIdentity {
  node: string;
  orchestrator: 'k8s' | 'cni';
  namespace: string;
  /** Pod name (k8s) or container id (cni). */
  workload: string;
  containerId: string;
  ifname: string;
}

/** Derives the identity from the CNI args: Kubernetes pod when K8S_POD_NAME is given. */
export function identityFrom(
  node: string,
  containerId: string,
  ifname: string,
  args: Record<string, string>,
): WorkloadIdentity {
  const pod = args.K8S_POD_NAME;
  if (pod) {
    return {
      node,
      orchestrator: 'k8s',
      namespace: args.K8S_POD_NAMESPACE || 'default',
      workload: pod,
      containerId,
      ifname,
    };
  }
  return { node, orchestrator: 'cni', namespace: 'default', workload: containerId, containerId, ifname };
}

/** The string whose hash names the host veth (Calico: "<namespace>.<pod>" for pods). */
export function workloadIdOf(id: WorkloadIdentity): string {
  if (id.orchestrator === 'k8s')
    return id.ifname === 'eth0'
      ? `${id.namespace}.${id.workload}`
      : `${id.namespace}.${id.workload}.${id.ifname}`;
  return `cni.${id.containerId}.${id.ifname}`;
}

const doubleDashes = (s: string) => s.replace(/-/g, '--');

/** Calico's WorkloadEndpoint name: parts joined by "-", dashes inside each part doubled. */
export function endpointName(id: WorkloadIdentity): string {
  return [id.node, id.orchestrator, id.workload, id.ifname].map(doubleDashes).join('-').toLowerCase();
}

export interface EndpointInput {
  id: WorkloadIdentity;
  network: string;
  hostIf: string;
  mac: string;
  /** CIDRs (/32, /128). */
  ipNetworks: string[];
  labels: { key: string; value: string }[];
  portMappings: PortMapping[];
}

export interface WorkloadEndpointResource {
  apiVersion: string;
  kind: 'WorkloadEndpoint';
  metadata: {
    name: string;
    namespace: string;
    labels: Record<string, string>;
    annotations: Record<string, string>;
    uid: string;
    creationTimestamp: string;
  };
  spec: {
    orchestrator: string;
    workload?: string;
    node: string;
    containerID: string;
    pod?: string;
    endpoint: string;
    ipNetworks: string[];
    profiles: string[];
    interfaceName: string;
    mac: string;
    ports?: { name: string; protocol: string; port: number; hostPort?: number; hostIP?: string }[];
  };
}

function protocolName(p: string | undefined): string {
  const u = (p ?? 'tcp').toUpperCase();
  return u === 'ICMPV6' ? 'ICMPv6' : u === 'UDPLITE' ? 'UDPLite' : u;
}

/** Builds the resource (pure). Only named port mappings become named ports. */
export function buildEndpoint(e: EndpointInput): WorkloadEndpointResource {
  const labels: Record<string, string> = {};
  for (const l of e.labels) labels[l.key] = l.value;
  labels['projectcalico.org/namespace'] = e.id.namespace;
  labels['projectcalico.org/orchestrator'] = e.id.orchestrator;
  const spec: WorkloadEndpointResource['spec'] = {
    orchestrator: e.id.orchestrator,
    node: e.id.node,
    containerID: e.id.containerId,
    endpoint: e.id.ifname,
    ipNetworks: e.ipNetworks,
    profiles: [`kns.${e.id.namespace}`],
    interfaceName: e.hostIf,
    mac: e.mac,
  };
  if (e.id.orchestrator === 'k8s') spec.pod = e.id.workload;
  else spec.workload = e.id.workload;
  const ports = e.portMappings
    .filter((p) => typeof p.name === 'string' && p.name !== '')
    .map((p) => {
      const o: { name: string; protocol: string; port: number; hostPort?: number; hostIP?: string } = {
        name: p.name!,
        protocol: protocolName(p.protocol),
        port: p.containerPort,
      };
      if (p.hostPort) o.hostPort = p.hostPort;
      if (p.hostIP) o.hostIP = p.hostIP;
      return o;
    });
  if (ports.length > 0) spec.ports = ports;
  return {
    apiVersion: CALICO_API_VERSION,
    kind: 'WorkloadEndpoint',
    metadata: {
      name: endpointName(e.id),
      namespace: e.id.namespace,
      labels,
      annotations: { [NETWORK_ANNOTATION]: e.network },
      uid: randomUUID(),
      creationTimestamp: new Date().toISOString(),
    },
    spec,
  };
}

export function endpointKey(id: WorkloadIdentity): string {
  return resourceKeyPath('WorkloadEndpoint', endpointName(id), id.namespace);
}

export async function writeEndpoint(kv: KvClient, wep: WorkloadEndpointResource): Promise<void> {
  const key = resourceKeyPath('WorkloadEndpoint', wep.metadata.name, wep.metadata.namespace);
  await kv.txn([], [{ put: key, value: JSON.stringify(wep) }]);
}

export async function readEndpoint(
  kv: KvClient,
  id: WorkloadIdentity,
): Promise<WorkloadEndpointResource | null> {
  const k = await kv.get(endpointKey(id));
  return k ? (JSON.parse(k.value.toString()) as WorkloadEndpointResource) : null;
}

/** Deletes the endpoint only if it still belongs to this container (a newer ADD may own the name). */
export async function deleteEndpoint(kv: KvClient, id: WorkloadIdentity): Promise<void> {
  const key = endpointKey(id);
  const k = await kv.get(key);
  if (!k) return;
  const wep = JSON.parse(k.value.toString()) as WorkloadEndpointResource;
  if (wep.spec?.containerID && wep.spec.containerID !== id.containerId) return;
  await kv.txn([{ key, modRevision: k.modRevision }], [{ delete: key }]);
}

/** Every endpoint of a node, with its key (GC). */
export async function listEndpoints(kv: KvClient): Promise<{ key: string; wep: WorkloadEndpointResource }[]> {
  const { kvs } = await kv.range(kindPrefix('WorkloadEndpoint'));
  const out: { key: string; wep: WorkloadEndpointResource }[] = [];
  for (const k of kvs) {
    try {
      out.push({ key: k.key, wep: JSON.parse(k.value.toString()) as WorkloadEndpointResource });
    } catch {
      // not ours to judge here
    }
  }
  return out;
}

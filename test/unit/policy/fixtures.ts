// Resource builders shared by the policy unit and integration tests.
import type { Resource } from '../../../store/api.js';

export const NODE = 'node1';

export function namespace(name: string, labels: Record<string, string> = {}): Resource {
  return { apiVersion: 'v1', kind: 'Namespace', metadata: { name, labels }, spec: {} };
}

export interface PodOpts {
  ip: string;
  iface: string;
  labels?: Record<string, string>;
  node?: string;
  ports?: { name: string; protocol: 'TCP' | 'UDP'; port: number }[];
  serviceAccountName?: string;
}

export function pod(ns: string, name: string, o: PodOpts): Resource {
  return {
    apiVersion: 'projectcalico.org/v3',
    kind: 'WorkloadEndpoint',
    metadata: {
      name: `${o.node ?? NODE}-k8s-${name}-eth0`,
      namespace: ns,
      labels: { pod: name, ...(o.labels ?? {}) },
    },
    spec: {
      node: o.node ?? NODE,
      orchestrator: 'k8s',
      pod: name,
      endpoint: 'eth0',
      interfaceName: o.iface,
      ipNetworks: [o.ip.includes(':') ? `${o.ip}/128` : `${o.ip}/32`],
      ...(o.ports ? { ports: o.ports } : {}),
      ...(o.serviceAccountName ? { serviceAccountName: o.serviceAccountName } : {}),
    },
  };
}

export function k8sPolicy(ns: string, name: string, spec: Record<string, unknown>): Resource {
  return {
    apiVersion: 'networking.k8s.io/v1',
    kind: 'NetworkPolicy',
    metadata: { name, namespace: ns },
    spec,
  };
}

export function calicoPolicy(ns: string, name: string, spec: Record<string, unknown>): Resource {
  return {
    apiVersion: 'projectcalico.org/v3',
    kind: 'NetworkPolicy',
    metadata: { name, namespace: ns },
    spec,
  };
}

export function globalPolicy(name: string, spec: Record<string, unknown>): Resource {
  return { apiVersion: 'projectcalico.org/v3', kind: 'GlobalNetworkPolicy', metadata: { name }, spec };
}

export function tier(name: string, order: number, defaultAction: 'Deny' | 'Pass' = 'Deny'): Resource {
  return {
    apiVersion: 'projectcalico.org/v3',
    kind: 'Tier',
    metadata: { name },
    spec: { order, defaultAction },
  };
}

export function ipPool(name: string, cidr: string, natOutgoing: boolean): Resource {
  return {
    apiVersion: 'projectcalico.org/v3',
    kind: 'IPPool',
    metadata: { name },
    spec: { cidr, natOutgoing, disabled: false },
  };
}

export function globalNetworkSet(name: string, nets: string[], labels: Record<string, string>): Resource {
  return {
    apiVersion: 'projectcalico.org/v3',
    kind: 'GlobalNetworkSet',
    metadata: { name, labels },
    spec: { nets },
  };
}

// Schemas for every kind, and the TypeScript types inferred from them (the output types, i.e.
// with defaults applied). Consumers import `<Kind>Spec` types and `specOf()` from here.
import type { z } from 'zod';
import type { Kind, Resource } from '../api.js';
import { bgpConfigurationSpec, bgpPeerSpec } from './bgp.js';
import { hostEndpointSpec, workloadEndpointSpec } from './endpoint.js';
import { felixConfigurationSpec } from './felix.js';
import { ipamConfigurationSpec, ipPoolSpec } from './ippool.js';
import { k8sNetworkPolicySpec, namespaceSpec } from './k8s.js';
import { nodeSpec, type nodeStatus } from './node.js';
import {
  type entityRule,
  globalNetworkPolicySpec,
  globalNetworkSetSpec,
  networkPolicySpec,
  networkSetSpec,
  profileSpec,
  type rule,
  tierSpec,
} from './policy.js';

export { BGP_CONFIGURATION_DEFAULTS, bgpConfigurationSpec, bgpPeerSpec } from './bgp.js';
export { durationMs, objectMeta } from './common.js';
export { hostEndpointSpec, workloadEndpointSpec } from './endpoint.js';
export { FELIX_CONFIGURATION_DEFAULTS, felixConfigurationSpec, mergeFelixConfiguration } from './felix.js';
export { ipamConfigurationSpec, ipPoolSpec } from './ippool.js';
export { k8sNetworkPolicySpec, labelSelector, namespaceSpec } from './k8s.js';
export { nodeSpec, nodeStatus } from './node.js';
export {
  entityRule,
  globalNetworkPolicySpec,
  globalNetworkSetSpec,
  networkPolicySpec,
  networkSetSpec,
  profileSpec,
  rule,
  tierSpec,
} from './policy.js';

export type IPPoolSpec = z.output<typeof ipPoolSpec>;
export type IPAMConfigurationSpec = z.output<typeof ipamConfigurationSpec>;
export type NodeSpec = z.output<typeof nodeSpec>;
export type NodeStatus = z.output<typeof nodeStatus>;
export type BGPConfigurationSpec = z.output<typeof bgpConfigurationSpec>;
export type BGPPeerSpec = z.output<typeof bgpPeerSpec>;
export type WorkloadEndpointSpec = z.output<typeof workloadEndpointSpec>;
export type HostEndpointSpec = z.output<typeof hostEndpointSpec>;
export type NetworkPolicySpec = z.output<typeof networkPolicySpec>;
export type GlobalNetworkPolicySpec = z.output<typeof globalNetworkPolicySpec>;
export type ProfileSpec = z.output<typeof profileSpec>;
export type TierSpec = z.output<typeof tierSpec>;
export type NetworkSetSpec = z.output<typeof networkSetSpec>;
export type GlobalNetworkSetSpec = z.output<typeof globalNetworkSetSpec>;
export type FelixConfigurationSpec = z.output<typeof felixConfigurationSpec>;
export type NamespaceSpec = z.output<typeof namespaceSpec>;
export type K8sNetworkPolicySpec = z.output<typeof k8sNetworkPolicySpec>;
/** One policy rule (Calico v3 Rule). */
export type Rule = z.output<typeof rule>;
/** The source/destination part of a rule (Calico v3 EntityRule). */
export type EntityRule = z.output<typeof entityRule>;

/** Spec type per store Kind. */
export interface SpecByKind {
  Node: NodeSpec;
  IPPool: IPPoolSpec;
  IPAMConfiguration: IPAMConfigurationSpec;
  BGPConfiguration: BGPConfigurationSpec;
  BGPPeer: BGPPeerSpec;
  WorkloadEndpoint: WorkloadEndpointSpec;
  HostEndpoint: HostEndpointSpec;
  NetworkPolicy: NetworkPolicySpec;
  GlobalNetworkPolicy: GlobalNetworkPolicySpec;
  Profile: ProfileSpec;
  Tier: TierSpec;
  NetworkSet: NetworkSetSpec;
  GlobalNetworkSet: GlobalNetworkSetSpec;
  FelixConfiguration: FelixConfigurationSpec;
  Namespace: NamespaceSpec;
  K8sNetworkPolicy: K8sNetworkPolicySpec;
}

/** A stored resource of a known kind. */
export type TypedResource<K extends Kind> = Resource<SpecByKind[K]>;

/** The spec schema of each kind (used by validate.ts). */
export const specSchemas: { [K in Kind]: z.ZodType<SpecByKind[K]> } = {
  Node: nodeSpec,
  IPPool: ipPoolSpec,
  IPAMConfiguration: ipamConfigurationSpec,
  BGPConfiguration: bgpConfigurationSpec,
  BGPPeer: bgpPeerSpec,
  WorkloadEndpoint: workloadEndpointSpec,
  HostEndpoint: hostEndpointSpec,
  NetworkPolicy: networkPolicySpec,
  GlobalNetworkPolicy: globalNetworkPolicySpec,
  Profile: profileSpec,
  Tier: tierSpec,
  NetworkSet: networkSetSpec,
  GlobalNetworkSet: globalNetworkSetSpec,
  FelixConfiguration: felixConfigurationSpec,
  Namespace: namespaceSpec,
  K8sNetworkPolicy: k8sNetworkPolicySpec,
};

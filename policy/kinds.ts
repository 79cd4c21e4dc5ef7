// A leaf module on purpose: the agent's main thread needs this list without loading the model.
import type { Kind } from '../store/api.js';

/**
 * The kinds that are policy's alone. The model also reads WorkloadEndpoints and IPPools, which the
 * agent watches for its own reasons anyway.
 */
export const POLICY_SOURCE_KINDS: readonly Kind[] = [
  'Namespace',
  'Tier',
  'NetworkPolicy',
  'GlobalNetworkPolicy',
  'K8sNetworkPolicy',
  'Profile',
  'NetworkSet',
  'GlobalNetworkSet',
  'HostEndpoint',
];

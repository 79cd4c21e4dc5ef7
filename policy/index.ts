// Public API of policy/: the agent and the CLI import from here only.
export {
  type ApplyReport,
  NftApplier,
  type NftApplierOptions,
  NftError,
  type RuleCounter,
} from './applier.js';
export {
  CHAIN,
  type CompileOptions,
  type CompileResult,
  compile,
  compileModel,
  compileRuleset,
  FILTER_PRIORITY,
  IFACE_PREFIX,
  MAP,
  MARK_ACCEPT,
  MARK_PASS,
  NAT_PRIORITY,
} from './compiler.js';
export { diffRulesets } from './diff.js';
export { type PolicyChange, PolicyEngine, type PolicyEngineOptions } from './engine.js';
export { type Explanation, explain, formatExplanation } from './explain.js';
export { convertK8sNetworkPolicy, labelSelectorToCalico } from './k8s.js';
export { POLICY_SOURCE_KINDS } from './kinds.js';
export { SelectorIndex } from './members.js';
export { buildModel, type Model, type PolicyInput, type PoolInput, type Problem } from './model.js';
export { type NftRuleset, toNftJson } from './nft.js';
export { evaluate, parseSelector, Selector, SelectorParseError } from './selector.js';

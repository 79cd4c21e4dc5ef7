// The BGP library's public surface. Agent, CLI and tests import from here.

export {
  compilePolicy,
  evaluatePolicy,
  type Policy,
  type PolicyContext,
  PolicyError,
  type PolicyMatch,
  type PolicySet,
  type PolicyStatement,
  type PrefixMatch,
} from './policy.js';
export { formatCommunity, formatLargeCommunity, parseCommunity, parseLargeCommunity } from './rib/attrs.js';
export type { TimerService } from './session/timers.js';
export {
  type AnnounceAttrs,
  type BestRoute,
  type FamilyName,
  type FsmState,
  type PeerConfig,
  type PeerStatus,
  PrefixError,
  type RouteAttrs,
  routeCommunities,
  Speaker,
  type SpeakerConfig,
  SpeakerConfigError,
  type SpeakerEvents,
  type SpeakerLogger,
} from './speaker.js';

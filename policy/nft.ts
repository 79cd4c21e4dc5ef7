// The nftables JSON model (libnftables-json(5)), limited to what Gingham renders, and the
// in-memory ruleset the compiler produces and the applier diffs. Pure.
//
// Pitfalls this module encodes (shared/research/deps.md §3, nft 1.0.6):
// - the table object names itself with `name`; chains/sets/rules name their table with `table`;
// - a hook chain's priority key is `prio` and must be an integer (else nft silently makes a regular chain);
// - CIDR elements must be `{prefix:{addr,len}}` (a string "10.0.0.0/8" is taken as a host name);
// - ranges are `{range:[min,max]}`; `goto`/`jump` take `{target}`; `accept` is `{accept:null}`;
// - interval sets are never auto-merged: callers merge CIDRs (mergePrefixes) before rendering.

import { formatIp, formatPrefix, type Prefix } from '../lib/ip.js';

export type Family = 'inet';

export type NftExpr =
  | string
  | number
  | boolean
  | { payload: { protocol: string; field: string } }
  | { meta: { key: string } }
  | { ct: { key: string } }
  | { prefix: { addr: string; len: number } }
  | { range: [NftExpr, NftExpr] }
  | { set: NftExpr[] }
  | { concat: NftExpr[] }
  | { '&': [NftExpr, NftExpr] }
  | { '|': [NftExpr, NftExpr] }
  | NftExpr[];

export type NftVerdict =
  | { accept: null }
  | { drop: null }
  | { return: null }
  | { jump: { target: string } }
  | { goto: { target: string } };

export type NftStmt =
  | { match: { op: '==' | '!=' | 'in'; left: NftExpr; right: NftExpr } }
  | { counter: null | { packets: number; bytes: number } }
  | { mangle: { key: NftExpr; value: NftExpr } }
  | { vmap: { key: NftExpr; data: string } }
  | { log: { prefix: string } }
  | { masquerade: null }
  | NftVerdict;

export interface BaseChainSpec {
  type: 'filter' | 'nat';
  hook: 'forward' | 'input' | 'output' | 'postrouting' | 'prerouting';
  prio: number;
  policy: 'accept' | 'drop';
}

export interface RuleSpec {
  expr: NftStmt[];
  comment?: string;
}

export interface ChainSpec {
  name: string;
  base?: BaseChainSpec;
  rules: RuleSpec[];
}

/** A set element or map key. Addresses as strings, CIDRs as prefix objects, concatenations as arrays. */
export type ElemKey = NftExpr;

export interface SetSpec {
  name: string;
  /** e.g. 'ipv4_addr', or ['ipv4_addr','inet_proto','inet_service'] for a concatenation. */
  type: string | string[];
  interval: boolean;
  /** Canonical key (JSON text) → element. */
  elements: Map<string, ElemKey>;
}

export interface MapSpec {
  name: string;
  type: string;
  /** Canonical key (JSON text) → [key, verdict]. */
  elements: Map<string, [ElemKey, NftVerdict]>;
}

/** The desired content of our one table. Order of chains is irrelevant to nft; kept for readability. */
export interface NftRuleset {
  family: Family;
  table: string;
  chains: Map<string, ChainSpec>;
  sets: Map<string, SetSpec>;
  maps: Map<string, MapSpec>;
}

export type NftCommand = Record<string, Record<string, unknown>>;

export function emptyRuleset(table = 'gingham'): NftRuleset {
  return { family: 'inet', table, chains: new Map(), sets: new Map(), maps: new Map() };
}

/** Map key of an element: strings (addresses, interface names) as themselves, others as JSON. */
export function elemKey(e: ElemKey): string {
  return typeof e === 'string' ? e : JSON.stringify(e);
}

// ---- expression helpers -------------------------------------------------------------------

export const meta = (key: string): NftExpr => ({ meta: { key } });
export const payload = (protocol: string, field: string): NftExpr => ({ payload: { protocol, field } });
export const match = (left: NftExpr, op: '==' | '!=' | 'in', right: NftExpr): NftStmt => ({
  match: { op, left, right },
});
export const counter = (): NftStmt => ({ counter: null });
export const accept = (): NftVerdict => ({ accept: null });
export const drop = (): NftVerdict => ({ drop: null });
export const ret = (): NftVerdict => ({ return: null });
export const jump = (target: string): NftVerdict => ({ jump: { target } });
export const goto = (target: string): NftVerdict => ({ goto: { target } });

export function prefixExpr(p: Prefix): NftExpr {
  if (p.len === (p.family === 4 ? 32 : 128)) return formatIp(p.addr, p.family);
  return { prefix: { addr: formatIp(p.addr, p.family), len: p.len } };
}

/** Sorts and removes prefixes contained in others: nft rejects overlapping interval elements. */
export function mergePrefixes(ps: readonly Prefix[]): Prefix[] {
  const sorted = [...ps].sort((a, b) => (a.addr < b.addr ? -1 : a.addr > b.addr ? 1 : a.len - b.len));
  const out: Prefix[] = [];
  for (const p of sorted) {
    const last = out[out.length - 1];
    if (last && last.family === p.family && containsPrefix(last, p)) continue;
    out.push(p);
  }
  return out;
}

function containsPrefix(outer: Prefix, inner: Prefix): boolean {
  if (outer.len > inner.len) return false;
  const bits = BigInt((outer.family === 4 ? 32 : 128) - outer.len);
  return inner.addr >> bits === outer.addr >> bits;
}

export function prefixText(p: Prefix): string {
  return formatPrefix(p);
}

/** Right-hand side for a match against a list of prefixes: one literal, or an anonymous set. */
export function prefixSetExpr(ps: readonly Prefix[]): NftExpr {
  const merged = mergePrefixes(ps).map(prefixExpr);
  return merged.length === 1 ? merged[0]! : { set: merged };
}

// ---- JSON rendering -----------------------------------------------------------------------

/** nft limits comments to 128 bytes. */
export function clipComment(s: string): string {
  // A UTF-16 code unit is at most 3 UTF-8 bytes: short comments (nearly all) need no encoding.
  if (s.length <= 42 || Buffer.byteLength(s) <= 128) return s;
  let out = s;
  while (Buffer.byteLength(out) > 125) out = out.slice(0, -1);
  return `${out}...`;
}

export function tableObj(rs: NftRuleset) {
  return { family: rs.family, name: rs.table };
}

export function chainObj(rs: NftRuleset, c: ChainSpec): Record<string, unknown> {
  const o: Record<string, unknown> = { family: rs.family, table: rs.table, name: c.name };
  if (c.base) Object.assign(o, c.base);
  return o;
}

export function ruleObj(rs: NftRuleset, chain: string, r: RuleSpec): Record<string, unknown> {
  const o: Record<string, unknown> = { family: rs.family, table: rs.table, chain, expr: r.expr };
  if (r.comment) o.comment = clipComment(r.comment);
  return o;
}

export function setObj(rs: NftRuleset, s: SetSpec, withElements: boolean): Record<string, unknown> {
  const o: Record<string, unknown> = { family: rs.family, table: rs.table, name: s.name, type: s.type };
  if (s.interval) o.flags = ['interval'];
  if (withElements && s.elements.size > 0) o.elem = [...s.elements.values()];
  return o;
}

export function mapObj(rs: NftRuleset, m: MapSpec, withElements: boolean): Record<string, unknown> {
  const o: Record<string, unknown> = {
    family: rs.family,
    table: rs.table,
    name: m.name,
    type: m.type,
    map: 'verdict',
  };
  if (withElements && m.elements.size > 0) o.elem = [...m.elements.values()];
  return o;
}

/**
 * The whole table as one atomic transaction: `add table; delete table; add table; …`.
 * Works whether or not the table exists, and replaces it with no window without hooks.
 */
export function fullReplaceCommands(rs: NftRuleset): NftCommand[] {
  const t = tableObj(rs);
  const cmds: NftCommand[] = [{ add: { table: t } }, { delete: { table: t } }, { add: { table: t } }];
  cmds.push(...contentCommands(rs));
  return cmds;
}

/** Everything inside the table, in dependency order (chains and sets before the rules using them). */
export function contentCommands(rs: NftRuleset): NftCommand[] {
  const cmds: NftCommand[] = [];
  for (const c of rs.chains.values()) cmds.push({ add: { chain: chainObj(rs, c) } });
  for (const s of rs.sets.values()) cmds.push({ add: { set: setObj(rs, s, true) } });
  for (const m of rs.maps.values()) cmds.push({ add: { map: mapObj(rs, m, true) } });
  for (const c of rs.chains.values())
    for (const r of c.rules) cmds.push({ add: { rule: ruleObj(rs, c.name, r) } });
  return cmds;
}

/**
 * `JSON.stringify({nftables: fullReplaceCommands(rs)})`, without building the command objects, and
 * with each chain's rule commands serialised once per rules array: a periodic resync of an
 * unchanged 26k-rule table re-serialises only the set elements.
 */
export function fullReplaceJson(rs: NftRuleset): string {
  let out = '';
  for (const piece of fullReplaceChunks(rs)) out += piece;
  return out;
}

/**
 * The text of `fullReplaceJson(rs)` in pieces (one per command group), made lazily: the applier
 * writes each piece to nft while it makes the next, so nft parses while the text is being made.
 */
export function* fullReplaceChunks(rs: NftRuleset): Generator<string, void, undefined> {
  const t = tableObj(rs);
  const add = JSON.stringify({ add: { table: t } });
  yield `{"nftables":[${add},${JSON.stringify({ delete: { table: t } })},${add}`;
  for (const c of rs.chains.values()) yield `,${JSON.stringify({ add: { chain: chainObj(rs, c) } })}`;
  for (const st of rs.sets.values()) yield `,${JSON.stringify({ add: { set: setObj(rs, st, true) } })}`;
  for (const m of rs.maps.values()) yield `,${JSON.stringify({ add: { map: mapObj(rs, m, true) } })}`;
  for (const c of rs.chains.values()) {
    if (c.rules.length === 0) continue;
    let hit = rulesJson.get(c.rules);
    if (!hit || hit.chain !== c.name || hit.table !== rs.table || hit.count !== c.rules.length) {
      hit = {
        chain: c.name,
        table: rs.table,
        count: c.rules.length,
        text: c.rules.map((r) => JSON.stringify({ add: { rule: ruleObj(rs, c.name, r) } })).join(','),
      };
      rulesJson.set(c.rules, hit);
    }
    yield `,${hit.text}`;
  }
  yield ']}';
}

/** Serialised rule commands by rules array (rules arrays are never mutated once in a ruleset). */
const rulesJson = new WeakMap<RuleSpec[], { chain: string; table: string; count: number; text: string }>();

/** What `gingham policy render` prints and `nft -j -f` accepts. */
export function toNftJson(rs: NftRuleset, mode: 'full' | 'content' = 'full'): { nftables: NftCommand[] } {
  return { nftables: mode === 'full' ? fullReplaceCommands(rs) : contentCommands(rs) };
}

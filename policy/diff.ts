// The smallest nft transaction that turns one ruleset into another. Pure.
//
// Order inside the one transaction (mirrors Felix's table.go):
//   1. declare new chains (rules may jump to them), new sets and maps (with their elements);
//   2. add set/map elements that appeared;
//   3. rewrite changed chains (flush + re-add: nft JSON has no stable rule identity);
//   4. delete set/map elements that disappeared (a map element may reference a chain deleted in 5);
//   5. flush, then delete, chains that are gone; delete sets and maps that are gone.
// Anything that cannot be changed in place (a base chain's hook or priority, a set's type) returns
// null: the caller does a full replace instead.

import {
  type ChainSpec,
  chainObj,
  mapObj,
  type NftCommand,
  type NftRuleset,
  ruleObj,
  setObj,
} from './nft.js';

/** Rule arrays re-used across compiles (compiler.ts caches) are stringified once. */
const rulesText = new WeakMap<object, string>();
function chainRulesText(c: ChainSpec): string {
  let t = rulesText.get(c.rules);
  if (t === undefined) {
    t = JSON.stringify(c.rules);
    rulesText.set(c.rules, t);
  }
  return t;
}

function sameBase(a: ChainSpec, b: ChainSpec): boolean {
  if (a.base === b.base) return true; // the same object, or both regular chains
  return JSON.stringify(a.base ?? null) === JSON.stringify(b.base ?? null);
}

export interface DiffSummary {
  chainsAdded: number;
  chainsRewritten: number;
  chainsDeleted: number;
  elementsAdded: number;
  elementsDeleted: number;
}

export function diffRulesets(
  prev: NftRuleset,
  next: NftRuleset,
): { commands: NftCommand[]; summary: DiffSummary } | null {
  if (prev.table !== next.table || prev.family !== next.family) return null;
  const t = { family: next.family, table: next.table };
  const declare: NftCommand[] = [];
  const addElems: NftCommand[] = [];
  const rewrite: NftCommand[] = [];
  const delElems: NftCommand[] = [];
  const flushGone: NftCommand[] = [];
  const deleteGone: NftCommand[] = [];
  const summary: DiffSummary = {
    chainsAdded: 0,
    chainsRewritten: 0,
    chainsDeleted: 0,
    elementsAdded: 0,
    elementsDeleted: 0,
  };

  for (const c of next.chains.values()) {
    const old = prev.chains.get(c.name);
    if (old === c) continue; // the same chain object: unchanged (the engine keeps them)
    if (old && !sameBase(old, c)) return null;
    if (!old) {
      declare.push({ add: { chain: chainObj(next, c) } });
      summary.chainsAdded++;
      for (const r of c.rules) rewrite.push({ add: { rule: ruleObj(next, c.name, r) } });
    } else if (old.rules !== c.rules && chainRulesText(old) !== chainRulesText(c)) {
      summary.chainsRewritten++;
      rewrite.push({ flush: { chain: { ...t, name: c.name } } });
      for (const r of c.rules) rewrite.push({ add: { rule: ruleObj(next, c.name, r) } });
    }
  }
  for (const c of prev.chains.values()) {
    if (next.chains.has(c.name)) continue;
    summary.chainsDeleted++;
    flushGone.push({ flush: { chain: { ...t, name: c.name } } });
    deleteGone.push({ delete: { chain: { ...t, name: c.name } } });
  }

  for (const s of next.sets.values()) {
    const old = prev.sets.get(s.name);
    if (old === s) continue; // the same set object: unchanged
    if (old && (JSON.stringify(old.type) !== JSON.stringify(s.type) || old.interval !== s.interval))
      return null;
    if (!old) {
      declare.push({ add: { set: setObj(next, s, true) } });
      summary.elementsAdded += s.elements.size;
      continue;
    }
    if (old === s) continue; // the same set object: unchanged (compile cache)
    const added = [...s.elements].filter(([k]) => !old.elements.has(k)).map(([, e]) => e);
    const gone = [...old.elements].filter(([k]) => !s.elements.has(k)).map(([, e]) => e);
    if (added.length > 0) addElems.push({ add: { element: { ...t, name: s.name, elem: added } } });
    if (gone.length > 0) delElems.push({ delete: { element: { ...t, name: s.name, elem: gone } } });
    summary.elementsAdded += added.length;
    summary.elementsDeleted += gone.length;
  }
  for (const s of prev.sets.values())
    if (!next.sets.has(s.name)) deleteGone.push({ delete: { set: { ...t, name: s.name } } });

  for (const m of next.maps.values()) {
    const old = prev.maps.get(m.name);
    if (old === m) continue;
    if (old && old.type !== m.type) return null;
    if (!old) {
      declare.push({ add: { map: mapObj(next, m, true) } });
      summary.elementsAdded += m.elements.size;
      continue;
    }
    const added: unknown[] = [];
    const gone: unknown[] = [];
    for (const [k, e] of m.elements) {
      const o = old.elements.get(k);
      if (o === e) continue;
      if (!o) added.push(e);
      else if (JSON.stringify(o[1]) !== JSON.stringify(e[1])) {
        // A changed verdict: delete the old entry first (add of an existing key keeps the old verdict).
        delElemsBefore(rewrite, t, m.name, o[0]);
        added.push(e);
      }
    }
    for (const [k, o] of old.elements) if (!m.elements.has(k)) gone.push(o[0]);
    if (added.length > 0) addElems.push({ add: { element: { ...t, name: m.name, elem: added } } });
    if (gone.length > 0) delElems.push({ delete: { element: { ...t, name: m.name, elem: gone } } });
    summary.elementsAdded += added.length;
    summary.elementsDeleted += gone.length;
  }
  for (const m of prev.maps.values())
    if (!next.maps.has(m.name)) deleteGone.push({ delete: { map: { ...t, name: m.name } } });

  // Changed map verdicts were queued into `rewrite` by delElemsBefore; they must run before the adds.
  const changedMapDeletes = rewrite.filter((c) => 'delete' in c);
  const rewriteRules = rewrite.filter((c) => !('delete' in c));
  return {
    commands: [
      ...declare,
      ...changedMapDeletes,
      ...addElems,
      ...rewriteRules,
      ...delElems,
      ...flushGone,
      ...deleteGone,
    ],
    summary,
  };
}

function delElemsBefore(
  into: NftCommand[],
  t: { family: string; table: string },
  map: string,
  key: unknown,
): void {
  into.push({ delete: { element: { ...t, name: map, elem: [key] } } });
}

export function isEmptyDiff(d: { commands: NftCommand[] }): boolean {
  return d.commands.length === 0;
}

// Helm is not packaged for Debian, so the chart is checked structurally: its YAML
// files parse, and every `.Values.x.y` a template reads is defined in values.yaml.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { parse } from 'yaml';

const chart = 'charts/gingham';

function lookup(obj: unknown, path: string[]): boolean {
  let cur: unknown = obj;
  for (const k of path) {
    if (cur === null || typeof cur !== 'object' || !(k in (cur as Record<string, unknown>))) return false;
    cur = (cur as Record<string, unknown>)[k];
  }
  return true;
}

test('Chart.yaml and values.yaml parse and name the chart', () => {
  const meta = parse(readFileSync(join(chart, 'Chart.yaml'), 'utf8')) as Record<string, unknown>;
  assert.equal(meta.apiVersion, 'v2');
  assert.equal(meta.name, 'gingham');
  const values = parse(readFileSync(join(chart, 'values.yaml'), 'utf8')) as Record<string, unknown>;
  assert.ok(lookup(values, ['agent', 'ipAutodetect']));
});

test('every .Values reference in the templates exists in values.yaml', () => {
  const values = parse(readFileSync(join(chart, 'values.yaml'), 'utf8'));
  const dir = join(chart, 'templates');
  const missing: string[] = [];
  let refs = 0;
  for (const f of readdirSync(dir)) {
    const text = readFileSync(join(dir, f), 'utf8');
    for (const m of text.matchAll(/\.Values((?:\.[A-Za-z0-9_]+)+)/g)) {
      refs++;
      const path = m[1]!.slice(1).split('.');
      if (!lookup(values, path)) missing.push(`${f}: .Values.${path.join('.')}`);
    }
  }
  assert.ok(refs > 10, 'templates read values');
  assert.deepEqual(missing, []);
});

test('templates have balanced template delimiters and the agent runs `gingham agent`', () => {
  const dir = join(chart, 'templates');
  for (const f of readdirSync(dir)) {
    const text = readFileSync(join(dir, f), 'utf8');
    assert.equal((text.match(/\{\{/g) ?? []).length, (text.match(/\}\}/g) ?? []).length, f);
    const opens = (text.match(/\{\{-?\s*(if|range|with|define)\b/g) ?? []).length;
    const ends = (text.match(/\{\{-?\s*end\b/g) ?? []).length;
    assert.equal(opens, ends, `${f}: if/range/with/define vs end`);
  }
  const ds = readFileSync(join(dir, 'agent-daemonset.yaml'), 'utf8');
  assert.match(ds, /command: \["gingham", "agent"\]/);
  assert.match(readFileSync(join(dir, 'reflector-deployment.yaml'), 'utf8'), /gingham reflector --node/);
});

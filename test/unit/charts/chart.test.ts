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

test('agent mode: the CNI config names the agent socket the agent serves, shared through a hostPath', () => {
  const dir = join(chart, 'templates');
  const values = parse(readFileSync(join(chart, 'values.yaml'), 'utf8')) as { agent: { cniSocket: string } };
  assert.match(values.agent.cniSocket, /^\/.+\.sock$/);
  const cm = readFileSync(join(dir, 'cni-config.yaml'), 'utf8');
  assert.match(cm, /"agent_socket": \{\{ \.Values\.agent\.cniSocket \| quote \}\}/);
  const ds = readFileSync(join(dir, 'agent-daemonset.yaml'), 'utf8');
  assert.match(ds, /--cni-socket=\{\{ \.Values\.agent\.cniSocket \}\}/);
  // The directory is mounted into the agent from the host at the same path, so the plugin
  // (run by the runtime on the host) and the agent see the same socket file.
  assert.match(ds, /mountPath: \{\{ dir \.Values\.agent\.cniSocket \}\}/);
  assert.match(ds, /hostPath: \{ path: \{\{ dir \.Values\.agent\.cniSocket \}\}, type: DirectoryOrCreate \}/);
  // The conflist is still JSON once rendered (both with and without the socket line).
  for (const socket of [values.agent.cniSocket, '']) {
    const rendered = cm
      .replace(/^[\s\S]*10-gingham\.conflist: \|\n/, '')
      .replace(/\{\{- end \}\}\s*$/, '')
      .replace(/\{\{- if \.Values\.agent\.cniSocket \}\}\n([\s\S]*?)\{\{- end \}\}\n/, socket ? '$1' : '')
      .replace(/\{\{ \.Values\.agent\.cniSocket \| quote \}\}/, JSON.stringify(socket))
      .replace(/\{\{ \.Values\.etcd\.endpoints \| quote \}\}/, '"http://127.0.0.1:2379"')
      .replace(/\{\{ \.Values\.agent\.mtu \}\}/, '1450');
    const conf = JSON.parse(rendered) as { plugins: Record<string, unknown>[] };
    assert.equal(conf.plugins[0]!.agent_socket, socket || undefined);
  }
});

#!/usr/bin/env node
// Runs the node:test suites through tsx. Node 20's --test does not expand globs
// and skips .ts files, so the file list is collected here.
// Usage: node scripts/run-tests.mjs [unit|integration|<path-prefix>...]
import { spawnSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

function collect(dir) {
  const out = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...collect(p));
    else if (name.endsWith('.test.ts')) out.push(p);
  }
  return out;
}

const filters = process.argv.slice(2).map((f) => (f === 'unit' || f === 'integration' ? `test/${f}` : f));
let files = collect('test').sort();
if (filters.length > 0) files = files.filter((f) => filters.some((p) => f.startsWith(p)));
if (files.length === 0) {
  console.error(`no test files match ${filters.join(' ')}`);
  process.exit(1);
}
const concurrency = process.env.TEST_CONCURRENCY ?? '2';
const r = spawnSync(
  process.execPath,
  ['--import', 'tsx', '--test', `--test-concurrency=${concurrency}`, '--test-reporter=spec', ...files],
  { stdio: 'inherit' },
);
process.exit(r.status ?? 1);

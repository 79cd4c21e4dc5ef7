// `npm run bench [FILTER...]`: runs every bench/*.bench.ts (or those whose name contains a
// filter), prints one table, and writes the rows to bench/results/<timestamp>.json and latest.json.
// Each bench module exports `async function run(): Promise<BenchRow[]>`.
import { mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { BenchRow } from './types.js';

const dir = import.meta.dirname;

function fmt(v: number | undefined): string {
  if (v === undefined) return '';
  if (Math.abs(v) >= 100) return Math.round(v).toLocaleString('en-US');
  return v.toFixed(2);
}

export function renderTable(rows: BenchRow[]): string {
  const head = ['bench', 'metric', 'value', 'unit', 'baseline', 'vs', 'goal'];
  const body = rows.map((r) => [
    r.bench,
    r.metric,
    fmt(r.value),
    r.unit,
    r.baseline === undefined ? '' : `${fmt(r.baseline)} (${r.baselineLabel ?? 'baseline'})`,
    r.baseline ? `${(r.value / r.baseline).toFixed(2)}x` : '',
    r.goal ?? '',
  ]);
  const all = [head, ...body];
  const widths = head.map((_, i) => Math.max(...all.map((row) => row[i]!.length)));
  const line = (row: string[]) =>
    row
      .map((c, i) => (i === 2 || i === 4 || i === 5 ? c.padStart(widths[i]!) : c.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  return [line(head), widths.map((w) => '-'.repeat(w)).join('  '), ...body.map(line)].join('\n');
}

async function main(): Promise<number> {
  const filters = process.argv.slice(2);
  const files = readdirSync(dir)
    .filter((f) => f.endsWith('.bench.ts') || f.endsWith('.bench.js'))
    .filter((f) => filters.length === 0 || filters.some((x) => f.includes(x)))
    .sort();
  if (files.length === 0) {
    process.stderr.write(`no benchmarks match ${filters.join(' ')}\n`);
    return 1;
  }
  const rows: BenchRow[] = [];
  let failed = 0;
  for (const f of files) {
    process.stderr.write(`running ${f} ...\n`);
    const t0 = Date.now();
    try {
      const mod = (await import(pathToFileURL(join(dir, f)).href)) as { run(): Promise<BenchRow[]> };
      rows.push(...(await mod.run()));
      process.stderr.write(`  ${f} done in ${((Date.now() - t0) / 1000).toFixed(1)} s\n`);
    } catch (e) {
      failed++;
      process.stderr.write(`  ${f} FAILED: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
    }
  }
  process.stdout.write(`${renderTable(rows)}\n`);
  const results = join(dir, 'results');
  mkdirSync(results, { recursive: true });
  const doc = {
    date: new Date().toISOString(),
    node: process.version,
    cpus: cpus().length,
    cpuModel: cpus()[0]?.model ?? 'unknown',
    files,
    rows,
  };
  const stamp = doc.date.replace(/[:.]/g, '-');
  writeFileSync(join(results, `${stamp}.json`), `${JSON.stringify(doc, null, 2)}\n`);
  writeFileSync(join(results, 'latest.json'), `${JSON.stringify(doc, null, 2)}\n`);
  process.stderr.write(`results: bench/results/${stamp}.json\n`);
  return failed > 0 ? 1 : 0;
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (e: unknown) => {
    process.stderr.write(`${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
    process.exitCode = 1;
  },
);

// Helpers shared by the benchmarks in bench/*.js (this directory is not run
// by bench/run.js: only bench/*.js are).
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const benchDir = dirname(dirname(fileURLToPath(import.meta.url)));
export const binDir = join(benchDir, '.bin');

/** Median of an array of numbers (the array is not modified). */
export function median(values) {
  if (values.length === 0) return Number.NaN;
  const v = [...values].sort((a, b) => a - b);
  const mid = v.length >> 1;
  return v.length % 2 ? v[mid] : (v[mid - 1] + v[mid]) / 2;
}

/** Microseconds elapsed since `start` (a process.hrtime.bigint() value). */
export function usSince(start) {
  return Number(process.hrtime.bigint() - start) / 1e3;
}

/**
 * Compiles bench/c/NAME.c with `cc -O2` into bench/.bin/NAME unless the
 * binary is newer than the source. Returns the binary's path.
 */
export function compileC(name, extraFlags = []) {
  const src = join(benchDir, 'c', `${name}.c`);
  const out = join(binDir, name);
  mkdirSync(binDir, { recursive: true });
  let fresh = false;
  try {
    fresh = statSync(out).mtimeMs > statSync(src).mtimeMs;
  } catch {}
  if (!fresh) {
    execFileSync('cc', ['-O2', '-Wall', '-o', out, src, ...extraFlags], { stdio: 'inherit' });
  }
  return out;
}

/** Runs a program that prints one JSON line and returns it parsed. */
export function runJson(file, args) {
  const r = spawnSync(file, args, { encoding: 'utf8', maxBuffer: 1 << 20 });
  if (r.status !== 0) {
    throw new Error(`${file} ${args.slice(0, 4).join(' ')} failed (${r.status}): ${r.stderr}`);
  }
  return JSON.parse(r.stdout.trim().split('\n').pop());
}

/** Formats microseconds as "12.3 us" or "4.56 ms". */
export function fmtUs(us) {
  if (!Number.isFinite(us)) return '-';
  if (us >= 1000) return `${(us / 1000).toFixed(us >= 100_000 ? 0 : 2)} ms`;
  // Two decimals below 10 us: a statistics read is about one microsecond,
  // and one decimal hides the differences the goals are about.
  return `${us.toFixed(us >= 100 ? 0 : us >= 10 ? 1 : 2)} us`;
}

/** Prints a Markdown table: header is an array of column names, rows arrays of cells. */
export function printTable(title, header, rows) {
  const cells = [header, ...rows].map((r) => r.map(String));
  const widths = header.map((_, i) => Math.max(...cells.map((r) => r[i].length)));
  const line = (r) => `| ${r.map((c, i) => c.padEnd(widths[i])).join(' | ')} |`;
  console.log(`\n${title}`);
  console.log(line(cells[0]));
  console.log(`|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`);
  for (const r of cells.slice(1)) console.log(line(r));
}

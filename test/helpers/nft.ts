// podnet's nftables table as text, for snapshots and leak checks: what
// `nft list table inet podnet` prints (no handles, and the table has no
// counters), one trimmed line each; empty when there is no such table.
// Loads anywhere; the command runs wherever RUN runs it.
import type { CliResult } from './process.js';

/** The command that lists the table. */
export const NFT_LIST_PODNET = ['nft', 'list', 'table', 'inet', 'podnet'];

/** The listing's lines, or [] for no table (nft's "No such file or directory"). */
export function podnetTableContent(res: CliResult): string[] {
  if (res.code !== 0) {
    if (/No such file or directory/.test(res.stderr)) return [];
    return [`(nft list failed: ${res.stderr.trim()})`];
  }
  return res.stdout
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean);
}

/**
 * The elements of every set and map of a listing, one `SET ELEMENT` line
 * each: what containers and networks put in the table. The structure (its
 * chains, rules and empty sets) is left out: it is made once and stays, as
 * the shared chains the plugins make do.
 */
export function podnetTableElements(lines: readonly string[]): string[] {
  const out: string[] = [];
  let set: string | undefined;
  let inElements = false;
  for (const line of lines) {
    const head = /^(?:set|map) (\S+) \{$/.exec(line);
    if (head) {
      set = head[1];
      continue;
    }
    let text = line;
    if (text.startsWith('elements = {')) {
      inElements = true;
      text = text.slice('elements = {'.length);
    }
    if (!inElements || set === undefined) continue;
    const closes = text.endsWith('}');
    if (closes) text = text.slice(0, -1);
    for (const e of text.split(',')) if (e.trim()) out.push(`${set} ${e.trim()}`);
    if (closes) inElements = false;
  }
  return out;
}

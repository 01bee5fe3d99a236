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

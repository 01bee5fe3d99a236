// iptables bookkeeping shared by the leak checks: which tables are compared,
// and what of an ip(6)tables-save dump is content. Free of side effects (the
// global leak check imports it outside any test).

/** Every table ip(6)tables-save is asked for, one at a time (-t). */
export const IPTABLES_TABLES = ['filter', 'nat', 'mangle', 'raw', 'security'] as const;

/** Lines of an ip(6)tables-save dump that carry content: chains and rules, packet counters stripped. */
export function iptablesContent(dump: string): string[] {
  return dump
    .split('\n')
    .filter((l) => l.startsWith(':') || l.startsWith('-') || l.startsWith('['))
    .map((l) => l.replace(/ \[\d+:\d+\]$/, '').replace(/^\[\d+:\d+\] /, ''));
}

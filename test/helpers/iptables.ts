// iptables bookkeeping shared by the leak checks: which tables are compared,
// what of an ip(6)tables-save dump is content, the host's lines now, and the
// removal of chains a test's plugins made. Free of side effects (the global
// leak check imports it outside any test).
import { run } from './process.js';

/** Every table ip(6)tables-save is asked for, one at a time (-t). */
export const IPTABLES_TABLES = ['filter', 'nat', 'mangle', 'raw', 'security'] as const;

/** Lines of an ip(6)tables-save dump that carry content: chains and rules, packet counters stripped. */
export function iptablesContent(dump: string): string[] {
  return dump
    .split('\n')
    .filter((l) => l.startsWith(':') || l.startsWith('-') || l.startsWith('['))
    .map((l) => l.replace(/ \[\d+:\d+\]$/, '').replace(/^\[\d+:\d+\] /, ''));
}

const TOOLS = { ipv4: 'iptables', ipv6: 'ip6tables' } as const;

/** Every iptables/ip6tables line of the host, as `FAMILY TABLE LINE`, without counters. */
export async function iptablesLines(): Promise<string[]> {
  const out: string[] = [];
  for (const [family, tool] of Object.entries(TOOLS)) {
    const dump = await run([`${tool}-save`]).catch(() => '');
    // Each table's section starts with a `*TABLE` line.
    for (const section of dump.split(/^\*/m).slice(1)) {
      const [table, ...lines] = section.split('\n');
      for (const line of iptablesContent(lines.join('\n'))) out.push(`${family} ${table} ${line}`);
    }
  }
  return out;
}

// iptables-save quotes arguments with spaces ("comment text").
function splitRule(rule: string): string[] {
  return [...rule.matchAll(/"((?:[^"\\]|\\.)*)"|(\S+)/g)].map((m) =>
    m[1] === undefined ? m[2]! : m[1].replace(/\\(.)/g, '$1'),
  );
}

/**
 * Removes chains (and the rules jumping to them) that exist now but not in
 * `before`: the shared chains portmap and firewall create once and never
 * delete (CNI-HOSTPORT-*, CNI-FORWARD, CNI-ADMIN). Returns what was left
 * beyond those: per-container rules, which DEL should have removed.
 */
export async function removeNewChains(before: readonly string[]): Promise<string[]> {
  const had = new Set(before);
  const extra = (await iptablesLines()).filter((l) => !had.has(l));
  const newChains = new Set(
    extra
      .filter((l) => l.split(' ')[2]!.startsWith(':'))
      .map((l) => `${l.split(' ').slice(0, 2).join(' ')} ${l.split(' ')[2]!.slice(1)}`),
  );
  const leftovers: string[] = [];
  for (const line of extra) {
    const [family, table, ...rest] = line.split(' ');
    const rule = rest.join(' ');
    if (rule.startsWith(':')) continue;
    const args = splitRule(rule);
    const chain = args[1]!;
    const target = args[args.indexOf('-j') + 1];
    const inNew = newChains.has(`${family} ${table} ${chain}`);
    const toNew = target !== undefined && newChains.has(`${family} ${table} ${target}`);
    if (!inNew && !toNew) leftovers.push(line);
    if (!inNew) {
      const tool = TOOLS[family as keyof typeof TOOLS];
      await run([tool, '-w', '-t', table!, '-D', ...args.slice(1)]).catch(() => undefined);
    }
  }
  for (const key of newChains) {
    const [family, table, chain] = key.split(' ');
    const tool = TOOLS[family as keyof typeof TOOLS];
    await run([tool, '-w', '-t', table!, '-F', chain!]).catch(() => undefined);
  }
  for (const key of newChains) {
    const [family, table, chain] = key.split(' ');
    const tool = TOOLS[family as keyof typeof TOOLS];
    await run([tool, '-w', '-t', table!, '-X', chain!]).catch(() => undefined);
  }
  return leftovers;
}

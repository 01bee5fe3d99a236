// iptables bookkeeping for the benchmarks that run CNI's portmap: what the
// rules were before, and removal of the CNI-* chains (and the jumps to them)
// that a run added. portmap's DEL removes its per-container chain but keeps
// CNI-HOSTPORT-DNAT, -SETMARK and -MASQ and the jumps to them.
import { spawnSync } from 'node:child_process';

/** Runs TOOL ARGS in the network namespace at `nsPath` (or here, without one). */
function run(nsPath, tool, args) {
  const argv = nsPath ? ['nsenter', `--net=${nsPath}`, tool, ...args] : [tool, ...args];
  return spawnSync(argv[0], argv.slice(1), { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

/** Every chain and rule, one `TOOL TABLE LINE` string each, counters left out. */
export function iptablesLines(nsPath) {
  const out = [];
  for (const tool of ['iptables', 'ip6tables']) {
    const r = run(nsPath, `${tool}-save`, []);
    if (r.status !== 0) continue;
    let table = '';
    for (const line of r.stdout.split('\n')) {
      if (line.startsWith('*')) table = line.slice(1);
      else if (line.startsWith('-') || line.startsWith(':'))
        out.push(`${tool} ${table} ${line.replace(/\[\d+:\d+\]/, '').trim()}`);
    }
  }
  return out;
}

function splitRule(rule) {
  return [...rule.matchAll(/"((?:[^"\\]|\\.)*)"|(\S+)/g)].map((m) =>
    m[1] === undefined ? m[2] : m[1].replace(/\\(.)/g, '$1'),
  );
}

/**
 * Removes the CNI-* chains that exist now but not in `before` (from
 * iptablesLines), after deleting the rules of older chains that jump to them.
 * Chains that existed before are left alone. Returns the chains removed.
 */
export function removeNewCniChains(before, nsPath) {
  const had = new Set(before);
  const extra = iptablesLines(nsPath).filter((l) => !had.has(l));
  const chains = extra
    .map((l) => l.split(' '))
    .filter(([, , c]) => c.startsWith(':CNI-'))
    .map(([tool, table, c]) => ({ tool, table, chain: c.slice(1) }));
  const isNew = (tool, table, chain) =>
    chains.some((c) => c.tool === tool && c.table === table && c.chain === chain);
  for (const line of extra) {
    const [tool, table, ...rest] = line.split(' ');
    if (rest[0].startsWith(':')) continue;
    const args = splitRule(rest.join(' '));
    const target = args[args.indexOf('-j') + 1];
    if (!isNew(tool, table, args[1]) && isNew(tool, table, target)) {
      run(nsPath, tool, ['-w', '-t', table, '-D', ...args.slice(1)]);
    }
  }
  for (const op of ['-F', '-X']) {
    for (const { tool, table, chain } of chains) run(nsPath, tool, ['-w', '-t', table, op, chain]);
  }
  return chains.map((c) => `${c.tool} ${c.table} ${c.chain}`);
}

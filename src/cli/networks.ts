// `podnet networks`: the CNI networks the runtime sees (confDir, or the
// embedded default network when confDir holds none), with a warning for
// each file that does not load.
import { scanNetworks } from '../cni/config.js';
import { CniRuntime } from '../cni/index.js';
import { cniFromFlags, reportSkipped } from './context.js';
import { UsageError } from './errors.js';
import type { FlagValues } from './flags.js';
import { print, printJson, table } from './output.js';

/** One network as `podnet networks ls --json` prints it. */
export interface NetworkSummary {
  name: string;
  cniVersion: string;
  /** Plugin types in ADD order. */
  plugins: string[];
  /** The file it was loaded from, or `<embedded>` for the default network. */
  source: string;
}

/** `podnet networks [ls | inspect NAME]`. */
export async function networks([action = 'ls', name]: string[], flags: FlagValues): Promise<void> {
  const cni = cniFromFlags(flags) ?? new CniRuntime();
  switch (action) {
    case 'ls': {
      if (name !== undefined) throw new UsageError('networks ls takes no NAME');
      // listNetworks skips what does not load; the scan says which files
      // those were. With no network in confDir the runtime uses its
      // embedded default, which listNetworks returns.
      const scan = await scanNetworks(cni.confDir);
      reportSkipped(scan.invalid, flags);
      const found = scan.networks.length > 0 ? scan.networks : await cni.listNetworks();
      const list: NetworkSummary[] = found.map((n) => ({
        name: n.name,
        cniVersion: n.cniVersion,
        plugins: n.plugins.map((p) => p.type),
        source: n.source,
      }));
      return print(flags['json'] === true, list, () =>
        table(
          ['NAME', 'VERSION', 'PLUGINS', 'SOURCE'],
          list.map((n) => [n.name, n.cniVersion, n.plugins.join(','), n.source]),
        ),
      );
    }
    case 'inspect': {
      if (name === undefined) throw new UsageError('networks inspect needs a NAME');
      // The configuration as written (unknown fields included), which is
      // what the plugins are given.
      return printJson(JSON.parse((await cni.loadNetwork(name)).bytes));
    }
    default:
      throw new UsageError(`unknown networks action '${action}': ls or inspect`);
  }
}

// `podnet networks`: the CNI networks the runtime sees (confDir, or the
// embedded default network when confDir holds none).
import type { CAC } from 'cac';
import { CniRuntime } from '../cni/index.js';
import { InvalidArgumentError } from '../errors.js';
import { addFlags, cniFromFlags, NETWORK_FLAGS, readFlags } from './flags.js';
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

/** Registers `networks [ls | inspect NAME]` on CLI. */
export function registerNetworksCommand(cli: CAC): void {
  addFlags(
    cli.command('networks [action] [name]', 'CNI networks: ls (default) | inspect NAME'),
    NETWORK_FLAGS,
  ).action(async (action: string | undefined, name: string | undefined) => {
    const flags = readFlags(cli, NETWORK_FLAGS);
    const cni = cniFromFlags(flags) ?? new CniRuntime();
    switch (action ?? 'ls') {
      case 'ls': {
        if (name !== undefined) throw new InvalidArgumentError('networks ls takes no NAME');
        const list: NetworkSummary[] = (await cni.listNetworks()).map((n) => ({
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
        if (name === undefined) throw new InvalidArgumentError('networks inspect needs a NAME');
        // The configuration as written (unknown fields included), which is
        // what the plugins are given.
        return printJson(JSON.parse((await cni.loadNetwork(name)).bytes));
      }
      default:
        throw new InvalidArgumentError(`unknown networks action '${action}': ls or inspect`);
    }
  });
}

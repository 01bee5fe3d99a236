// podnet's contenders: `new Networking({ driver })` on a bridge network of
// the contender's own, the embedded default network's chain (bridge +
// host-local + portmap + firewall + tuning, as src/cni/default-network.ts
// has it) with the bridge name and subnet replaced. Networking makes each
// container's namespace itself (NetworkNamespace.create) and removes it in
// teardown, so both are inside its timings, as they are inside the other
// rows' (context.js createNetns).
import dc from 'node:diagnostics_channel';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { NETNS_DIR, PLUGIN_DIR, WORK_DIR } from './context.js';

/** The embedded default network's config on NET's bridge and subnet. */
export function defaultNetworkOn(podnet, net) {
  const config = structuredClone(podnet.DEFAULT_NETWORK_CONFIG);
  config.name = net.name;
  const bridge = config.plugins.find((p) => p.type === 'bridge');
  bridge.bridge = net.bridge;
  bridge.ipam.ranges = [[{ subnet: net.subnet, gateway: net.gateway }]];
  return config;
}

/**
 * A Networking contender with DRIVER ('native' or 'cni'). start() sets up
 * the resident container; for 'native' it is also the capability check: the
 * driver counts as not available when the constructor or that setup rejects
 * the option, or when the setup ran CNI plugins (an older Networking
 * ignores an option it does not know, and would quietly measure the CNI
 * path twice).
 */
export function podnetContender(podnet, { key, name, driver, net }) {
  const dir = join(WORK_DIR, key);
  let networking;
  let ids = 0;
  const portMappings = (ports) =>
    ports ? [{ hostPort: net.port(), containerPort: 80, protocol: 'tcp' }] : [];
  return {
    key,
    name,
    net,
    parallel: true,
    /** Resolves to a reason when this contender cannot run, else undefined. */
    async check() {
      mkdirSync(join(dir, 'net.d'), { recursive: true });
      writeFileSync(
        join(dir, 'net.d', `${net.name}.conflist`),
        JSON.stringify(defaultNetworkOn(podnet, net)),
      );
      try {
        networking = new podnet.Networking({
          driver,
          cni: new podnet.CniRuntime({
            pluginDirs: [PLUGIN_DIR],
            confDir: join(dir, 'net.d'),
            cacheDir: join(dir, 'cache'),
          }),
          stateDir: join(dir, 'state'),
          netnsDir: NETNS_DIR,
          defaultNetwork: net.name,
        });
      } catch (err) {
        if (driver === 'native')
          return `new Networking({ driver: 'native' }) threw: ${err.message}`;
        throw err;
      }
      return undefined;
    },
    /** The resident container's setup, with the checks of the driver it really used. */
    async resident() {
      let plugins = 0;
      const count = () => plugins++;
      dc.subscribe('podnet:cni:exec', count);
      let a;
      try {
        a = await this.setup(1);
      } catch (err) {
        if (driver === 'native')
          return { reason: `the setup with driver 'native' failed: ${err.message}` };
        throw err;
      } finally {
        dc.unsubscribe('podnet:cni:exec', count);
      }
      if (driver === 'native' && plugins > 0) {
        await this.teardown(a);
        return {
          reason: `the option driver: 'native' is not accepted yet (the setup ran ${plugins} CNI plugins)`,
        };
      }
      if (driver === 'cni' && plugins === 0)
        throw new Error(`${name}: the setup ran no CNI plugin`);
      return { handle: a, netns: a.state.netnsPath, port: a.state.portMappings[0].hostPort };
    },
    setup(ports) {
      const n = ids++;
      return networking.setup({
        id: `${key}-${n}`,
        name: `${key}-${n}`,
        portMappings: portMappings(ports),
      });
    },
    teardown: (a) => a.teardown(),
  };
}

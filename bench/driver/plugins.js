// The floor of the plugin path: the embedded default network's chain
// (bridge + host-local, portmap, firewall, tuning) executed directly, as
// libcni's AddNetworkList / DelNetworkList run it (and podnet's CniRuntime
// does): each plugin in order with the CNI_* environment and its config on
// stdin, name and cniVersion injected, the previous plugin's result as
// prevResult, runtimeConfig.portMappings for the plugin that has that
// capability; DEL in reverse order with the ADD's result as prevResult.
// No validation, no cache, no journal, no lock: what is left is the
// plugins' own cost.
import { join } from 'node:path';
import { createNetns, PLUGIN_DIR, runOk } from './context.js';
import { defaultNetworkOn } from './podnet.js';

/** The direct-execution contender on NET. */
export function pluginsContender(podnet, { key, name, net }) {
  const list = defaultNetworkOn(podnet, net);
  let ids = 0;
  const env = (command, id, nsPath) => ({
    PATH: process.env.PATH || '/usr/sbin:/usr/bin:/sbin:/bin',
    CNI_COMMAND: command,
    CNI_CONTAINERID: id,
    CNI_NETNS: nsPath,
    CNI_IFNAME: 'eth0',
    // What podnet passes (src/network/plan.ts runtimeConf).
    CNI_ARGS: `IgnoreUnknown=1;K8S_POD_NAMESPACE=${id};K8S_POD_NAME=${id};K8S_POD_INFRA_CONTAINER_ID=${id}`,
    CNI_PATH: PLUGIN_DIR,
  });
  const stdin = (plugin, prevResult, portMappings) => {
    const c = { ...plugin, name: list.name, cniVersion: list.cniVersion };
    if (prevResult !== undefined) c.prevResult = prevResult;
    if (plugin.capabilities?.portMappings && portMappings.length)
      c.runtimeConfig = { portMappings };
    return JSON.stringify(c);
  };
  const exec = (command, plugin, h, prev) =>
    runOk(`${plugin.type} ${command}`, join(PLUGIN_DIR, plugin.type), [], {
      stdin: stdin(plugin, prev, h.portMappings),
      env: env(command, h.id, h.ns.path),
    });
  const del = async (h) => {
    for (const p of [...list.plugins].reverse()) await exec('DEL', p, h, h.result);
  };
  const contender = {
    key,
    name,
    net,
    parallel: false,
    check: async () => undefined,
    async resident() {
      const h = await contender.setup(1);
      return { handle: h, netns: h.ns.path, port: h.portMappings[0].hostPort };
    },
    async setup(ports) {
      const n = ids++;
      const h = {
        id: `${key}-${n}`,
        ns: await createNetns(podnet, `${key}-${n}`),
        portMappings: ports
          ? [{ hostIP: '', hostPort: net.port(), containerPort: 80, protocol: 'tcp' }]
          : [],
        result: undefined,
      };
      try {
        for (const p of list.plugins) h.result = JSON.parse(await exec('ADD', p, h, h.result));
        return h;
      } catch (err) {
        // What a runtime does after a failed ADD: a DEL of the whole list.
        await del(h).catch(() => undefined);
        await h.ns.remove();
        throw err;
      }
    },
    async teardown(h) {
      try {
        await del(h);
      } finally {
        await h.ns.remove();
      }
    },
  };
  return contender;
}

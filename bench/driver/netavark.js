// netavark 1.4 (Debian's, podman 4.3's driver) driven as podman drives it
// (containers/common v0.50 libnetwork/netavark: exec.go, run.go):
// `netavark --config RUNDIR --rootless=false --aardvark-binary=PATH
// setup|teardown NETNS`, the network options JSON on stdin (json.Encoder:
// one line), RUST_LOG from podman's log level (warn), the status JSON read
// from stdout. The options are podman's types.NetworkOptions plus
// network_info, the Network JSON podman keeps for a bridge network with
// ipam_options driver host-local: with that driver podman allocates the
// address itself (its IPAM database) and passes it as static_ips, so this
// row's figures leave podman's allocation out (the bench hands out the
// addresses from an in-memory list); every other row's include its IPAM.
import { randomBytes } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { createNetns, runOk, WORK_DIR } from './context.js';

/** Debian's netavark (scripts/install-bench-deps.sh). */
export const NETAVARK = '/usr/lib/podman/netavark';
const AARDVARK = '/usr/lib/podman/aardvark-dns';

/** podman's Network JSON for a bridge network on NET (dns off, IPv4 only). */
function podmanNetwork(net) {
  return {
    name: net.name,
    id: randomBytes(32).toString('hex'),
    driver: 'bridge',
    network_interface: net.bridge,
    created: new Date().toISOString(),
    subnets: [{ subnet: net.subnet, gateway: net.gateway }],
    ipv6_enabled: false,
    internal: false,
    dns_enabled: false,
    ipam_options: { driver: 'host-local' },
  };
}

/**
 * The netavark contender. With `resident` false no container stays on its
 * network, so every setup creates the bridge and every teardown removes it
 * with the network's rules (podman's single-container case); with true the
 * resident container keeps them, as on a host running containers (and as
 * the other rows' bridges stay).
 */
export function netavarkContender(podnet, { key, name, net, resident }) {
  const rundir = join(WORK_DIR, key);
  const network = podmanNetwork(net);
  const free = Array.from({ length: 250 }, (_, i) => `${net.prefix}.${i + 2}`);
  let ids = 0;
  const exec = (command, nsPath, options) =>
    runOk(
      `netavark ${command}`,
      NETAVARK,
      ['--config', rundir, '--rootless=false', `--aardvark-binary=${AARDVARK}`, command, nsPath],
      { stdin: `${JSON.stringify(options)}\n`, env: { ...process.env, RUST_LOG: 'warn' } },
    );
  const contender = {
    key,
    name,
    net,
    parallel: resident,
    async check() {
      mkdirSync(rundir, { recursive: true });
      return undefined;
    },
    async resident() {
      if (!resident) return {};
      const h = await contender.setup(1);
      return { handle: h, netns: h.ns.path, port: h.options.port_mappings[0].host_port };
    },
    async setup(ports) {
      const n = ids++;
      const ip = free.shift();
      if (ip === undefined) throw new Error(`${name}: no address left in ${net.subnet}`);
      const options = {
        container_id: randomBytes(32).toString('hex'),
        container_name: `${key}-${n}`,
        ...(ports
          ? {
              port_mappings: [
                {
                  host_ip: '',
                  container_port: 80,
                  host_port: net.port(),
                  range: 1,
                  protocol: 'tcp',
                },
              ],
            }
          : {}),
        networks: { [net.name]: { static_ips: [ip], interface_name: 'eth0' } },
        network_info: { [net.name]: network },
      };
      let ns;
      try {
        ns = await createNetns(podnet, `${key}-${n}`);
        const status = JSON.parse(await exec('setup', ns.path, options));
        if (!status[net.name]?.interfaces?.eth0)
          throw new Error(`netavark setup: no eth0 in ${JSON.stringify(status)}`);
        return { ns, options, ip };
      } catch (err) {
        await ns?.remove();
        free.push(ip);
        throw err;
      }
    },
    async teardown({ ns, options, ip }) {
      try {
        await exec('teardown', ns.path, options);
      } finally {
        await ns.remove();
        free.push(ip);
      }
    },
  };
  return contender;
}

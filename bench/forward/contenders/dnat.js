// Kernel DNAT as CNI's portmap sets it up: bridge + host-local + portmap
// through podnet's CniRuntime, for a namespace of its own, CNI. The plugins
// are executed in HOST (nsenter), so the bridge, portmap's iptables rules and
// the sysctls it sets live there, where the clients are, and the machine's
// own are never touched. 127.0.0.1:PORTS in HOST are DNATed to CNI's eth0.

import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { spawnPlugin } from '../../../dist/cni/invoke/exec.js';
import { CniRuntime } from '../../../dist/index.js';
import { iptablesLines, removeNewCniChains } from '../../lib/iptables.js';
import { IPERF_PORT, PORT } from '../context.js';

const PORTS = [7004, 7104];

/** A conflist of bridge (pnbXXXX) + host-local (10.235.X.0/24) + portmap, in ctx.work. */
function writeNetwork(ctx) {
  const hex = randomBytes(4).toString('hex');
  const bridge = `pnb${hex.slice(0, 4)}`;
  const name = `podnet-bench-fwd-${hex}`;
  const confDir = join(ctx.work, 'conf');
  mkdirSync(confDir);
  const third = 1 + Math.floor(Math.random() * 254);
  writeFileSync(
    join(confDir, `${name}.conflist`),
    JSON.stringify({
      cniVersion: '1.0.0',
      name,
      plugins: [
        {
          type: 'bridge',
          bridge,
          isGateway: true,
          ipMasq: false,
          ipam: {
            type: 'host-local',
            dataDir: join(ctx.work, 'ipam'),
            ranges: [[{ subnet: `10.235.${third}.0/24` }]],
          },
        },
        { type: 'portmap', capabilities: { portMappings: true } },
      ],
    }),
  );
  return { hex, bridge, name, confDir };
}

/** Contender of bench/forward.js (the interface is described there). */
export default {
  name: 'kernel DNAT (CNI portmap)',
  needs: [],
  async start(ctx) {
    const cniCtr = await ctx.createNamespace('cni');
    await cniCtr.setLinkUp('lo');
    const { hex, bridge, name, confDir } = writeNetwork(ctx);
    const hostPath = ctx.host.path;
    const cni = new CniRuntime({
      pluginDirs: ['/usr/lib/cni'],
      confDir,
      cacheDir: join(ctx.work, 'cache'),
      defaultNetwork: null,
      timeoutMs: 30_000,
      executor: (path, stdin, env, options) =>
        spawnPlugin('nsenter', stdin, env, options, [`--net=${hostPath}`, path]),
    });
    const list = await cni.loadNetwork(name);
    const mapping = (hostPort, containerPort) => ({
      hostIP: '127.0.0.1',
      hostPort,
      containerPort,
      protocol: 'tcp',
    });
    const attachment = {
      containerId: `podnet-bench-${hex}`,
      netns: cniCtr.path,
      ifName: 'eth0',
      capabilityArgs: { portMappings: [mapping(PORTS[0], PORT), mapping(PORTS[1], IPERF_PORT)] },
    };
    // After DEL, or instead of it on a signal: the bridge, and portmap's
    // chains if this run made them. Synchronous, once.
    const iptablesBefore = iptablesLines(hostPath);
    let hostDirty = true;
    const cleanupHost = () => {
      if (!hostDirty) return;
      hostDirty = false;
      spawnSync('nsenter', [`--net=${hostPath}`, 'ip', 'link', 'del', bridge], { stdio: 'ignore' });
      removeNewCniChains(iptablesBefore, hostPath);
    };
    ctx.onCleanup(cleanupHost);
    await cni.add(list, attachment);
    // The Node server bound inside CNI by ns.listen, from a process outside it.
    await ctx.startRole(null, ['nsserver', cniCtr.path, String(PORT)]);
    if (ctx.programs.iperf3) await ctx.startIperfServer(cniCtr);
    return {
      from: ctx.host,
      to: '127.0.0.1',
      ports: PORTS,
      // No CPU figure: the work is done in softirq, in no process.
      stop: async () => {
        await cni
          .del(list, attachment)
          .catch((err) => console.error(`bench/forward.js: CNI DEL: ${err.message}`));
        cleanupHost();
      },
    };
  },
};

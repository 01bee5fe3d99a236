// slirp4netns add_hostfwd: Slirp4netns.start (MTU 65520, podnet's default)
// for a namespace of its own, SLIRP, in a role process in HOST, with
// port_handler=slirp4netns: slirp4netns itself listens in HOST.
import { stopChild } from '../../lib/procs.js';
import { mappingArgs } from '../context.js';

const PORTS = [7005, 7105];

/** Contender of bench/forward.js (the interface is described there). */
export default {
  name: 'slirp4netns add_hostfwd (MTU 65520)',
  needs: ['slirp4netns'],
  async start(ctx) {
    const slirpCtr = await ctx.createNamespace('slirp');
    await slirpCtr.setLinkUp('lo');
    await ctx.startServers(slirpCtr);
    const role = await ctx.startRole(ctx.host, [
      'slirp',
      slirpCtr.path,
      ctx.work,
      ...mappingArgs(PORTS),
    ]);
    return {
      from: ctx.host,
      to: '127.0.0.1',
      ports: PORTS,
      // The role prints slirp4netns's pid: the process that moves the bytes.
      procs: [{ pid: Number(role.ready), children: false }],
      // The role stops slirp4netns on SIGTERM; slirp4netns also ends with it (its exit fd).
      stop: () => stopChild(role),
    };
  },
};

// The naive Node proxy: a net.Server in HOST that `ns.connect`s inside CTR
// and pipe()s both ways (bench/lib/forward-roles.js, role "pipe").
import { stopChild } from '../../lib/procs.js';
import { CTR_ADDR, mappingArgs } from '../context.js';

const PORTS = [7002, 7102];

/** Contender of bench/forward.js (the interface is described there). */
export default {
  name: 'Node pipe() proxy',
  needs: [],
  async start(ctx) {
    const role = await ctx.startRole(ctx.host, [
      'pipe',
      ctx.ctr.path,
      CTR_ADDR,
      ...mappingArgs(PORTS),
    ]);
    return {
      from: ctx.host,
      to: '127.0.0.1',
      ports: PORTS,
      procs: [{ pid: role.pid, children: false }],
      stop: () => stopChild(role),
    };
  },
};

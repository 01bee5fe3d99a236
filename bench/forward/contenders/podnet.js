// podnet's PortForwarder (native splice relay) in a role process in HOST:
// its sockets opened in CTR, it dials CTR's address there.
import { stopChild } from '../../lib/procs.js';
import { CTR_ADDR, mappingArgs } from '../context.js';

const PORTS = [7001, 7101];

/** Contender of bench/forward.js (the interface is described there). */
export default {
  name: 'podnet forwarder',
  needs: [],
  async start(ctx) {
    const role = await ctx.startRole(ctx.host, [
      'podnet',
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

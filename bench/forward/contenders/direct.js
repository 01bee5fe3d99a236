// No forwarding: the client in HOST, to CTR's address over the veth.
import { CTR_ADDR, IPERF_PORT, PORT } from '../context.js';

/** Contender of bench/forward.js (the interface is described there). */
export default {
  name: 'direct veth',
  needs: [],
  async start(ctx) {
    return { from: ctx.host, to: CTR_ADDR, ports: [PORT, IPERF_PORT], stop: async () => {} };
  },
};

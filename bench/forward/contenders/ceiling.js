// The ceiling: the client in CTR itself, to CTR's address (local delivery,
// no veth, no forwarding).
import { CTR_ADDR, IPERF_PORT, PORT } from '../context.js';

/** Contender of bench/forward.js (the interface is described there). */
export default {
  name: 'inside the namespace (ceiling)',
  needs: [],
  async start(ctx) {
    return { from: ctx.ctr, to: CTR_ADDR, ports: [PORT, IPERF_PORT], stop: async () => {} };
  },
};

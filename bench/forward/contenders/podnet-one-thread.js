// podnet's PortForwarder as the podnet row, but with one relay thread
// (PODNET_RELAY_THREADS=1), as the relay was before it ran a thread per
// core: what the threads bring, in the same run.
import { roleProxy } from '../role-proxy.js';

/** Contender of bench/forward.js (the interface is described there). */
export default roleProxy('podnet forwarder, 1 relay thread', 'podnet', [7007, 7107], {
  PODNET_RELAY_THREADS: '1',
});

// podnet's PortForwarder (native splice relay) in a role process in HOST:
// its sockets opened in CTR, it dials CTR's address there.
import { roleProxy } from '../role-proxy.js';

/** Contender of bench/forward.js (the interface is described there). */
export default roleProxy('podnet forwarder', 'podnet', [7001, 7101]);

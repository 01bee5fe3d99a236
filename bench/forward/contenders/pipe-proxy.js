// The naive Node proxy: a net.Server in HOST that `ns.connect`s inside CTR
// and pipe()s both ways (bench/lib/forward-roles.js, role "pipe").
import { roleProxy } from '../role-proxy.js';

/** Contender of bench/forward.js (the interface is described there). */
export default roleProxy('Node pipe() proxy', 'pipe', [7002, 7102]);

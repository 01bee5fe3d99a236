// podnet's PortForwarder from another build, in the same run: PODNET_BASELINE
// names the root of a built checkout of an earlier commit, whose own
// bench/lib/forward-roles.js (and so its dist/ and addon) runs the role.
import { join } from 'node:path';
import { roleProxy } from '../role-proxy.js';

const base = process.env.PODNET_BASELINE;

/** Contender of bench/forward.js (the interface is described there); only with PODNET_BASELINE. */
export default roleProxy(
  'podnet forwarder, PODNET_BASELINE build',
  'podnet',
  [7008, 7108],
  {},
  base ? join(base, 'bench/lib/forward-roles.js') : undefined,
);

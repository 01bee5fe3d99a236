// A contender that is one role process of bench/lib/forward-roles.js in
// HOST, forwarding PORTS to CTR's address (the podnet forwarder and the
// pipe() proxy differ only in the role).
import { stopChild } from '../lib/procs.js';
import { CTR_ADDR, mappingArgs } from './context.js';

/**
 * A contender named NAME that runs role ROLE on host ports PORTS, ENV added
 * to its environment, from ROLES_FILE (default: this checkout's).
 */
export function roleProxy(name, role, ports, env = {}, rolesFile = undefined) {
  return {
    name,
    needs: [],
    async start(ctx) {
      const child = await ctx.startRole(
        ctx.host,
        [role, ctx.ctr.path, CTR_ADDR, ...mappingArgs(ports)],
        env,
        rolesFile,
      );
      return {
        from: ctx.host,
        to: '127.0.0.1',
        ports,
        procs: [{ pid: child.pid, children: false }],
        stop: () => stopChild(child),
      };
    },
  };
}

// The rootless engines of one container: slirp4netns on its namespace, and
// the port forwarder when podnet forwards the ports (port_handler=rootlesskit,
// podman's default). Shared by a container set up in-process and by the
// keeper process that runs them for a container set up by `podnet up`.
import { isIP } from 'node:net';
import { InvalidArgumentError } from '../errors.js';
import type { NetworkNamespace } from '../netns/index.js';
import type { PortMapping } from '../ports.js';
import { PortForwarder } from './forwarder.js';
import { Pasta } from './pasta.js';
import { Slirp4netns } from './slirp4netns.js';
import type { PortHandler, Slirp4netnsOptions } from './slirp4netns-options.js';

/** The rootless engines of one container, running in this process. */
export interface RootlessEngines {
  /** slirp4netns on the namespace (mode 'slirp4netns'). */
  slirp?: Slirp4netns;
  /** pasta on the namespace (mode 'pasta'); it publishes the ports itself. */
  pasta?: Pasta;
  /** podnet's forwarder, when it publishes the ports. */
  forwarder?: PortForwarder;
}

/**
 * Where an engine attaches: the namespace's path, or (for an unprivileged
 * user's namespace, which only a process inside the user namespace may
 * enter) the pid of the UserNamespace helper holding it, which makes the
 * engine join that user namespace too.
 */
export type EngineTarget = { netns: string } | { pid: number };

function targetOf(netns: NetworkNamespace, pid: number | undefined): EngineTarget {
  return pid === undefined ? { netns: netns.path } : { pid };
}

/** Starts pasta on the namespace, publishing the ports (pasta forwards them itself). */
export async function startPasta(
  netns: NetworkNamespace,
  options: readonly string[],
  ports: readonly PortMapping[],
  signal: AbortSignal | undefined,
  usernsPid?: number,
): Promise<RootlessEngines> {
  return {
    pasta: await Pasta.start({
      ...targetOf(netns, usernsPid),
      options,
      ports,
      ...(signal ? { signal } : {}),
    }),
  };
}

/**
 * slirp4netns's API forwards IPv4 host addresses only; podnet's forwarder
 * (port_handler=rootlesskit) takes TCP and UDP from any host address.
 */
export function checkRootlessPorts(ports: readonly PortMapping[], handler: PortHandler): void {
  for (const p of ports) {
    if (handler === 'slirp4netns' && p.hostIP && isIP(p.hostIP) !== 4) {
      throw new InvalidArgumentError(
        `port_handler=slirp4netns forwards IPv4 host addresses only, not '${p.hostIP}'`,
      );
    }
  }
}

/** The guest address slirp4netns gives tap0: .100 of its network (10.0.2.100 by default). */
export function slirpGuestAddress(cidr: string | undefined): string {
  const base = (cidr ?? '10.0.2.0/24').split('/')[0]!.split('.').map(Number);
  const n = ((base[0]! << 24) | (base[1]! << 16) | (base[2]! << 8) | base[3]!) + 100;
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
}

/**
 * Starts slirp4netns on the namespace and publishes the ports through the
 * chosen handler. `usernsPid`: the UserNamespace helper of an unprivileged
 * user's namespace (slirp4netns then attaches by pid).
 */
export async function startSlirp4netns(
  netns: NetworkNamespace,
  options: Slirp4netnsOptions,
  ports: readonly PortMapping[],
  signal: AbortSignal | undefined,
  usernsPid?: number,
): Promise<RootlessEngines> {
  const slirp = await Slirp4netns.start({
    ...targetOf(netns, usernsPid),
    options,
    ...(signal ? { signal } : {}),
  });
  const engines: RootlessEngines = { slirp };
  try {
    if (ports.length && options.portHandler === 'slirp4netns') {
      for (const p of ports) {
        for (let i = 0; i < (p.range ?? 1); i++) {
          await slirp.addPortForward({
            proto: p.protocol ?? 'tcp',
            hostAddr: p.hostIP || '0.0.0.0',
            hostPort: p.hostPort + i,
            guestPort: p.containerPort + i,
          });
        }
      }
    } else if (ports.length) {
      // podman's rootlessport: host ports -> the container's own address,
      // never 127.0.0.1 inside (CVE-2021-20199).
      engines.forwarder = await PortForwarder.start({
        netns,
        mappings: [...ports],
        containerAddress: slirpGuestAddress(options.cidr),
      });
    }
    return engines;
  } catch (err) {
    await stopEngines(engines).catch(() => undefined);
    throw err;
  }
}

/** Stops the forwarder, then the engine (which removes its private directory). */
export async function stopEngines(engines: RootlessEngines): Promise<void> {
  await engines.forwarder?.close();
  await engines.slirp?.stop();
  await engines.pasta?.stop();
}

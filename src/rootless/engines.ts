// The rootless engines of one container: slirp4netns or pasta on its
// namespace, and the port forwarder when podnet forwards the ports
// (port_handler=rootlesskit, podman's default; and for a pasta that would
// splice loopback clients into the container's loopback). Shared by a
// container set up in-process and by the keeper process that runs them for
// a container set up by `podnet up`.
import { isIP } from 'node:net';
import { InvalidArgumentError } from '../errors.js';
import type { NetworkNamespace } from '../netns/index.js';
import { checkPortMappings, expandPortMappings, type PortMapping } from '../ports.js';
import { containerAddressProblem } from './container-address.js';
import { PastaAddressError } from './errors.js';
import { PortForwarder } from './forwarder/forwarder.js';
import { type PastaOptions, parsePastaOptions } from './pasta/options.js';
import { Pasta } from './pasta/pasta.js';
import { probePasta } from './pasta/probe.js';
import type { PortHandler, Slirp4netnsOptions } from './slirp4netns/options.js';
import { Slirp4netns } from './slirp4netns/slirp4netns.js';

/** The rootless engines of one container, running in this process. */
export interface RootlessEngines {
  /** slirp4netns on the namespace (mode 'slirp4netns'). */
  slirp?: Slirp4netns;
  /**
   * pasta on the namespace (mode 'pasta'): it publishes the ports itself,
   * unless its splice would hand the container a loopback peer (then the
   * forwarder does; see {@link startPasta}).
   */
  pasta?: Pasta;
  /** podnet's forwarder, when it publishes the ports (slirp4netns's port_handler=rootlesskit, a splicing pasta). */
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

const IFF_LOOPBACK = 0x8;
/** IFA_F_* flags of an address not (or no longer) usable as a source: DAD failed, deprecated, tentative. */
const UNUSABLE_ADDRESS = 0x08 | 0x20 | 0x40;

/**
 * The address podnet's forwarder dials in a pasta namespace: the one pasta
 * copied from the host onto its interface (`--config-net`), read back over
 * netlink once pasta is ready. A global address on a non-loopback link that
 * the guard accepts; IPv4 first, as pasta's own forwards prefer it.
 * Throws PastaAddressError when there is none.
 */
export async function pastaContainerAddress(netns: NetworkNamespace): Promise<string> {
  const loopbacks = new Set(
    (await netns.links()).filter((l) => (l.flags & IFF_LOOPBACK) !== 0).map((l) => l.index),
  );
  const addresses = await netns.addresses();
  const usable = addresses.filter(
    (a) =>
      !loopbacks.has(a.index) &&
      a.scope === 0 &&
      (a.flags & UNUSABLE_ADDRESS) === 0 &&
      containerAddressProblem(a.address) === undefined,
  );
  const chosen = usable.find((a) => a.family === 4) ?? usable[0];
  if (chosen === undefined) {
    throw new PastaAddressError(
      netns.path,
      addresses.map((a) => `${a.address}/${a.prefixLength}`),
    );
  }
  return chosen.address;
}

/** Port specs the caller gave pasta itself (`-t`/`-u`), other than `none`. */
function ownPublishes(options: PastaOptions): string | undefined {
  const { args } = options;
  for (let i = 0; i < args.length - 1; i++) {
    if (['-t', '--tcp-ports', '-u', '--udp-ports'].includes(args[i]!) && args[i + 1] !== 'none')
      return `${args[i]} ${args[i + 1]}`;
  }
  return undefined;
}

/**
 * Starts pasta on the namespace and publishes the ports. A pasta that
 * splices loopback clients into the namespace's loopback (probe:
 * `splicesLoopback`, Debian 12's among them) gets no ports of its own: it
 * keeps the outbound traffic, and podnet's forwarder publishes the ports
 * by dialling the container's own address from inside, so the server sees
 * a non-loopback peer and a service bound to the container's 127.0.0.1 is
 * not reachable from the host port (CVE-2021-20199). A newer pasta, whose
 * splice goes to that address itself, publishes them as podman has it do.
 * With a splicing pasta, `-t`/`-u` in `options` are refused
 * (InvalidArgumentError) for the same reason. `usernsPid`: the
 * UserNamespace helper of an unprivileged user's namespace (pasta then
 * attaches by pid; the forwarder's sockets come from `netns`'s helper).
 */
export async function startPasta(
  netns: NetworkNamespace,
  options: readonly string[],
  ports: readonly PortMapping[],
  signal: AbortSignal | undefined,
  usernsPid?: number,
): Promise<RootlessEngines> {
  const parsed = parsePastaOptions(options);
  const binary = await probePasta();
  const forward = binary.splicesLoopback;
  const own = forward ? ownPublishes(parsed) : undefined;
  if (own !== undefined) {
    throw new InvalidArgumentError(
      `pasta option '${own}': this pasta (${binary.path}) would splice loopback clients into the container's loopback (CVE-2021-20199); publish the port as a port mapping instead`,
    );
  }
  const pasta = await Pasta.start({
    ...targetOf(netns, usernsPid),
    options: parsed,
    ports: forward ? [] : ports,
    binary,
    ...(signal ? { signal } : {}),
  });
  const engines: RootlessEngines = { pasta };
  if (!forward || ports.length === 0) return engines;
  try {
    engines.forwarder = await PortForwarder.start({
      netns,
      mappings: [...ports],
      containerAddress: await pastaContainerAddress(netns),
    });
    return engines;
  } catch (err) {
    await stopEngines(engines).catch(() => undefined);
    throw err;
  }
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
      for (const p of expandPortMappings(checkPortMappings(ports))) {
        await slirp.addPortForward({
          proto: p.protocol,
          hostAddr: p.hostIP || '0.0.0.0',
          hostPort: p.hostPort,
          guestPort: p.containerPort,
        });
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

// Networks as objects, stored as podman 4's CNI backend stores them: one
// NAME.conflist per network in the CNI config dir, which every podnet
// command (and a CNI-backed podman) reads. Create plans first (plan.ts:
// nothing written on bad input), then writes the file complete under a
// temp name and links it into place, which fails if the name exists: a
// file is never overwritten and never seen half-written. Create and remove
// run under an flock on CONFDIR/.podnet-networks.lock, so two podnet
// creates cannot pick the same free subnet. (podman's CNI backend locks
// CONFDIR/cni.lock with fcntl, which an flock does not exclude, and
// unlinking that file on release would split podman's own lock: so podnet
// keeps a lock of its own.)
import { randomBytes } from 'node:crypto';
import {
  closeSync,
  fchmodSync,
  fsyncSync,
  linkSync,
  openSync,
  unlinkSync,
  writeFileSync,
} from 'node:fs';
import { access, mkdir, readFile, stat, unlink } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { scanNetworks } from '../cni/config.js';
import {
  type CniNetworkList,
  CniNetworkNotFoundError,
  CniRuntime,
  normalizeResult,
  parseNetworkList,
} from '../cni/index.js';
import { InvalidArgumentError, isPodnetError } from '../errors.js';
import { checkPrivateDir, resolveDir } from '../fsafe.js';
import { decodeRoutes, encodeDump, NetworkNamespace } from '../netns/index.js';
import { Networking } from '../network/index.js';
import { type ContainerLock, tryLock } from '../network/lock.js';
import type { ContainerState } from '../network/types.js';
import { buildConflist, type NetworkInfo, networkFromConflist } from './conflist.js';
import { NetworkError } from './errors.js';
import { type NetworkCreateOptions, planNetwork } from './plan.js';
import { routeSubnets, type Subnet } from './subnets.js';

/** Options of {@link Networks}. */
export interface NetworksOptions {
  /**
   * The Networking whose containers use these networks (its CNI runtime
   * names the config dir and plugin dirs; its state dir says who is
   * attached; `remove({ force })` tears down through it). Default: one
   * over `configDir`.
   */
  networking?: Networking;
  /** The CNI config dir (default the networking's, /etc/cni/net.d). */
  configDir?: string;
  /** How long create and remove wait for the config dir's lock (default 10 s). */
  lockTimeoutMs?: number;
}

/** One interface of a container on a network, as podman's inspect shows it. */
export interface NetworkContainerInterface {
  subnets: { ipnet: string; gateway?: string }[];
  mac_address: string;
}

/** A container attached to a network, as podman's `network inspect` lists it. */
export interface NetworkContainer {
  name: string;
  interfaces: Record<string, NetworkContainerInterface>;
}

/** `network inspect`: the network and the containers attached, by ID. */
export interface NetworkInspect extends NetworkInfo {
  containers: Record<string, NetworkContainer>;
}

/** Filters of {@link Networks.list}, podman's: every one given must match. */
export interface NetworkFilters {
  /** Regular expressions, one of which the name must match. */
  name?: string[];
  /** `KEY` or `KEY=VALUE`: the network has every one. */
  label?: string[];
  driver?: string[];
  /** ID prefixes. */
  id?: string[];
}

/** Whether a container's state names the network (attached, or being attached). */
function uses(state: ContainerState, network: string): boolean {
  return state.networks.some((n) => n.name === network) || state.adding?.name === network;
}

/** The interfaces of this process's network namespace, from /proc/net/dev (sysfs shows the namespace that mounted it). */
async function liveInterfaces(): Promise<string[]> {
  const text = await readFile('/proc/net/dev', 'utf8');
  return text
    .split('\n')
    .slice(2)
    .flatMap((l) => {
      const name = l.split(':')[0]?.trim();
      return name ? [name] : [];
    });
}

/** The subnets this process's namespace routes (one RTM_GETROUTE dump on a socket of its own). */
async function hostRoutes(): Promise<Subnet[]> {
  const host = await NetworkNamespace.open('/proc/self/ns/net');
  try {
    const what = 'listing the routes of this namespace';
    const reply = host.rtnlRequestSync(what, encodeDump('routes', 0));
    return routeSubnets(decodeRoutes(reply, reply.length, what));
  } finally {
    host.close();
  }
}

/** The networks of one CNI config dir, as objects (podman's `network` noun). */
export class Networks {
  /** The CNI config dir (absolute, resolved once). */
  readonly configDir: string;
  /** The containers' side: states and teardown. */
  readonly networking: Networking;
  readonly #lockTimeoutMs: number;

  constructor(options: NetworksOptions = {}) {
    const dir = options.configDir === undefined ? undefined : resolveDir(options.configDir);
    if (
      options.networking !== undefined &&
      dir !== undefined &&
      resolveDir(options.networking.cni.confDir) !== dir
    )
      throw new InvalidArgumentError(
        `configDir '${dir}' is not the networking's CNI config dir '${options.networking.cni.confDir}'`,
      );
    this.networking =
      options.networking ??
      new Networking(dir === undefined ? {} : { cni: new CniRuntime({ confDir: dir }) });
    this.configDir = dir ?? resolveDir(this.networking.cni.confDir);
    this.#lockTimeoutMs = options.lockTimeoutMs ?? 10_000;
  }

  /**
   * Creates a network and writes its conflist (CONFDIR/NAME.conflist, 0644).
   * Bad input, a duplicate name, a subnet in use: a one-line typed error and
   * no file written.
   */
  async create(options: NetworkCreateOptions = {}): Promise<NetworkInfo> {
    this.#checkDir();
    // Planned once before the lock, whose file (and a missing config dir)
    // would be a change on the host, so bad input changes nothing; then
    // again under it, against what is there now.
    await this.#plan(options);
    const held = await this.#lock();
    try {
      const { net, dnsname } = await this.#plan(options);
      const path = join(this.configDir, `${net.name}.conflist`);
      const text = buildConflist(net, dnsname);
      // What podnet writes it must be able to read: checked before the name appears.
      parseNetworkList(text, path);
      this.#writeNew(path, net.name, text);
      return { ...net, created: (await stat(path)).ctime.toISOString() };
    } finally {
      held.release();
    }
  }

  async #plan(options: NetworkCreateOptions): Promise<{ net: NetworkInfo; dnsname: boolean }> {
    const [existing, routes, links, dnsname] = await Promise.all([
      this.#networks(),
      hostRoutes(),
      liveInterfaces(),
      this.#hasPlugin('dnsname'),
    ]);
    const net = planNetwork(options, {
      existing,
      hostRoutes: routes,
      liveInterfaces: links,
      dnsname,
      now: new Date().toISOString(),
    });
    return { net, dnsname };
  }

  /** Every network (the default network too), filtered (podman's `network ls --filter`). */
  async list(filters: NetworkFilters = {}): Promise<NetworkInfo[]> {
    const all = await this.#networks();
    const names = (filters.name ?? []).map((re) => {
      try {
        return new RegExp(re);
      } catch (cause) {
        throw new InvalidArgumentError(`name filter '${re}' is not a regular expression`, {
          cause,
        });
      }
    });
    return all.filter(
      (n) =>
        (names.length === 0 || names.some((re) => re.test(n.name))) &&
        (filters.driver === undefined ||
          filters.driver.length === 0 ||
          filters.driver.includes(n.driver)) &&
        (filters.id === undefined ||
          filters.id.length === 0 ||
          filters.id.some((p) => n.id.startsWith(p))) &&
        (filters.label ?? []).every((l) => {
          const eq = l.indexOf('=');
          const key = eq === -1 ? l : l.slice(0, eq);
          return n.labels?.[key] !== undefined && (eq === -1 || n.labels[key] === l.slice(eq + 1));
        }),
    );
  }

  /** One network and the containers attached to it; ERR_PODNET_CNI_NETWORK_NOT_FOUND when there is none. */
  async inspect(name: string): Promise<NetworkInspect> {
    const net = await this.#find(name);
    const containers: Record<string, NetworkContainer> = {};
    for (const state of await this.#states()) {
      const interfaces: Record<string, NetworkContainerInterface> = {};
      for (const n of state.networks.filter((x) => x.name === net.name)) {
        const { interfaces: ifs, ips } = normalizeResult(n.result);
        const own = ifs.findIndex((i) => i.name === n.ifName && (i.sandbox ?? '') !== '');
        interfaces[n.ifName] = {
          subnets: ips
            .filter((ip) => ip.interface === undefined || ip.interface === own)
            .map((ip) => ({
              ipnet: ip.address,
              ...(ip.gateway === undefined ? {} : { gateway: ip.gateway }),
            })),
          mac_address: ifs[own]?.mac ?? '',
        };
      }
      if (Object.keys(interfaces).length > 0)
        containers[state.id] = { name: state.name, interfaces };
    }
    return { ...net, containers };
  }

  /** Whether a network of that name exists (podman's `network exists`). */
  async exists(name: string): Promise<boolean> {
    return (await this.#networks()).some((n) => n.name === name);
  }

  /**
   * Removes a network: its conflist, and its bridge on the host (as podman
   * does). Refused (ERR_PODNET_NETWORK_IN_USE) while containers use it,
   * unless `force`, which first tears each of them down through Networking.
   * The default network cannot be removed.
   */
  async remove(name: string, options: { force?: boolean } = {}): Promise<void> {
    this.#checkDir();
    const net = await this.#find(name);
    if (net.name === this.networking.defaultNetwork)
      throw new InvalidArgumentError(`the default network '${net.name}' cannot be removed`);
    const users = (await this.#states()).filter((s) => uses(s, net.name));
    if (users.length > 0 && !options.force)
      throw new NetworkError(
        'ERR_PODNET_NETWORK_IN_USE',
        net.name,
        `used by ${users.map((s) => s.id).join(', ')} (force tears them down first)`,
      );
    for (const s of users) await (await this.networking.load(s.id)).teardown();
    const held = await this.#lock();
    try {
      const list = await this.#fileOf(net.name);
      if (list === undefined) throw new CniNetworkNotFoundError(net.name, this.configDir);
      // A bridge another network names stays (a hand-written list may share it).
      const bridge = net.driver === 'bridge' ? net.network_interface : undefined;
      const shared = (await this.#networks()).some(
        (n) => n.name !== net.name && n.driver === 'bridge' && n.network_interface === bridge,
      );
      if (bridge !== undefined && !shared) await deleteBridge(bridge);
      await unlink(list.source);
    } finally {
      held.release();
    }
  }

  /** Removes every network no container uses, the default network kept; resolves to their names. */
  async prune(): Promise<string[]> {
    const states = await this.#states();
    const removed: string[] = [];
    for (const net of await this.#networks()) {
      if (net.name === this.networking.defaultNetwork) continue;
      if (states.some((s) => uses(s, net.name))) continue;
      // Files only: the embedded default network has none.
      if ((await this.#fileOf(net.name)) === undefined) continue;
      await this.remove(net.name);
      removed.push(net.name);
    }
    return removed;
  }

  // The networks the runtime sees: every file, and the runtime's default
  // network when no file names it (podman always lists its default).
  async #networks(): Promise<NetworkInfo[]> {
    const { networks } = await scanNetworks(this.configDir);
    const out = await Promise.all(
      networks.map(async (l) => networkFromConflist(l, (await stat(l.source)).ctime.toISOString())),
    );
    if (!networks.some((l) => l.name === this.networking.defaultNetwork)) {
      const def = await this.networking.cni
        .loadNetwork(this.networking.defaultNetwork)
        .catch((err: unknown) => {
          if (err instanceof CniNetworkNotFoundError) return undefined;
          throw err;
        });
      if (def !== undefined) out.unshift(networkFromConflist(def, new Date(0).toISOString()));
    }
    return out;
  }

  async #find(name: string): Promise<NetworkInfo> {
    const net = (await this.#networks()).find((n) => n.name === name);
    if (net === undefined) throw new CniNetworkNotFoundError(name, this.configDir);
    return net;
  }

  async #fileOf(name: string): Promise<CniNetworkList | undefined> {
    const { networks } = await scanNetworks(this.configDir);
    return networks.find((l) => l.name === name && dirname(l.source) === this.configDir);
  }

  async #states(): Promise<ContainerState[]> {
    return this.networking.list().catch((err: unknown) => {
      // No state dir yet: no container uses anything.
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw err;
    });
  }

  async #hasPlugin(type: string): Promise<boolean> {
    for (const dir of this.networking.cni.pluginDirs) {
      if (
        await access(join(dir, type)).then(
          () => true,
          () => false,
        )
      )
        return true;
    }
    return false;
  }

  // The dir holds files that root hands to plugins: nobody else may write it.
  #checkDir(): void {
    checkPrivateDir(this.configDir);
  }

  async #lock(): Promise<ContainerLock> {
    await mkdir(this.configDir, { recursive: true, mode: 0o755 });
    this.#checkDir();
    const path = join(this.configDir, '.podnet-networks.lock');
    const deadline = Date.now() + this.#lockTimeoutMs;
    for (let wait = 5; ; wait = Math.min(wait * 2, 100)) {
      const held = tryLock(path);
      if (held) return held;
      if (Date.now() >= deadline)
        throw new NetworkError('ERR_PODNET_NETWORK_BUSY', '*', `another process holds ${path}`);
      await sleep(wait);
    }
  }

  #writeNew(path: string, name: string, text: string): void {
    const tmp = join(this.configDir, `.${name}.${randomBytes(6).toString('hex')}.tmp`);
    const fd = openSync(tmp, 'wx', 0o644);
    try {
      fchmodSync(fd, 0o644); // whatever the umask: plugins and podman read it
      writeFileSync(fd, text);
      fsyncSync(fd);
    } catch (err) {
      closeSync(fd);
      unlinkSync(tmp);
      throw err;
    }
    closeSync(fd);
    try {
      linkSync(tmp, path);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EEXIST')
        throw new NetworkError('ERR_PODNET_NETWORK_EXISTS', name, `${path} exists`);
      throw err;
    } finally {
      unlinkSync(tmp);
    }
    const dirFd = openSync(this.configDir, 'r');
    try {
      fsyncSync(dirFd);
    } finally {
      closeSync(dirFd);
    }
  }
}

/** Deletes a network's bridge in this process's namespace (podman's deleteLink); gone already is fine. */
async function deleteBridge(name: string): Promise<void> {
  const host = await NetworkNamespace.open('/proc/self/ns/net');
  try {
    await host.deleteLink(name);
  } catch (err) {
    if (!(isPodnetError(err) && err.code === 'ERR_PODNET_LINK_NOT_FOUND')) throw err;
  } finally {
    host.close();
  }
}

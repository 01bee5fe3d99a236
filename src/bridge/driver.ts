// podnet's own bridge driver: what the default network's plugin chain
// (bridge, host-local, portmap, firewall, tuning) does, in-process. Links
// and addresses over netlink on kept sockets, leases in host-local's own
// files and lock, the firewall as elements of podnet's nftables table, one
// netlink batch per setup and one per teardown. A setup is a few
// milliseconds where the plugins take tens: no process is started.
//
// What it makes is recorded the way the plugins' work is: a CNI result of
// the same shape (so inspect is the same), and a libcni cache entry (so
// other CNI tools, and gc after a reboot, see the attachment and its
// leases). Undo is idempotent: every step may find its work absent, so a
// crash at any point is finished by running detach again.
import type { CniResult100, ResultCache } from '../cni/index.js';
import { publish } from '../diagnostics.js';
import { NetworkNamespace } from '../netns/index.js';
import type { ExpandedPort } from '../ports.js';
import { listLeases, releaseAddresses, reserveAddresses } from './ipam.js';
import {
  configureContainer,
  createVeth,
  deleteLinkIfPresent,
  enableForwarding,
  ensureBridge,
} from './link.js';
import type { BridgeNetwork } from './network.js';
import { type FirewallNetwork, type FirewallPort, PodnetTable } from './nft/index.js';

/** What attaching one container to one bridge network needs. */
export interface AttachRequest {
  network: BridgeNetwork;
  /** The list's JSON, kept in the cache entry as libcni keeps it. */
  config: string;
  containerId: string;
  /** The container's interface (eth0, ...). */
  ifName: string;
  /** The host end's name, decided (and journalled) before the attach. */
  hostIfName: string;
  netns: NetworkNamespace;
  /** Static addresses (host-local's `ips`). */
  ips?: string[];
  /** Static MAC of the container's interface. */
  mac?: string;
  /** Published ports, expanded (host port chosen). */
  ports: ExpandedPort[];
  /** CNI_ARGS and capability args, recorded in the cache entry as an ADD's are. */
  args: [string, string][];
  capabilityArgs: Record<string, unknown>;
}

/** What detaching needs: enough to find every trace, none of it trusted to exist. */
export interface DetachRequest {
  network: BridgeNetwork;
  containerId: string;
  ifName: string;
  /** The container's addresses as recorded (leases on disk are found by ID too). */
  addresses: string[];
  ports: ExpandedPort[];
}

/**
 * The native bridge driver. One per Networking: it keeps a netlink socket
 * in the host's namespace (this thread's) and one for netfilter, both
 * opened on first use and closed when the Networking is collected (the
 * namespace handle's finalizer, the socket object's destructor).
 */
export class BridgeDriver {
  readonly #cache: ResultCache;
  #host: NetworkNamespace | undefined;
  #table: PodnetTable | undefined;

  constructor(cache: ResultCache) {
    this.#cache = cache;
  }

  /** The host's namespace: the one this process's main thread is in. */
  async host(): Promise<NetworkNamespace> {
    this.#host ??= await NetworkNamespace.open('/proc/self/ns/net');
    return this.#host;
  }

  async #firewall(): Promise<PodnetTable> {
    this.#table ??= await PodnetTable.open();
    return this.#table;
  }

  // The table for removing: none when the host has none (after a reboot,
  // say), which then holds nothing of the container's to remove.
  async #existingFirewall(): Promise<PodnetTable | undefined> {
    this.#table ??= await PodnetTable.openExisting();
    return this.#table;
  }

  /** Attaches a container; on failure, whatever was made is left for {@link detach}. */
  async attach(req: AttachRequest): Promise<CniResult100> {
    const { network: net } = req;
    const step = (phase: string): void =>
      publish('podnet:bridge:attach', { id: req.containerId, network: net.name, phase });
    const host = await this.host();
    const leases = await reserveAddresses({
      dataDir: net.dataDir,
      network: net.name,
      ranges: net.ranges,
      containerId: req.containerId,
      ifName: req.ifName,
      ...(req.ips?.length ? { ips: req.ips } : {}),
    });
    step('leased');
    const bridge = ensureBridge(host, net, { localnet: req.ports.length > 0 });
    enableForwarding(leases.some((l) => l.version === 6));
    step('bridge');
    const link = createVeth(host, req.netns, net, bridge, {
      host: req.hostIfName,
      container: req.ifName,
      ...(req.mac === undefined ? {} : { mac: req.mac }),
    });
    step('veth');
    configureContainer(req.netns, req.ifName, leases, net.routes);
    step('container');
    (await this.#firewall()).addContainer(firewallNetwork(net), {
      ports: firewallPorts(
        req.ports,
        leases.map((l) => l.address.split('/')[0]!),
      ),
    });
    step('firewall');
    const result: CniResult100 = {
      cniVersion: '1.0.0',
      interfaces: [
        { name: net.bridge, mac: bridge.mac },
        { name: link.host.name, mac: link.host.mac },
        { name: link.container.name, mac: link.container.mac, sandbox: req.netns.path },
      ],
      ips: leases.map((l) => ({ interface: 2, address: l.address, gateway: l.gateway })),
      routes: net.routes.map((r) => ({ ...r })),
      dns: {},
    };
    await this.#cache.write({
      network: net.name,
      containerId: req.containerId,
      ifName: req.ifName,
      netns: req.netns.path,
      args: req.args,
      capabilityArgs: req.capabilityArgs,
      config: req.config,
      result,
      driver: 'native',
    });
    step('cached');
    return result;
  }

  /**
   * Undoes an attach, however far it got: the firewall elements (absent
   * ones are fine), the leases (found by container ID and interface, as
   * host-local's DEL finds them), the cache entry. The veth goes with the
   * container's namespace; for a namespace that outlives its removal (a
   * process's), `opts.hostIfName` names the host end to delete.
   */
  async detach(req: DetachRequest, opts: { hostIfName?: string } = {}): Promise<void> {
    const net = req.network;
    const store = { dataDir: net.dataDir, network: net.name };
    const owner = { ...store, containerId: req.containerId, ifName: req.ifName };
    // The recorded result names the addresses; an attach cut short before
    // its result was journalled is found by its leases.
    let ips = req.addresses.map((a) => a.split('/')[0]!);
    if (ips.length === 0) {
      ips = (await listLeases(store))
        .filter((l) => l.containerId === req.containerId && (l.ifName ?? req.ifName) === req.ifName)
        .map((l) => l.ip);
    }
    (await this.#existingFirewall())?.removeContainer(firewallNetwork(net), {
      ports: firewallPorts(req.ports, ips),
    });
    await releaseAddresses(req.addresses.length ? { ...owner, ips } : owner);
    if (opts.hostIfName !== undefined) {
      const host = await this.host();
      deleteLinkIfPresent(host, opts.hostIfName);
    }
    await this.#cache.remove(net.name, req.containerId, req.ifName);
  }

  /**
   * Adds a container's firewall elements again (its network's, its
   * published ports to its addresses): what a reload after a firewall
   * flush needs. Idempotent; the table is made again if it was removed.
   */
  async refreshFirewall(req: DetachRequest): Promise<void> {
    const ips = req.addresses.map((a) => a.split('/')[0]!);
    (await this.#firewall()).addContainer(firewallNetwork(req.network), {
      ports: firewallPorts(req.ports, ips),
    });
  }
}

function firewallNetwork(net: BridgeNetwork): FirewallNetwork {
  return {
    name: net.name,
    bridge: net.bridge,
    subnets: net.ranges.flat().map((r) => r.subnet),
    masquerade: net.ipMasq,
  };
}

/** Each published port, to the container's address of the family its host address has. */
function firewallPorts(ports: readonly ExpandedPort[], ips: readonly string[]): FirewallPort[] {
  const out: FirewallPort[] = [];
  for (const p of ports) {
    const v6 = p.hostIP.includes(':');
    for (const ip of ips) {
      if (ip.includes(':') !== v6 && p.hostIP !== '') continue;
      out.push({
        protocol: p.protocol,
        ...(p.hostIP === '' ? {} : { hostIP: p.hostIP }),
        hostPort: p.hostPort,
        containerIP: ip,
        containerPort: p.containerPort,
      });
    }
  }
  return out;
}

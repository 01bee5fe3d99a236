import { execFile } from 'node:child_process';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { bridgeNetworkOf, PodnetTable } from '../bridge/index.js';
import { CniRuntime, DEFAULT_NETWORK } from '../cni/index.js';
import { PodnetError } from '../errors.js';
import { NetworkNamespace } from '../netns/index.js';
import { Networking } from '../network/index.js';
import type { ContainerStats, NetworkSettings } from '../network/types.js';
import type { FlagValues } from './flags.js';
import { bytes, print, table } from './output.js';

/** What `podnet demo` did and saw. */
export interface DemoReport {
  id: string;
  network: string;
  netns: string;
  address: string;
  hostPort: number;
  requests: number;
  responseBytes: number;
  inspect: NetworkSettings;
  stats: ContainerStats;
  /** Checks made after teardown, each true when clean. */
  leftovers: Record<string, boolean>;
}

/** Options of {@link runDemo}. */
export interface DemoOptions {
  /** Called with a line for each step (the CLI prints them; --json does not). */
  say?: (line: string) => void;
  /** Requests to send through the published port (default 300). */
  requests?: number;
}

async function freeLoopbackPort(): Promise<number> {
  const probe = net.createServer();
  probe.listen(0, '127.0.0.1');
  await once(probe, 'listening');
  const { port } = probe.address() as net.AddressInfo;
  probe.close();
  await once(probe, 'close');
  return port;
}

/** What a program prints ('' when it is missing or fails). */
function output(file: string, args: string[]): Promise<string> {
  return new Promise((resolve) => {
    execFile(file, args, { timeout: 10_000 }, (err, stdout) => resolve(err ? '' : stdout));
  });
}

/**
 * The port rules a container's setup made: the plugins' in iptables' nat
 * table (tagged with the container ID), the native driver's in podnet's
 * nftables table (its host port's map element); as `nft` and
 * `iptables-save` print them, '' where one is missing.
 */
async function portRules(id: string, hostPort: number): Promise<string[]> {
  const nat = await output('iptables-save', ['-t', 'nat']);
  const table = await output('nft', ['list', 'table', 'inet', 'podnet']);
  return [
    ...nat.split('\n').filter((l) => l.includes(`id: "${id}"`)),
    ...table.split('\n').filter((l) => l.includes(`. ${hostPort} :`)),
  ];
}

async function hostLinkExists(name: string): Promise<boolean> {
  const host = await NetworkNamespace.open('/proc/self/ns/net');
  try {
    return (await host.links()).some((l) => l.name === name);
  } finally {
    host.close();
  }
}

/**
 * The main job: a container network on the embedded default network with a
 * published port, HTTP served from inside the namespace by this process,
 * fetched through the port from the host while the counters are watched,
 * then torn down and checked.
 */
export async function runDemo(options: DemoOptions = {}): Promise<DemoReport> {
  const say = options.say ?? (() => undefined);
  const total = options.requests ?? 300;
  // The embedded network even if /etc/cni/net.d has its own: the demo must
  // behave the same on every machine.
  const cni = new CniRuntime({ defaultNetwork: DEFAULT_NETWORK });
  const nw = new Networking({ cni, defaultNetwork: DEFAULT_NETWORK.name });
  const bridge = String(DEFAULT_NETWORK.plugins[0]?.config['bridge']);
  const bridgeExisted = await hostLinkExists(bridge);
  const id = `podnet-demo-${process.pid}`;
  const hostPort = await freeLoopbackPort();

  say(
    `1. setting up container '${id}' on network '${DEFAULT_NETWORK.name}' (bridge ${bridge}, 10.88.0.0/16)`,
  );
  say(
    `   with port 127.0.0.1:${hostPort} -> 80/tcp published (the native driver: what bridge, host-local, portmap, firewall and tuning do, in-process)`,
  );
  const attached = await nw.setup({
    id,
    name: id,
    portMappings: [{ hostIP: '127.0.0.1', hostPort, containerPort: 80 }],
  });
  const server = http.createServer((req, res) => {
    res.setHeader('content-type', 'text/plain');
    res.end(
      `hello from ${req.socket.localAddress} inside ${attached.state.netnsPath}\n`.repeat(64),
    );
  });
  let report: Omit<DemoReport, 'leftovers'>;
  try {
    const inspect = attached.inspect();
    say(
      `   namespace ${attached.state.netnsPath}, eth0 ${inspect.IPAddress}/${inspect.IPPrefixLen}, MAC ${inspect.MacAddress}`,
    );
    await attached.netns!.listen(server, { port: 80 });
    say('2. serving HTTP on port 80 inside the namespace, from this process');

    say(
      `3. fetching http://127.0.0.1:${hostPort}/ ${total} times through the published port, watching eth0`,
    );
    let done = 0;
    let responseBytes = 0;
    let first = '';
    // The same watch as `podnet stats --watch`: rates from its second frame.
    const stopWatch = new AbortController();
    const watching = (async () => {
      for await (const frame of attached.watchStats({ interval: 200, signal: stopWatch.signal })) {
        const r = frame.interfaces[0];
        if (r?.rxBytesPerSec !== undefined && r.txBytesPerSec !== undefined)
          say(
            `   ${String(done).padStart(4)} requests  rx ${bytes(r.rxBytesPerSec)}/s  tx ${bytes(r.txBytesPerSec)}/s`,
          );
      }
    })();
    try {
      const agent = new http.Agent({ keepAlive: false });
      for (; done < total; done++) {
        const res = await new Promise<http.IncomingMessage>((resolve, reject) =>
          http
            .get({ host: '127.0.0.1', port: hostPort, path: '/', agent }, resolve)
            .on('error', reject),
        );
        const chunks: Buffer[] = [];
        for await (const c of res) chunks.push(c as Buffer);
        const body = Buffer.concat(chunks);
        responseBytes += body.length;
        first ||= body.toString().split('\n')[0]!;
      }
    } finally {
      stopWatch.abort();
      await watching;
    }
    say(`   every response came from inside: "${first}"`);
    const stats = await attached.stats();
    say('');
    say(
      table(
        ['IFACE', 'RX BYTES', 'RX PACKETS', 'TX BYTES', 'TX PACKETS', 'ERRORS', 'DROPPED'],
        stats.interfaces.map((i) => [
          i.name,
          i.stats.rxBytes,
          i.stats.rxPackets,
          i.stats.txBytes,
          i.stats.txPackets,
          i.stats.rxErrors + i.stats.txErrors,
          i.stats.rxDropped + i.stats.txDropped,
        ]),
      ),
    );
    say('');
    say('4. inspect (Docker-compatible NetworkSettings):');
    say(
      JSON.stringify(
        {
          SandboxKey: inspect.SandboxKey,
          IPAddress: inspect.IPAddress,
          Gateway: inspect.Gateway,
          MacAddress: inspect.MacAddress,
          Ports: inspect.Ports,
        },
        null,
        2,
      ).replace(/^/gm, '   '),
    );
    report = {
      id,
      network: DEFAULT_NETWORK.name,
      netns: attached.state.netnsPath,
      address: inspect.IPAddress,
      hostPort,
      requests: done,
      responseBytes,
      inspect,
      stats,
    };
  } finally {
    server.close();
    say('5. tearing down: port rules and lease released, namespace unmounted, state removed');
    await attached.teardown();
  }

  // A bridge stays (the plugins and the native driver share it between
  // containers); the demo removes it when it made it, once the kernel has
  // taken the container's veth away with its namespace (asynchronously).
  if (!bridgeExisted && (await hostLinkExists(bridge))) {
    const host = await NetworkNamespace.open('/proc/self/ns/net');
    try {
      for (let i = 0; i < 40; i++) {
        const links = await host.links();
        const br = links.find((l) => l.name === bridge);
        if (!br) break;
        if (!links.some((l) => l.master === br.index)) {
          await host.deleteLink(bridge);
          // And what the driver's first container on it put in its table.
          const served = bridgeNetworkOf(DEFAULT_NETWORK);
          const table = await PodnetTable.openExisting();
          try {
            if ('ranges' in served)
              table?.removeNetwork({
                name: served.name,
                bridge,
                subnets: served.ranges.flat().map((r) => r.subnet),
                masquerade: served.ipMasq,
              });
          } finally {
            table?.close();
          }
          break;
        }
        await new Promise((r) => setTimeout(r, 50));
      }
    } finally {
      host.close();
    }
  }
  const cached = await cni
    .cachedResult(DEFAULT_NETWORK, { containerId: id, ifName: 'eth0' })
    .catch(() => 'corrupt');
  const leftovers = {
    namespaceRemoved: !existsSync(report.netns),
    stateRemoved: (await nw.store.read(id)) === undefined,
    cniCacheRemoved: cached === undefined,
    addressReleased: !existsSync(`/var/lib/cni/networks/${DEFAULT_NETWORK.name}/${report.address}`),
    portRulesRemoved: (await portRules(id, hostPort)).length === 0,
    bridgeAsFound: (await hostLinkExists(bridge)) === bridgeExisted,
  };
  for (const [check, ok] of Object.entries(leftovers)) say(`   ${ok ? 'ok  ' : 'LEFT'} ${check}`);
  return { ...report, leftovers };
}

/** The demo's closing summary for a terminal. */
export function formatDemo(r: DemoReport): string {
  const clean = Object.values(r.leftovers).every(Boolean);
  return [
    `${r.requests} requests through 127.0.0.1:${r.hostPort} reached ${r.address} inside ${r.netns}`,
    `eth0 moved ${bytes(r.stats.total.rxBytes)} in and ${bytes(r.stats.total.txBytes)} out`,
    clean
      ? 'torn down: nothing left behind'
      : `torn down, but left: ${Object.keys(r.leftovers)
          .filter((k) => !r.leftovers[k])
          .join(', ')}`,
  ].join('\n');
}

/** `podnet demo`: runs the demo, saying each step unless --json, and fails if it left anything. */
export async function demo(_args: string[], flags: FlagValues): Promise<void> {
  const json = flags['json'] === true;
  const report = await runDemo(json ? {} : { say: (line) => process.stdout.write(`${line}\n`) });
  print(json, report, () => formatDemo(report));
  const left = Object.keys(report.leftovers).filter((k) => !report.leftovers[k]);
  if (left.length > 0)
    throw new PodnetError('ERR_PODNET_DEMO', `the demo left things behind: ${left.join(', ')}`);
}

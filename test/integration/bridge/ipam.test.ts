// The native IPAM beside the real host-local plugin (Debian's 1.1.1) on one
// dataDir and network name: one set of leases, one lock, one round-robin,
// and many processes of both kinds at once. host-local runs through
// podnet's CniRuntime as the only plugin of a list (it never enters the
// namespace, so CNI_NETNS names this process's own), or, for the races,
// executed directly the way libcni does (env + config on stdin).
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  IpamError,
  type IpamRange,
  listLeases,
  releaseAddresses,
  reserveAddresses,
} from '../../../src/bridge/ipam.js';
import { type CniNetworkList, normalizeResult, parseNetworkList } from '../../../src/cni/index.js';
import { native } from '../../../src/native.js';
import { type CniTestEnv, cniTestEnv, skipReason } from '../../helpers/cni-env.js';
import { PLUGIN_DIR } from '../../helpers/host.js';

const WORKER = new URL('../../helpers/ipam-worker.mjs', import.meta.url).pathname;
const NETNS = '/proc/self/ns/net';

describe.skipIf(skipReason !== undefined)('native IPAM beside host-local', () => {
  let env: CniTestEnv;
  let ranges: IpamRange[][];
  let list: CniNetworkList;
  let dir: string;

  beforeEach(() => {
    env = cniTestEnv();
    const group = (1 + Math.floor(Math.random() * 0xfffe)).toString(16); // canonical: no leading 0
    ranges = [[{ subnet: `${env.prefix}.0/24` }], [{ subnet: `fd00:${group}::/120` }]];
    list = hostLocalList(ranges);
    dir = join(env.dataDir, env.network);
  });
  afterEach(() => env.cleanup());

  function hostLocalList(r: IpamRange[][], capabilities: Record<string, boolean> = {}) {
    return parseNetworkList({
      cniVersion: '1.0.0',
      name: env.network,
      plugins: [
        {
          type: 'host-local',
          capabilities,
          ipam: { type: 'host-local', dataDir: env.dataDir, ranges: r },
        },
      ],
    });
  }

  const nativeAdd = async (containerId: string) =>
    (
      await reserveAddresses({
        dataDir: env.dataDir,
        network: env.network,
        ranges,
        containerId,
        ifName: 'eth0',
      })
    ).map((l) => l.address);
  const cniAdd = async (containerId: string, l = list, capabilityArgs = {}) =>
    normalizeResult(
      await env.cni.add(l, { containerId, netns: NETNS, ifName: 'eth0', capabilityArgs }),
    ).ips.map((i) => i.address);
  const cniDel = (containerId: string) =>
    env.cni.del(list, { containerId, netns: NETNS, ifName: 'eth0' });
  const nativeRelease = (containerId: string) =>
    releaseAddresses({ dataDir: env.dataDir, network: env.network, containerId, ifName: 'eth0' });
  const v6 = (n: number) => `${ranges[1]![0]!.subnet.replace('/120', '')}${n.toString(16)}/120`;

  it('native first, then host-local: different addresses, one round-robin across both', async () => {
    const p = env.prefix;
    expect(await nativeAdd('n1')).toEqual([`${p}.2/24`, v6(2)]);
    expect(await cniAdd('h1')).toEqual([`${p}.3/24`, v6(3)]);
    expect(await nativeAdd('n2')).toEqual([`${p}.4/24`, v6(4)]);
    expect(await cniAdd('h2')).toEqual([`${p}.5/24`, v6(5)]);
    expect(readFileSync(join(dir, 'last_reserved_ip.0'), 'utf8')).toBe(`${p}.5`);
    // host-local reads native leases as its own format, and the other way round.
    expect(readFileSync(join(dir, `${p}.3`), 'utf8')).toBe('h1\r\neth0');
    const leases = await listLeases({ dataDir: env.dataDir, network: env.network });
    expect(leases.filter((l) => l.containerId === 'h1').map((l) => l.ifName)).toEqual([
      'eth0',
      'eth0',
    ]);
  });

  it('host-local first, then native; each one’s release frees only its own', async () => {
    const p = env.prefix;
    expect(await cniAdd('h1')).toEqual([`${p}.2/24`, v6(2)]);
    expect(await nativeAdd('n1')).toEqual([`${p}.3/24`, v6(3)]);
    await cniDel('h1');
    expect(existsSync(join(dir, `${p}.2`))).toBe(false);
    expect(existsSync(join(dir, `${p}.3`))).toBe(true);
    expect(await cniAdd('h2')).toEqual([`${p}.4/24`, v6(4)]);
    expect((await nativeRelease('n1')).sort()).toEqual(
      [`${p}.3`, v6(3).replace('/120', '')].sort(),
    );
    expect(existsSync(join(dir, `${p}.4`))).toBe(true);
    // host-local DEL of an ID it never gave anything to frees nothing native holds.
    expect(await nativeAdd('n2')).toEqual([`${p}.5/24`, v6(5)]);
    await cniDel('n9');
    const bare = (a: string) => a.replace(/\/\d+$/, '');
    expect(readdirSync(dir).sort()).toEqual(
      [
        `${p}.4`,
        `${p}.5`,
        bare(v6(4)),
        bare(v6(5)),
        'last_reserved_ip.0',
        'last_reserved_ip.1',
        'lock',
      ].sort(),
    );
  });

  it('refuses duplicates across both: each sees the other’s lease of an ID and ifName', async () => {
    await cniAdd('h1');
    const err = await reserveAddresses({
      dataDir: env.dataDir,
      network: env.network,
      ranges,
      containerId: 'h1',
      ifName: 'eth0',
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(IpamError);
    expect((err as IpamError).code).toBe('ERR_PODNET_DUPLICATE_LEASE');
    await nativeAdd('n1');
    await expect(cniAdd('n1')).rejects.toThrow(/duplicate allocation is not allowed/);
  });

  it('static IPs: each refuses an address the other holds', async () => {
    const p = env.prefix;
    const withIps = hostLocalList(ranges, { ips: true });
    await nativeAdd('n1'); // .2
    await expect(cniAdd('h1', withIps, { ips: [`${p}.2/24`] })).rejects.toThrow(/not available/);
    expect(await cniAdd('h2', withIps, { ips: [`${p}.40/24`] })).toEqual([`${p}.40/24`, v6(3)]);
    const err = await reserveAddresses({
      dataDir: env.dataDir,
      network: env.network,
      ranges,
      containerId: 'n2',
      ifName: 'eth0',
      ips: [`${p}.40`],
    }).catch((e: unknown) => e);
    expect((err as IpamError).code).toBe('ERR_PODNET_ADDRESS_TAKEN');
    expect(existsSync(join(dir, v6(4).replace('/120', '')))).toBe(false);
    // host-local recorded its static address as the last reserved: native goes on from there.
    expect(await nativeAdd('n3')).toEqual([`${p}.41/24`, v6(4)]);
  });

  it('one lock: host-local waits for a native holder, native waits for flock(1)', async () => {
    await nativeAdd('n0'); // makes the directory and the lock
    const held = native.tryLockFile(join(dir, 'lock'));
    let done = false;
    const add = cniAdd('h1').then((ips) => {
      done = true;
      return ips;
    });
    await new Promise((r) => setTimeout(r, 300));
    expect(done).toBe(false);
    native.closeFd(held);
    expect((await add)[0]).toBe(`${env.prefix}.3/24`);

    const flock = spawn('flock', [join(dir, 'lock'), 'sleep', '0.4']);
    const exited = new Promise((r) => flock.on('exit', r));
    await untilHeldElsewhere(join(dir, 'lock'));
    const started = Date.now();
    await nativeAdd('n1');
    expect(Date.now() - started).toBeGreaterThanOrEqual(100);
    await exited;
    expect(existsSync(join(dir, 'lock'))).toBe(true);
  });

  it('many processes at once, native and host-local, get distinct addresses', async () => {
    const workers = 4;
    const perWorker = 15;
    const hostLocals = 12;
    const startAt = Date.now() + 600;
    const outputs = [
      ...Array.from({ length: workers }, (_, w) =>
        collect('node', [
          WORKER,
          env.dataDir,
          env.network,
          JSON.stringify(ranges),
          `w${w}`,
          String(perWorker),
          String(startAt),
        ]),
      ),
      ...Array.from({ length: hostLocals }, async (_, i) => {
        await new Promise((r) => setTimeout(r, Math.max(0, startAt - Date.now())));
        return collect(join(PLUGIN_DIR, 'host-local'), [], {
          CNI_COMMAND: 'ADD',
          CNI_CONTAINERID: `h${i}`,
          CNI_NETNS: NETNS,
          CNI_IFNAME: 'eth0',
          CNI_PATH: PLUGIN_DIR,
        });
      }),
    ];
    const texts = await Promise.all(outputs);
    const addresses = texts.flatMap((t, i) =>
      i < workers
        ? (JSON.parse(t) as string[])
        : (JSON.parse(t) as { ips: { address: string }[] }).ips.map((x) => x.address),
    );
    const total = (workers * perWorker + hostLocals) * 2;
    expect(addresses.length).toBe(total);
    expect(new Set(addresses).size).toBe(total);
    const leases = await listLeases({ dataDir: env.dataDir, network: env.network });
    expect(leases.length).toBe(total);
    for (const l of leases) {
      const owner = readFileSync(join(dir, l.ip), 'utf8');
      expect(owner).toBe(`${l.containerId}\r\neth0`);
    }
  });

  /** Waits until another process holds the flock on `path`. */
  async function untilHeldElsewhere(path: string): Promise<void> {
    for (;;) {
      try {
        native.closeFd(native.tryLockFile(path));
      } catch {
        return; // EWOULDBLOCK: taken
      }
      await new Promise((r) => setTimeout(r, 5));
    }
  }

  function collect(cmd: string, args: string[], cniEnv?: Record<string, string>): Promise<string> {
    return new Promise((resolve, reject) => {
      const child = spawn(cmd, args, {
        env: cniEnv ?? process.env,
        stdio: ['pipe', 'pipe', 'pipe'],
      });
      let out = '';
      let err = '';
      child.stdout.on('data', (d) => {
        out += d;
      });
      child.stderr.on('data', (d) => {
        err += d;
      });
      child.on('error', reject);
      // 'close', not 'exit': the output may still be in the pipes when the process has exited.
      child.on('close', (code) =>
        code === 0 ? resolve(out) : reject(new Error(`${cmd} exited ${code}: ${out}${err}`)),
      );
      child.stdin.end(
        cniEnv === undefined
          ? ''
          : JSON.stringify({
              cniVersion: '1.0.0',
              name: env.network,
              type: 'host-local',
              ipam: { type: 'host-local', dataDir: env.dataDir, ranges },
            }),
      );
    });
  }
});

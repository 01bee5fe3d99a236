// The network commands run as separate processes, as users run them: `up` in
// one, `inspect`/`stats` in others, `down` in a last one, all sharing only
// the temp state, CNI and namespace dirs given by flags. Runs the built CLI
// (bin/podnet.js imports dist/): `npm run build:ts` first.
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { NetworkNamespace } from '../../src/netns/index.js';
import {
  type CliResult,
  isRoot,
  type NetnsDir,
  podnet,
  podnetBin,
  run,
  TEST_PREFIX,
  tempNetnsDir,
  uniq,
} from '../helpers/host.js';
import { leftFiles } from './cni/cni-helpers.js';

const PLUGIN_DIR = '/usr/lib/cni';
const havePlugins = ['bridge', 'host-local'].every((p) => existsSync(join(PLUGIN_DIR, p)));

/** Sends SIZE bytes from the host to a server listening inside the namespace at HOST. */
async function sendInto(netnsPath: string, host: string, size: number): Promise<void> {
  const ns = await NetworkNamespace.open(netnsPath);
  const server = net.createServer();
  let received = 0;
  const done = new Promise<void>((resolve) => {
    server.on('connection', (s) =>
      s.on('data', (d: Buffer) => {
        received += d.length;
        if (received >= size) s.end(resolve);
      }),
    );
  });
  try {
    const { port } = await ns.listen(server, { host });
    const client = net.connect({ host, port });
    client.end(Buffer.alloc(size, 0x5a));
    await done;
    client.destroy();
  } finally {
    server.close();
    // Our fd would keep the namespace (and its veth) alive after `down`.
    ns.close();
  }
}

const usedSubnets = new Set<number>();

describe.skipIf(!isRoot || !havePlugins)('podnet network commands', () => {
  let root: string;
  let netns: NetnsDir;
  let network: string;
  let bridge: string;
  let prefix: string;
  let conflist: Record<string, unknown>;
  let dirs: string[];
  let dataDir: string;
  let stateDir: string;
  let cacheDir: string;
  const upped: string[] = [];

  const cli = (...args: string[]): Promise<CliResult> => podnet([...args, ...dirs]);

  beforeEach(() => {
    root = mkdtempSync(join(tmpdir(), TEST_PREFIX));
    netns = tempNetnsDir();
    const confDir = join(root, 'net.d');
    cacheDir = join(root, 'cache');
    dataDir = join(root, 'ipam');
    stateDir = join(root, 'state');
    mkdirSync(confDir);
    let x: number;
    do x = 1 + Math.floor(Math.random() * 254);
    while (usedSubnets.has(x));
    usedSubnets.add(x);
    prefix = `10.232.${x}`;
    network = `pn-cli-${uniq(3)}`;
    bridge = `pn${uniq(3)}`;
    conflist = {
      cniVersion: '1.0.0',
      name: network,
      plugins: [
        {
          type: 'bridge',
          bridge,
          isGateway: true,
          ipMasq: false,
          ipam: {
            type: 'host-local',
            dataDir,
            ranges: [[{ subnet: `${prefix}.0/24`, gateway: `${prefix}.1` }]],
          },
        },
      ],
    };
    writeFileSync(join(confDir, `${network}.conflist`), JSON.stringify(conflist));
    dirs = [
      '--state-dir',
      stateDir,
      '--cni-config-dir',
      confDir,
      '--cni-cache-dir',
      cacheDir,
      '--cni-plugin-dir',
      PLUGIN_DIR,
      '--netns-dir',
      netns.dir,
    ];
  });

  afterEach(async () => {
    // A failed test may leave a container up; `down` releases its IPAM lease and veth.
    for (const id of upped.splice(0)) await cli('down', id);
    await run(['ip', 'link', 'del', bridge]).catch(() => undefined);
    await netns.cleanup();
    rmSync(root, { recursive: true, force: true });
    usedSubnets.delete(Number(prefix.split('.')[2]));
  });

  it('up, then inspect and stats from other processes, then down', async () => {
    const id = `c-${uniq(3)}`;
    upped.push(id);
    const up = await cli('up', id, '--network', network, '-p', '127.0.0.1:18080:80', '--json');
    expect(up.stderr).toBe('');
    expect(up.code).toBe(0);
    const settings = JSON.parse(up.stdout);
    expect(settings.IPAddress).toMatch(new RegExp(`^${prefix.replaceAll('.', '\\.')}\\.\\d+$`));
    expect(settings.Gateway).toBe(`${prefix}.1`);
    expect(settings.SandboxKey.startsWith(`${netns.dir}/`)).toBe(true);
    expect(existsSync(settings.SandboxKey)).toBe(true);
    expect(settings.Networks[network].IPAddress).toBe(settings.IPAddress);
    expect(settings.Ports).toEqual({ '80/tcp': [{ HostIp: '127.0.0.1', HostPort: '18080' }] });

    const inspect = await cli('inspect', id);
    expect(inspect.code).toBe(0);
    expect(JSON.parse(inspect.stdout)).toEqual(settings);

    const size = 256 * 1024;
    await sendInto(settings.SandboxKey, settings.IPAddress, size);
    const stats = await cli('stats', id, '--json');
    expect(stats.code).toBe(0);
    const [report, ...more] = JSON.parse(stats.stdout);
    expect(more).toEqual([]);
    expect(report).toMatchObject({ id, name: id });
    expect(report.interfaces.map((i: { name: string }) => i.name)).toEqual(['eth0']);
    expect(report.interfaces[0].stats.rxBytes).toBeGreaterThanOrEqual(size);
    expect(report.total.rxBytes).toBe(report.interfaces[0].stats.rxBytes);

    // No ID: every container in the state dir, as a table.
    const table = await cli('stats');
    expect(table.stdout).toMatch(/^CONTAINER +NAME +IFACE +RX BYTES/);
    expect(table.stdout).toMatch(new RegExp(`\\n${id} +${id} +eth0 +\\d`));

    const down = await cli('down', id, '--json');
    expect(down.code).toBe(0);
    expect(JSON.parse(down.stdout)).toEqual({
      id,
      netns: settings.SandboxKey,
      networks: [network],
    });
    upped.length = 0;
    expect(existsSync(settings.SandboxKey)).toBe(false);
    expect([...leftFiles(stateDir), ...leftFiles(cacheDir), ...leftFiles(dataDir)]).toEqual([]);

    const gone = await cli('inspect', id);
    expect(gone.code).toBe(1);
    expect(gone.stdout).toBe('');
    expect(gone.stderr).toBe(
      `podnet: no container '${id}' in '${stateDir}' [ERR_PODNET_NO_SUCH_CONTAINER]\n`,
    );
  });

  it('up prints a summary; stats --watch prints rates until SIGINT, then exits 0', async () => {
    const id = `c-${uniq(3)}`;
    upped.push(id);
    const up = await cli('up', id, '--network', network, '--name', '007');
    expect(up.code).toBe(0);
    expect(up.stdout).toMatch(
      new RegExp(`^${id}: namespace ${netns.dir}/\\S+\\n  eth0 on ${network}: ${prefix}\\.\\d+/24`),
    );

    const child = spawn(
      process.execPath,
      [podnetBin, 'stats', '--watch', '--json', '--interval', '100', ...dirs],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let out = '';
    child.stdout.setEncoding('utf8');
    const lines = new Promise<string[]>((resolve) => {
      child.stdout.on('data', (d: string) => {
        out += d;
        const complete = out.split('\n').slice(0, -1);
        if (complete.length >= 2) resolve(complete);
      });
    });
    const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
    const [first, second] = (await lines).map((l) => JSON.parse(l));
    child.kill('SIGINT');
    expect(await exited).toBe(0);
    for (const tick of [first, second]) {
      expect(Number.isNaN(Date.parse(tick.time))).toBe(false);
      expect(tick.containers).toHaveLength(1);
      expect(tick.containers[0]).toMatchObject({ id, name: '007' });
      const [eth0] = tick.containers[0].interfaces;
      expect(eth0.name).toBe('eth0');
      for (const k of ['rxBytesPerSec', 'txBytesPerSec', 'rxPacketsPerSec', 'txPacketsPerSec']) {
        expect(eth0[k]).toBeGreaterThanOrEqual(0);
      }
      expect(eth0.stats.rxBytes).toBeGreaterThanOrEqual(0);
    }

    expect((await cli('down', id)).stdout).toBe(`${id}: down\n`);
    upped.length = 0;
  });

  it('networks ls and inspect show the CNI configuration', async () => {
    const ls = await cli('networks', 'ls', '--json');
    expect(ls.code).toBe(0);
    expect(JSON.parse(ls.stdout)).toEqual([
      {
        name: network,
        cniVersion: '1.0.0',
        plugins: ['bridge'],
        source: join(root, 'net.d', `${network}.conflist`),
      },
    ]);
    expect((await cli('networks')).stdout).toMatch(new RegExp(`\\n${network} +1\\.0\\.0 +bridge`));
    const inspect = await cli('networks', 'inspect', network);
    expect(JSON.parse(inspect.stdout)).toEqual(conflist);
    const missing = await cli('networks', 'inspect', 'pn-none');
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/^podnet: .*pn-none.*\n$/);
  });

  it('gc reports nothing to clean in a clean state dir', async () => {
    const gc = await cli('gc', '--json');
    expect(gc.code).toBe(0);
    expect(JSON.parse(gc.stdout)).toEqual({
      removedStates: [],
      removedMounts: [],
      releasedAttachments: [],
      killedPids: [],
      errors: [],
    });
  });

  it('reports bad input and unknown containers as one stderr line, changing nothing', async () => {
    const cases: [string[], RegExp][] = [
      [
        ['up', 'c1', '--network', network, '-p', '8080:80/sctp'],
        /^podnet: invalid protocol 'sctp' in '8080:80\/sctp': tcp or udp \[ERR_PODNET_INVALID_ARGUMENT\]\n$/,
      ],
      [
        ['up', 'c1', '--pid', '1', '--mode', 'none'],
        /^podnet: --mode and --pid exclude each other/,
      ],
      [['up', 'c1', '--frob'], /^podnet: Unknown option `--frob`\n$/],
      [
        ['down', 'nope'],
        /^podnet: no container 'nope' in '.*' \[ERR_PODNET_NO_SUCH_CONTAINER\]\n$/,
      ],
      [['stats', 'nope'], /^podnet: no container 'nope'/],
      [['stats', '--interval', '500'], /^podnet: --interval needs --watch/],
      [['networks', 'frob'], /^podnet: unknown networks action 'frob'/],
    ];
    for (const [args, stderr] of cases) {
      const r = await cli(...args);
      expect(r.code, args.join(' ')).toBe(1);
      expect(r.stdout, args.join(' ')).toBe('');
      expect(r.stderr, args.join(' ')).toMatch(stderr);
    }
    expect(existsSync(stateDir) ? leftFiles(stateDir) : []).toEqual([]);
    const help = await cli('up', '--help');
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/-p, --publish <spec>/);
  });
});

// The network commands run as separate processes, as users run them: `up` in
// one, `inspect`/`stats` in others, `down` in a last one, all sharing only
// the temp state, CNI and namespace dirs given by flags. Runs the built CLI
// (bin/podnet.js imports dist/): `npm run build:ts` first.
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { StatsTick } from '../../../src/cli/stats.js';
import { NetworkNamespace } from '../../../src/netns/index.js';
import { leftFiles } from '../../helpers/cni-env.js';
import { isRoot, type NetnsDir, TEST_PREFIX, tempNetnsDir, uniq } from '../../helpers/host.js';
import { type CliResult, podnet, podnetBin, run } from '../../helpers/process.js';

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

  it('up prints a summary; stats --watch shows counters at once, then rates, until SIGINT', async () => {
    // A 64-character ID, as podman makes them: tables show 12 characters, JSON all.
    const id = `c${uniq(3)}`.padEnd(64, '0');
    upped.push(id);
    const up = await cli('up', id, '--network', network, '--name', '007');
    expect(up.code).toBe(0);
    expect(up.stdout).toMatch(
      new RegExp(`^${id}: namespace ${netns.dir}/\\S+\\n  eth0 on ${network}: ${prefix}\\.\\d+/24`),
    );
    const table = await cli('stats');
    expect(table.stdout).toMatch(new RegExp(`\\n${id.slice(0, 12)} +007 +eth0 +\\d`));
    expect(table.stdout).not.toContain(id);

    /** Starts `stats --watch --json`, resolving to its first COUNT lines, parsed. */
    const watch = (interval: string, count: number) => {
      const child = spawn(
        process.execPath,
        [podnetBin, 'stats', '--watch', '--json', '--interval', interval, ...dirs],
        { stdio: ['ignore', 'pipe', 'pipe'] },
      );
      let out = '';
      child.stdout.setEncoding('utf8');
      const lines = new Promise<StatsTick[]>((resolve) => {
        child.stdout.on('data', (d: string) => {
          out += d;
          const complete = out.split('\n').slice(0, -1);
          if (complete.length >= count) resolve(complete.map((l) => JSON.parse(l)));
        });
      });
      const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
      return { child, lines, exited };
    };

    // An interval far longer than the test waits: the first frame is not behind it.
    const slow = watch('30', 1);
    const started = Date.now();
    const [only] = await slow.lines;
    expect(Date.now() - started).toBeLessThan(15_000);
    slow.child.kill('SIGINT');
    expect(await slow.exited).toBe(0);
    expect(only?.containers[0]?.interfaces[0]?.rxBytesPerSec).toBeUndefined();

    const fast = watch('0.1', 2);
    const [first, second] = await fast.lines;
    fast.child.kill('SIGINT');
    expect(await fast.exited).toBe(0);
    for (const tick of [first, second]) {
      expect(Number.isNaN(Date.parse(tick?.time ?? ''))).toBe(false);
      expect(tick?.containers).toHaveLength(1);
      expect(tick?.containers[0]).toMatchObject({ id, name: '007' });
      const eth0 = tick?.containers[0]?.interfaces[0];
      expect(eth0?.name).toBe('eth0');
      expect(eth0?.stats.rxBytes).toBeGreaterThanOrEqual(0);
    }
    // Counters first, rates from the second frame.
    const rates = ['rxBytesPerSec', 'txBytesPerSec', 'rxPacketsPerSec', 'txPacketsPerSec'] as const;
    for (const k of rates) {
      expect(first?.containers[0]?.interfaces[0]?.[k]).toBeUndefined();
      expect(second?.containers[0]?.interfaces[0]?.[k]).toBeGreaterThanOrEqual(0);
    }

    expect((await cli('down', id)).stdout).toBe(`${id}: down\n`);
    upped.length = 0;
  });

  it('stats warns about a state file it skips, and fails on it with --strict', async () => {
    mkdirSync(stateDir, { recursive: true });
    const bad = join(stateDir, 'torn.json');
    writeFileSync(bad, '{"id": "torn"');
    const warned = await cli('stats', '--json');
    expect(warned.code).toBe(0);
    expect(JSON.parse(warned.stdout)).toEqual([]);
    expect(warned.stderr).toMatch(
      new RegExp(`^podnet: warning: skipped ${bad}: .* \\[ERR_PODNET_BAD_STATE\\]\\n$`),
    );
    const strict = await cli('stats', '--strict');
    expect(strict.code).toBe(1);
    expect(strict.stdout).toBe('');
    expect(strict.stderr).toMatch(/^podnet: state file .*torn\.json.* \[ERR_PODNET_BAD_STATE\]\n$/);
    rmSync(bad);
  });

  it('networks (the alias of network) ls and inspect show a hand-written list as podman reads it', async () => {
    const ls = await cli('networks', 'ls', '--json');
    expect(ls.code).toBe(0);
    // The embedded default network is listed too, as podman lists its default.
    expect(JSON.parse(ls.stdout).map((n: { name: string }) => n.name)).toEqual(['podman', network]);
    expect((await cli('networks')).stdout).toMatch(
      new RegExp(`\\n[0-9a-f]{12} +${network} +bridge\\n`),
    );
    const inspect = await cli('networks', 'inspect', network);
    expect(JSON.parse(inspect.stdout)).toEqual([
      expect.objectContaining({
        name: network,
        driver: 'bridge',
        network_interface: bridge,
        subnets: [{ subnet: `${prefix}.0/24`, gateway: `${prefix}.1` }],
        internal: false,
        dns_enabled: false,
        ipam_options: { driver: 'host-local' },
        containers: {},
      }),
    ]);
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
      // The host's test topology records are shared with other runs: only the shape.
      testTopologies: {
        removedTopologies: expect.any(Array),
        removedNamespaces: expect.any(Array),
        errors: expect.any(Array),
      },
    });
  });

  it('reports bad input and unknown containers as one coded stderr line, changing nothing', async () => {
    // [argv, exit status, stderr]: 2 for the command line, 1 for the operation.
    const cases: [string[], number, RegExp][] = [
      [
        ['up', 'c1', '--network', network, '-p', '8080:80/sctp'],
        2,
        /^podnet: invalid protocol 'sctp' in '8080:80\/sctp': tcp or udp \[ERR_PODNET_INVALID_ARGUMENT\]\n$/,
      ],
      [
        ['up', 'c1', '--pid', '1', '--mode', 'none'],
        2,
        /^podnet: --mode and --pid exclude each other/,
      ],
      [
        ['up', 'c1', '--frob'],
        2,
        /^podnet: unknown flag '--frob' \(see podnet up --help\) \[ERR_PODNET_USAGE\]\n$/,
      ],
      [
        ['up', 'c1', '--network'],
        2,
        /^podnet: flag '--network' needs a value \[ERR_PODNET_USAGE\]\n$/,
      ],
      [
        ['up', 'c1', '--network', 'pn-none'],
        1,
        /^podnet: .*pn-none.* \[ERR_PODNET_CNI_NETWORK_NOT_FOUND\]\n$/,
      ],
      [
        ['down', 'nope'],
        1,
        /^podnet: no container 'nope' in '.*' \[ERR_PODNET_NO_SUCH_CONTAINER\]\n$/,
      ],
      [['stats', 'nope'], 1, /^podnet: no container 'nope'.* \[ERR_PODNET_NO_SUCH_CONTAINER\]\n$/],
      [
        ['stats', '--interval', '0.5'],
        2,
        /^podnet: --interval needs --watch \[ERR_PODNET_USAGE\]\n$/,
      ],
      [
        ['stats', '--watch', '--interval', '500ms'],
        2,
        /^podnet: invalid --interval '500ms': seconds/,
      ],
      [
        ['networks', 'frob'],
        2,
        /^podnet: unknown network action 'frob': create, ls, inspect, rm, prune, exists, connect, disconnect or reload \[ERR_PODNET_USAGE\]\n$/,
      ],
    ];
    for (const [args, code, stderr] of cases) {
      const r = await cli(...args);
      expect(r.code, args.join(' ')).toBe(code);
      expect(r.stdout, args.join(' ')).toBe('');
      expect(r.stderr, args.join(' ')).toMatch(stderr);
    }
    expect(readdirSync(netns.dir)).toEqual([]);
    expect(existsSync(stateDir) ? leftFiles(stateDir) : []).toEqual([]);
    const help = await cli('up', '--help');
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/-p, --publish <spec>/);
  });
});

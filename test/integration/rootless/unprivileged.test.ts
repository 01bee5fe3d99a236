// Rootless networking as an unprivileged user, which is who uses it: the
// test creates a user, copies the built package where that user can read it,
// and runs Node children as that uid. Each sets up a rootless container's
// network (a UserNamespace helper holding a user and a network namespace,
// slirp4netns or pasta attached to it by pid), serves HTTP inside, and
// answers the test's commands; the test (root, in the host's namespace)
// reaches the published port, reads the interface's counters through the
// child, and checks that teardown leaves no process and no file of the user.
import { type ChildProcess, spawn } from 'node:child_process';
import {
  chmodSync,
  chownSync,
  cpSync,
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  rmSync,
} from 'node:fs';
import { lstat, readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { createInterface } from 'node:readline';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  type ContainerStats,
  NetworkNamespace,
  pastaContainerAddress,
} from '../../../src/index.js';
import { execHelperPath, usernsHelperPath } from '../../../src/native.js';
import { fixture } from '../../helpers/fixtures.js';
import { freePort, isRoot, readFromLoopback, TEST_PREFIX, uniq } from '../../helpers/host.js';
import { run } from '../../helpers/process.js';
import { reportSkip } from '../../helpers/skip.js';

const root = new URL('../../../', import.meta.url).pathname;
const nodeGypBuild = createRequire(import.meta.url)('node-gyp-build') as {
  path(dir: string): string;
};

/** useradd and userdel live in /usr/sbin, which a root PATH may lack. */
function sbin(name: string): string {
  return existsSync(`/usr/sbin/${name}`) ? `/usr/sbin/${name}` : name;
}

/** Why these tests cannot run here, or undefined. In CI that is a failure, not a skip. */
async function missing(): Promise<string | undefined> {
  if (!isRoot) return 'they need root (to create a user)';
  if (!existsSync(sbin('useradd')) || !existsSync(sbin('userdel')))
    return 'useradd/userdel (Debian package passwd) are not installed';
  const tun = await lstat('/dev/net/tun').catch(() => undefined);
  if (!tun) return '/dev/net/tun does not exist';
  if ((tun.mode & 0o666) !== 0o666)
    return '/dev/net/tun is not mode 0666 (.ci/run sets it; run `chmod 0666 /dev/net/tun`)';
  const max = await readFile('/proc/sys/user/max_user_namespaces', 'utf8').catch(() => '0');
  if (Number(max) === 0) return 'user namespaces are disabled (user.max_user_namespaces = 0)';
  return undefined;
}

const why = reportSkip('unprivileged rootless tests', await missing());

interface UserEnv {
  name: string;
  uid: number;
  gid: number;
  /** The package copy the user runs (dist, bin, addon, dependencies, the child script). */
  pkg: string;
  /** The user's XDG_RUNTIME_DIR (0700, theirs). */
  runtime: string;
}

let user: UserEnv;

/** Live processes of a uid (zombies, which only wait for their parent, excluded). */
async function processesOf(uid: number): Promise<string[]> {
  const out: string[] = [];
  for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    const status = await readFile(`/proc/${pid}/status`, 'utf8').catch(() => '');
    const uidLine = /^Uid:\s+(\d+)/m.exec(status);
    if (!uidLine || Number(uidLine[1]) !== uid || /^State:\s+Z/m.test(status)) continue;
    const cmd = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
    out.push(`${pid} ${cmd.replaceAll('\0', ' ').trim()}`);
  }
  return out;
}

/** Files the user owns under a directory (one level), for the leak checks. */
function ownedBy(uid: number, dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true })
    .map((d) => join(dir, d.name))
    .filter((p) => {
      try {
        return lstatSync(p).uid === uid;
      } catch {
        return false;
      }
    });
}

/** One JSON line at a time from a child's stdout, with a deadline. */
function jsonLines(child: ChildProcess): (ms?: number) => Promise<Record<string, unknown>> {
  const queue: string[] = [];
  const waiting: ((line: string | undefined) => void)[] = [];
  const rl = createInterface({ input: child.stdout! });
  rl.on('line', (line) => {
    const w = waiting.shift();
    if (w) w(line);
    else queue.push(line);
  });
  rl.on('close', () => {
    for (const w of waiting.splice(0)) w(undefined);
  });
  return async (ms = 20_000) => {
    const line =
      queue.shift() ??
      (await new Promise<string | undefined>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no reply within ${ms} ms`)), ms);
        waiting.push((l) => {
          clearTimeout(timer);
          resolve(l);
        });
      }));
    if (line === undefined) throw new Error('the child ended without replying');
    return JSON.parse(line) as Record<string, unknown>;
  };
}

/** Runs `argv` (node and a script of the package copy) as the test user. */
function spawnAsUser(argv: string[], env: Record<string, string> = {}): ChildProcess {
  return spawn(process.execPath, argv, {
    uid: user.uid,
    gid: user.gid,
    cwd: user.pkg,
    stdio: ['pipe', 'pipe', 'pipe'],
    env: {
      PATH: '/usr/local/bin:/usr/bin:/bin',
      HOME: user.runtime,
      XDG_RUNTIME_DIR: user.runtime,
      PODNET_PKG: user.pkg,
      PODNET_STATE_DIR: join(user.runtime, 'podnet'),
      ...env,
    },
  });
}

async function runAsUser(
  argv: string[],
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawnAsUser(argv);
  child.stdin!.end();
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d: Buffer) => {
    stdout += d;
  });
  child.stderr!.on('data', (d: Buffer) => {
    stderr += d;
  });
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
  return { code, stdout, stderr };
}

describe.skipIf(why !== undefined)('rootless networking as an unprivileged user', () => {
  // Made in beforeAll, removed in afterAll even when beforeAll failed half-way.
  let userName: string | undefined;
  let pkgDir: string | undefined;

  beforeAll(async () => {
    const name = `${TEST_PREFIX}${uniq(4)}`;
    await run([
      sbin('useradd'),
      '--system',
      '--no-create-home',
      '--shell',
      '/usr/sbin/nologin',
      name,
    ]);
    userName = name;
    const uid = Number(await run(['id', '-u', name]));
    const gid = Number(await run(['id', '-g', name]));
    // The checkout may be where the user cannot read (under /root, say).
    const pkg = mkdtempSync(join(tmpdir(), `${TEST_PREFIX}pkg-`));
    pkgDir = pkg;
    // The addon and the user namespace helper where podnet loads them from:
    // build/Release, or the prebuilds.
    const addon = relative(root, nodeGypBuild.path(root));
    const helper = relative(root, usernsHelperPath());
    // And ns.spawn's exec helper, found the same way.
    const execHelper = relative(root, execHelperPath());
    for (const part of ['dist', 'bin', 'package.json', addon, helper, execHelper])
      cpSync(join(root, part), join(pkg, part), { recursive: true });
    for (const dep of ['node-gyp-build', 'valibot', 'ipaddr.js', 'cac'])
      cpSync(join(root, 'node_modules', dep), join(pkg, 'node_modules', dep), { recursive: true });
    cpSync(fixture('unprivileged-child.mjs'), join(pkg, 'child.mjs'));
    await run(['chmod', '-R', 'a+rX', pkg]);
    const runtime = join(pkg, 'run');
    mkdirSync(runtime, { mode: 0o700 });
    chownSync(runtime, uid, gid);
    chmodSync(runtime, 0o700);
    user = { name, uid, gid, pkg, runtime };
  });

  afterEach(async () => {
    // Nothing of the user may outlive a test: no process, no file in the
    // temp dir (engines' private dirs), no state.
    let left = await processesOf(user.uid);
    for (let i = 0; i < 40 && left.length; i++) {
      await new Promise((r) => setTimeout(r, 50));
      left = await processesOf(user.uid);
    }
    if (left.length) await run(['pkill', '-KILL', '-u', String(user.uid)]).catch(() => '');
    // A test that set up no container (ns.spawn's) has made no state dir.
    const stateDir = join(user.runtime, 'podnet');
    const state = existsSync(stateDir)
      ? readdirSync(stateDir, { withFileTypes: true }).map((d) => d.name)
      : [];
    // A failed test must not leave its state to the next: gc as the user cleans it.
    if (state.length) await runAsUser([join(user.pkg, 'bin/podnet.js'), 'gc']);
    const files = ownedBy(user.uid, tmpdir());
    for (const f of files) rmSync(f, { recursive: true, force: true });
    expect({ processes: left, tmpFiles: files, state }).toEqual({
      processes: [],
      tmpFiles: [],
      state: [],
    });
  });

  afterAll(async () => {
    if (userName) await run([sbin('userdel'), userName]).catch(() => '');
    if (pkgDir) rmSync(pkgDir, { recursive: true, force: true });
  });

  const cases = [
    { label: 'slirp4netns, ports through podnet forwarder', mode: 'slirp4netns', modeOptions: [] },
    {
      label: 'slirp4netns, ports through its API',
      mode: 'slirp4netns',
      modeOptions: ['port_handler=slirp4netns'],
    },
    { label: 'pasta (the default mode)', mode: undefined, modeOptions: [] },
  ];
  for (const c of cases) {
    it(`${c.label}: a published port reachable from the host, counters in-process, nothing left`, async () => {
      const [hostPort, loPort] = [await freePort(), await freePort()];
      const id = `c-${uniq()}`;
      const child = spawnAsUser([
        join(user.pkg, 'child.mjs'),
        JSON.stringify({ id, mode: c.mode, modeOptions: c.modeOptions, hostPort, loPort }),
      ]);
      let stderr = '';
      child.stderr!.on('data', (d: Buffer) => {
        stderr += d;
      });
      const next = jsonLines(child);
      try {
        const ready = await next();
        expect(ready, stderr).toMatchObject({ ready: true });
        expect(ready['mode']).toBe(c.mode ?? 'pasta');
        const helpers = ready['helpers'] as { kind: string; pid: number }[];
        const holder = helpers.find((h) => h.kind === 'userns')!;
        expect(ready['netnsPath']).toBe(`/proc/${holder.pid}/ns/net`);
        // The holder runs as the user, in a user namespace of its own.
        const [ownUserns, holderUserns] = await Promise.all([
          run(['readlink', '/proc/self/ns/user']),
          run(['readlink', `/proc/${holder.pid}/ns/user`]),
        ]);
        expect(holderUserns).not.toBe(ownUserns);
        const slirp = helpers.find((h) => h.kind === 'slirp4netns');
        if (slirp) {
          // Its sandbox is safe here (a mount namespace inside the user's user namespace).
          const cmd = await readFile(`/proc/${slirp.pid}/cmdline`, 'utf8');
          expect(cmd.split('\0')).toEqual(
            expect.arrayContaining(['--enable-sandbox', '--enable-seccomp', String(holder.pid)]),
          );
        }

        // The host (this process, root, outside every namespace of the user) reaches the server.
        const peer = await (await fetch(`http://127.0.0.1:${hostPort}/`)).text();
        if (c.mode === 'slirp4netns' && c.modeOptions.length === 0) {
          // podnet's forwarder dials the container's own address (CVE-2021-20199).
          expect(peer).toBe('10.0.2.100');
        }
        expect(peer).not.toMatch(/^$/);
        if (c.mode === undefined) {
          // pasta: whoever publishes (pasta itself, or podnet's forwarder
          // where this pasta would splice loopback clients into the
          // container's loopback), the peer is the address pasta copied in.
          expect(peer).toBe(ready['address']);
        }
        expect(peer).not.toMatch(/^(127\.|::1$|::ffff:127\.)/);
        // A server bound only to the container's 127.0.0.1 is not reachable
        // through its published port, whichever engine publishes it.
        const reached = await fetch(`http://127.0.0.1:${loPort}/`).then(
          async (r) => `reply ${await r.text()}`,
          () => 'refused',
        );
        expect(reached).toBe('refused');

        // Where the published port's traffic is counted: tap0 for
        // slirp4netns's own forwards; else lo, which the forwarder's dial
        // or pasta's splice crosses, and the forwarder's own counters.
        child.stdin!.write('all-stats\n');
        const { all } = (await next()) as { all: ContainerStats };
        const lo = all.interfaces.find((i) => i.name === 'lo');
        expect(lo?.loopback).toBe(true);
        expect(all.total.rxBytes).toBe(
          all.interfaces.filter((i) => !i.loopback).reduce((n, i) => n + i.stats.rxBytes, 0),
        );
        if (c.modeOptions.length) {
          expect(all.publishedVia).toBe('tap0');
        } else {
          expect(['forwarder', 'lo']).toContain(all.publishedVia);
          // The HTTP request and its reply crossed lo (counted on rx and tx there).
          expect(lo!.stats.rxBytes).toBeGreaterThan(peer.length);
        }
        if (all.publishedVia === 'forwarder') {
          const port = all.ports!.find((p) => p.hostPort === hostPort)!;
          expect(port.connections).toBeGreaterThanOrEqual(1);
          expect(port.rxBytes).toBeGreaterThan(0); // the HTTP request
          expect(port.txBytes).toBeGreaterThan(peer.length); // the reply, headers and body
        }

        child.stdin!.write('stats\n');
        const { stats } = (await next()) as { stats: { rxBytes: number; txBytes: number } };
        // The interface has sent (router solicitations at least). Only
        // slirp4netns's own forwards come in through it: podnet's forwarder
        // dials the container's address from inside, and pasta splices a
        // loopback client to that address, both over the namespace's lo.
        expect(stats.txBytes).toBeGreaterThan(0);
        if (c.modeOptions.length) expect(stats.rxBytes).toBeGreaterThan(0);

        child.stdin!.write('down\n');
        expect(await next()).toEqual({ down: true });
        await new Promise((r) => child.once('close', r));
        expect(child.exitCode, stderr).toBe(0);
        await expect(fetch(`http://127.0.0.1:${hostPort}/`)).rejects.toThrow();
      } finally {
        child.kill('SIGKILL');
      }
    });
  }

  for (const mode of ['slirp4netns', 'pasta'] as const) {
    it(`${mode} with /dev/net/tun at 0600 (no udev): a typed error that says to chmod it, nothing left`, async () => {
      const child = spawnAsUser([
        join(user.pkg, 'child.mjs'),
        JSON.stringify({ id: `tun-${uniq()}`, mode, hostPort: await freePort() }),
      ]);
      const next = jsonLines(child);
      chmodSync('/dev/net/tun', 0o600);
      try {
        const { error } = (await next()) as {
          error: { code: string; engine?: string; message: string };
        };
        expect(error).toMatchObject({ code: 'ERR_PODNET_ENGINE_START', engine: mode });
        expect(error.message).toContain('chmod 0666 /dev/net/tun');
      } finally {
        chmodSync('/dev/net/tun', 0o666);
        child.kill('SIGKILL');
      }
    });
  }

  it("without XDG_RUNTIME_DIR the defaults are in /run/user/UID when it is theirs, else root's", async () => {
    const script = `const m = await import(process.env.PODNET_PKG + '/dist/index.js');
      console.log(JSON.stringify([m.defaultStateDir(), m.defaultNetnsDir()]));`;
    const defaults = async (): Promise<unknown> => {
      const child = spawnAsUser(['--input-type=module', '-e', script], {
        XDG_RUNTIME_DIR: '',
        PODNET_STATE_DIR: '',
      });
      child.stdin!.end();
      const out: Buffer[] = [];
      child.stdout!.on('data', (d: Buffer) => out.push(d));
      await new Promise((r) => child.once('close', r));
      return JSON.parse(Buffer.concat(out).toString());
    };
    const runUser = `/run/user/${user.uid}`;
    const madeParent = !existsSync('/run/user');
    mkdirSync(runUser, { recursive: true, mode: 0o700 });
    try {
      chownSync(runUser, user.uid, user.gid);
      expect(await defaults()).toEqual([`${runUser}/podnet`, `${runUser}/netns`]);
      chownSync(runUser, 0, 0); // not theirs: not used
      expect(await defaults()).toEqual(['/run/podnet', '/run/netns']);
    } finally {
      rmSync(madeParent ? '/run/user' : runUser, { recursive: true, force: true });
    }
  });

  it('an owner killed with SIGKILL takes its helpers with it; gc removes the state', async () => {
    const id = `k-${uniq()}`;
    const child = spawnAsUser([
      join(user.pkg, 'child.mjs'),
      JSON.stringify({ id, mode: 'slirp4netns', modeOptions: [], hostPort: await freePort() }),
    ]);
    const next = jsonLines(child);
    try {
      expect(await next()).toMatchObject({ ready: true });
      child.kill('SIGKILL');
      await new Promise((r) => child.once('close', r));
      // The helper sees its socket's end of file and slirp4netns its exit
      // fd's: both end without anyone signalling them.
      let left = await processesOf(user.uid);
      for (let i = 0; i < 100 && left.length; i++) {
        await new Promise((r) => setTimeout(r, 50));
        left = await processesOf(user.uid);
      }
      expect(left).toEqual([]);
      const gc = await runAsUser([join(user.pkg, 'bin/podnet.js'), 'gc', '--json']);
      expect(gc.code, gc.stderr).toBe(0);
      expect(JSON.parse(gc.stdout)).toMatchObject({ removedStates: [id] });
    } finally {
      child.kill('SIGKILL');
    }
  });

  it("ns.spawn as the user: the process joins the helper's user and network namespaces, root inside", async () => {
    const script = `
      const { UserNamespace } = await import(process.env.PODNET_PKG + '/dist/index.js');
      const { readdirSync, readlinkSync } = await import('node:fs');
      const u = await UserNamespace.create();
      const child = u.netns.spawn('sh', ['-c', 'readlink /proc/self/ns/net /proc/self/ns/user; id -u'], {
        stdio: ['ignore', 'pipe', 'inherit'],
      });
      let out = '';
      child.stdout.on('data', (d) => { out += d; });
      const code = await new Promise((resolve) => child.on('close', resolve));
      const missing = await new Promise((resolve) =>
        u.netns.spawn('podnet-no-such-command').on('error', (e) => resolve(e.code)));
      const threads = new Set(readdirSync('/proc/self/task').map((t) => readlinkSync('/proc/self/task/' + t + '/ns/net')));
      console.log(JSON.stringify({
        code, out, missing, threads: [...threads],
        net: readlinkSync('/proc/' + u.pid + '/ns/net'),
        user: readlinkSync('/proc/' + u.pid + '/ns/user'),
        own: readlinkSync('/proc/self/ns/net'),
      }));
      await u.close();`;
    const { code, stdout, stderr } = await runAsUser(['--input-type=module', '-e', script]);
    expect(code, stderr).toBe(0);
    const got = JSON.parse(stdout) as Record<string, unknown>;
    expect(got['code']).toBe(0);
    expect(String(got['out']).trim().split('\n')).toEqual([got['net'], got['user'], '0']);
    expect(got['net']).not.toBe(got['own']);
    expect(got['missing']).toBe('ENOENT');
    expect(got['threads']).toEqual([got['own']]);
  });

  it("`podnet exec ID` as the user: the command runs in the rootless container's namespaces", async () => {
    const id = `exec-${uniq()}`;
    const bin = join(user.pkg, 'bin/podnet.js');
    const up = await runAsUser([bin, 'up', id, '--mode', 'none', '--json']);
    expect(up.code, up.stderr).toBe(0);
    try {
      const state = JSON.parse(
        await readFile(join(user.runtime, 'podnet', `${id}.json`), 'utf8'),
      ) as { helpers: { kind: string; pid: number }[] };
      const holder = state.helpers.find((h) => h.kind === 'userns')!;
      const exec = await runAsUser([
        bin,
        'exec',
        id,
        '--',
        'sh',
        '-c',
        'readlink /proc/self/ns/net /proc/self/ns/user; id -u; exit 5',
      ]);
      expect(exec.code, exec.stderr).toBe(5);
      expect(exec.stdout.trim().split('\n')).toEqual([
        (await run(['readlink', `/proc/${holder.pid}/ns/net`])).trim(),
        (await run(['readlink', `/proc/${holder.pid}/ns/user`])).trim(),
        '0',
      ]);
    } finally {
      const down = await runAsUser([bin, 'down', id]);
      expect(down.code, down.stderr).toBe(0);
    }
  });

  it('`podnet up --mode none` as the user: the keeper holds the namespaces alone', async () => {
    const id = `none-${uniq()}`;
    const bin = join(user.pkg, 'bin/podnet.js');
    const up = await runAsUser([bin, 'up', id, '--mode', 'none', '--json']);
    expect(up.code, up.stderr).toBe(0);
    try {
      const kinds = (await processesOf(user.uid)).map((p) => p.split(' ').slice(1).join(' '));
      expect(kinds.filter((k) => k.includes('keeper-main'))).toHaveLength(1);
      expect(kinds.filter((k) => k.includes('podnet-userns'))).toHaveLength(1);
      const stats = await runAsUser([bin, 'stats', id, '--json']);
      expect(stats.code, stats.stderr).toBe(0);
    } finally {
      const down = await runAsUser([bin, 'down', id]);
      expect(down.code, down.stderr).toBe(0);
    }
  });

  it('`podnet up` as the user: a keeper holds the namespaces; stats joins them and counts the published port; down ends all', async () => {
    const hostPort = await freePort();
    const id = `cli-${uniq()}`;
    const bin = join(user.pkg, 'bin/podnet.js');
    const up = await runAsUser([
      bin,
      'up',
      id,
      '--mode',
      'slirp4netns',
      '-p',
      `127.0.0.1:${hostPort}:8080`,
      '--json',
    ]);
    expect(up.code, up.stderr).toBe(0);
    let inside: NetworkNamespace | undefined;
    const server = net.createServer((s) => s.end(`peer ${s.remoteAddress}`));
    try {
      // Traffic through the published port, to a server the test (root)
      // runs inside the user's namespace.
      const state = JSON.parse(
        await readFile(join(user.runtime, 'podnet', `${id}.json`), 'utf8'),
      ) as { netnsPath: string };
      inside = await NetworkNamespace.open(state.netnsPath);
      await inside.listen(server, { port: 8080 });
      const reply = await readFromLoopback(hostPort);
      expect(reply).toBe('peer 10.0.2.100');
      // stats, another process of the user, asks the keeper for its
      // forwarder's counters, and lists the lo the forwarder's dial crossed.
      const stats = await runAsUser([bin, 'stats', id, '--json']);
      expect(stats.code, stats.stderr).toBe(0);
      const [report] = JSON.parse(stats.stdout) as ContainerStats[];
      expect(report!.interfaces.map((i) => [i.name, i.loopback ?? false])).toEqual([
        ['tap0', false],
        ['lo', true],
      ]);
      expect(report!.interfaces[1]!.stats.rxBytes).toBeGreaterThan(reply.length);
      expect(report!.publishedVia).toBe('forwarder');
      expect(report!.ports).toEqual([
        {
          hostIP: '127.0.0.1',
          hostPort,
          containerPort: 8080,
          protocol: 'tcp',
          connections: 1,
          active: expect.any(Number),
          rxBytes: 0,
          txBytes: reply.length,
          rxDatagrams: 0,
          txDatagrams: 0,
        },
      ]);
      const table = await runAsUser([bin, 'stats', id]);
      expect(table.stdout).toContain(`127.0.0.1:${hostPort}->8080/tcp`);
      const kinds = (await processesOf(user.uid)).map((p) => p.split(' ').slice(1).join(' '));
      expect(kinds.some((k) => k.includes('slirp4netns'))).toBe(true);
      expect(kinds.some((k) => k.includes('podnet-userns'))).toBe(true);
    } finally {
      server.close();
      inside?.close();
      const down = await runAsUser([bin, 'down', id]);
      expect(down.code, down.stderr).toBe(0);
    }
  });

  it('`podnet up -p` as the user in the default mode (pasta): a non-loopback peer inside, nothing of 127.0.0.1 inside', async () => {
    const [hostPort, loPort] = [await freePort(), await freePort()];
    const id = `pasta-${uniq()}`;
    const bin = join(user.pkg, 'bin/podnet.js');
    const up = await runAsUser([
      bin,
      'up',
      id,
      '-p',
      `127.0.0.1:${hostPort}:8080`,
      '-p',
      `127.0.0.1:${loPort}:8081`,
      '--json',
    ]);
    expect(up.code, up.stderr).toBe(0);
    let inside: NetworkNamespace | undefined;
    const servers: net.Server[] = [];
    try {
      const state = JSON.parse(
        await readFile(join(user.runtime, 'podnet', `${id}.json`), 'utf8'),
      ) as { mode: string; netnsPath: string; helpers: { kind: string }[] };
      expect(state.mode).toBe('pasta');
      expect(state.helpers.map((h) => h.kind).sort()).toEqual(['keeper', 'pasta', 'userns']);
      // The test (root) serves inside the user's namespace itself.
      inside = await NetworkNamespace.open(state.netnsPath);
      const address = await pastaContainerAddress(inside);
      const server = net.createServer((s) => s.end(`peer ${s.remoteAddress}`));
      const local = net.createServer((s) => s.end('loopback only'));
      servers.push(server, local);
      await inside.listen(server, { port: 8080 });
      await inside.listen(local, { port: 8081, host: '127.0.0.1' });
      expect(await readFromLoopback(hostPort)).toBe(`peer ${address}`);
      const reached = await readFromLoopback(loPort).then(
        (text) => `reply ${JSON.stringify(text)}`,
        (err: NodeJS.ErrnoException) => `error ${err.code}`,
      );
      expect(reached).toMatch(/^(reply ""|error ECONNRESET)$/);
      // The loopback client crossed the namespace's lo (pasta's splice or
      // the keeper's forwarder): `podnet stats` as the user shows it.
      const stats = await runAsUser([bin, 'stats', id, '--json']);
      expect(stats.code, stats.stderr).toBe(0);
      const [report] = JSON.parse(stats.stdout) as ContainerStats[];
      const lo = report!.interfaces.find((i) => i.name === 'lo');
      expect(lo?.loopback).toBe(true);
      expect(lo!.stats.rxBytes).toBeGreaterThan(`peer ${address}`.length);
      expect(['forwarder', 'lo']).toContain(report!.publishedVia);
      if (report!.publishedVia === 'forwarder') {
        const published = report!.ports!.find((p) => p.hostPort === hostPort)!;
        expect(published.connections).toBe(1);
        expect(published.txBytes).toBe(`peer ${address}`.length);
      }
    } finally {
      for (const s of servers) s.close();
      inside?.close();
      const down = await runAsUser([bin, 'down', id]);
      expect(down.code, down.stderr).toBe(0);
    }
  });
});

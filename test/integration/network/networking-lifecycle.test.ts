// The lifecycle's promises under races and hostile input, with real plugins
// and kernel objects: one owner per container ID, a gc that decides only on
// definite answers, and records (state, cache) that are never trusted
// beyond where podnet puts things.
import { spawn } from 'node:child_process';
import {
  chmodSync,
  existsSync,
  mkdirSync,
  readFileSync,
  symlinkSync,
  unlinkSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CniRuntime } from '../../../src/cni/index.js';
import { Networking, NetworkNamespace } from '../../../src/index.js';
import { processIdentity } from '../../../src/process.js';
import { isRoot, tempNetnsDir } from '../../helpers/host.js';
import { type NetEnv, netEnvPerTest } from '../../helpers/network-env.js';
import { containerState } from '../../helpers/state.js';

const dist = new URL('../../../dist/index.js', import.meta.url).href;

/** A hand-made state file (format 2) for container `id`, with `over` replacing fields. */
function plantState(env: NetEnv, id: string, over: Record<string, unknown>): string {
  const path = join(env.stateDir, `${id}.json`);
  mkdirSync(env.stateDir, { recursive: true, mode: 0o700 });
  writeFileSync(
    path,
    JSON.stringify({
      ...containerState({
        id,
        name: id,
        netnsPath: join(env.netnsDir, 'cni-00000000-0000-0000-0000-000000000000'),
      }),
      ...over,
    }),
  );
  return path;
}

/** Runs `gc` in a child that fills its fd table (EMFILE) while gc checks a container. */
function gcWithEmfile(env: NetEnv): Promise<{ errors: string[]; removedStates: string[] }> {
  const script = `
    import dc from 'node:diagnostics_channel';
    import { openSync, closeSync } from 'node:fs';
    const { Networking, CniRuntime } = await import(${JSON.stringify(dist)});
    const o = JSON.parse(process.argv[1]);
    const filler = [];
    // The fault: when gc is about to look at a container, no fd can be opened.
    dc.subscribe('podnet:network:gc:check', () => {
      try { for (;;) filler.push(openSync('/dev/null', 'r')); } catch {}
    });
    const nw = new Networking({ cni: new CniRuntime({ confDir: o.confDir, cacheDir: o.cacheDir, pluginDirs: o.pluginDirs }),
      stateDir: o.stateDir, netnsDir: o.netnsDir, defaultNetwork: o.defaultNetwork });
    const report = await nw.gc().finally(() => { for (const fd of filler) closeSync(fd); });
    process.stdout.write(JSON.stringify(report));`;
  return new Promise((resolve, reject) => {
    const child = spawn(
      'prlimit',
      [
        '--nofile=256:256',
        process.execPath,
        '--input-type=module',
        '-e',
        script,
        JSON.stringify(env.options),
      ],
      {
        stdio: ['ignore', 'pipe', 'inherit'],
      },
    );
    let out = '';
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
    });
    child.on('error', reject);
    child.on('exit', (code) =>
      code === 0 ? resolve(JSON.parse(out)) : reject(new Error(`gc child exited ${code}`)),
    );
  });
}

describe.skipIf(!isRoot)('container lifecycle', () => {
  const envs = netEnvPerTest();

  it('two setups of one ID in one process: one wins, the other changes nothing', async () => {
    const env = await envs.use(1);
    const [a, b] = [env.net(), env.net()];
    const results = await Promise.allSettled([
      a.setup({ id: 'same', name: 's' }),
      b.setup({ id: 'same', name: 's' }),
    ]);
    const won = results.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
    const lost = results.flatMap((r) => (r.status === 'rejected' ? [r.reason] : []));
    expect(won).toHaveLength(1);
    expect(lost).toMatchObject([{ code: 'ERR_PODNET_CONTAINER_EXISTS' }]);
    const winner = won[0]!;
    // The loser ran no DEL for the winner's attachment: its state, lease and namespace stand.
    expect((await env.net().load('same')).state.phase).toBe('ready');
    expect(existsSync(winner.state.netnsPath)).toBe(true);
    await expect(NetworkNamespace.open(winner.state.netnsPath)).resolves.toBeDefined();
    const addr = winner.inspect().IPAddress;
    expect(readFileSync(join(env.dataDir, env.networks[0]!.name, addr), 'utf8')).toContain('same');
    await winner.teardown();
  });

  it('down of a setup still in progress says so and leaves the setup alone', async () => {
    const env = await envs.use(1, { failAt: [0, 1], plugin: 'fake-hang-add' });
    const controller = new AbortController();
    const setup = env
      .net()
      .setup({ id: 'busy', name: 'b', signal: controller.signal })
      .catch((e: unknown) => e);
    // Wait until the setup is inside its plugin chain.
    for (let i = 0; i < 200 && !existsSync(join(env.stateDir, 'busy.json')); i++)
      await new Promise((r) => setTimeout(r, 20));
    const other = new Networking({ ...env.options, cni: env.net().cni, lockTimeoutMs: 300 });
    const loaded = await other.load('busy');
    await expect(loaded.teardown()).rejects.toMatchObject({ code: 'ERR_PODNET_CONTAINER_BUSY' });
    expect((await other.load('busy')).state.phase).toBe('setup');
    // gc leaves a setup whose process holds its lock.
    expect(await other.gc()).toMatchObject({ removedStates: [], errors: [] });
    controller.abort();
    expect(await setup).toMatchObject({ code: 'ERR_PODNET_ABORTED' });
  });

  it("disposing a loaded handle closes it; it never tears down another's container", async () => {
    const env = await envs.use(1);
    const owner = await env.net().setup({ id: 'kept', name: 'k' });
    {
      const loaded = await env.net().load('kept');
      await loaded[Symbol.asyncDispose]();
      expect(loaded.netns).toBeUndefined();
    }
    expect((await env.net().load('kept')).state.phase).toBe('ready');
    expect(existsSync(owner.state.netnsPath)).toBe(true);
    await owner[Symbol.asyncDispose](); // the setup's own handle does tear down
    expect(existsSync(owner.state.netnsPath)).toBe(false);
  });

  it('a netns dir given with a trailing slash or relatively mounts where the state says', async () => {
    const env = await envs.use(1);
    const cwd = process.cwd();
    process.chdir(join(env.netnsDir, '..'));
    try {
      for (const dir of [`${env.netnsDir}/`, `./${env.netnsDir.split('/').pop()}//.`]) {
        const nw = new Networking({ ...env.options, cni: env.net().cni, netnsDir: dir });
        expect(nw.netnsDir).toBe(env.netnsDir);
        const a = await nw.setup({ id: 'slash', name: 's' });
        expect(a.state.netnsPath.startsWith(`${env.netnsDir}/cni-`)).toBe(true);
        await expect(NetworkNamespace.open(a.state.netnsPath)).resolves.toBeDefined();
        await a.teardown();
        expect(existsSync(a.state.netnsPath)).toBe(false);
      }
    } finally {
      process.chdir(cwd);
    }
  });

  it('a container set up with one netns dir is torn down by a Networking configured with another', async () => {
    const env = await envs.use(1);
    const a = await env.net().setup({ id: 'moved', name: 'm' });
    const other = new Networking({
      ...env.options,
      cni: env.net().cni,
      netnsDir: join(env.root, 'elsewhere'),
    });
    await (await other.load('moved')).teardown();
    expect(existsSync(a.state.netnsPath)).toBe(false);
  });

  it('a state dir others can write is refused before anything in it is read', async () => {
    const env = await envs.use(1);
    mkdirSync(env.stateDir, { mode: 0o700 });
    chmodSync(env.stateDir, 0o777);
    const victim = join(env.root, 'victim');
    writeFileSync(victim, 'keep me');
    plantState(env, 'planted', { phase: 'setup' });
    const nw = env.net();
    await expect(nw.gc()).rejects.toMatchObject({ code: 'ERR_PODNET_UNSAFE_PATH' });
    await expect(nw.setup({ id: 'x', name: 'x' })).rejects.toMatchObject({
      code: 'ERR_PODNET_UNSAFE_PATH',
    });
    await expect(nw.load('planted')).rejects.toMatchObject({ code: 'ERR_PODNET_UNSAFE_PATH' });
    expect(existsSync(join(env.stateDir, 'x.json'))).toBe(false);
    chmodSync(env.stateDir, 0o700);
    unlinkSync(join(env.stateDir, 'planted.json'));
  });

  it('a state naming a victim file and a live process: gc leaves both', async () => {
    const env = await envs.use(1);
    const victim = join(env.root, 'victim');
    writeFileSync(victim, 'keep me');
    const sleeper = spawn('sleep', ['60'], { stdio: 'ignore' });
    try {
      const helper = { kind: 'slirp4netns', ...processIdentity(sleeper.pid!) };
      // A crashed setup whose journal names another file as its namespace.
      plantState(env, 'evil', { phase: 'setup', netnsPath: victim, helpers: [helper] });
      // A ready container whose namespace is gone, with a live stranger as its helper.
      plantState(env, 'evil2', { helpers: [helper] });
      const report = await env.net().gc();
      expect(readFileSync(victim, 'utf8')).toBe('keep me');
      expect(sleeper.exitCode).toBeNull();
      expect(sleeper.signalCode).toBeNull();
      expect(report.errors).toEqual([expect.stringMatching(/container 'evil' kept: .*victim/)]);
      // evil2 is undone (its namespace is gone) without the stranger being signalled.
      expect(report.removedStates).toEqual(['evil2']);
      expect(report.killedPids).toEqual([]);
    } finally {
      sleeper.kill('SIGKILL');
      unlinkSync(join(env.stateDir, 'evil.json'));
    }
  });

  it('a symlink in the netns dir is never followed: its target stays mounted', async () => {
    const env = await envs.use(1);
    const elsewhere = tempNetnsDir();
    try {
      const target = await NetworkNamespace.create({ dir: elsewhere.dir, name: 'target' });
      target.close();
      const link = join(env.netnsDir, 'cni-11111111-1111-1111-1111-111111111111');
      symlinkSync(target.path, link);
      plantState(env, 'linked', { netnsPath: link });
      // The namespace "exists" through the link, so gc keeps the container...
      expect(await env.net().gc()).toMatchObject({ removedStates: [], errors: [] });
      // ...and teardown refuses to unmount through it.
      const err = await (await env.net().load('linked')).teardown().catch((e: unknown) => e);
      expect(err).toMatchObject({ code: 'ERR_PODNET_TEARDOWN' });
      expect(String((err as Error).message)).toContain('symbolic link');
      await expect(NetworkNamespace.open(target.path)).resolves.toBeDefined();
      unlinkSync(link);
      unlinkSync(join(env.stateDir, 'linked.json'));
    } finally {
      await elsewhere.cleanup();
    }
  });

  it('a cache entry whose names make a path elsewhere is not used', async () => {
    const env = await envs.use(1);
    const results = join(env.cacheDir, 'results');
    mkdirSync(results, { recursive: true, mode: 0o700 });
    const file = join(results, `${env.networks[0]!.name}-ghost-eth0`);
    writeFileSync(
      file,
      JSON.stringify({
        kind: 'cniCacheV1',
        containerId: 'ghost',
        config: Buffer.from('{}').toString('base64'),
        ifName: '../../x',
        networkName: env.networks[0]!.name,
        netns: '/nonexistent',
      }),
    );
    const cni = new CniRuntime({ cacheDir: env.cacheDir });
    expect(await cni.cachedAttachments()).toEqual([]);
    expect(await env.net().gc()).toMatchObject({ releasedAttachments: [], errors: [] });
    unlinkSync(file);
  });

  it('an EMFILE while gc checks a live container keeps it, and the report names it', async () => {
    const env = await envs.use(1);
    const live = await env.net().setup({ id: 'alive', name: 'a' });
    live.close();
    const report = await gcWithEmfile(env);
    expect(report.removedStates).toEqual([]);
    expect(report.errors).toContainEqual(expect.stringContaining("container 'alive' kept"));
    await expect(NetworkNamespace.open(live.state.netnsPath)).resolves.toBeDefined();
    expect((await env.net().load('alive')).state.phase).toBe('ready');
    await (await env.net().load('alive')).teardown();
  });

  it('a SIGKILLed setup of an ID does not block the next setup of it once gc ran', async () => {
    const env = await envs.use(1);
    // A stale lock file (its holder died) does not hold anything.
    mkdirSync(env.stateDir, { recursive: true, mode: 0o700 });
    writeFileSync(join(env.stateDir, 'again.lock'), '999999\n');
    const a = await env.net().setup({ id: 'again', name: 'a' });
    await a.teardown();
    expect(existsSync(join(env.stateDir, 'again.lock'))).toBe(false);
    // One killed after taking its lock but before writing its state: gc
    // removes the lock file and reports nothing.
    writeFileSync(join(env.stateDir, 'early.lock'), '999999\n');
    expect(await env.net().gc()).toMatchObject({ removedStates: [], errors: [] });
    expect(existsSync(join(env.stateDir, 'early.lock'))).toBe(false);
  });
});

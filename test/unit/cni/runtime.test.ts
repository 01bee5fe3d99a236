// The runtime's protocol (environment, stdin injection, ordering, rollback,
// cache, locking) with a recording executor in place of processes: no root.
import {
  chmodSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readlinkSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  CniAttachmentError,
  CniCacheMissError,
  CniConfigError,
  CniError,
  CniGcError,
  type CniNetworkList,
  CniOutputError,
  type CniResult,
  CniRuntime,
  CniUnsupportedError,
  type PluginExecutor,
  type PluginOutput,
  parseNetworkList,
} from '../../../src/cni/index.js';
import { AbortError } from '../../../src/errors.js';
import { throwsInvalidArgument } from '../../helpers/errors.js';

interface Call {
  plugin: string;
  command: string;
  stdin: Record<string, unknown>;
  env: Record<string, string>;
}

type Responder = (call: Call) => Partial<PluginOutput> | Promise<Partial<PluginOutput>>;

const ok = (stdout = ''): Partial<PluginOutput> => ({ stdout: Buffer.from(stdout) });

function result100(n: number): string {
  return JSON.stringify({
    cniVersion: '1.0.0',
    interfaces: [{ name: `veth${n}` }, { name: 'eth0', sandbox: '/run/netns/x' }],
    ips: [{ address: `10.0.0.${n}/24`, gateway: '10.0.0.1', interface: 1 }],
  });
}

let dir: string;
let calls: Call[];
let respond: Responder;

const executor: PluginExecutor = async (path, stdin, env, options) => {
  // As the real executor: the process exists (a made-up pid) before it reads its config.
  await options.onSpawn?.(4242);
  const call = {
    plugin: basename(path),
    command: env['CNI_COMMAND']!,
    stdin: JSON.parse(stdin),
    env: { ...env },
  };
  calls.push(call);
  const out = await respond(call);
  return { stdout: Buffer.alloc(0), stderr: Buffer.alloc(0), exitCode: 0, signal: null, ...out };
};

function runtime(extra: Partial<ConstructorParameters<typeof CniRuntime>[0]> = {}): CniRuntime {
  return new CniRuntime({
    pluginDirs: [join(dir, 'none'), join(dir, 'bin')],
    confDir: join(dir, 'net.d'),
    cacheDir: join(dir, 'cache'),
    executor,
    ...extra,
  });
}

function list(cniVersion = '1.0.0', more: Record<string, unknown> = {}): CniNetworkList {
  return parseNetworkList({
    cniVersion,
    name: 'net1',
    plugins: [
      { type: 'p1', capabilities: { ips: true, mac: false }, custom: { keep: [1, 2] } },
      { type: 'p2', capabilities: { portMappings: true } },
      { type: 'p3' },
    ],
    ...more,
  });
}

const attachment = {
  containerId: 'abc123',
  netns: '/run/netns/x',
  ifName: 'eth0',
  args: { IgnoreUnknown: '1', K8S_POD_NAME: 'pod' },
  capabilityArgs: {
    ips: ['10.0.0.9/24'],
    mac: 'aa:bb:cc:dd:ee:ff',
    portMappings: [{ hostPort: 80 }],
  },
};

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'podnet-unit-'));
  mkdirSync(join(dir, 'bin'));
  for (const p of ['p1', 'p2', 'p3', 'p4']) {
    writeFileSync(join(dir, 'bin', p), '');
    chmodSync(join(dir, 'bin', p), 0o755);
  }
  calls = [];
  let n = 0;
  respond = (c) => (c.command === 'ADD' ? ok(result100(++n)) : ok());
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

describe('ADD', () => {
  it('sets the CNI environment over a minimal one and injects name, version, prevResult and runtimeConfig', async () => {
    const cni = runtime({ env: { EXTRA: 'yes' } });
    const result = await cni.add(list(), attachment);
    expect(calls.map((c) => `${c.plugin} ${c.command}`)).toEqual(['p1 ADD', 'p2 ADD', 'p3 ADD']);
    const env = calls[0]!.env;
    expect(Object.keys(env).sort()).toEqual(
      [
        'CNI_ARGS',
        'CNI_COMMAND',
        'CNI_CONTAINERID',
        'CNI_IFNAME',
        'CNI_NETNS',
        'CNI_PATH',
        'EXTRA',
        'PATH',
      ].sort(),
    );
    expect(env).toMatchObject({
      CNI_COMMAND: 'ADD',
      CNI_CONTAINERID: 'abc123',
      CNI_NETNS: '/run/netns/x',
      CNI_IFNAME: 'eth0',
      CNI_ARGS: 'IgnoreUnknown=1;K8S_POD_NAME=pod',
      CNI_PATH: `${join(dir, 'none')}:${join(dir, 'bin')}`,
    });
    // Only declared-true capabilities, unknown fields untouched, no prevResult first.
    expect(calls[0]!.stdin).toEqual({
      type: 'p1',
      name: 'net1',
      cniVersion: '1.0.0',
      capabilities: { ips: true, mac: false },
      custom: { keep: [1, 2] },
      runtimeConfig: { ips: ['10.0.0.9/24'] },
    });
    expect(calls[1]!.stdin['prevResult']).toEqual(JSON.parse(result100(1)));
    expect(calls[1]!.stdin['runtimeConfig']).toEqual({ portMappings: [{ hostPort: 80 }] });
    expect(calls[2]!.stdin).not.toHaveProperty('runtimeConfig');
    expect(calls[2]!.stdin['prevResult']).toEqual(JSON.parse(result100(2)));
    expect(result).toEqual(JSON.parse(result100(3)));
  });

  it('converts each plugin result to the list version before passing it on and returning it', async () => {
    respond = (c) =>
      c.command === 'ADD'
        ? ok(
            JSON.stringify({
              cniVersion: '0.2.0',
              ip4: { ip: '10.1.0.5/16', gateway: '10.1.0.1' },
            }),
          )
        : ok();
    const result = await runtime().add(list('0.4.0'), attachment);
    expect(calls[1]!.stdin['prevResult']).toEqual({
      cniVersion: '0.4.0',
      ips: [{ version: '4', address: '10.1.0.5/16', gateway: '10.1.0.1' }],
    });
    expect(result.cniVersion).toBe('0.4.0');
  });

  it('reads a result without cniVersion as the list version', async () => {
    respond = (c) =>
      c.command === 'ADD' ? ok(JSON.stringify({ ips: [{ address: '10.2.0.2/24' }] })) : ok();
    expect(await runtime().add(list('1.0.0'), attachment)).toEqual({
      cniVersion: '1.0.0',
      ips: [{ address: '10.2.0.2/24' }],
    });
  });

  it('writes the libcni cache file, 0600 in a 0700 dir', async () => {
    const l = list();
    const result = await runtime().add(l, attachment);
    const file = join(dir, 'cache', 'results', 'net1-abc123-eth0');
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(statSync(join(dir, 'cache', 'results')).mode & 0o777).toBe(0o700);
    const cached = JSON.parse(readFileSync(file, 'utf8'));
    expect(cached).toEqual({
      kind: 'cniCacheV1',
      containerId: 'abc123',
      config: Buffer.from(l.bytes).toString('base64'),
      ifName: 'eth0',
      networkName: 'net1',
      netns: '/run/netns/x',
      cniArgs: [
        ['IgnoreUnknown', '1'],
        ['K8S_POD_NAME', 'pod'],
      ],
      capabilityArgs: attachment.capabilityArgs,
      result,
    });
  });

  it('on a failure at position k, DELs the plugins that ran, in reverse, and leaves no cache', async () => {
    respond = (c) => {
      if (c.plugin === 'p2' && c.command === 'ADD') {
        return {
          exitCode: 1,
          stdout: Buffer.from('{"code":7,"msg":"bad config","details":"field x"}'),
        };
      }
      return c.command === 'ADD' ? ok(result100(1)) : ok();
    };
    const cni = runtime();
    const err = await cni.add(list(), attachment).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CniError);
    expect(err).toMatchObject({
      cniCode: 7,
      msg: 'bad config',
      details: 'field x',
      plugin: 'p2',
      command: 'ADD',
    });
    // p3 never ran: it is not asked (firewall, for one, refuses a DEL without prevResult).
    expect(calls.map((c) => `${c.plugin} ${c.command}`)).toEqual([
      'p1 ADD',
      'p2 ADD',
      'p2 DEL',
      'p1 DEL',
    ]);
    expect(calls[2]!.stdin['prevResult']).toEqual(JSON.parse(result100(1)));
    expect(await cni.cachedAttachments()).toEqual([]);
  });

  it('reports how far the chain got before each plugin, and a DEL can ask only those', async () => {
    respond = (c) => (c.command === 'ADD' ? ok(result100(1)) : ok());
    const cni = runtime();
    const seen: [number, CniResult | undefined][] = [];
    await cni.add(list(), attachment, {
      onPlugin: ({ plugin, prevResult }) => {
        // Called before the plugin reads its config: exactly `plugin` plugins have run so far.
        expect(calls.length).toBe(plugin);
        seen.push([plugin, prevResult]);
      },
    });
    expect(seen.map(([i]) => i)).toEqual([0, 1, 2]);
    expect(seen[0]![1]).toBeUndefined();
    expect(seen[2]![1]).toBeDefined();
    // What a journal holds after a crash inside p2: DEL p2 then p1, with the
    // last result known as prevResult when the cache has none.
    const prev = seen[1]![1]!;
    await cni.cache.remove(list().name, attachment.containerId, attachment.ifName);
    calls.length = 0;
    await cni.del(list(), attachment, { reached: 1, prevResult: prev });
    expect(calls.map((c) => `${c.plugin} ${c.command}`)).toEqual(['p2 DEL', 'p1 DEL']);
    expect(calls[0]!.stdin['prevResult']).toEqual(JSON.parse(result100(1)));
  });

  it('an error from onPlugin stops the chain, and the plugins that ran are undone', async () => {
    respond = (c) => (c.command === 'ADD' ? ok(result100(1)) : ok());
    const cni = runtime();
    const err = await cni
      .add(list(), attachment, {
        onPlugin: ({ plugin }) => {
          if (plugin === 2) throw new Error('journal full');
        },
      })
      .catch((e: unknown) => e);
    expect(err).toMatchObject({ message: 'journal full' });
    expect(calls.map((c) => `${c.plugin} ${c.command}`)).toEqual([
      'p1 ADD',
      'p2 ADD',
      'p2 DEL',
      'p1 DEL',
    ]);
  });

  it('keeps a cache entry when the rollback DEL fails too, so GC can finish it', async () => {
    respond = (c) =>
      c.plugin === 'p3'
        ? { exitCode: 1, stdout: Buffer.from('{"code":11,"msg":"busy"}') }
        : ok(result100(1));
    const cni = runtime();
    await expect(cni.add(list(), attachment)).rejects.toMatchObject({
      plugin: 'p3',
      command: 'ADD',
    });
    expect((await cni.cachedAttachments()).map((a) => a.containerId)).toEqual(['abc123']);
  });

  it('rolls back with a fresh deadline when the caller aborts', async () => {
    const ac = new AbortController();
    respond = (c) => {
      if (c.plugin === 'p2' && c.command === 'ADD') ac.abort();
      return c.command === 'ADD' ? ok(result100(1)) : ok();
    };
    const spawning: PluginExecutor = async (path, stdin, env, opts) => {
      if (opts.signal?.aborted)
        throw new (await import('../../../src/cni/invoke/exec.js')).PluginExecError({
          kind: 'aborted',
          reason: opts.signal.reason,
        });
      return executor(path, stdin, env, opts);
    };
    const err = await runtime({ executor: spawning })
      .add(list(), attachment, { signal: ac.signal })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AbortError);
    expect(calls.map((c) => `${c.plugin} ${c.command}`)).toEqual([
      'p1 ADD',
      'p2 ADD',
      // p3 was never started (the abort came first): it has nothing to undo.
      'p2 DEL',
      'p1 DEL',
    ]);
  });

  it('validates before any plugin runs', async () => {
    const cni = runtime();
    const bad = [
      [{ ...attachment, containerId: '-x' }, 'containerId'],
      [{ ...attachment, containerId: '' }, 'containerId'],
      [{ ...attachment, ifName: 'a/b' }, 'ifName'],
      [{ ...attachment, ifName: 'x'.repeat(16) }, 'ifName'],
      [{ ...attachment, netns: '' }, 'netns'],
      [{ ...attachment, args: { 'A=B': '1' } }, 'args'],
      [{ ...attachment, args: [['A', '1;B=2']] as [string, string][] }, 'args'],
    ] as const;
    for (const [a, field] of bad) {
      const err = await cni.add(list(), a).catch((e: unknown) => e);
      expect(err, field).toBeInstanceOf(CniAttachmentError);
      expect(err).toMatchObject({ field });
    }
    const missing = parseNetworkList(
      { cniVersion: '1.0.0', name: 'n', plugins: [{ type: 'p1' }, { type: 'nope' }] },
      '/etc/x.conflist',
    );
    const err = await cni.add(missing, attachment).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CniConfigError);
    expect(err).toMatchObject({ file: '/etc/x.conflist', field: 'plugins[1].type' });
    const forged = { ...list(), plugins: [{ type: '../../bin/sh', capabilities: [], config: {} }] };
    await expect(cni.add(forged, attachment)).rejects.toMatchObject({ field: 'plugins[0].type' });
    expect(calls).toEqual([]);
  });

  it('turns plugin failures into typed errors', async () => {
    const cases: [Partial<PluginOutput>, unknown][] = [
      [
        { exitCode: 1, stderr: Buffer.from('boom\n') },
        { code: 'ERR_PODNET_CNI_PLUGIN', msg: 'failed (exit status 1): boom' },
      ],
      [
        { exitCode: 2 },
        { code: 'ERR_PODNET_CNI_PLUGIN', msg: 'failed with no error message (exit status 2)' },
      ],
      [{ exitCode: null, signal: 'SIGSEGV' }, { code: 'ERR_PODNET_CNI_PLUGIN' }],
      [{ exitCode: 1, stdout: Buffer.from('not json') }, { code: 'ERR_PODNET_CNI_OUTPUT' }],
      [{ exitCode: 1, stdout: Buffer.from('[1,2]') }, { code: 'ERR_PODNET_CNI_OUTPUT' }],
      [{ stdout: Buffer.from('garbage') }, { code: 'ERR_PODNET_CNI_OUTPUT', plugin: 'p1' }],
      [
        { stdout: Buffer.from('{"cniVersion":"1.0.0","ips":[{"address":"10.0.0.300/24"}]}') },
        { code: 'ERR_PODNET_CNI_OUTPUT' },
      ],
      [{ stdout: Buffer.from('{"cniVersion":"9.9.9"}') }, { code: 'ERR_PODNET_CNI_OUTPUT' }],
    ];
    for (const [out, expected] of cases) {
      respond = (c) => (c.command === 'ADD' ? out : ok());
      await expect(runtime().add(list(), attachment)).rejects.toMatchObject(expected as object);
    }
  });
});

describe('DEL', () => {
  it('runs in reverse with the cached result as prevResult, then removes the cache; repeatable', async () => {
    const cni = runtime();
    const l = list();
    const result = await cni.add(l, attachment);
    calls = [];
    await cni.del(l, attachment);
    expect(calls.map((c) => `${c.plugin} ${c.command}`)).toEqual(['p3 DEL', 'p2 DEL', 'p1 DEL']);
    for (const c of calls) expect(c.stdin['prevResult']).toEqual(result);
    expect(calls[1]!.stdin['runtimeConfig']).toEqual({ portMappings: [{ hostPort: 80 }] });
    expect(await cni.cachedResult(l, attachment)).toBeUndefined();
    calls = [];
    await cni.del(l, { ...attachment, netns: '' });
    expect(calls.map((c) => c.stdin['prevResult'])).toEqual([undefined, undefined, undefined]);
    expect(calls[0]!.env['CNI_NETNS']).toBe('');
  });

  it('sends no prevResult before 0.4.0', async () => {
    const cni = runtime();
    const l = list('0.3.1');
    await cni.add(l, attachment);
    calls = [];
    await cni.del(l, attachment);
    expect(calls.map((c) => c.stdin['prevResult'])).toEqual([undefined, undefined, undefined]);
  });

  it('tolerates a corrupt cache file and removes it after DEL', async () => {
    const cni = runtime();
    const file = cni.cache.pathFor('net1', 'abc123', 'eth0');
    mkdirSync(join(dir, 'cache', 'results'), { recursive: true });
    writeFileSync(file, '{"kind":"cniCacheV1", broken');
    await expect(cni.cachedResult(list(), attachment)).rejects.toMatchObject({
      code: 'ERR_PODNET_CNI_CACHE',
    });
    await cni.del(list(), attachment);
    expect(calls.map((c) => c.stdin['prevResult'])).toEqual([undefined, undefined, undefined]);
    await expect(cni.cachedResult(list(), attachment)).resolves.toBeUndefined();
  });

  it('stops at the first error and keeps the cache for a retry', async () => {
    const cni = runtime();
    await cni.add(list(), attachment);
    respond = (c) =>
      c.plugin === 'p2' ? { exitCode: 1, stdout: Buffer.from('{"code":11,"msg":"later"}') } : ok();
    calls = [];
    await expect(cni.del(list(), attachment)).rejects.toMatchObject({
      cniCode: 11,
      plugin: 'p2',
      command: 'DEL',
    });
    expect(calls.map((c) => c.plugin)).toEqual(['p3', 'p2']);
    expect(await cni.cachedResult(list(), attachment)).toBeDefined();
  });
});

describe('CHECK', () => {
  it('runs in order with the cached result', async () => {
    const cni = runtime();
    const result = await cni.add(list(), attachment);
    calls = [];
    await cni.check(list(), attachment);
    expect(calls.map((c) => `${c.plugin} ${c.command}`)).toEqual([
      'p1 CHECK',
      'p2 CHECK',
      'p3 CHECK',
    ]);
    expect(calls[0]!.stdin['prevResult']).toEqual(result);
  });

  it('needs 0.4.0, a cached result, and is skipped with disableCheck', async () => {
    const cni = runtime();
    await expect(cni.check(list('0.3.1'), attachment)).rejects.toBeInstanceOf(CniUnsupportedError);
    await expect(cni.check(list(), attachment)).rejects.toBeInstanceOf(CniCacheMissError);
    await cni.check(list('1.0.0', { disableCheck: true }), attachment);
    expect(calls).toEqual([]);
  });
});

describe('GC and STATUS', () => {
  it('DELs cached attachments that are not valid, then sends GC with valid-attachments (1.1.0)', async () => {
    const cni = runtime();
    const l = list('1.1.0');
    for (const id of ['keep1', 'stale1', 'stale2'])
      await cni.add(l, { ...attachment, containerId: id });
    await cni.add(list('1.1.0', { name: 'other' }), { ...attachment, containerId: 'otherctr' });
    calls = [];
    await cni.gc(l, { validAttachments: [{ containerId: 'keep1', ifName: 'eth0' }] });
    const dels = calls.filter((c) => c.command === 'DEL');
    expect(dels.map((c) => `${c.env['CNI_CONTAINERID']} ${c.plugin}`)).toEqual([
      'stale1 p3',
      'stale1 p2',
      'stale1 p1',
      'stale2 p3',
      'stale2 p2',
      'stale2 p1',
    ]);
    expect(dels[0]!.env['CNI_NETNS']).toBe('/run/netns/x');
    expect(dels[0]!.env['CNI_ARGS']).toBe('IgnoreUnknown=1;K8S_POD_NAME=pod');
    const gcs = calls.filter((c) => c.command === 'GC');
    expect(gcs.map((c) => c.plugin)).toEqual(['p1', 'p2', 'p3']);
    expect(gcs[0]!.stdin['cni.dev/valid-attachments']).toEqual([
      { containerID: 'keep1', ifname: 'eth0' },
    ]);
    expect(gcs[0]!.env).not.toHaveProperty('CNI_CONTAINERID');
    expect(
      (await cni.cachedAttachments()).map((a) => `${a.network}/${a.containerId}`).sort(),
    ).toEqual(['net1/keep1', 'other/otherctr']);
  });

  it('before 1.1.0 only DELs stale attachments; disableGC does nothing; failures are gathered', async () => {
    const cni = runtime();
    await cni.add(list('1.0.0'), attachment);
    await cni.gc(list('1.0.0', { disableGC: true }));
    calls = [];
    await cni.gc(list('1.0.0'));
    expect(calls.map((c) => c.command)).toEqual(['DEL', 'DEL', 'DEL']);
    await cni.add(list('1.1.0'), attachment);
    respond = () => ({ exitCode: 1, stdout: Buffer.from('{"code":4,"msg":"unknown command"}') });
    const err = await cni.gc(list('1.1.0')).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CniGcError);
    expect((err as CniGcError).errors).toHaveLength(4);
  });

  it('STATUS asks every plugin on 1.1.0 and is a no-op before', async () => {
    const cni = runtime();
    await cni.status(list('1.0.0'));
    expect(calls).toEqual([]);
    await cni.status(list('1.1.0'));
    expect(calls.map((c) => `${c.plugin} ${c.command}`)).toEqual([
      'p1 STATUS',
      'p2 STATUS',
      'p3 STATUS',
    ]);
    expect(calls[0]!.stdin).toMatchObject({ name: 'net1', cniVersion: '1.1.0' });
    respond = (c) =>
      c.plugin === 'p2'
        ? { exitCode: 1, stdout: Buffer.from('{"code":50,"msg":"not available"}') }
        : ok();
    await expect(cni.status(list('1.1.0'))).rejects.toMatchObject({
      cniCode: 50,
      plugin: 'p2',
      command: 'STATUS',
    });
  });

  it('VERSION queries a plugin', async () => {
    respond = () => ok('{"cniVersion":"1.0.0","supportedVersions":["0.4.0","1.0.0"]}');
    expect(await runtime().version('p1')).toEqual({
      cniVersion: '1.0.0',
      supportedVersions: ['0.4.0', '1.0.0'],
    });
    expect(calls[0]!.stdin).toEqual({ cniVersion: '1.1.0' });
    respond = () => ok('{"cniVersion":"1.0.0"}');
    await expect(runtime().version('p1')).rejects.toBeInstanceOf(CniOutputError);
    await expect(runtime().version('../p1')).rejects.toBeInstanceOf(CniAttachmentError);
  });
});

describe('serialisation', () => {
  function gated() {
    const log: string[] = [];
    const gates: (() => void)[] = [];
    respond = async (c) => {
      log.push(`start ${c.env['CNI_CONTAINERID'] ?? ''} ${c.command}`);
      await new Promise<void>((r) => gates.push(r));
      log.push(`end ${c.env['CNI_CONTAINERID'] ?? ''} ${c.command}`);
      return c.command === 'ADD' ? ok(result100(1)) : ok();
    };
    const one = parseNetworkList({ cniVersion: '1.1.0', name: 'n', plugins: [{ type: 'p1' }] });
    // Waits until the log says what a step should lead to (at most 2 s), so
    // a loaded machine cannot fail the test; an event that should not have
    // happened still shows in the exact comparisons after each wait.
    const until = async (ok: () => boolean) => {
      for (let i = 0; i < 400 && !ok(); i++) await new Promise((r) => setTimeout(r, 5));
    };
    return { log, gates, one, until };
  }

  it('runs one attachment at a time, different containers in parallel, and GC alone', async () => {
    const { log, gates, one, until } = gated();
    const cni = runtime();
    const a = { containerId: 'a', netns: '/x', ifName: 'eth0' };
    const b = { containerId: 'b', netns: '/x', ifName: 'eth0' };
    const p1 = cni.add(one, a);
    const p2 = cni.del(one, a);
    const p3 = cni.add(one, b);
    await until(() => log.length >= 2);
    expect(log).toEqual(['start a ADD', 'start b ADD']);
    const pg = cni.gc(one, { validAttachments: [a, b] });
    const p4 = cni.add(one, { ...a, containerId: 'c' });
    await new Promise((r) => setTimeout(r, 5));
    gates.shift()!();
    gates.shift()!();
    await until(() => log.length >= 5);
    // a's DEL waits for a's ADD; GC waits for both; c's ADD queues behind GC.
    expect(log).toEqual(['start a ADD', 'start b ADD', 'end a ADD', 'end b ADD', 'start a DEL']);
    gates.shift()!();
    await until(() => log.length >= 7);
    expect(log.at(-1)).toBe('start  GC');
    gates.shift()!();
    await until(() => log.length >= 9);
    expect(log.at(-1)).toBe('start c ADD');
    gates.shift()!();
    await Promise.all([p1, p2, p3, pg, p4]);
  });
});

describe('the netns option', () => {
  it('is an absolute path, checked in the constructor', () => {
    for (const bad of ['', 'run/netns/node', './node', '/run/netns/a\0b', 42, null, {}]) {
      throwsInvalidArgument(
        () => runtime({ netns: bad as unknown as string }),
        'CniRuntime netns must be the absolute path',
      );
    }
    expect(runtime({ netns: '/run/netns/node' }).netns).toBe('/run/netns/node');
    expect(runtime().netns).toBeUndefined();
  });

  it('is opened once per call and given to the executor as a path and an nsfs fd, closed after', async () => {
    // The caller's own namespace: any user may open it (entering it is the executor's business).
    const seen: { command: string; path: string | undefined; fd: string | undefined }[] = [];
    const fds = new Set<number>();
    const cni = runtime({
      netns: '/proc/self/ns/net',
      executor: async (path, stdin, env, options) => {
        const fd = options.netns?.fd;
        if (fd !== undefined) fds.add(fd);
        seen.push({
          command: env['CNI_COMMAND']!,
          path: options.netns?.path,
          fd: fd === undefined ? undefined : readlinkSync(`/proc/self/fd/${fd}`),
        });
        return executor(path, stdin, env, options);
      },
    });
    const one = list('1.0.0', { plugins: [{ type: 'p1' }] });
    await cni.add(one, attachment);
    await cni.del(one, attachment);
    const own = readlinkSync('/proc/self/ns/net');
    expect(seen).toEqual([
      { command: 'ADD', path: '/proc/self/ns/net', fd: own },
      { command: 'DEL', path: '/proc/self/ns/net', fd: own },
    ]);
    // Closed when the call settled: the number names no namespace any more.
    for (const fd of fds) {
      let now = '';
      try {
        now = readlinkSync(`/proc/self/fd/${fd}`);
      } catch {
        // Closed and not reused.
      }
      expect(now).not.toBe(own);
    }
    // Without the option an executor gets no namespace.
    const plain: unknown[] = [];
    await runtime({
      executor: (path, stdin, env, options) => {
        plain.push(options.netns);
        return executor(path, stdin, env, options);
      },
    }).add(one, attachment);
    expect(plain).toEqual([undefined]);
  });

  it('a file that is not a network namespace fails before any plugin runs', async () => {
    const file = join(dir, 'plain');
    writeFileSync(file, '');
    for (const [path, code] of [
      [file, 'ERR_PODNET_NOT_A_NAMESPACE'],
      ['/proc/self/ns/uts', 'ERR_PODNET_NOT_A_NAMESPACE'],
      [join(dir, 'missing'), 'ENOENT'],
    ] as const) {
      const cni = runtime({ netns: path });
      await expect(cni.add(list(), attachment)).rejects.toMatchObject({ code });
      await expect(cni.check(list(), attachment)).rejects.toMatchObject({ code });
      await expect(cni.gc(list())).rejects.toMatchObject({ code });
      await expect(cni.status(list('1.1.0'))).rejects.toMatchObject({ code });
      await expect(cni.version('p1')).rejects.toMatchObject({ code });
    }
    expect(calls).toEqual([]);
  });
});

import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  CniConfigError,
  CniNetworkNotFoundError,
  CniRuntime,
  DEFAULT_NETWORK,
  parseNetworkList,
  promoteSingleConfig,
} from '../../../src/cni/index.js';
import {
  cniArgProblem,
  ifNameProblem,
  nameProblem,
  pluginTypeProblem,
} from '../../../src/cni/validate.js';

const plugin = { type: 'bridge' };

function configError(fn: () => unknown): CniConfigError {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(CniConfigError);
    return error as CniConfigError;
  }
  throw new Error('expected a CniConfigError');
}

describe('validation rules', () => {
  it.each([
    ['a', true],
    ['A1_b.c-d', true],
    ['0abc', true],
    ['', false],
    ['-a', false],
    ['_a', false],
    ['.a', false],
    ['a b', false],
    ['a/b', false],
    ['a:b', false],
    ['ä', false],
  ])('network name / container ID %j valid: %s', (value, valid) => {
    expect(nameProblem(value) === undefined).toBe(valid);
  });

  it.each([
    ['eth0', true],
    ['x'.repeat(15), true],
    ['x'.repeat(16), false],
    ['é'.repeat(8), false], // 16 bytes
    ['', false],
    ['.', false],
    ['..', false],
    ['...', true],
    ['a/b', false],
    ['a:b', false],
    ['a b', false],
    ['a\tb', false],
    ['a\nb', false],
  ])('interface name %j valid: %s', (value, valid) => {
    expect(ifNameProblem(value) === undefined).toBe(valid);
  });

  it.each([
    ['bridge', true],
    ['host-local', true],
    ['', false],
    ['.', false],
    ['..', false],
    ['../bin/sh', false],
    ['a..b', false],
    ['/bin/sh', false],
    ['a/b', false],
    ['a\\b', false],
    ['a\0b', false],
  ])('plugin type %j valid: %s', (value, valid) => {
    expect(pluginTypeProblem(value) === undefined).toBe(valid);
  });

  it('non-strings are invalid everywhere', () => {
    expect(nameProblem(1)).toBeDefined();
    expect(ifNameProblem(undefined)).toBeDefined();
    expect(pluginTypeProblem(null)).toBeDefined();
  });

  it.each([
    ['K', 'V', true],
    ['K', '', true],
    ['K', 'a=b', true],
    ['', 'V', false],
    ['K=', 'V', false],
    ['K;', 'V', false],
    ['K', 'a;b', false],
  ])('CNI_ARGS pair %j=%j valid: %s', (k, x, valid) => {
    expect(cniArgProblem(k, x) === undefined).toBe(valid);
  });
});

describe('parseNetworkList', () => {
  it('keeps unknown fields untouched and records capabilities declared true', () => {
    const list = parseNetworkList(
      {
        cniVersion: '0.4.0',
        name: 'n',
        custom: 1,
        plugins: [{ type: 'bridge', deep: { a: [1] }, capabilities: { ips: true, mac: false } }],
      },
      'file.conflist',
    );
    expect(list).toMatchObject({
      name: 'n',
      cniVersion: '0.4.0',
      disableCheck: false,
      disableGC: false,
      source: 'file.conflist',
    });
    expect(list.plugins[0]).toEqual({
      type: 'bridge',
      capabilities: ['ips'],
      config: { type: 'bridge', deep: { a: [1] }, capabilities: { ips: true, mac: false } },
    });
    expect(JSON.parse(list.bytes).custom).toBe(1);
  });

  it('keeps the exact bytes of text input', () => {
    const text = '{ "cniVersion": "1.0.0", "name": "n", "plugins": [ {"type": "bridge"} ] }';
    expect(parseNetworkList(text).bytes).toBe(text);
  });

  it('picks the highest supported of cniVersion and cniVersions, skipping unknown ones', () => {
    const pick = (raw: Record<string, unknown>) =>
      parseNetworkList({ name: 'n', plugins: [plugin], ...raw }).cniVersion;
    expect(pick({ cniVersions: ['0.3.1', '1.0.0', '0.4.0'] })).toBe('1.0.0');
    expect(pick({ cniVersion: '0.4.0', cniVersions: ['0.3.1'] })).toBe('0.4.0');
    expect(pick({ cniVersion: '0.3.1', cniVersions: ['1.1.0', '7.0.0'] })).toBe('1.1.0');
    expect(pick({ cniVersion: '', cniVersions: ['0.2.0'] })).toBe('0.2.0');
  });

  it('reads disableCheck, disableGC and loadOnlyInlinedPlugins as booleans or "true"/"false"', () => {
    const list = parseNetworkList({
      cniVersion: '1.1.0',
      name: 'n',
      plugins: [plugin],
      disableCheck: 'TRUE',
      disableGC: true,
      loadOnlyInlinedPlugins: 'false',
    });
    expect(list).toMatchObject({
      disableCheck: true,
      disableGC: true,
      loadOnlyInlinedPlugins: false,
    });
  });

  it.each([
    [{ cniVersion: '1.0.0', plugins: [plugin] }, 'name'],
    [{ name: 'bad name', cniVersion: '1.0.0', plugins: [plugin] }, 'name'],
    [{ name: 'n', plugins: [plugin] }, 'cniVersion'],
    [{ name: 'n', cniVersion: '0.9.9', plugins: [plugin] }, 'cniVersion'],
    [{ name: 'n', cniVersion: 1, plugins: [plugin] }, 'cniVersion'],
    [{ name: 'n', cniVersions: ['x'], plugins: [plugin] }, 'cniVersions[0]'],
    [{ name: 'n', cniVersions: '1.0.0', plugins: [plugin] }, 'cniVersions'],
    [{ name: 'n', cniVersions: ['7.0.0'], plugins: [plugin] }, 'cniVersion'],
    [{ name: 'n', cniVersion: '1.0.0', plugins: [] }, 'plugins'],
    [{ name: 'n', cniVersion: '1.0.0' }, 'plugins'],
    [{ name: 'n', cniVersion: '1.0.0', plugins: {} }, 'plugins'],
    [{ name: 'n', cniVersion: '1.0.0', plugins: ['x'] }, 'plugins[0]'],
    [{ name: 'n', cniVersion: '1.0.0', plugins: [plugin, {}] }, 'plugins[1].type'],
    [
      { name: 'n', cniVersion: '1.0.0', plugins: [{ type: '../../usr/bin/id' }] },
      'plugins[0].type',
    ],
    [{ name: 'n', cniVersion: '1.0.0', plugins: [{ type: '/usr/bin/id' }] }, 'plugins[0].type'],
    [
      { name: 'n', cniVersion: '1.0.0', plugins: [{ type: 'x', capabilities: [] }] },
      'plugins[0].capabilities',
    ],
    [
      { name: 'n', cniVersion: '1.0.0', plugins: [{ type: 'x', capabilities: { ips: 1 } }] },
      'plugins[0].capabilities.ips',
    ],
    [{ name: 'n', cniVersion: '1.0.0', plugins: [plugin], disableCheck: 'yes' }, 'disableCheck'],
    [{ name: 'n', cniVersion: '1.0.0', plugins: [plugin], disableGC: 1 }, 'disableGC'],
  ])('rejects %j naming field %s', (raw, field) => {
    const err = configError(() =>
      parseNetworkList(raw as Record<string, unknown>, '/etc/cni/net.d/x.conflist'),
    );
    expect(err.field).toBe(field);
    expect(err.file).toBe('/etc/cni/net.d/x.conflist');
    expect(err.message).toContain('/etc/cni/net.d/x.conflist');
  });

  it('rejects text that is not JSON or not an object', () => {
    expect(configError(() => parseNetworkList('{nope', 'f')).field).toBe('(file)');
    expect(configError(() => parseNetworkList('[1]', 'f')).field).toBe('(file)');
  });

  it('promotes a single-plugin config', () => {
    const list = promoteSingleConfig(
      '{"cniVersion":"0.3.1","name":"old","type":"bridge","bridge":"b0"}',
      'old.conf',
    );
    expect(list).toMatchObject({ name: 'old', cniVersion: '0.3.1', source: 'old.conf' });
    expect(list.plugins.map((p) => p.config)).toEqual([
      { cniVersion: '0.3.1', name: 'old', type: 'bridge', bridge: 'b0' },
    ]);
  });

  it('embeds a podman-like default network', () => {
    expect(DEFAULT_NETWORK).toMatchObject({
      name: 'podman',
      cniVersion: '1.0.0',
      source: '<embedded>',
    });
    expect(DEFAULT_NETWORK.plugins.map((p) => p.type)).toEqual([
      'bridge',
      'portmap',
      'firewall',
      'tuning',
    ]);
    expect(DEFAULT_NETWORK.plugins[1]!.capabilities).toEqual(['portMappings']);
    expect(JSON.stringify(DEFAULT_NETWORK.plugins[0]!.config)).toContain('10.88.0.0/16');
  });
});

describe('loading from a directory', () => {
  let dir: string;
  const write = (name: string, value: unknown) =>
    writeFileSync(join(dir, name), typeof value === 'string' ? value : JSON.stringify(value));
  const rt = (defaultNetwork?: null) =>
    new CniRuntime({
      confDir: dir,
      cacheDir: join(dir, 'cache'),
      ...(defaultNetwork === null ? { defaultNetwork } : {}),
    });

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'podnet-unit-'));
  });
  afterEach(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  it('returns the default network only when the directory holds none', async () => {
    expect((await rt().listNetworks()).map((n) => n.name)).toEqual(['podman']);
    expect(await rt(null).listNetworks()).toEqual([]);
    expect((await rt().loadNetwork('podman')).source).toBe('<embedded>');
    await expect(rt(null).loadNetwork('podman')).rejects.toBeInstanceOf(CniNetworkNotFoundError);
  });

  it('lists in libcni order: .conflist lexically, then .conf/.json; the first of a name wins', async () => {
    write('20-b.conflist', { cniVersion: '1.0.0', name: 'b', plugins: [plugin] });
    write('10-a.conflist', { cniVersion: '1.0.0', name: 'a', plugins: [plugin] });
    write('30-a.conflist', { cniVersion: '0.4.0', name: 'a', plugins: [plugin] });
    write('05-c.conf', { cniVersion: '0.3.1', name: 'c', type: 'ptp' });
    write('06-d.json', { cniVersion: '0.3.1', name: 'd', type: 'ptp' });
    write('07-broken.conflist', '{');
    write('08-ignored.txt', { cniVersion: '1.0.0', name: 'x', plugins: [plugin] });
    mkdirSync(join(dir, '09-dir.conflist'));
    const cni = rt();
    expect((await cni.listNetworks()).map((n) => `${n.name}@${n.cniVersion}`)).toEqual([
      'a@1.0.0',
      'b@1.0.0',
      'c@0.3.1',
      'd@0.3.1',
    ]);
    await expect(cni.listNetworks({ strict: true })).rejects.toBeInstanceOf(CniConfigError);
    expect((await cni.loadNetwork('a')).source).toBe(join(dir, '10-a.conflist'));
    expect((await cni.loadNetwork('c')).plugins[0]!.type).toBe('ptp');
    expect((await cni.loadNetwork(join(dir, '30-a.conflist'))).cniVersion).toBe('0.4.0');
    await expect(cni.loadNetwork('zzz')).rejects.toBeInstanceOf(CniNetworkNotFoundError);
    await expect(cni.loadNetwork(join(dir, 'missing.conflist'))).rejects.toBeInstanceOf(
      CniNetworkNotFoundError,
    );
  });

  it('reports a file that names the network but is invalid', async () => {
    write('10-a.conflist', { cniVersion: '1.0.0', name: 'a', plugins: [{ type: '../evil' }] });
    const err = await rt()
      .loadNetwork('a')
      .catch((e: unknown) => e);
    expect(err).toMatchObject({ file: join(dir, '10-a.conflist'), field: 'plugins[0].type' });
  });

  it('adds plugins from <confDir>/<name>/*.conf unless loadOnlyInlinedPlugins', async () => {
    write('10-a.conflist', { cniVersion: '1.0.0', name: 'a', plugins: [plugin] });
    write('11-b.conflist', {
      cniVersion: '1.0.0',
      name: 'b',
      loadOnlyInlinedPlugins: true,
      plugins: [plugin],
    });
    write('12-c.conflist', { cniVersion: '1.1.0', name: 'c' });
    for (const n of ['a', 'b', 'c']) {
      mkdirSync(join(dir, n));
      write(`${n}/20-tuning.conf`, { type: 'tuning' });
      write(`${n}/10-portmap.conf`, { type: 'portmap', capabilities: { portMappings: true } });
      write(`${n}/30-ignored.json`, { type: 'firewall' });
    }
    const cni = rt();
    expect((await cni.loadNetwork('a')).plugins.map((p) => p.type)).toEqual([
      'bridge',
      'portmap',
      'tuning',
    ]);
    expect((await cni.loadNetwork('b')).plugins.map((p) => p.type)).toEqual(['bridge']);
    expect((await cni.loadNetwork('c')).plugins.map((p) => p.type)).toEqual(['portmap', 'tuning']);
  });
});

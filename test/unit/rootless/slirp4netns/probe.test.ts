import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { isPodnetError } from '../../../../src/errors.js';
import {
  parseSlirp4netnsHelp,
  parseSlirp4netnsVersion,
  probeSlirp4netns,
} from '../../../../src/rootless/index.js';
import { fixture } from '../../../helpers/fixtures.js';

const help120 = readFileSync(fixture('rootless/slirp4netns-1.2.0-help.txt'), 'utf8');
const version120 = readFileSync(fixture('rootless/slirp4netns-1.2.0-version.txt'), 'utf8');

// slirp4netns 0.2's help (before --disable-host-loopback, --api-socket, the sandbox and --netns-type).
const help02 = `Usage: slirp4netns [OPTION]... PID TAPNAME
User-mode networking for unprivileged network namespaces.

-c, --configure          bring up the interface
-e, --exit-fd=FD         specify the FD for terminating slirp4netns
-r, --ready-fd=FD        specify the FD to write to when the network is configured
-m, --mtu=MTU            specify MTU (default=1500, max=65521)
--help                   show this help and exit
--version                show version and exit
`;

describe('slirp4netns probe parsing', () => {
  it('reads every feature from 1.2.0 --help', () => {
    expect(parseSlirp4netnsHelp(help120, '1.2.0')).toEqual({
      version: '1.2.0',
      disableHostLoopback: true,
      mtu: true,
      enableSandbox: true,
      enableSeccomp: true,
      cidr: true,
      outboundAddr: true,
      enableIpv6: true,
      apiSocket: true,
      netnsType: true,
    });
  });

  it('finds only what an old --help lists, and whole option names only', () => {
    expect(parseSlirp4netnsHelp(help02, '0.2.0')).toMatchObject({
      disableHostLoopback: false,
      mtu: true,
      enableSandbox: false,
      apiSocket: false,
      netnsType: false,
    });
    expect(parseSlirp4netnsHelp('--mtu-max=X\n--outbound-addr6=IPv6', 'x')).toMatchObject({
      mtu: false,
      outboundAddr: false,
    });
  });

  it('reads the version block', () => {
    expect(parseSlirp4netnsVersion(version120)).toEqual({
      version: '1.2.0',
      commit: '656041d45cfca7a4176f6b7eed9e4fe6c11e8383',
      libslirp: '4.7.0',
      libseccomp: '2.5.4',
    });
    expect(parseSlirp4netnsVersion('slirp4netns version 0.4.3\n')).toEqual({ version: '0.4.3' });
    expect(parseSlirp4netnsVersion('garbage')).toBeUndefined();
    expect(parseSlirp4netnsVersion('pasta 2023_01_01')).toBeUndefined();
  });
});

describe('probeSlirp4netns', () => {
  const dir = mkdtempSync(join(tmpdir(), 'podnet-unit-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('is a typed error when the binary is missing', async () => {
    const err = await probeSlirp4netns(join(dir, 'nope')).catch((e: unknown) => e);
    expect(isPodnetError(err)).toBe(true);
    expect(err).toMatchObject({
      code: 'ERR_PODNET_ENGINE_MISSING',
      engine: 'slirp4netns',
      path: join(dir, 'nope'),
    });
    // Not executable counts as missing too.
    writeFileSync(join(dir, 'plain'), '#!/bin/sh\n', { mode: 0o644 });
    await expect(probeSlirp4netns(join(dir, 'plain'))).rejects.toMatchObject({
      code: 'ERR_PODNET_ENGINE_MISSING',
      engine: 'slirp4netns',
    });
  });

  it('is a typed error when the binary answers garbage', async () => {
    await expect(probeSlirp4netns(fixture('rootless/slirp4netns-garbage'))).rejects.toMatchObject({
      code: 'ERR_PODNET_ENGINE_PROBE',
      engine: 'slirp4netns',
      message: expect.stringMatching(/did not print a slirp4netns version.*garbage/),
    });
  });

  it('probes a binary that answers like slirp4netns 1.2.0', async () => {
    const bin = await probeSlirp4netns(fixture('rootless/slirp4netns-hang'));
    expect(bin).toMatchObject({
      path: fixture('rootless/slirp4netns-hang'),
      version: '1.2.0',
      libslirp: '4.7.0',
      features: { apiSocket: true, enableSandbox: true },
    });
  });
});

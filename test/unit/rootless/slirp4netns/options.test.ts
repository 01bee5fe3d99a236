import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { InvalidArgumentError } from '../../../../src/errors.js';
import {
  buildSlirp4netnsArgs,
  parseSlirp4netnsHelp,
  parseSlirp4netnsOptions,
  type Slirp4netnsFeatures,
} from '../../../../src/rootless/index.js';
import { fixture } from '../../../helpers/fixtures.js';

const help = readFileSync(fixture('rootless/slirp4netns-1.2.0-help.txt'), 'utf8');
const full = parseSlirp4netnsHelp(help, '1.2.0');
const none: Slirp4netnsFeatures = {
  version: '0.2.0',
  disableHostLoopback: false,
  mtu: false,
  enableSandbox: false,
  enableSeccomp: false,
  cidr: false,
  outboundAddr: false,
  enableIpv6: false,
  apiSocket: false,
  netnsType: false,
};

describe('parseSlirp4netnsOptions', () => {
  it('defaults as podman: rootlesskit port handler, no host loopback, no IPv6', () => {
    expect(parseSlirp4netnsOptions()).toEqual({
      portHandler: 'rootlesskit',
      allowHostLoopback: false,
      enableIpv6: false,
    });
  });

  it('reads every option podman spells, later ones winning', () => {
    expect(
      parseSlirp4netnsOptions([
        'port_handler=slirp4netns',
        'allow_host_loopback=true',
        'enable_ipv6=true',
        'cidr=10.5.0.0/24',
        'outbound_addr=192.0.2.7',
        'mtu=1500',
        'mtu=9000',
      ]),
    ).toEqual({
      portHandler: 'slirp4netns',
      allowHostLoopback: true,
      enableIpv6: true,
      cidr: '10.5.0.0/24',
      outboundAddr: '192.0.2.7',
      mtu: 9000,
    });
    expect(parseSlirp4netnsOptions(['outbound_addr=eth0']).outboundAddr).toBe('eth0');
    expect(
      parseSlirp4netnsOptions(['allow_host_loopback=true', 'allow_host_loopback=false'])
        .allowHostLoopback,
    ).toBe(false);
  });

  it.each([
    ['foo=bar', /unknown slirp4netns option 'foo=bar'/],
    ['allow_host_loopback', /unknown|true or false/],
    ['port_handler=pasta', /'port_handler=pasta'/],
    ['allow_host_loopback=yes', /'allow_host_loopback=yes': expected true or false/],
    ['enable_ipv6=1', /'enable_ipv6=1'/],
    ['cidr=10.0.2.0', /'cidr=10.0.2.0': not an IPv4 CIDR/],
    ['cidr=fd00::/64', /not an IPv4 CIDR/],
    ['cidr=10.0.2.0/26', /prefix length must be 1-25/],
    ['outbound_addr=::1', /must be an IPv4 address/],
    ['outbound_addr=a b', /neither an IPv4 address nor an interface name/],
    ['mtu=67', /MTU must be an integer from 68 to 65521/],
    ['mtu=65522', /MTU/],
    ['mtu=1500.5', /MTU/],
    ['mtu=', /MTU/],
  ])('rejects %s, naming it', (option, message) => {
    const run = () => parseSlirp4netnsOptions([option]);
    expect(run).toThrow(InvalidArgumentError);
    expect(run).toThrow(message);
  });
});

describe('buildSlirp4netnsArgs', () => {
  const defaults = parseSlirp4netnsOptions();

  it('builds podman arguments for a namespace path', () => {
    expect(
      buildSlirp4netnsArgs({
        options: defaults,
        features: full,
        target: { netns: '/run/netns/x' },
        privateMountNamespace: true,
      }),
    ).toEqual([
      '--disable-host-loopback',
      '--mtu',
      '65520',
      '--enable-sandbox',
      '--enable-seccomp',
      '-c',
      '-e',
      '3',
      '-r',
      '4',
      '--netns-type=path',
      '/run/netns/x',
      'tap0',
    ]);
  });

  it('attaches by pid, adds the API socket and the optional settings', () => {
    expect(
      buildSlirp4netnsArgs({
        options: parseSlirp4netnsOptions([
          'allow_host_loopback=true',
          'port_handler=slirp4netns',
          'cidr=10.9.0.0/16',
          'enable_ipv6=true',
          'outbound_addr=192.0.2.1',
          'mtu=1500',
        ]),
        features: full,
        target: { pid: 1234 },
        apiSocket: '/tmp/d/api.sock',
        privateMountNamespace: false,
      }),
    ).toEqual([
      '--mtu',
      '1500',
      '--enable-seccomp',
      '--cidr',
      '10.9.0.0/16',
      '--enable-ipv6',
      '--outbound-addr',
      '192.0.2.1',
      '--api-socket',
      '/tmp/d/api.sock',
      '-c',
      '-e',
      '3',
      '-r',
      '4',
      '1234',
      'tap0',
    ]);
  });

  it('leaves the sandbox out unless slirp4netns has a private mount namespace', () => {
    const args = buildSlirp4netnsArgs({
      options: defaults,
      features: full,
      target: { pid: 1 },
      privateMountNamespace: false,
    });
    expect(args).not.toContain('--enable-sandbox');
  });

  it('skips the default MTU on an old binary but refuses options it cannot honour', () => {
    const old = { ...none, disableHostLoopback: true };
    expect(
      buildSlirp4netnsArgs({
        options: defaults,
        features: old,
        target: { pid: 7 },
        privateMountNamespace: true,
      }),
    ).toEqual(['--disable-host-loopback', '-c', '-e', '3', '-r', '4', '7', 'tap0']);
    const build =
      (options: string[], target: { pid: number } | { netns: string } = { pid: 7 }) =>
      () =>
        buildSlirp4netnsArgs({
          options: parseSlirp4netnsOptions(options),
          features: old,
          target,
          privateMountNamespace: false,
        });
    expect(build(['mtu=1500'])).toThrow(/does not support --mtu, needed for mtu=1500/);
    expect(build(['cidr=10.1.0.0/24'])).toThrow(/--cidr/);
    expect(build(['enable_ipv6=true'])).toThrow(/--enable-ipv6/);
    expect(build(['outbound_addr=eth0'])).toThrow(/--outbound-addr/);
    expect(build([], { netns: '/run/netns/x' })).toThrow(/--netns-type/);
    // Silently allowing the host's loopback would be a security change.
    expect(() =>
      buildSlirp4netnsArgs({
        options: defaults,
        features: none,
        target: { pid: 7 },
        privateMountNamespace: false,
      }),
    ).toThrow(/--disable-host-loopback/);
  });

  it('validates the target', () => {
    const build = (target: { pid: number } | { netns: string }) => () =>
      buildSlirp4netnsArgs({
        options: defaults,
        features: full,
        target,
        privateMountNamespace: false,
      });
    expect(build({ netns: 'relative/ns' })).toThrow(InvalidArgumentError);
    expect(build({ netns: '' })).toThrow(/not an absolute path/);
    expect(build({ pid: 0 })).toThrow(/not a process id/);
    expect(build({ pid: 1.5 })).toThrow(/not a process id/);
  });
});

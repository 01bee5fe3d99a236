import { describe, expect, it } from 'vitest';
import { InvalidArgumentError } from '../../../../src/errors.js';
import {
  buildPastaArgs,
  type PastaArgsInput,
  parsePastaOptions,
  pastaPortSpec,
  validatePastaPortSpec,
} from '../../../../src/rootless/index.js';

const base = (over: Partial<PastaArgsInput> = {}): PastaArgsInput => ({
  options: parsePastaOptions(),
  target: { netns: '/run/netns/x' },
  logPath: '/d/pasta.log',
  pidFile: '/d/pasta.pid',
  runAsRoot: true,
  ...over,
});

describe('parsePastaOptions', () => {
  it('normalises long, long=value, short and attached short forms', () => {
    const o = parsePastaOptions([
      '--tcp-ports=8080:80',
      '-u',
      '53',
      '-T9000',
      '--no-dhcp',
      '-4',
      '--mtu',
      '1500',
      '-D',
      'none',
      '--ns-ifname',
      'eth1',
    ]);
    expect(o.args).toEqual([
      '--tcp-ports',
      '8080:80',
      '-u',
      '53',
      '-T',
      '9000',
      '--no-dhcp',
      '-4',
      '--mtu',
      '1500',
      '-D',
      'none',
      '--ns-ifname',
      'eth1',
    ]);
    expect([...o.given].sort()).toEqual(
      [
        'dns',
        'ipv4-only',
        'mtu',
        'no-dhcp',
        'ns-ifname',
        'tcp-ns',
        'tcp-ports',
        'udp-ports',
      ].sort(),
    );
    expect(o.mapGw).toBe(false);
  });

  it('takes --map-gw (podman) as a podnet switch, and --config-net as already set', () => {
    const o = parsePastaOptions(['--map-gw', '--config-net']);
    expect(o.args).toEqual([]);
    expect(o.mapGw).toBe(true);
    expect(() => parsePastaOptions(['--map-gw', '--no-map-gw'])).toThrow(/contradict/);
  });

  it.each([
    [['--bogus'], /unknown option/],
    [['-x'], /unknown option/],
    [['--tcp'], /unknown option/], // no abbreviations
    [['1234'], /positional/],
    [['sh', '-c', 'id'], /positional/],
    [['--'], /positional/],
    [['-f'], /foreground/],
    [['--log-file', '/tmp/l'], /private directory/],
    [['--log-file=/tmp/l'], /private directory/],
    [['-P', '/tmp/p'], /ready signal/],
    [['--runas', 'nobody'], /user pasta runs as/],
    [['--netns', '/run/netns/other'], /start\(/],
    [['--userns', '/proc/1/ns/user'], /start\(/],
    [['--fd', '5'], /passt option/],
    [['--version'], /does not start pasta/],
    [['-t'], /needs a value/],
    [['-t', '--no-dhcp'], /needs a value/],
    [['-t', '80;reboot'], /port/],
    [['-t', '$(reboot)'], /port/],
    [['-t', '80\n'], /control characters/],
    [['-t80\n'], /control characters/],
    [['--no-dhcp=1'], /takes no value/],
    [['-qd'], /takes no value/],
    [['--mtu', '70000'], /0-65520/],
    [['-a', '10.0.0.300'], /not an IPv4 or IPv6/],
    [['-a', '127.1'], /not an IPv4 or IPv6/],
    [['-a', 'fe80::1%eth0'], /not an IPv4 or IPv6/],
    [['-n', '255.0.255.0'], /netmask/],
    [['-M', '02:00:00:00:00'], /MAC/],
    [['-I', 'a-very-long-interface'], /interface name/],
    [['-S', 'a.com;b'], /domains/],
    [['--constructor'], /unknown option/],
  ])('refuses %j', (tokens, message) => {
    expect(() => parsePastaOptions(tokens)).toThrow(InvalidArgumentError);
    expect(() => parsePastaOptions(tokens)).toThrow(message);
  });

  it('accepts addresses, netmasks, MACs and domain lists', () => {
    expect(
      parsePastaOptions(
        [
          '-a',
          '10.1.2.3',
          '-a',
          'fd00::5',
          '-n',
          '24',
          '-n',
          '255.255.255.0',
          '-g',
          '10.1.2.1',
          '--ns-mac-addr',
          '02:00:00:aa:bb:cc',
          '-S',
          'example.com corp.example',
          '--dns-forward',
          '10.1.2.53',
          '--pcap',
          '/tmp/p.pcap',
        ],
        { root: false },
      ).args,
    ).toHaveLength(18);
  });

  it('for an unprivileged pasta, --pcap takes an absolute path', () => {
    expect(() => parsePastaOptions(['--pcap', 'rel/file.pcap'], { root: false })).toThrow(
      /absolute path/,
    );
  });

  it.each([
    ['--pcap', '/tmp/p.pcap'],
    ['--pcap=/etc/shadow'],
    ['-p', '/tmp/p.pcap'],
    ['-p/tmp/p.pcap'],
  ])('as root, refuses %j, which would have pasta write a file as root', (...tokens) => {
    let err: unknown;
    try {
      parsePastaOptions(tokens, { root: true });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(InvalidArgumentError);
    expect((err as InvalidArgumentError).code).toBe('ERR_PODNET_INVALID_ARGUMENT');
    expect((err as Error).message).toMatch(/^pasta option '[^']+': as root, pasta would write/);
    expect((err as Error).message).not.toContain('\n');
  });

  it('as root by default when this process is root, and the other file-writing or user options for everyone', () => {
    const root = process.getuid?.() === 0;
    expect(() => parsePastaOptions(['--pcap', '/tmp/p.pcap'])).toThrow(
      ...(root ? [/as root/] : []),
    );
    if (!root) expect(parsePastaOptions(['--pcap', '/tmp/p.pcap']).given.has('pcap')).toBe(true);
    for (const tokens of [
      ['--log-file', '/tmp/l'],
      ['-l', '/tmp/l'],
      ['--pid', '/tmp/p'],
      ['-P', '/tmp/p'],
      ['--runas', '1000'],
    ]) {
      for (const rootFlag of [true, false])
        expect(() => parsePastaOptions(tokens, { root: rootFlag })).toThrow(InvalidArgumentError);
    }
  });

  it('buildPastaArgs refuses, as root, options parsed for an unprivileged pasta', () => {
    const options = parsePastaOptions(['--pcap', '/tmp/p.pcap'], { root: false });
    expect(() => buildPastaArgs(base({ options, runAsRoot: true }))).toThrow(/as root/);
    expect(buildPastaArgs(base({ options, runAsRoot: false }))).toEqual(
      expect.arrayContaining(['--pcap', '/tmp/p.pcap']),
    );
  });
});

describe('validatePastaPortSpec', () => {
  it.each([
    'none',
    'auto',
    '22',
    '22:23',
    '22,25',
    '22-80',
    '22-80:32-90',
    '192.0.2.1/22',
    '192.0.2.1%eth0/22',
    '::1/8080:80',
    '2000-5000,~3000-3010',
    '192.0.2.1/20-30,~25',
    '~20000-20010',
  ])('accepts %s', (spec) => {
    expect(() => validatePastaPortSpec('-t', spec)).not.toThrow();
  });

  it.each([
    ['', /port number/],
    ['0', /port number/],
    ['65536', /port number/],
    ['80-70', /ends before/],
    ['22-80:32-33', /different lengths/],
    ['1:2:3', /not a port mapping/],
    ['1-2-3', /not a port range/],
    ['host.example/22', /address to bind/],
    ['192.0.2.1%eth0%x/22', /more than one/],
    ['192.0.2.1%a b/22', /interface name/],
    ['all', /port number/],
    ['22,', /port number/],
  ])('refuses %j', (spec, message) => {
    expect(() => validatePastaPortSpec('-t', spec)).toThrow(message);
  });
});

describe('pastaPortSpec', () => {
  it('turns PortMappings into -t/-u specs', () => {
    expect(pastaPortSpec({ hostPort: 8080, containerPort: 80 })).toEqual({
      option: '-t',
      spec: '8080:80',
    });
    expect(
      pastaPortSpec({ hostIP: '127.0.0.1', hostPort: 8080, containerPort: 80, protocol: 'tcp' }),
    ).toEqual({ option: '-t', spec: '127.0.0.1/8080:80' });
    expect(
      pastaPortSpec({
        hostIP: '',
        hostPort: 5000,
        containerPort: 6000,
        range: 10,
        protocol: 'udp',
      }),
    ).toEqual({ option: '-u', spec: '5000-5009:6000-6009' });
    expect(pastaPortSpec({ hostIP: '::1', hostPort: 53, containerPort: 53 }).spec).toBe(
      '::1/53:53',
    );
    // Every spec it makes is one pasta's grammar accepts.
    expect(() => validatePastaPortSpec('-t', '::1/53:53')).not.toThrow();
  });

  it.each([
    [{ hostPort: 0, containerPort: 80 }, /host port must be an integer from 1 to 65535, not 0/],
    [{ hostPort: 80, containerPort: 65536 }, /container port/],
    [{ hostPort: 65530, containerPort: 80, range: 10 }, /host range 65530-65539 ends past/],
    [{ hostPort: 80, containerPort: 80, range: 0 }, /range/],
    [{ hostPort: 80, containerPort: 80, range: 1.5 }, /range/],
    [{ hostPort: 80, containerPort: 80, hostIP: 'localhost' }, /not an IP/],
  ])('refuses %j', (mapping, message) => {
    expect(() => pastaPortSpec(mapping)).toThrow(InvalidArgumentError);
    expect(() => pastaPortSpec(mapping)).toThrow(message);
  });
});

describe('buildPastaArgs', () => {
  it('as root on a path: foreground, --config-net, quiet, log, pid file, --runas 0, nothing forwarded, no gateway mapping', () => {
    expect(buildPastaArgs(base())).toEqual([
      '--foreground',
      '--config-net',
      '--quiet',
      '--log-file',
      '/d/pasta.log',
      '--pid',
      '/d/pasta.pid',
      '--runas',
      '0',
      '-t',
      'none',
      '-u',
      'none',
      '-T',
      'none',
      '-U',
      'none',
      '--no-map-gw',
      '--netns',
      '/run/netns/x',
      '--netns-only',
    ]);
  });

  it('unprivileged on a pid: no --runas, the pid last', () => {
    const args = buildPastaArgs(base({ runAsRoot: false, target: { pid: 42 } }));
    expect(args).not.toContain('--runas');
    expect(args.at(-1)).toBe('42');
    expect(args).not.toContain('--netns');
  });

  it('publishes ports, and leaves the directions the caller set alone', () => {
    const args = buildPastaArgs(
      base({
        options: parsePastaOptions(['-T', '5432', '--debug', '--map-gw']),
        ports: [
          { hostIP: '127.0.0.1', hostPort: 8080, containerPort: 80 },
          { hostPort: 8443, containerPort: 443 },
        ],
      }),
    );
    expect(args).not.toContain('--quiet');
    expect(args).not.toContain('--no-map-gw');
    expect(args.join(' ')).toContain(
      '--runas 0 -T 5432 --debug -t 127.0.0.1/8080:80 -t 8443:443 -u none -U none --netns',
    );
    expect(args.filter((a) => a === '-T')).toHaveLength(1);
  });

  it('a UDP mapping replaces -u none; caller -t replaces -t none', () => {
    const args = buildPastaArgs(
      base({
        options: parsePastaOptions(['-t', '22']),
        ports: [{ hostPort: 53, containerPort: 53, protocol: 'udp' }],
      }),
    );
    expect(args.join(' ')).toContain('-t 22 -u 53:53 -T none -U none');
  });
});

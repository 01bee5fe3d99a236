import { describe, expect, it } from 'vitest';
import { parseInterval, parseMode, parseUpArgs } from '../../../src/cli/args.js';
import { throwsInvalidArgument } from '../../helpers/errors.js';

describe('parseMode', () => {
  it('reads the plain modes', () => {
    expect(parseMode('bridge')).toEqual({ mode: 'bridge', modeOptions: [] });
    expect(parseMode('none')).toEqual({ mode: 'none', modeOptions: [] });
    expect(parseMode('slirp4netns')).toEqual({ mode: 'slirp4netns', modeOptions: [] });
    expect(parseMode('container:web1')).toEqual({ mode: { container: 'web1' }, modeOptions: [] });
    expect(parseMode('ns:/run/netns/x')).toEqual({
      mode: { path: '/run/netns/x' },
      modeOptions: [],
    });
  });

  it("splits podman's options after the colon", () => {
    expect(parseMode('slirp4netns:allow_host_loopback=true,port_handler=slirp4netns')).toEqual({
      mode: 'slirp4netns',
      modeOptions: ['allow_host_loopback=true', 'port_handler=slirp4netns'],
    });
    expect(parseMode('pasta:-t,8080,--ipv4-only')).toEqual({
      mode: 'pasta',
      modeOptions: ['-t', '8080', '--ipv4-only'],
    });
  });

  it('rejects unknown modes and malformed options', () => {
    throwsInvalidArgument(() => parseMode('host'), "invalid mode 'host'");
    throwsInvalidArgument(() => parseMode('bridge:x=1'), "'bridge' takes no options");
    throwsInvalidArgument(() => parseMode('container:'), 'expected container:ID');
    throwsInvalidArgument(() => parseMode('container:../x'), "invalid container ID '../x'");
    throwsInvalidArgument(
      () => parseMode('slirp4netns:allow_host_loopback'),
      "option 'allow_host_loopback'",
    );
    throwsInvalidArgument(() => parseMode('slirp4netns:mtu=1500,'), 'empty option');
    throwsInvalidArgument(() => parseMode('pasta:'), 'empty option');
  });
});

describe('parseUpArgs', () => {
  it('defaults the name to the ID and leaves the mode to Networking', () => {
    // Networking picks bridge as root and pasta or slirp4netns rootless.
    expect(parseUpArgs('c1', {})).toEqual({ id: 'c1', name: 'c1' });
  });

  it('collects every flag', () => {
    expect(
      parseUpArgs('c1', {
        name: 'web',
        pod: 'p1',
        network: ['a', 'b'],
        publish: ['8080:80', '[::1]:8443:443/tcp', '5353:53/udp'],
        ip: '10.88.0.9',
        mac: '02:42:AC:11:00:02',
      }),
    ).toEqual({
      id: 'c1',
      name: 'web',
      pod: 'p1',
      networks: ['a', 'b'],
      portMappings: [
        { hostPort: 8080, containerPort: 80, protocol: 'tcp' },
        { hostIP: '::1', hostPort: 8443, containerPort: 443, protocol: 'tcp' },
        { hostPort: 5353, containerPort: 53, protocol: 'udp' },
      ],
      staticIP: '10.88.0.9',
      staticMAC: '02:42:ac:11:00:02',
    });
    expect(parseUpArgs('c1', { ip: 'fd00::9' }).staticIP).toBe('fd00::9');
  });

  it('maps --pid, --netns and --mode to modes, one at a time', () => {
    expect(parseUpArgs('c1', { pid: '1234' }).mode).toEqual({ pid: 1234 });
    expect(parseUpArgs('c1', { netns: '/run/netns/x' }).mode).toEqual({ path: '/run/netns/x' });
    expect(parseUpArgs('c1', { netns: 'rel' }).mode).toEqual({ path: `${process.cwd()}/rel` });
    expect(parseUpArgs('c1', { mode: 'container:c0' }).mode).toEqual({ container: 'c0' });
    expect(parseUpArgs('c1', { mode: 'slirp4netns:mtu=1500', publish: ['8080:80'] })).toMatchObject(
      {
        mode: 'slirp4netns',
        modeOptions: ['mtu=1500'],
        portMappings: [{ hostPort: 8080 }],
      },
    );
    throwsInvalidArgument(
      () => parseUpArgs('c1', { pid: '1', netns: '/x' }),
      '--pid and --netns exclude',
    );
    throwsInvalidArgument(
      () => parseUpArgs('c1', { mode: 'none', pid: '1' }),
      '--mode and --pid exclude',
    );
    throwsInvalidArgument(() => parseUpArgs('c1', { pid: '0' }), "invalid --pid '0'");
    throwsInvalidArgument(() => parseUpArgs('c1', { pid: '12x' }), "invalid --pid '12x'");
    throwsInvalidArgument(() => parseUpArgs('c1', { netns: '' }), 'empty path');
  });

  it('allows networks, IP and MAC only where CNI runs, ports only where podnet wires the namespace', () => {
    expect(parseUpArgs('c1', { pid: '7', network: ['n'], ip: '10.0.0.2' })).toMatchObject({
      networks: ['n'],
      staticIP: '10.0.0.2',
    });
    throwsInvalidArgument(
      () => parseUpArgs('c1', { mode: 'none', network: ['n'] }),
      '--network needs mode bridge',
    );
    throwsInvalidArgument(() => parseUpArgs('c1', { mode: 'pasta', ip: '10.0.0.2' }), 'not pasta');
    throwsInvalidArgument(
      () => parseUpArgs('c1', { netns: '/x', mac: '02:00:00:00:00:01' }),
      'namespace path',
    );
    throwsInvalidArgument(
      () => parseUpArgs('c1', { mode: 'none', publish: ['1:1'] }),
      '-p needs a network',
    );
    throwsInvalidArgument(
      () => parseUpArgs('c1', { mode: 'container:c0', publish: ['1:1'] }),
      'container:ID',
    );
  });

  it('names the bad value', () => {
    throwsInvalidArgument(() => parseUpArgs('-bad', {}), "invalid container ID '-bad'");
    throwsInvalidArgument(() => parseUpArgs('c1', { name: 'a b' }), "invalid name 'a b'");
    throwsInvalidArgument(() => parseUpArgs('c1', { pod: '' }), 'invalid pod name');
    throwsInvalidArgument(
      () => parseUpArgs('c1', { network: ['ok', 'x/y'] }),
      "invalid network name 'x/y'",
    );
    throwsInvalidArgument(
      () => parseUpArgs('c1', { network: ['a', 'a'] }),
      "network 'a' given twice",
    );
    throwsInvalidArgument(() => parseUpArgs('c1', { ip: '10.0.0' }), "invalid --ip '10.0.0'");
    throwsInvalidArgument(
      () => parseUpArgs('c1', { ip: '10.0.0.1/24' }),
      "invalid --ip '10.0.0.1/24'",
    );
    throwsInvalidArgument(
      () => parseUpArgs('c1', { mac: '02:42:ac:11:00' }),
      "invalid --mac '02:42:ac:11:00'",
    );
    throwsInvalidArgument(() => parseUpArgs('c1', { mac: '01:00:5e:00:00:01' }), 'multicast');
    throwsInvalidArgument(() => parseUpArgs('c1', { publish: ['8080:80', 'x'] }), "'x'");
  });

  it('rejects host ports published twice', () => {
    throwsInvalidArgument(
      () => parseUpArgs('c1', { publish: ['8080-8085:80-85', '8085:90'] }),
      "'8085:90/tcp' overlaps '8080-8085:80-85/tcp'",
    );
    throwsInvalidArgument(
      () => parseUpArgs('c1', { publish: ['127.0.0.1:53:53/udp', '53:54/udp'] }),
      "'53:54/udp' overlaps '127.0.0.1:53:53/udp'",
    );
    expect(
      parseUpArgs('c1', {
        publish: ['53:53/udp', '53:53/tcp', '127.0.0.1:80:80', '127.0.0.2:80:80'],
      }).portMappings,
    ).toHaveLength(4);
  });

  it("takes podman's forms without a host port: a free port, chosen at setup", () => {
    expect(parseUpArgs('c1', { publish: ['80', '127.0.0.1::81', '[::1]::82/udp'] })).toMatchObject({
      portMappings: [
        { hostPort: 0, containerPort: 80 },
        { hostIP: '127.0.0.1', hostPort: 0, containerPort: 81 },
        { hostIP: '::1', hostPort: 0, containerPort: 82, protocol: 'udp' },
      ],
    });
    throwsInvalidArgument(
      () => parseUpArgs('c1', { publish: ['80-82'] }),
      'needs an explicit host port range',
    );
  });
});

describe('parseInterval', () => {
  it('takes seconds, fractions allowed, from 0.01 to an hour, and returns milliseconds', () => {
    expect(parseInterval('1')).toBe(1000);
    expect(parseInterval('0.5')).toBe(500);
    expect(parseInterval('.25')).toBe(250);
    expect(parseInterval('2.')).toBe(2000);
    expect(parseInterval('0.01')).toBe(10);
    expect(parseInterval('3600')).toBe(3_600_000);
    for (const bad of ['0', '0.009', '3600.5', '-1', '1e3', '', 'abc', '1,5', ' 1', '0x10', '.']) {
      throwsInvalidArgument(() => parseInterval(bad), `invalid --interval '${bad}'`);
    }
  });
});

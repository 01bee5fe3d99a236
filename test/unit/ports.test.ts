// The ports module: the -p parser, the validator, the range expander, the
// clash detector and the choice of a free host port (on loopback only).
import net from 'node:net';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  checkPortMappings,
  chooseFreeHostPorts,
  expandPortMappings,
  formatPortMapping,
  type PortMapping,
  parsePortSpec,
  portMappingsClash,
} from '../../src/ports.js';
import { throwsInvalidArgument } from '../helpers/errors.js';

describe('parsePortSpec: podman forms without a host port', () => {
  it('reads CTRPORT and HOSTIP::CTRPORT as host port 0 (a free port)', () => {
    expect(parsePortSpec('80')).toEqual({ hostPort: 0, containerPort: 80, protocol: 'tcp' });
    expect(parsePortSpec('53/udp')).toEqual({ hostPort: 0, containerPort: 53, protocol: 'udp' });
    expect(parsePortSpec('127.0.0.1::80')).toEqual({
      hostIP: '127.0.0.1',
      hostPort: 0,
      containerPort: 80,
      protocol: 'tcp',
    });
    expect(parsePortSpec('[::1]::80')).toMatchObject({ hostIP: '::1', hostPort: 0 });
    throwsInvalidArgument(() => parsePortSpec(''), "invalid port ''");
    throwsInvalidArgument(() => parsePortSpec('::80'), 'empty host IP');
    throwsInvalidArgument(() => parsePortSpec('1-2-3'), "invalid port range '1-2-3'");
  });

  it('writes every parsed form back as it reads it', () => {
    for (const spec of ['80/tcp', '127.0.0.1::80/tcp', '[::1]:8080-8081:80-81/udp', '1:2/tcp']) {
      expect(formatPortMapping(parsePortSpec(spec))).toBe(spec);
    }
  });
});

describe('parsePortSpec', () => {
  it('reads host port, container port and protocol', () => {
    expect(parsePortSpec('8080:80')).toEqual({
      hostPort: 8080,
      containerPort: 80,
      protocol: 'tcp',
    });
    expect(parsePortSpec('127.0.0.1:5353:53/udp')).toEqual({
      hostIP: '127.0.0.1',
      hostPort: 5353,
      containerPort: 53,
      protocol: 'udp',
    });
    expect(parsePortSpec('1:65535/TCP')).toMatchObject({ hostPort: 1, containerPort: 65535 });
  });

  it('takes IPv6 host addresses in brackets only', () => {
    expect(parsePortSpec('[::1]:8080:80')).toMatchObject({ hostIP: '::1', hostPort: 8080 });
    expect(parsePortSpec('[fd00::1:2]:53:53/udp')).toMatchObject({ hostIP: 'fd00::1:2' });
    throwsInvalidArgument(() => parsePortSpec('::1:8080:80'), 'needs brackets: [::1]');
    throwsInvalidArgument(() => parsePortSpec('[10.0.0.1]:8080:80'), "'10.0.0.1'");
  });

  it('turns equal-length ranges into one mapping with a range', () => {
    expect(parsePortSpec('8080-8085:80-85')).toEqual({
      hostPort: 8080,
      containerPort: 80,
      protocol: 'tcp',
      range: 6,
    });
    expect(parsePortSpec('9000-9000:90-90')).not.toHaveProperty('range');
    throwsInvalidArgument(
      () => parsePortSpec('8080-8085:80-84'),
      'host range has 6 ports, container range 5',
    );
    throwsInvalidArgument(() => parsePortSpec('8080-8085:80'), 'host range has 6 ports');
    throwsInvalidArgument(() => parsePortSpec('8085-8080:85-80'), "'8085-8080'");
  });

  it('names the bad part of a bad mapping', () => {
    throwsInvalidArgument(() => parsePortSpec('0:80'), "invalid port '0'");
    throwsInvalidArgument(() => parsePortSpec('65536:80'), "invalid port '65536'");
    throwsInvalidArgument(() => parsePortSpec('8080:80abc'), "invalid port '80abc'");
    throwsInvalidArgument(() => parsePortSpec('0x50:80'), "invalid port '0x50'");
    throwsInvalidArgument(() => parsePortSpec(':80'), "invalid port ''");
    throwsInvalidArgument(() => parsePortSpec(':8080:80'), 'empty host IP');
    throwsInvalidArgument(() => parsePortSpec('8080:80/sctp'), "invalid protocol 'sctp'");
    throwsInvalidArgument(() => parsePortSpec('10.0.0:8080:80'), "invalid host IP '10.0.0'");
    throwsInvalidArgument(() => parsePortSpec('localhost:8080:80'), "invalid host IP 'localhost'");
  });
});

describe('parsePortSpec round trip', () => {
  it('reads back any mapping written in the -p syntax', () => {
    const mapping = fc
      .record({
        hostIP: fc.option(fc.oneof(fc.ipV4(), fc.ipV6()), { nil: undefined }),
        hostPort: fc.integer({ min: 1, max: 65535 }),
        containerPort: fc.integer({ min: 1, max: 65535 }),
        protocol: fc.constantFrom('tcp' as const, 'udp' as const),
        range: fc.integer({ min: 1, max: 100 }),
      })
      .filter((m) => Math.max(m.hostPort, m.containerPort) + m.range - 1 <= 65535);
    fc.assert(
      fc.property(mapping, (m) => {
        const last = (p: number): string => (m.range > 1 ? `${p}-${p + m.range - 1}` : `${p}`);
        const ip =
          m.hostIP === undefined ? '' : m.hostIP.includes(':') ? `[${m.hostIP}]:` : `${m.hostIP}:`;
        const spec = `${ip}${last(m.hostPort)}:${last(m.containerPort)}/${m.protocol}`;
        const { hostIP, range, ...rest } = m;
        expect(parsePortSpec(spec)).toEqual({
          ...rest,
          ...(hostIP === undefined ? {} : { hostIP }),
          ...(range > 1 ? { range } : {}),
        });
      }),
    );
  });
});

describe('checkPortMappings', () => {
  it.each<[PortMapping, string]>([
    [{ hostPort: 70000, containerPort: 80 }, 'host port must be an integer from 1 to 65535'],
    [{ hostPort: 0, containerPort: 80 }, 'host port must be an integer from 1 to 65535, not 0'],
    [{ hostPort: 80, containerPort: 0 }, 'container port must be an integer from 1'],
    [{ hostPort: 1.5, containerPort: 80 }, 'host port'],
    [{ hostPort: 65535, containerPort: 80, range: 2 }, 'the host range 65535-65536 ends past'],
    [{ hostPort: 80, containerPort: 65535, range: 2 }, 'the container range 65535-65536'],
    [{ hostPort: 80, containerPort: 80, range: 0 }, 'range must be a positive integer'],
    [{ hostIP: 'localhost', hostPort: 80, containerPort: 80 }, "host IP 'localhost' is not"],
    [{ hostIP: 7 as never, hostPort: 80, containerPort: 80 }, "host IP '7' is not"],
    [{ hostPort: 53, containerPort: 53, protocol: 'sctp' as never }, "not 'sctp'"],
  ])('refuses %o, naming it', (mapping, message) => {
    throwsInvalidArgument(() => checkPortMappings([mapping]), message);
    throwsInvalidArgument(() => checkPortMappings([mapping]), 'port mapping 0 ');
  });

  it('takes host port 0 only when asked to, and never with a range', () => {
    expect(checkPortMappings([{ hostPort: 0, containerPort: 80 }], { freeHostPort: true })).toEqual(
      [{ hostPort: 0, containerPort: 80 }],
    );
    throwsInvalidArgument(
      () =>
        checkPortMappings([{ hostPort: 0, containerPort: 80, range: 2 }], { freeHostPort: true }),
      'needs an explicit host port range',
    );
  });

  it('returns copies without unknown keys', () => {
    const m = { hostPort: 1, containerPort: 2, extra: 1 } as PortMapping;
    const [out] = checkPortMappings([m]);
    expect(out).toEqual({ hostPort: 1, containerPort: 2 });
    expect(out).not.toBe(m);
  });

  it('refuses two mappings that bind one host port', () => {
    throwsInvalidArgument(
      () =>
        checkPortMappings([
          { hostPort: 8080, containerPort: 80, range: 2 },
          { hostPort: 8081, containerPort: 90 },
        ]),
      "'8081:90/tcp' overlaps '8080-8081:80-81/tcp': both bind host port 8081/tcp",
    );
    throwsInvalidArgument(
      () =>
        checkPortMappings([
          { hostIP: '0.0.0.0', hostPort: 80, containerPort: 80 },
          { hostIP: '127.0.0.1', hostPort: 80, containerPort: 81 },
        ]),
      'both bind host port 80/tcp',
    );
  });
});

describe('portMappingsClash', () => {
  const at = (hostIP: string | undefined, hostPort = 80, protocol: 'tcp' | 'udp' = 'tcp') =>
    ({
      ...(hostIP === undefined ? {} : { hostIP }),
      hostPort,
      containerPort: 1,
      protocol,
    }) as PortMapping;

  it('sees the same address twice, in any spelling, and wildcards over addresses', () => {
    expect(portMappingsClash(at('127.0.0.1'), at('127.0.0.1'))).toBe(true);
    expect(portMappingsClash(at('::1'), at('0:0::1'))).toBe(true);
    expect(portMappingsClash(at(undefined), at('127.0.0.1'))).toBe(true);
    expect(portMappingsClash(at(''), at('::1'))).toBe(true);
    expect(portMappingsClash(at('0.0.0.0'), at('10.1.2.3'))).toBe(true);
    expect(portMappingsClash(at('::'), at('10.1.2.3'))).toBe(true);
    expect(portMappingsClash(at('::'), at('::1'))).toBe(true);
  });

  it('lets one port be bound on two addresses, two families or two protocols', () => {
    expect(portMappingsClash(at('127.0.0.1'), at('127.0.0.2'))).toBe(false);
    expect(portMappingsClash(at('0.0.0.0'), at('::1'))).toBe(false);
    expect(portMappingsClash(at('127.0.0.1', 80, 'tcp'), at('127.0.0.1', 80, 'udp'))).toBe(false);
    expect(portMappingsClash(at('127.0.0.1', 80), at('127.0.0.1', 81))).toBe(false);
    expect(portMappingsClash(at('127.0.0.1', 0), at('127.0.0.1', 0))).toBe(false);
  });

  it('is symmetric', () => {
    const ip = fc.constantFrom(undefined, '', '0.0.0.0', '::', '127.0.0.1', '::1', '10.0.0.1');
    const m = fc.record({
      hostIP: ip,
      hostPort: fc.integer({ min: 0, max: 20 }),
      protocol: fc.constantFrom('tcp' as const, 'udp' as const),
      range: fc.integer({ min: 1, max: 5 }),
    });
    fc.assert(
      fc.property(m, m, (a, b) => {
        const x = { ...a, containerPort: 1 } as PortMapping;
        const y = { ...b, containerPort: 1 } as PortMapping;
        expect(portMappingsClash(x, y)).toBe(portMappingsClash(y, x));
      }),
    );
  });
});

describe('expandPortMappings', () => {
  it('gives one entry per host port, defaults filled in', () => {
    expect(
      expandPortMappings([
        { hostPort: 8080, containerPort: 80, range: 2 },
        { hostIP: '::1', hostPort: 0, containerPort: 53, protocol: 'udp' },
      ]),
    ).toEqual([
      { hostIP: '', hostPort: 8080, containerPort: 80, protocol: 'tcp' },
      { hostIP: '', hostPort: 8081, containerPort: 81, protocol: 'tcp' },
      { hostIP: '::1', hostPort: 0, containerPort: 53, protocol: 'udp' },
    ]);
  });
});

describe('chooseFreeHostPorts', () => {
  it('chooses a free loopback port for each host port 0, one of its own each', async () => {
    const chosen = await chooseFreeHostPorts([
      { hostIP: '127.0.0.1', hostPort: 0, containerPort: 80 },
      { hostIP: '127.0.0.1', hostPort: 0, containerPort: 81 },
      { hostIP: '127.0.0.1', hostPort: 0, containerPort: 53, protocol: 'udp' },
      { hostIP: '127.0.0.1', hostPort: 8080, containerPort: 82 },
    ]);
    const [a, b, u, fixed] = chosen;
    expect(a!.hostPort).toBeGreaterThan(0);
    expect(b!.hostPort).toBeGreaterThan(0);
    expect(a!.hostPort).not.toBe(b!.hostPort);
    expect(u).toMatchObject({ protocol: 'udp', containerPort: 53 });
    expect(u!.hostPort).toBeGreaterThan(0);
    expect(fixed).toEqual({ hostIP: '127.0.0.1', hostPort: 8080, containerPort: 82 });
    // Closed again: the port can be bound.
    const server = net.createServer();
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(a!.hostPort, '127.0.0.1', resolve);
    });
    await new Promise((resolve) => server.close(resolve));
  });

  it('refuses an address this host does not have', async () => {
    // TEST-NET-1 (RFC 5737): bind() fails at once with EADDRNOTAVAIL, nothing is sent.
    await expect(
      chooseFreeHostPorts([{ hostIP: '192.0.2.1', hostPort: 0, containerPort: 80 }]),
    ).rejects.toThrow(/no free host port on '192\.0\.2\.1'/);
  });
});

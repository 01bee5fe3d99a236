import { describe, expect, it } from 'vitest';
import { InvalidArgumentError } from '../../../src/index.js';
import { expandMappings } from '../../../src/rootless/forwarder.js';

describe('expandMappings', () => {
  it('defaults to TCP on 0.0.0.0 and expands ranges port by port', () => {
    expect(expandMappings([{ hostPort: 8080, containerPort: 80, range: 3 }])).toEqual([
      { hostIP: '0.0.0.0', hostPort: 8080, containerPort: 80, protocol: 'tcp' },
      { hostIP: '0.0.0.0', hostPort: 8081, containerPort: 81, protocol: 'tcp' },
      { hostIP: '0.0.0.0', hostPort: 8082, containerPort: 82, protocol: 'tcp' },
    ]);
    expect(expandMappings([{ hostIP: '', hostPort: 1, containerPort: 2 }])[0]?.hostIP).toBe(
      '0.0.0.0',
    );
    expect(expandMappings([{ hostIP: '::1', hostPort: 0, containerPort: 65535 }])).toEqual([
      { hostIP: '::1', hostPort: 0, containerPort: 65535, protocol: 'tcp' },
    ]);
  });

  it('allows one port on two host addresses, and any number of host port 0', () => {
    expect(
      expandMappings([
        { hostIP: '127.0.0.1', hostPort: 80, containerPort: 80 },
        { hostIP: '127.0.0.2', hostPort: 80, containerPort: 80 },
        { hostPort: 0, containerPort: 80 },
        { hostPort: 0, containerPort: 81 },
      ]),
    ).toHaveLength(4);
  });

  it.each([
    [{ hostPort: 70000, containerPort: 80 }, /host port must be an integer from 0 to 65535/],
    [{ hostPort: 80, containerPort: 0 }, /container port must be an integer from 1/],
    [{ hostPort: 1.5, containerPort: 80 }, /host port/],
    [{ hostPort: 65535, containerPort: 80, range: 2 }, /last host port of the range/],
    [{ hostPort: 80, containerPort: 65535, range: 2 }, /last container port of the range/],
    [{ hostPort: 80, containerPort: 80, range: 0 }, /range must be a positive integer/],
    [{ hostPort: 0, containerPort: 80, range: 2 }, /needs an explicit host port/],
    [{ hostIP: 'localhost', hostPort: 80, containerPort: 80 }, /must be an IP address/],
    [{ hostPort: 53, containerPort: 53, protocol: 'sctp' as never }, /unknown protocol 'sctp'/],
  ])('refuses %o', (mapping, message) => {
    expect(() => expandMappings([mapping])).toThrow(InvalidArgumentError);
    expect(() => expandMappings([mapping])).toThrow(message);
  });

  it('refuses a host address and port forwarded twice, also through overlapping ranges', () => {
    expect(() =>
      expandMappings([
        { hostPort: 8080, containerPort: 80, range: 2 },
        { hostPort: 8081, containerPort: 90 },
      ]),
    ).toThrow(/0\.0\.0\.0:8081\/tcp is forwarded twice/);
    expect(() =>
      expandMappings([
        { hostIP: '::', hostPort: 1, containerPort: 1 },
        { hostIP: '::', hostPort: 1, containerPort: 2 },
      ]),
    ).toThrow(/\[::\]:1\/tcp is forwarded twice/);
    expect(() =>
      expandMappings([
        { hostPort: 53, containerPort: 53, protocol: 'udp' },
        { hostPort: 50, containerPort: 50, range: 5, protocol: 'udp' },
      ]),
    ).toThrow(/0\.0\.0\.0:53\/udp is forwarded twice/);
  });

  it('forwards UDP, and one host port as TCP and as UDP at once', () => {
    expect(
      expandMappings([
        { hostIP: '127.0.0.1', hostPort: 53, containerPort: 53, protocol: 'udp' },
        { hostIP: '127.0.0.1', hostPort: 53, containerPort: 53, protocol: 'tcp' },
      ]),
    ).toEqual([
      { hostIP: '127.0.0.1', hostPort: 53, containerPort: 53, protocol: 'udp' },
      { hostIP: '127.0.0.1', hostPort: 53, containerPort: 53, protocol: 'tcp' },
    ]);
  });
});

import { describe, expect, it } from 'vitest';
import { InvalidArgumentError } from '../../../../src/index.js';
import { expandMappings } from '../../../../src/rootless/forwarder/forwarder.js';

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

  it('refuses what the ports module refuses: bad ports, and a host port bound twice', () => {
    // Every rule is tested in test/unit/ports.test.ts; these show the forwarder applies them.
    expect(() => expandMappings([{ hostPort: 0, containerPort: 80, range: 2 }])).toThrow(
      InvalidArgumentError,
    );
    expect(() =>
      expandMappings([
        { hostPort: 8080, containerPort: 80, range: 2 },
        { hostPort: 8081, containerPort: 90 },
      ]),
    ).toThrow(/both bind host port 8081\/tcp/);
    expect(() =>
      expandMappings([
        { hostIP: '0.0.0.0', hostPort: 53, containerPort: 53, protocol: 'udp' },
        { hostIP: '127.0.0.1', hostPort: 53, containerPort: 54, protocol: 'udp' },
      ]),
    ).toThrow(/both bind host port 53\/udp/);
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

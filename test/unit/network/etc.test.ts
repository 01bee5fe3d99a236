import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { CniResult100 } from '../../../src/cni/index.js';
import {
  buildHosts,
  buildResolvConf,
  parseResolvConf,
  writeEtcFiles,
} from '../../../src/network/etc.js';
import type { AttachedNetwork, ContainerState } from '../../../src/network/types.js';
import { containerState } from '../../helpers/state.js';

const NETNS = '/run/netns/cni-1b2c3d4e';

function list(name: string, dns: boolean): string {
  return JSON.stringify({
    cniVersion: '0.4.0',
    name,
    plugins: [
      { type: 'bridge', bridge: `br-${name}`, ipam: { type: 'host-local' } },
      ...(dns
        ? [{ type: 'dnsname', domainName: 'dns.podman', capabilities: { aliases: true } }]
        : []),
    ],
  });
}

function network(
  name: string,
  dns: boolean,
  ifName: string,
  ips: { address: string; gateway?: string }[],
): AttachedNetwork {
  const result: CniResult100 = {
    cniVersion: '1.0.0',
    interfaces: [{ name: ifName, mac: '0a:58:0a:59:00:05', sandbox: NETNS }],
    ips: ips.map((ip) => ({ interface: 0, ...ip })),
  };
  return {
    name,
    ifName,
    config: list(name, dns),
    runtime: { netns: NETNS, args: [], capabilityArgs: {} },
    result,
  };
}

const HOST = parseResolvConf(
  [
    '# generated',
    'nameserver 127.0.0.53',
    'nameserver 192.0.2.53 ; a comment',
    'nameserver ::1',
    'search example.com corp.example',
    'options edns0 ndots:2',
  ].join('\n'),
);

describe('parseResolvConf', () => {
  it('reads nameservers, search and options, dropping comments', () => {
    expect(HOST).toEqual({
      nameservers: ['127.0.0.53', '192.0.2.53', '::1'],
      search: ['example.com', 'corp.example'],
      options: ['edns0', 'ndots:2'],
    });
  });
});

describe('buildResolvConf', () => {
  it("without DNS: the host's nameservers less loopback ones, its search and options", () => {
    const s = containerState({
      netnsPath: NETNS,
      networks: [
        network('plain', false, 'eth0', [{ address: '10.88.0.5/16', gateway: '10.88.0.1' }]),
      ],
    });
    expect(buildResolvConf(s, HOST)).toBe(
      'search example.com corp.example\nnameserver 192.0.2.53\noptions edns0 ndots:2\n',
    );
  });

  it("with DNS on a network: its gateway as nameserver, dnsname's domain searched first", () => {
    const s = containerState({
      netnsPath: NETNS,
      networks: [
        network('plain', false, 'eth0', [{ address: '10.88.0.5/16', gateway: '10.88.0.1' }]),
        network('web', true, 'eth1', [
          { address: '10.89.0.7/24', gateway: '10.89.0.1' },
          { address: 'fd10:89::7/64', gateway: 'fd10:89::1' },
        ]),
      ],
    });
    expect(buildResolvConf(s, HOST)).toBe(
      [
        'search dns.podman example.com corp.example',
        'nameserver 10.89.0.1',
        'nameserver fd10:89::1',
        'options edns0 ndots:2',
        '',
      ].join('\n'),
    );
  });

  it("podman's public fallback when the host has only loopback nameservers", () => {
    const s = containerState({
      netnsPath: NETNS,
      networks: [
        network('plain', false, 'eth0', [{ address: '10.88.0.5/16', gateway: '10.88.0.1' }]),
      ],
    });
    const host = { nameservers: ['127.0.0.1'], search: [], options: [] };
    expect(buildResolvConf(s, host)).toBe('nameserver 8.8.8.8\nnameserver 8.8.4.4\n');
  });
});

describe('buildHosts', () => {
  it('localhost, the first gateway as host.containers.internal, then every address with the name and pod name', () => {
    const s: ContainerState = containerState({
      netnsPath: NETNS,
      name: 'app1',
      pod: 'shop',
      networks: [
        network('internal', false, 'eth0', [{ address: '10.88.0.5/16' }]),
        network('web', true, 'eth1', [{ address: 'fd10:89::7/64', gateway: 'fd10:89::1' }]),
      ],
    });
    expect(buildHosts(s)).toBe(
      [
        '127.0.0.1\tlocalhost',
        '::1\tlocalhost',
        'fd10:89::1\thost.containers.internal host.docker.internal',
        '10.88.0.5\tapp1 shop',
        'fd10:89::7\tapp1 shop',
        '',
      ].join('\n'),
    );
  });
});

describe('writeEtcFiles', () => {
  let dir: string | undefined;
  afterEach(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
    dir = undefined;
  });

  it('writes both files whole, leaving no temp file; refuses a symlinked dir', () => {
    const root = mkdtempSync(join(tmpdir(), 'podnet-test-etc-'));
    dir = root;
    const etc = join(root, 'etc');
    mkdirSync(etc);
    writeEtcFiles(etc, { resolvConf: 'nameserver 10.89.0.1\n', hosts: '127.0.0.1\tlocalhost\n' });
    writeEtcFiles(etc, { resolvConf: 'nameserver 10.89.0.2\n', hosts: '::1\tlocalhost\n' });
    expect(readdirSync(etc).sort()).toEqual(['hosts', 'resolv.conf']);
    expect(readFileSync(join(etc, 'resolv.conf'), 'utf8')).toBe('nameserver 10.89.0.2\n');
    expect(readFileSync(join(etc, 'hosts'), 'utf8')).toBe('::1\tlocalhost\n');

    const link = join(root, 'link');
    symlinkSync(etc, link);
    expect(() => writeEtcFiles(link, { resolvConf: 'x', hosts: 'y' })).toThrow(
      expect.objectContaining({ code: 'ERR_PODNET_UNSAFE_PATH' }),
    );
    expect(() => writeEtcFiles(join(root, 'missing'), { resolvConf: 'x', hosts: 'y' })).toThrow(
      expect.objectContaining({ code: 'ERR_PODNET_UNSAFE_PATH' }),
    );
    expect(readFileSync(join(etc, 'hosts'), 'utf8')).toBe('::1\tlocalhost\n');
  });
});

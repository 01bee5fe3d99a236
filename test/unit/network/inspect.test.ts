import { describe, expect, it } from 'vitest';
import type { CniResult040, CniResult100 } from '../../../src/cni/index.js';
import { buildNetworkSettings, networkAddresses } from '../../../src/network/inspect.js';
import type { AttachedNetwork, ContainerState } from '../../../src/network/types.js';
import { containerState } from '../../helpers/state.js';

const NETNS = '/run/netns/cni-1b2c3d4e';

// What Debian's bridge plugin returns: the bridge and the host end of the veth
// (no sandbox), then the container's eth0, which the addresses point at.
const bridge040: CniResult040 = {
  cniVersion: '0.4.0',
  interfaces: [
    { name: 'cni-podman0', mac: '5a:e1:3c:00:00:01' },
    { name: 'veth8a1b2c3d', mac: '7e:2f:11:00:00:02' },
    { name: 'eth0', mac: '0a:58:0a:58:00:05', sandbox: NETNS },
  ],
  ips: [{ version: '4', interface: 2, address: '10.88.0.5/16', gateway: '10.88.0.1' }],
  routes: [{ dst: '0.0.0.0/0' }],
  dns: {},
};
const bridge100: CniResult100 = {
  cniVersion: '1.0.0',
  interfaces: bridge040.interfaces!,
  ips: [{ interface: 2, address: '10.88.0.5/16', gateway: '10.88.0.1' }],
  routes: [{ dst: '0.0.0.0/0' }],
  dns: {},
};

function state(over: Partial<ContainerState> = {}): ContainerState {
  return containerState({ netnsPath: NETNS, ...over });
}

const attached = (name: string, result: AttachedNetwork['result'], ifName = 'eth0') => ({
  name,
  ifName,
  config: '{}',
  runtime: { netns: NETNS, args: [], capabilityArgs: {} },
  result,
});

const emptyAddresses = {
  Gateway: '',
  IPAddress: '',
  IPPrefixLen: 0,
  IPv6Gateway: '',
  GlobalIPv6Address: '',
  GlobalIPv6PrefixLen: 0,
  MacAddress: '',
};

describe('networkAddresses', () => {
  it('reads an IPv4-only bridge result from the container interface', () => {
    expect(networkAddresses(bridge040)).toEqual({
      Gateway: '10.88.0.1',
      IPAddress: '10.88.0.5',
      IPPrefixLen: 16,
      IPv6Gateway: '',
      GlobalIPv6Address: '',
      GlobalIPv6PrefixLen: 0,
      MacAddress: '0a:58:0a:58:00:05',
    });
  });

  it('gives the same output for 0.4.0 (with version) and 1.0.0 (without)', () => {
    expect(networkAddresses(bridge100)).toEqual(networkAddresses(bridge040));
  });

  it('reads an IPv6-only result', () => {
    const r: CniResult100 = {
      cniVersion: '1.1.0',
      interfaces: bridge040.interfaces!,
      ips: [{ interface: 2, address: 'fd00:88::5/64', gateway: 'fd00:88::1' }],
    };
    expect(networkAddresses(r)).toEqual({
      ...emptyAddresses,
      IPv6Gateway: 'fd00:88::1',
      GlobalIPv6Address: 'fd00:88::5',
      GlobalIPv6PrefixLen: 64,
      MacAddress: '0a:58:0a:58:00:05',
    });
  });

  it('puts a dual-stack IPv6 in GlobalIPv6Address, not the secondary list', () => {
    const r: CniResult040 = {
      ...bridge040,
      ips: [
        { version: '4', interface: 2, address: '10.88.0.5/16', gateway: '10.88.0.1' },
        { version: '6', interface: 2, address: 'fd00:88::5/64', gateway: 'fd00:88::1' },
      ],
    };
    const a = networkAddresses(r);
    expect(a).toMatchObject({
      IPAddress: '10.88.0.5',
      IPPrefixLen: 16,
      Gateway: '10.88.0.1',
      GlobalIPv6Address: 'fd00:88::5',
      GlobalIPv6PrefixLen: 64,
      IPv6Gateway: 'fd00:88::1',
    });
    expect(a).not.toHaveProperty('SecondaryIPv6Addresses');
    expect(a).not.toHaveProperty('SecondaryIPAddresses');
  });

  it('lists further addresses of each family as secondary', () => {
    const r: CniResult100 = {
      cniVersion: '1.0.0',
      interfaces: bridge040.interfaces!,
      ips: [
        { interface: 2, address: '10.88.0.5/16', gateway: '10.88.0.1' },
        { interface: 2, address: '10.89.0.7/24', gateway: '10.89.0.1' },
        { interface: 2, address: 'fd00:88::5/64' },
        { interface: 2, address: 'fd00:89::7/80' },
      ],
    };
    const a = networkAddresses(r);
    expect(a.IPAddress).toBe('10.88.0.5');
    expect(a.Gateway).toBe('10.88.0.1');
    expect(a.SecondaryIPAddresses).toEqual([{ Addr: '10.89.0.7', PrefixLen: 24 }]);
    expect(a.GlobalIPv6Address).toBe('fd00:88::5');
    expect(a.IPv6Gateway).toBe('');
    expect(a.SecondaryIPv6Addresses).toEqual([{ Addr: 'fd00:89::7', PrefixLen: 80 }]);
    // Each list sits after its family's fields, as in podman's JSON.
    expect(Object.keys(a)).toEqual([
      'Gateway',
      'IPAddress',
      'IPPrefixLen',
      'SecondaryIPAddresses',
      'IPv6Gateway',
      'GlobalIPv6Address',
      'GlobalIPv6PrefixLen',
      'SecondaryIPv6Addresses',
      'MacAddress',
    ]);
  });

  it('gives the MAC of an interface at index 0', () => {
    const r: CniResult100 = {
      cniVersion: '1.0.0',
      interfaces: [{ name: 'eth0', mac: '02:00:00:00:00:0a', sandbox: NETNS }],
      ips: [{ interface: 0, address: '192.168.1.10/24' }],
    };
    expect(networkAddresses(r).MacAddress).toBe('02:00:00:00:00:0a');
  });

  it('ignores addresses on host-side interfaces', () => {
    const r: CniResult100 = {
      cniVersion: '1.0.0',
      interfaces: bridge040.interfaces!,
      ips: [
        { interface: 0, address: '10.88.0.1/16' },
        { interface: 1, address: '169.254.1.1/32' },
        { interface: 2, address: '10.88.0.5/16', gateway: '10.88.0.1' },
      ],
    };
    const a = networkAddresses(r);
    expect(a.IPAddress).toBe('10.88.0.5');
    expect(a.MacAddress).toBe('0a:58:0a:58:00:05');
    expect(a).not.toHaveProperty('SecondaryIPAddresses');
    expect(a).not.toHaveProperty('AdditionalMacAddresses');
  });

  it('keeps addresses that name no interface, taking the MAC of the first sandbox interface', () => {
    const r: CniResult100 = {
      cniVersion: '1.0.0',
      interfaces: bridge040.interfaces!,
      ips: [{ address: '10.88.0.5/16' }],
    };
    expect(networkAddresses(r)).toMatchObject({
      IPAddress: '10.88.0.5',
      MacAddress: '0a:58:0a:58:00:05',
    });
    expect(networkAddresses({ cniVersion: '0.2.0', ip4: { ip: '10.1.0.2/24' } })).toEqual({
      ...emptyAddresses,
      IPAddress: '10.1.0.2',
      IPPrefixLen: 24,
    });
  });

  it('lists the MACs of further container interfaces as additional', () => {
    const r: CniResult100 = {
      cniVersion: '1.0.0',
      interfaces: [
        { name: 'br0', mac: '02:00:00:00:00:01' },
        { name: 'eth0', mac: '02:00:00:00:00:02', sandbox: NETNS },
        { name: 'net1', mac: '02:00:00:00:00:03', sandbox: NETNS },
      ],
      ips: [
        { interface: 2, address: '10.0.0.3/24' },
        { interface: 1, address: '10.0.1.3/24' },
      ],
    };
    const a = networkAddresses(r);
    expect(a.MacAddress).toBe('02:00:00:00:00:03');
    expect(a.AdditionalMacAddresses).toEqual(['02:00:00:00:00:02']);
    expect(a.SecondaryIPAddresses).toEqual([{ Addr: '10.0.1.3', PrefixLen: 24 }]);
  });
});

describe('buildNetworkSettings', () => {
  it('describes a container on the default network (podman key order)', () => {
    const s = buildNetworkSettings(state({ networks: [attached('podman', bridge040)] }));
    expect(s).toEqual({
      EndpointID: '',
      Gateway: '10.88.0.1',
      IPAddress: '10.88.0.5',
      IPPrefixLen: 16,
      IPv6Gateway: '',
      GlobalIPv6Address: '',
      GlobalIPv6PrefixLen: 0,
      MacAddress: '0a:58:0a:58:00:05',
      Bridge: '',
      SandboxID: 'c0ffee',
      HairpinMode: false,
      LinkLocalIPv6Address: '',
      LinkLocalIPv6PrefixLen: 0,
      Ports: {},
      SandboxKey: NETNS,
    });
    expect(Object.keys(s)).toEqual([
      'EndpointID',
      'Gateway',
      'IPAddress',
      'IPPrefixLen',
      'IPv6Gateway',
      'GlobalIPv6Address',
      'GlobalIPv6PrefixLen',
      'MacAddress',
      'Bridge',
      'SandboxID',
      'HairpinMode',
      'LinkLocalIPv6Address',
      'LinkLocalIPv6PrefixLen',
      'Ports',
      'SandboxKey',
    ]);
  });

  it('is the same for 0.4.0 and 1.0.0 results', () => {
    const of = (r: AttachedNetwork['result']) =>
      buildNetworkSettings(state({ networksRequested: true, networks: [attached('podman', r)] }));
    expect(of(bridge100)).toEqual(of(bridge040));
  });

  it("shows a network's dnsname aliases as Aliases, ignoring what is not a string", () => {
    const withAliases = {
      ...attached('web', bridge100),
      runtime: {
        netns: NETNS,
        args: [] as [string, string][],
        capabilityArgs: { aliases: { web: ['api', 7, 'www'], other: ['x'] } },
      },
    };
    const s = buildNetworkSettings(
      state({ networksRequested: true, networks: [attached('podman', bridge040), withAliases] }),
    );
    expect(s.Networks?.['web']?.Aliases).toEqual(['api', 'www']);
    expect(s.Networks?.['podman']).not.toHaveProperty('Aliases');
  });

  it('has empty address fields with no network (none mode)', () => {
    const s = buildNetworkSettings(state({ mode: 'none' }));
    expect(s).toMatchObject({ ...emptyAddresses, Ports: {}, SandboxKey: NETNS });
    expect(s).not.toHaveProperty('Networks');
    expect(s).not.toHaveProperty('SecondaryIPAddresses');
    expect(s).not.toHaveProperty('AdditionalMacAddresses');
  });

  it('lists every requested network, taking the top level from the first', () => {
    const second: CniResult100 = {
      cniVersion: '1.0.0',
      interfaces: [
        { name: 'cni-net2', mac: '02:00:00:00:01:01' },
        { name: 'veth2', mac: '02:00:00:00:01:02' },
        { name: 'eth1', mac: '02:00:00:00:01:03', sandbox: NETNS },
      ],
      ips: [
        { interface: 2, address: '10.89.0.9/24', gateway: '10.89.0.1' },
        { interface: 2, address: 'fd00:89::9/64', gateway: 'fd00:89::1' },
      ],
    };
    const s = buildNetworkSettings(
      state({
        networksRequested: true,
        networks: [attached('podman', bridge100), attached('net2', second, 'eth1')],
      }),
    );
    expect(s.IPAddress).toBe('10.88.0.5');
    expect(s.MacAddress).toBe('0a:58:0a:58:00:05');
    expect(s.GlobalIPv6Address).toBe('');
    expect(Object.keys(s.Networks ?? {})).toEqual(['podman', 'net2']);
    expect(s.Networks?.['podman']).toEqual({
      EndpointID: '',
      Gateway: '10.88.0.1',
      IPAddress: '10.88.0.5',
      IPPrefixLen: 16,
      IPv6Gateway: '',
      GlobalIPv6Address: '',
      GlobalIPv6PrefixLen: 0,
      MacAddress: '0a:58:0a:58:00:05',
      NetworkID: 'podman',
      DriverOpts: null,
      IPAMConfig: null,
      Links: null,
    });
    expect(s.Networks?.['net2']).toMatchObject({
      NetworkID: 'net2',
      IPAddress: '10.89.0.9',
      IPPrefixLen: 24,
      Gateway: '10.89.0.1',
      GlobalIPv6Address: 'fd00:89::9',
      GlobalIPv6PrefixLen: 64,
      IPv6Gateway: 'fd00:89::1',
      MacAddress: '02:00:00:00:01:03',
    });
    expect(s.Networks?.['net2']).not.toHaveProperty('Aliases');
  });

  it('has no Networks key when networks were not requested', () => {
    const s = buildNetworkSettings(state({ networks: [attached('podman', bridge100)] }));
    expect(s).not.toHaveProperty('Networks');
    expect(s.IPAddress).toBe('10.88.0.5');
  });

  it('has empty address fields for a joined namespace', () => {
    const s = buildNetworkSettings(
      state({
        mode: { path: '/run/netns/other' },
        netnsPath: '/run/netns/other',
        ownsNetns: false,
      }),
    );
    expect(s).toMatchObject({ ...emptyAddresses, SandboxKey: '/run/netns/other' });
  });

  it('maps published ranges and exposed ports', () => {
    const s = buildNetworkSettings(
      state({
        portMappings: [
          { hostPort: 8080, containerPort: 80 },
          { hostIP: '127.0.0.1', hostPort: 8081, containerPort: 80, protocol: 'tcp' },
          { hostPort: 5000, containerPort: 6000, protocol: 'udp', range: 3 },
        ],
        exposedPorts: [
          { port: 80 },
          { port: 443 },
          { port: 6001, protocol: 'udp' },
          { port: 53, protocol: 'udp' },
        ],
      }),
    );
    expect(s.Ports).toEqual({
      '80/tcp': [
        { HostIp: '', HostPort: '8080' },
        { HostIp: '127.0.0.1', HostPort: '8081' },
      ],
      '443/tcp': null,
      '53/udp': null,
      '6000/udp': [{ HostIp: '', HostPort: '5000' }],
      '6001/udp': [{ HostIp: '', HostPort: '5001' }],
      '6002/udp': [{ HostIp: '', HostPort: '5002' }],
    });
    // Sorted as Go's encoding/json sorts map keys.
    expect(Object.keys(s.Ports)).toEqual([
      '443/tcp',
      '53/udp',
      '6000/udp',
      '6001/udp',
      '6002/udp',
      '80/tcp',
    ]);
  });
});

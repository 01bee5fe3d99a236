// network create's decisions and refusals, as pure functions of the request
// and what the host has (podman's NetworkCreate rules for the CNI backend).
import { describe, expect, it } from 'vitest';
import { PodnetError } from '../../../src/errors.js';
import { type NetworkInfo, networkId } from '../../../src/networks/conflist.js';
import { type PlanContext, planNetwork } from '../../../src/networks/plan.js';
import { parseSubnet } from '../../../src/networks/subnets.js';

const ctx = (over: Partial<PlanContext> = {}): PlanContext => ({
  existing: [],
  hostRoutes: [],
  liveInterfaces: ['lo', 'eth0'],
  dnsname: true,
  now: '2026-01-01T00:00:00.000Z',
  ...over,
});

function refusal(fn: () => unknown): PodnetError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(PodnetError);
    return e as PodnetError;
  }
  throw new Error('expected a refusal');
}

describe('planNetwork', () => {
  it('fills in what podman fills in: bridge name, free subnet, gateway, DNS, ID', () => {
    const net = planNetwork({ name: 'web' }, ctx());
    expect(net).toEqual({
      name: 'web',
      id: networkId('web'),
      driver: 'bridge',
      network_interface: 'cni-podman1',
      created: '2026-01-01T00:00:00.000Z',
      subnets: [{ subnet: '10.89.0.0/24', gateway: '10.89.0.1' }],
      ipv6_enabled: false,
      internal: false,
      dns_enabled: true,
      ipam_options: { driver: 'host-local' },
    });
    expect(net.id).toMatch(/^[0-9a-f]{64}$/);
  });

  it('names an unnamed network like podman: the next free cni-podmanN, its bridge the same', () => {
    const net = planNetwork({}, ctx({ liveInterfaces: ['cni-podman1'] }));
    expect([net.name, net.network_interface]).toEqual(['cni-podman2', 'cni-podman2']);
  });

  it('skips subnets of existing networks and host routes, and taken bridge names', () => {
    const existing = [planNetwork({ name: 'a' }, ctx())];
    const net = planNetwork(
      { name: 'b' },
      ctx({ existing, hostRoutes: [parseSubnet('10.89.1.0/24')], liveInterfaces: ['cni-podman2'] }),
    );
    expect(net.subnets).toEqual([{ subnet: '10.89.2.0/24', gateway: '10.89.2.1' }]);
    expect(net.network_interface).toBe('cni-podman3');
  });

  it('keeps given subnets, gateways and ranges; dual stack adds a ULA /64', () => {
    const net = planNetwork(
      {
        name: 'ds',
        subnets: ['10.99.0.0/24'],
        gateway: ['10.99.0.254'],
        ipRange: ['10.99.0.128/25'],
        ipv6: true,
      },
      ctx({ random: (n) => new Uint8Array(n).fill(0xab) }),
    );
    expect(net.subnets).toEqual([
      {
        subnet: '10.99.0.0/24',
        gateway: '10.99.0.254',
        lease_range: { start_ip: '10.99.0.129', end_ip: '10.99.0.254' },
      },
      { subnet: 'fdab:abab:abab:abab::/64', gateway: 'fdab:abab:abab:abab::1' },
    ]);
    expect(net.ipv6_enabled).toBe(true);
  });

  it('internal: no gateway added, no DNS; options and labels kept as strings', () => {
    const net = planNetwork(
      { name: 'in', internal: true, options: { mtu: 1400, isolate: true }, labels: { a: 'b' } },
      ctx(),
    );
    expect(net.subnets).toEqual([{ subnet: '10.89.0.0/24' }]);
    expect(net.dns_enabled).toBe(false);
    expect(net.options).toEqual({ mtu: '1400', isolate: 'true' });
    expect(net.labels).toEqual({ a: 'b' });
  });

  it('macvlan: parent is the interface, dhcp without a subnet, no DNS', () => {
    const net = planNetwork(
      { name: 'mv', driver: 'macvlan', options: { parent: 'eth0', mode: 'bridge' } },
      ctx(),
    );
    expect(net).toMatchObject({
      driver: 'macvlan',
      network_interface: 'eth0',
      options: { mode: 'bridge' },
      ipam_options: { driver: 'dhcp' },
      dns_enabled: false,
    });
    expect(net.subnets).toBeUndefined();
  });

  it('refuses bad input with one typed line', () => {
    const existing: NetworkInfo[] = [planNetwork({ name: 'taken' }, ctx())];
    const cases: [Parameters<typeof planNetwork>[0], string, RegExp][] = [
      [{ name: 'a/b' }, 'ERR_PODNET_INVALID_ARGUMENT', /name "a\/b" is invalid/],
      [{ name: 'taken' }, 'ERR_PODNET_NETWORK_EXISTS', /'taken'.*exists/],
      [
        { name: 'x', subnets: ['10.89.0.128/25'] },
        'ERR_PODNET_SUBNET_OVERLAP',
        /10\.89\.0\.128\/25 overlaps 10\.89\.0\.0\/24 of network 'taken'/,
      ],
      [
        { name: 'x', subnets: ['10.50.0.0/16', '10.50.1.0/24'] },
        'ERR_PODNET_SUBNET_OVERLAP',
        /subnets 10\.50\.0\.0\/16 and 10\.50\.1\.0\/24 overlap/,
      ],
      [
        { name: 'x', subnets: ['10.60.0.0/24'], gateway: ['10.61.0.1'] },
        'ERR_PODNET_INVALID_ARGUMENT',
        /gateway 10\.61\.0\.1 is not in subnet 10\.60\.0\.0\/24/,
      ],
      [{ name: 'x', gateway: ['10.0.0.1'] }, 'ERR_PODNET_INVALID_ARGUMENT', /more gateways/],
      [{ name: 'x', options: { frob: 1 } }, 'ERR_PODNET_NETWORK_OPTION', /unsupported.*'frob'/],
      [{ name: 'x', options: { mtu: 'big' } }, 'ERR_PODNET_NETWORK_OPTION', /mtu must be/],
      [{ name: 'x', options: { isolate: 'strict' } }, 'ERR_PODNET_NETWORK_OPTION', /netavark/],
      [{ name: 'x', options: { mode: 'l2' } }, 'ERR_PODNET_NETWORK_OPTION', /macvlan and ipvlan/],
      [
        { name: 'x', driver: 'ipvlan', options: { mode: 'bridge' } },
        'ERR_PODNET_NETWORK_OPTION',
        /unknown ipvlan mode/,
      ],
      [
        { name: 'x', driver: 'macvlan', options: { parent: 'nope0' } },
        'ERR_PODNET_NETWORK_OPTION',
        /parent interface 'nope0' does not exist/,
      ],
      [
        {
          name: 'x',
          subnets: ['10.70.0.0/24'],
          routes: [{ destination: '10.1.2.3/8', gateway: '10.70.0.9' }],
        },
        'ERR_PODNET_INVALID_ARGUMENT',
        /is an address, not a network/,
      ],
      [
        {
          name: 'x',
          subnets: ['10.70.0.0/24'],
          routes: [{ destination: '10.0.0.0/8', gateway: '10.71.0.9' }],
        },
        'ERR_PODNET_INVALID_ARGUMENT',
        /in none of its subnets/,
      ],
    ];
    for (const [opts, code, message] of cases) {
      const err = refusal(() => planNetwork(opts, ctx({ existing })));
      expect(err.code, JSON.stringify(opts)).toBe(code);
      expect(err.message, JSON.stringify(opts)).toMatch(message);
      expect(err.message).not.toContain('\n');
    }
  });

  it('refuses a subnet over a host route', () => {
    const err = refusal(() =>
      planNetwork(
        { name: 'x', subnets: ['192.168.7.0/24'] },
        ctx({ hostRoutes: [parseSubnet('192.168.0.0/16')] }),
      ),
    );
    expect(err.code).toBe('ERR_PODNET_SUBNET_OVERLAP');
    expect(err.message).toMatch(/overlaps 192\.168\.0\.0\/16 of a route of the host/);
  });
});

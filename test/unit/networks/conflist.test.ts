// A network's conflist, written as podman's CNI backend writes it and read
// back as podman reads it.
import { describe, expect, it } from 'vitest';
import { DEFAULT_NETWORK } from '../../../src/cni/default-network.js';
import { parseNetworkList } from '../../../src/cni/index.js';
import { buildConflist, networkFromConflist } from '../../../src/networks/conflist.js';
import { type PlanContext, planNetwork } from '../../../src/networks/plan.js';

const ctx: PlanContext = {
  existing: [],
  hostRoutes: [],
  liveInterfaces: ['lo', 'eth0'],
  dnsname: true,
  now: '2026-01-01T00:00:00.000Z',
};

describe('buildConflist', () => {
  it("writes podman's bridge list: bridge, portmap, firewall, tuning, dnsname; labels and options in args", () => {
    const net = planNetwork(
      {
        name: 'web',
        subnets: ['10.0.0.0/24'],
        options: { isolate: 'true', mtu: '1400', vlan: '5' },
        labels: { team: 'a' },
      },
      ctx,
    );
    const text = buildConflist(net, true);
    expect(text).toMatch(/^\{\n {3}"args": \{/); // podman's three-space indent, keys sorted as Go's encoder does
    expect(JSON.parse(text)).toEqual({
      args: {
        podman_labels: { team: 'a' },
        podman_options: { isolate: 'true', mtu: '1400', vlan: '5' },
      },
      cniVersion: '0.4.0',
      name: 'web',
      plugins: [
        {
          type: 'bridge',
          bridge: 'cni-podman1',
          isGateway: true,
          ipMasq: true,
          mtu: 1400,
          hairpinMode: true,
          vlan: 5,
          ipam: {
            type: 'host-local',
            routes: [{ dst: '0.0.0.0/0' }],
            ranges: [[{ subnet: '10.0.0.0/24', gateway: '10.0.0.1' }]],
          },
          capabilities: { ips: true },
        },
        { type: 'portmap', capabilities: { portMappings: true } },
        { type: 'firewall', backend: '', ingressPolicy: 'same-bridge' },
        { type: 'tuning' },
        { type: 'dnsname', domainName: 'dns.podman', capabilities: { aliases: true } },
      ],
    });
  });

  it('internal: no gateway, no masquerade, no default route; no_default_route and routes', () => {
    const internal = JSON.parse(
      buildConflist(planNetwork({ name: 'in', internal: true }, ctx), true),
    );
    expect(internal.plugins[0]).toMatchObject({ isGateway: false });
    expect(internal.plugins[0].ipMasq).toBeUndefined();
    expect(internal.plugins[0].ipam.routes).toBeUndefined();
    expect(internal.plugins.map((p: { type: string }) => p.type)).toEqual([
      'bridge',
      'portmap',
      'firewall',
      'tuning',
    ]);
    const routed = JSON.parse(
      buildConflist(
        planNetwork(
          {
            name: 'r',
            subnets: ['10.70.0.0/24'],
            options: { no_default_route: 'true' },
            routes: [{ destination: '10.80.0.0/16', gateway: '10.70.0.9' }],
          },
          ctx,
        ),
        true,
      ),
    );
    expect(routed.plugins[0].ipam.routes).toEqual([{ dst: '10.80.0.0/16', gw: '10.70.0.9' }]);
  });

  it('macvlan: one plugin with master, mode and its ipam', () => {
    const net = planNetwork(
      {
        name: 'mv',
        driver: 'macvlan',
        subnets: ['192.168.50.0/24'],
        options: { parent: 'eth0', mode: 'vepa', mtu: 1300 },
      },
      ctx,
    );
    expect(JSON.parse(buildConflist(net, true)).plugins).toEqual([
      {
        type: 'macvlan',
        master: 'eth0',
        ipam: {
          type: 'host-local',
          routes: [{ dst: '0.0.0.0/0' }],
          ranges: [[{ subnet: '192.168.50.0/24', gateway: '192.168.50.1' }]],
        },
        mtu: 1300,
        mode: 'vepa',
        capabilities: { ips: true },
      },
    ]);
  });
});

describe('networkFromConflist', () => {
  it('reads back what create wrote (round trip, dual stack with a lease range)', () => {
    for (const opts of [
      {
        name: 'a',
        subnets: ['10.0.0.0/24'],
        options: { isolate: 'true', mtu: '1400' },
        labels: { x: 'y' },
      },
      { name: 'b', subnets: ['10.1.0.0/24'], ipRange: ['10.1.0.64/26'], ipv6: true },
      { name: 'c', internal: true },
      { name: 'd', driver: 'ipvlan' as const, subnets: ['10.3.0.0/24'], options: { mode: 'l3' } },
    ]) {
      const net = planNetwork(opts, ctx);
      const list = parseNetworkList(buildConflist(net, true), `/x/${net.name}.conflist`);
      expect(networkFromConflist(list, net.created), net.name).toEqual(net);
    }
  });

  it('reads a hand-written list and the embedded default network as podman would', () => {
    const def = networkFromConflist(DEFAULT_NETWORK, 'T');
    expect(def).toMatchObject({
      name: 'podman',
      driver: 'bridge',
      network_interface: 'cni-podman0',
      subnets: [{ subnet: '10.88.0.0/16', gateway: '10.88.0.1' }],
      dns_enabled: false,
      internal: false,
      ipam_options: { driver: 'host-local' },
    });
    const odd = parseNetworkList(
      '{"cniVersion":"1.0.0","name":"p","plugins":[{"type":"ptp","ipam":{}}]}',
    );
    expect(networkFromConflist(odd, 'T')).toMatchObject({
      name: 'p',
      driver: 'ptp',
      dns_enabled: false,
    });
  });
});

import { describe, expect, it } from 'vitest';
import { bridgeNetworkOf } from '../../../src/bridge/network.js';
import { parseNetworkList } from '../../../src/cni/config.js';
import { DEFAULT_NETWORK } from '../../../src/cni/default-network.js';

const list = (plugins: Record<string, unknown>[]) =>
  parseNetworkList(JSON.stringify({ cniVersion: '1.0.0', name: 'n', plugins }), '<test>');
const bridge = (extra: Record<string, unknown> = {}, ipam: Record<string, unknown> = {}) => ({
  type: 'bridge',
  bridge: 'br9',
  isGateway: true,
  ipam: { type: 'host-local', ranges: [[{ subnet: '10.9.0.0/24' }]], ...ipam },
  ...extra,
});

describe('which networks the native driver serves', () => {
  it('reads the embedded default network as the plugins would', () => {
    expect(bridgeNetworkOf(DEFAULT_NETWORK)).toEqual({
      name: 'podman',
      bridge: 'cni-podman0',
      isGateway: true,
      ipMasq: true,
      hairpin: true,
      ranges: [[{ subnet: '10.88.0.0/16', gateway: '10.88.0.1' }]],
      routes: [{ dst: '0.0.0.0/0' }],
      dataDir: '/var/lib/cni/networks',
      portmap: true,
      macCapability: true,
    });
  });

  it("takes host-local's legacy subnet form, its gateway default and dataDir", () => {
    const n = bridgeNetworkOf(
      list([
        bridge(
          { isDefaultGateway: true },
          { ranges: undefined, subnet: '10.7.3.9/24', dataDir: '/tmp/x' },
        ),
      ]),
    );
    expect(n).toMatchObject({
      ranges: [[{ subnet: '10.7.3.0/24', gateway: '10.7.3.1' }]],
      routes: [{ dst: '0.0.0.0/0' }],
      dataDir: '/tmp/x',
      portmap: false,
    });
  });

  it('leaves to the plugins what it would serve only halfway, saying why', () => {
    const cases: [Record<string, unknown>[], RegExp][] = [
      [
        [{ type: 'macvlan', master: 'eth0', ipam: { type: 'host-local' } }],
        /first plugin is not bridge/,
      ],
      [[bridge({ vlan: 10 })], /bridge option vlan/],
      [[bridge({}, { type: 'dhcp' })], /IPAM is not host-local/],
      [
        [bridge(), { type: 'tuning', sysctl: { 'net.core.somaxconn': '500' } }],
        /tuning option sysctl/,
      ],
      [[bridge(), { type: 'dnsname', domainName: 'dns.podman' }], /plugin dnsname/],
      [[bridge(), { type: 'firewall', ingressPolicy: 'same-bridge' }], /ingressPolicy same-bridge/],
      [[bridge({ mtu: 20 })], /mtu 20/],
      [[bridge({}, { ranges: [[{ subnet: 'nope' }]] })], /no valid subnet/],
    ];
    for (const [plugins, why] of cases) {
      const n = bridgeNetworkOf(list(plugins));
      expect(n).toHaveProperty('unsupported');
      expect((n as { unsupported: string }).unsupported).toMatch(why);
    }
  });
});

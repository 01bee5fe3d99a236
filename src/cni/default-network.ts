import { type CniNetworkList, parseNetworkList } from './config.js';

/**
 * The embedded default network, used when the configuration directory holds
 * none: podman's default CNI network (name `podman`, bridge `cni-podman0`,
 * 10.88.0.0/16, bridge + host-local + portmap + firewall + tuning). Keeping
 * podman's names means podnet and a CNI-backed podman share one bridge and
 * one IPAM store instead of fighting over the subnet. cniVersion 1.0.0 is the
 * newest that Debian's plugins (1.1.1) accept. `ips` on the bridge and `mac`
 * on tuning let callers ask for a static address or MAC through
 * capabilityArgs.
 */
export const DEFAULT_NETWORK_CONFIG = {
  cniVersion: '1.0.0',
  name: 'podman',
  plugins: [
    {
      type: 'bridge',
      bridge: 'cni-podman0',
      isGateway: true,
      ipMasq: true,
      hairpinMode: true,
      capabilities: { ips: true },
      ipam: {
        type: 'host-local',
        routes: [{ dst: '0.0.0.0/0' }],
        ranges: [[{ subnet: '10.88.0.0/16', gateway: '10.88.0.1' }]],
      },
    },
    { type: 'portmap', capabilities: { portMappings: true } },
    { type: 'firewall' },
    { type: 'tuning', capabilities: { mac: true } },
  ],
} as const;

/** The embedded default network as a validated list (source `<embedded>`). */
export const DEFAULT_NETWORK: CniNetworkList = parseNetworkList(
  JSON.stringify(DEFAULT_NETWORK_CONFIG, null, 2),
  '<embedded>',
);

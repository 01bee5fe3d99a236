// The network the CNI benchmarks run: the default network's chain (bridge
// with host-local, portmap, firewall, tuning), on a bridge and subnet of the
// benchmark's own.

/** The plugins of the default chain on BRIDGE, leases under DATADIR, on PREFIX.0/24. */
export function defaultChain({ bridge, dataDir, prefix }) {
  return [
    {
      type: 'bridge',
      bridge,
      isGateway: true,
      ipMasq: true,
      hairpinMode: true,
      ipam: {
        type: 'host-local',
        dataDir,
        routes: [{ dst: '0.0.0.0/0' }],
        ranges: [[{ subnet: `${prefix}.0/24`, gateway: `${prefix}.1` }]],
      },
    },
    { type: 'portmap', capabilities: { portMappings: true } },
    { type: 'firewall' },
    { type: 'tuning' },
  ];
}

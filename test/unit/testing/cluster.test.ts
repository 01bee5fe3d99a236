// The pure parts of a cluster: each node's CNI config list (bridge and
// flannel), the subnet file as flanneld writes it, the VTEP MACs, and the
// partition table's transactions.
import { describe, expect, it } from 'vitest';
import { parseNetworkList } from '../../../src/cni/config.js';
import { nodeConflist, sliceGateway, subnetEnv } from '../../../src/testing/cluster-cni.js';
import { vtepMac } from '../../../src/testing/cluster-net.js';
import {
  cutPairs,
  groupsOf,
  parsePartitionTable,
  partitionGroups,
  partitionScript,
} from '../../../src/testing/cluster-partition.js';

const dir = '/run/podnet/testing/0123456789abcdef.d/node2';
const plan = {
  name: 'node2',
  dir,
  confDir: `${dir}/net.d`,
  cacheDir: `${dir}/cache`,
  dataDir: `${dir}/ipam`,
  podCidr: '10.244.0.0/16',
  podSubnet: '10.244.2.0/24',
  gateway: '10.244.2.1',
  mtu: 1450,
  plugin: 'bridge' as const,
};

describe('a node of a cluster', () => {
  it("has bridge + host-local on its slice, with no masquerade and the node's own data directory", () => {
    const list = parseNetworkList(nodeConflist(plan), 'node2');
    expect(list.name).toBe('podnet-cluster');
    expect(list.cniVersion).toBe('1.0.0');
    expect(list.plugins.map((p) => p.type)).toEqual(['bridge']);
    expect(list.plugins[0]!.config).toMatchObject({
      bridge: 'cni0',
      isGateway: true,
      ipMasq: false,
      mtu: 1450,
      ipam: {
        type: 'host-local',
        ranges: [[{ subnet: '10.244.2.0/24', gateway: '10.244.2.1' }]],
        dataDir: `${plan.dir}/ipam`,
      },
    });
  });

  it("with flannel's plugin: its subnet file and data directory are the node's, host-local's too", () => {
    const list = parseNetworkList(nodeConflist({ ...plan, plugin: 'flannel' }), 'node2');
    expect(list.plugins[0]!.config).toMatchObject({
      type: 'flannel',
      subnetFile: `${plan.dir}/subnet.env`,
      dataDir: `${plan.dir}/flannel`,
      delegate: { isDefaultGateway: true, ipMasq: false, mtu: 1450 },
      ipam: { type: 'host-local', dataDir: `${plan.dir}/ipam` },
    });
    expect(subnetEnv(plan)).toBe(
      'FLANNEL_NETWORK=10.244.0.0/16\nFLANNEL_SUBNET=10.244.2.1/24\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=false\n',
    );
  });

  it('gets a VTEP MAC from its underlay address, locally administered and unicast', () => {
    expect(vtepMac('10.231.7.3')).toBe('0a:58:0a:e7:07:03');
    expect(Number.parseInt(vtepMac('10.0.0.1').slice(0, 2), 16) & 0b11).toBe(0b10);
    expect(sliceGateway('10.244.3.0/24')).toBe('10.244.3.1');
  });
});

describe('a partition', () => {
  it('cuts every port from every port of every other group, both ways', () => {
    expect(cutPairs([['node1'], ['node2', 'node3']])).toEqual([
      ['node1', 'node2'],
      ['node1', 'node3'],
      ['node2', 'node1'],
      ['node3', 'node1'],
    ]);
    expect(cutPairs([['node1', 'node2', 'node3']])).toEqual([]);
  });

  it('is one transaction that replaces the set; a heal only empties it', () => {
    expect(partitionScript([['node1', 'node2']])).toBe(
      'flush set bridge podnet_cluster cut\nadd element bridge podnet_cluster cut { "node1" . "node2" }\n',
    );
    expect(partitionScript([])).toBe('flush set bridge podnet_cluster cut\n');
  });

  it('puts the nodes named in no group into one more; refuses unknown, repeated and empty', () => {
    const nodes = ['node1', 'node2', 'node3', 'node4'];
    expect(partitionGroups(nodes, [['node1']])).toEqual([['node1'], ['node2', 'node3', 'node4']]);
    expect(
      partitionGroups(nodes, [
        ['node3', 'node1'],
        ['node2', 'node4'],
      ]),
    ).toEqual([
      ['node3', 'node1'],
      ['node2', 'node4'],
    ]);
    expect(() => partitionGroups(nodes, [['node9']])).toThrow(/no node node9/);
    expect(() => partitionGroups(nodes, [['node1'], ['node1']])).toThrow(/at most one/);
    expect(() => partitionGroups(nodes, [[]])).toThrow(/non-empty/);
  });

  it("reads the groups back from the kernel's set, and refuses what nft would not print", () => {
    const nodes = ['node1', 'node2', 'node3'];
    const groups = [['node1'], ['node2', 'node3']];
    // nft -j list table, as nft 1.0.6 prints it (elements in the kernel's order).
    const json = JSON.stringify({
      nftables: [
        { metainfo: { version: '1.0.6', json_schema_version: 1 } },
        { table: { family: 'bridge', name: 'podnet_cluster', handle: 1 } },
        {
          set: {
            family: 'bridge',
            name: 'cut',
            table: 'podnet_cluster',
            type: ['ifname', 'ifname'],
            elem: cutPairs(groups)
              .reverse()
              .map((p) => ({ concat: p })),
          },
        },
        { chain: { family: 'bridge', table: 'podnet_cluster', name: 'forward' } },
        {
          rule: {
            chain: 'forward',
            expr: [{ match: {} }, { counter: { packets: 17, bytes: 1000 } }, { drop: null }],
          },
        },
      ],
    });
    const read = parsePartitionTable(json);
    expect(read.droppedFrames).toBe(17);
    expect(groupsOf(nodes, read.pairs)).toEqual(groups);
    expect(groupsOf(nodes, [])).toEqual([]);
    for (const bad of [
      'nope',
      '{}',
      JSON.stringify({ nftables: [] }),
      json.replace('"packets":17', '"packets":-1'),
      json.replace('{"concat":["node3","node1"]}', '{"concat":["node3"]}'),
    ])
      expect(() => parsePartitionTable(bad), bad).toThrow(/reading the partition table/);
  });
});

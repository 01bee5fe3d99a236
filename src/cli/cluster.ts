// `podnet cluster`: a cluster on this machine for a shell user (up, down,
// ls, partition, heal). `up` builds it as podnet/testing's createCluster
// does, persistent: it outlives the command and is found again by name in
// the records. A partition lives in the switch's nftables table, so it
// outlives the command too and is read back from there.
import { AggregatePodnetError, PodnetError } from '../errors.js';
import { processStatus } from '../process.js';
import { recordedPartitionTable } from '../testing/cluster-partition.js';
import { type ClusterBackend, type ClusterPlugin, createCluster } from '../testing/index.js';
import {
  type ClusterRecord,
  defaultRecordDir,
  listRecords,
  removeTopology,
  type TopologySweepReport,
} from '../testing/reaper.js';
import { UsageError } from './errors.js';
import { type FlagValues, str } from './flags.js';
import { print, table } from './output.js';

function count(flags: FlagValues, name: string, fallback: number, max: number): number {
  const v = str(flags, name);
  if (v === undefined) return fallback;
  const n = Number(v);
  if (!/^\d+$/.test(v) || n > max)
    throw new UsageError(`--${name} must be a number from 0 to ${max}`);
  return n;
}

function formatCluster(c: ClusterRecord): string {
  const nodes = table(
    ['NODE', 'ADDRESS', 'POD SUBNET', 'NAMESPACE'],
    c.nodes.map((n) => [n.name, n.address, n.podSubnet, n.namespace]),
  );
  const pods = table(
    ['POD', 'NODE', 'IP', 'NAMESPACE'],
    c.pods.map((p) => [p.name, p.node, p.ip, p.namespace]),
  );
  return `cluster ${c.name} (${c.backend}, pods in ${c.podCidr})\n\n${nodes}\n\n${pods}`;
}

// A partition's groups as the table and the partition command print them.
const groupsText = (groups: string[][]): string =>
  groups.length === 0 ? 'whole' : groups.map((g) => g.join(',')).join(' | ');

async function partitionOf(c: ClusterRecord): Promise<string[][] | null> {
  try {
    const { table: t, close } = await recordedPartitionTable(c);
    try {
      return (await t.state()).groups;
    } finally {
      close();
    }
  } catch {
    return null;
  }
}

/** `podnet cluster up [NAME] | down NAME...|--all | ls | partition NAME GROUP... | heal NAME`. */
export async function cluster(
  [action = 'ls', ...names]: string[],
  flags: FlagValues,
): Promise<void> {
  const json = flags['json'] === true;
  const dir = defaultRecordDir();
  const records = await listRecords(dir);
  const clusters = records.filter((r) => r.record.cluster !== undefined);
  switch (action) {
    case 'up': {
      if (names.length > 1) throw new UsageError('cluster up takes at most one NAME');
      const name = names[0];
      if (name !== undefined && clusters.some((r) => r.record.cluster!.name === name))
        throw new PodnetError('ERR_PODNET_CLUSTER_EXISTS', `a cluster named '${name}' exists`);
      const netnsDir = str(flags, 'netns-dir');
      const podCidr = str(flags, 'pod-cidr');
      const c = await createCluster({
        nodes: count(flags, 'nodes', 3, 32),
        backend: (str(flags, 'backend') ?? 'host-gw') as ClusterBackend,
        plugin: (str(flags, 'plugin') ?? 'bridge') as ClusterPlugin,
        persistent: true,
        ...(name === undefined ? {} : { name }),
        ...(podCidr === undefined ? {} : { podCidr }),
        ...(netnsDir === undefined ? {} : { dir: netnsDir }),
      });
      try {
        const pods = count(flags, 'pods', 1, 64);
        for (const node of c.nodes)
          for (let k = 1; k <= pods; k++) await node.addPod({ name: `${node.name}-pod${k}` });
      } catch (err) {
        await c.close();
        throw err;
      }
      const rec = (await listRecords(dir)).find((r) => r.path === c.record)!.record.cluster!;
      // The namespaces stay mounted; this process's handles on them close as it exits.
      print(json, rec, () => formatCluster(rec));
      return;
    }
    case 'down': {
      const all = flags['all'] === true;
      if (all === names.length > 0) throw new UsageError('cluster down takes NAME... or --all');
      const picked = all
        ? clusters
        : names.map((n) => {
            const r = clusters.find((x) => x.record.cluster!.name === n);
            if (!r)
              throw new PodnetError('ERR_PODNET_CLUSTER_NOT_FOUND', `no cluster named '${n}'`);
            return r;
          });
      const report: TopologySweepReport = {
        removedTopologies: [],
        removedNamespaces: [],
        errors: [],
      };
      const removed: string[] = [];
      for (const { path, record } of picked) {
        if (!record.persistent && processStatus(record.owner) === 'alive') {
          report.errors.push(
            `${record.cluster!.name}: made by running process ${record.owner.pid}, which removes it`,
          );
          continue;
        }
        if (await removeTopology(path, record, report)) removed.push(record.cluster!.name);
      }
      // What could not be removed is in the error line (and the JSON).
      print(json, { removed, errors: report.errors }, () =>
        removed.map((n) => `removed ${n}`).join('\n'),
      );
      if (report.errors.length > 0)
        throw new AggregatePodnetError(
          'ERR_PODNET_TEARDOWN',
          `${report.errors.length} cluster(s) not removed`,
          report.errors.map((e) => new Error(e)),
        );
      return;
    }
    case 'ls': {
      if (names.length > 0) throw new UsageError('cluster ls takes no NAME');
      const list: (ClusterRecord & { owner: string; partition: string[][] | null })[] = [];
      for (const { record } of clusters)
        list.push({
          ...record.cluster!,
          owner: record.persistent ? 'persistent' : `pid ${record.owner.pid}`,
          // As the switch's table has it; null when it cannot be read (a switch gone).
          partition: await partitionOf(record.cluster!),
        });
      print(json, list, () =>
        table(
          ['NAME', 'BACKEND', 'NODES', 'PODS', 'POD CIDR', 'PARTITION', 'OWNER'],
          list.map((c) => [
            c.name,
            c.backend,
            c.nodes.length,
            c.pods.length,
            c.podCidr,
            c.partition === null ? '?' : groupsText(c.partition),
            c.owner,
          ]),
        ),
      );
      return;
    }
    case 'partition':
    case 'heal': {
      const [name, ...groups] = names;
      if (name === undefined) throw new UsageError(`cluster ${action} needs a NAME`);
      if (action === 'partition' && groups.length === 0)
        throw new UsageError('cluster partition needs groups of nodes: NAME node1 node2,node3');
      if (action === 'heal' && groups.length > 0)
        throw new UsageError('cluster heal takes NAME only');
      const rec = clusters.find((r) => r.record.cluster!.name === name);
      if (!rec) throw new PodnetError('ERR_PODNET_CLUSTER_NOT_FOUND', `no cluster named '${name}'`);
      const { table: t, close } = await recordedPartitionTable(rec.record.cluster!);
      try {
        if (action === 'heal') await t.heal();
        else await t.partition(groups.map((g) => g.split(',')));
        const state = await t.state();
        print(json, state, () => `${name}: ${groupsText(state.groups)}`);
      } finally {
        close();
      }
      return;
    }
    default:
      throw new UsageError(`unknown cluster action '${action}': up, down, ls, partition or heal`);
  }
}

// A cluster's partitions, kept where the frames cross: an nftables
// bridge-family table in the switch namespace whose forward chain drops
// (and counts) every frame between two switch ports listed as a pair in
// its set. A partition or a heal replaces the set's pairs in one `nft -f`
// transaction, so no frame ever sees half of one; what is cut is read back
// from the kernel, which is the only record of it (a shell user's
// `podnet cluster partition` and a test's cluster.partition() agree).
import { InvalidArgumentError, PodnetSystemError } from '../errors.js';
import { checkRecordedPath } from '../fsafe.js';
import { NetworkNamespace } from '../netns/index.js';
import { TopologyHost } from './host.js';
import { type ClusterRecord, TEST_NAMESPACE_NAME } from './reaper.js';

/** The partition table's name in the switch namespace. */
export const PARTITION_TABLE = 'podnet_cluster';

/** The table, made empty with the cluster. */
export const PARTITION_TABLE_SCRIPT = `table bridge ${PARTITION_TABLE} {
  set cut {
    type ifname . ifname
  }
  chain forward {
    type filter hook forward priority 0; policy accept;
    iifname . oifname @cut counter drop
  }
}
`;

/** What a cluster's partition is: its groups of nodes ([] when whole) and the frames it dropped. */
export interface PartitionState {
  /** Groups of node names, each in node order, in the order of their first node. */
  groups: string[][];
  /** Frames the table dropped since the cluster was made. */
  droppedFrames: number;
}

/**
 * The groups a partition makes of `nodes`: the given groups (each a
 * non-empty list of known nodes, a node in at most one), then the nodes
 * named in none as one more group.
 */
export function partitionGroups(
  nodes: readonly string[],
  given: readonly (readonly string[])[],
): string[][] {
  const seen = new Set<string>();
  for (const g of given) {
    if (!Array.isArray(g) || g.length === 0)
      throw new InvalidArgumentError('a partition group is a non-empty list of nodes');
    for (const n of g) {
      if (!nodes.includes(n)) throw new InvalidArgumentError(`no node ${String(n)} in the cluster`);
      if (seen.has(n)) throw new InvalidArgumentError('a node is in at most one partition group');
      seen.add(n);
    }
  }
  const rest = nodes.filter((n) => !seen.has(n));
  return rest.length > 0 ? [...given.map((g) => [...g]), rest] : given.map((g) => [...g]);
}

/**
 * The pairs of ports to cut for groups of nodes (their switch ports are
 * named after them): every port with every port of every other group, both ways.
 */
export function cutPairs(groups: readonly (readonly string[])[]): [string, string][] {
  const pairs: [string, string][] = [];
  for (const [i, g] of groups.entries())
    for (const [j, h] of groups.entries())
      if (i !== j) for (const a of g) for (const b of h) pairs.push([a, b]);
  return pairs;
}

/** One transaction that replaces the set's pairs (none: a heal). */
export function partitionScript(pairs: readonly [string, string][]): string {
  const flush = `flush set bridge ${PARTITION_TABLE} cut\n`;
  if (pairs.length === 0) return flush;
  const elements = pairs.map(([a, b]) => `"${a}" . "${b}"`).join(', ');
  return `${flush}add element bridge ${PARTITION_TABLE} cut { ${elements} }\n`;
}

/**
 * The table as `nft -j list table` prints it (untrusted: anything not of
 * that shape is an error): its cut pairs and its drop counter.
 */
export function parsePartitionTable(json: string): {
  pairs: [string, string][];
  droppedFrames: number;
} {
  const bad = (why: string): never => {
    throw new PodnetSystemError(`reading the partition table: ${why}`, {
      errno: 74,
      syscall: 'nft',
    });
  };
  let doc: unknown;
  try {
    doc = JSON.parse(json);
  } catch {
    return bad('nft printed no JSON');
  }
  const items = (doc as { nftables?: unknown } | null)?.nftables;
  if (!Array.isArray(items)) return bad('no nftables list');
  const set = items.find((i) => i?.set?.name === 'cut')?.set as { elem?: unknown } | undefined;
  if (set === undefined) return bad('no set cut');
  const pairs: [string, string][] = [];
  for (const e of Array.isArray(set.elem) ? set.elem : []) {
    const c = (e as { concat?: unknown } | null)?.concat;
    if (!Array.isArray(c) || c.length !== 2 || !c.every((x) => typeof x === 'string'))
      return bad('an element of set cut is not a pair of names');
    pairs.push([c[0] as string, c[1] as string]);
  }
  const rule = items.find((i) => i?.rule?.chain === 'forward')?.rule as
    | { expr?: { counter?: { packets?: unknown } }[] }
    | undefined;
  const packets = rule?.expr?.find((x) => x?.counter !== undefined)?.counter?.packets;
  if (!Number.isSafeInteger(packets) || (packets as number) < 0) return bad('no drop counter');
  return { pairs, droppedFrames: packets as number };
}

/**
 * The groups the cut pairs make of `nodes`: a node's group is every node
 * it is not cut from (a partition is all-or-nothing between groups, so
 * these are its groups again). One group is no partition: [].
 */
export function groupsOf(nodes: readonly string[], pairs: readonly [string, string][]): string[][] {
  const cut = new Set(pairs.map(([a, b]) => `${a}\0${b}`));
  const groups: string[][] = [];
  const placed = new Set<string>();
  for (const n of nodes) {
    if (placed.has(n)) continue;
    const group = nodes.filter((m) => m === n || (!cut.has(`${n}\0${m}`) && !placed.has(m)));
    for (const m of group) placed.add(m);
    groups.push(group);
  }
  return groups.length > 1 ? groups : [];
}

/** The partition table of one cluster's switch. */
export class PartitionTable {
  readonly #sw: TopologyHost;
  readonly #nodes: readonly string[];

  /** `nodes`: the cluster's node names, which are also their switch ports' names. */
  constructor(sw: TopologyHost, nodes: readonly string[]) {
    this.#sw = sw;
    this.#nodes = nodes;
  }

  /** Makes the empty table (with the cluster). */
  create(): Promise<void> {
    return this.#nft(PARTITION_TABLE_SCRIPT, 'making the partition table').then(() => undefined);
  }

  /** Cuts the groups (node names; see {@link partitionGroups}) from each other, replacing any partition. */
  async partition(given: readonly (readonly string[])[]): Promise<void> {
    const groups = partitionGroups(this.#nodes, given);
    await this.#nft(partitionScript(cutPairs(groups)), 'partitioning the cluster');
  }

  /** Ends any partition. */
  async heal(): Promise<void> {
    await this.#nft(partitionScript([]), 'healing the cluster');
  }

  /** What is cut now, as the kernel has it. */
  async state(): Promise<PartitionState> {
    // On the command line: nft's JSON reader opens /dev/stdin by name, which a socket cannot be.
    const out = await this.#run(
      ['-j', 'list', 'table', 'bridge', PARTITION_TABLE],
      undefined,
      'reading the partition table',
    );
    const { pairs, droppedFrames } = parsePartitionTable(out);
    return { groups: groupsOf(this.#nodes, pairs), droppedFrames };
  }

  // A script for nft in the switch: one transaction.
  #nft(script: string, what: string): Promise<string> {
    return this.#run(['-f', '-'], script, what);
  }

  // One nft run in the switch; a refusal is thrown with nft's words.
  async #run(args: string[], input: string | undefined, what: string): Promise<string> {
    const r = await this.#sw.exec('nft', args, input === undefined ? {} : { input });
    if (r.code !== 0)
      throw new PodnetSystemError(
        `${what}: nft said: ${r.stderr.trim().split('\n')[0] || `exit ${String(r.code)}`}`,
        { errno: 22, syscall: 'nft' },
      );
    return r.stdout;
  }
}

/**
 * The partition table of a recorded cluster (a shell user's, found by
 * name): its switch namespace opened from the record (a path named as
 * clusters name them, and a namespace), to be closed by the caller.
 */
export async function recordedPartitionTable(
  c: ClusterRecord,
): Promise<{ table: PartitionTable; close(): void }> {
  const ns = await NetworkNamespace.open(
    checkRecordedPath(c.switch, TEST_NAMESPACE_NAME, "a cluster's switch namespace"),
  );
  return {
    table: new PartitionTable(
      new TopologyHost('switch', ns),
      c.nodes.map((n) => n.name),
    ),
    close: () => ns.close(),
  };
}

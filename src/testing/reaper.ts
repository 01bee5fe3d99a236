// The reaper of test topologies, on testcontainers' Ryuk's model: a test
// runner that is SIGKILLed (a CI timeout, a developer's ^C twice) cannot
// remove what it made, so something else must. Every topology registers
// itself before it makes anything: a record file naming its owner (the
// runner's pid and start time, which never name another process) and the
// namespaces it is about to create. Two things sweep records whose owner is
// dead: a watcher process (reaper-main.ts) the runner starts with its first
// topology, which holds the read end of a pipe the runner writes to and so
// sees end of file the moment the runner dies, and the next createTopology
// or `podnet gc` for a runner whose watcher died with it. Links live in the
// topology's namespaces and go with them; nothing is made in the host's.
// Files a topology keeps (a cluster's CNI configs, caches and leases) live
// in the directory beside its record, ID.d, and go with the record.
import { type ChildProcess, spawn } from 'node:child_process';
import { accessSync, constants, mkdirSync } from 'node:fs';
import { readdir, readFile, rename, rm, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import type { Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { checkOwnDir, checkPrivateDir, checkRecordedPath } from '../fsafe.js';
import { NetworkNamespace } from '../netns/index.js';
import { type ProcessIdentity, processIdentity, processStatus } from '../process.js';

/** The names createTopology gives its namespaces: the only ones a sweep removes. */
export const TEST_NAMESPACE_NAME = /^podnet-test-[0-9a-f]{12}$/;
const RECORD_NAME = /^[0-9a-f]{16}\.json$/;
/** What the runner writes before closing the pipe on purpose: "not dead, done". */
export const REAPER_GOODBYE = 'q';

/** What `podnet cluster ls` shows of a cluster, recorded as it is built. */
export interface ClusterRecord {
  /** The cluster's name. */
  name: string;
  /** Its switch's namespace path (the partition table is there). */
  switch: string;
  /** 'host-gw' or 'vxlan'. */
  backend: string;
  /** The pod CIDR the nodes' slices are cut from. */
  podCidr: string;
  /** Its nodes: name, namespace path, underlay address and pod slice. */
  nodes: { name: string; namespace: string; address: string; podSubnet: string }[];
  /** Its pods: name, node, namespace path and pod IP. */
  pods: { name: string; node: string; namespace: string; ip: string }[];
}

/** A topology's registration: who made it and what it makes. */
export interface TopologyRecord {
  version: 1;
  owner: ProcessIdentity;
  /** Mount points of its namespaces. */
  namespaces: string[];
  /**
   * Kept whatever becomes of its owner, until removed by name: a cluster
   * made by `podnet cluster up`, whose maker exits at once by design.
   */
  persistent?: boolean;
  /** What it is, when it is a cluster. */
  cluster?: ClusterRecord;
}

/** What a sweep removed, and what it kept with why. */
export interface TopologySweepReport {
  /** Record files of dead runners, removed with their topologies. */
  removedTopologies: string[];
  /** Their namespaces, unmounted and removed. */
  removedNamespaces: string[];
  /** Records or namespaces a sweep could not judge or remove, each with why. */
  errors: string[];
}

/**
 * Where topologies are registered: PODNET_TESTING_DIR if set, else
 * /run/podnet/testing for root, $XDG_RUNTIME_DIR/podnet/testing for
 * another user (or a directory of theirs under the temp dir without it).
 */
export function defaultRecordDir(): string {
  const env = process.env['PODNET_TESTING_DIR'];
  if (env) return env;
  if (process.geteuid?.() === 0) return '/run/podnet/testing';
  const xdg = process.env['XDG_RUNTIME_DIR'];
  return xdg
    ? join(xdg, 'podnet', 'testing')
    : join(tmpdir(), `podnet-testing-${process.geteuid?.()}`);
}

function ensureDir(dir: string): void {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  checkPrivateDir(dir);
}

/** Writes a record atomically (a reader never sees half of one). */
export async function writeRecord(dir: string, id: string, rec: TopologyRecord): Promise<string> {
  ensureDir(dir);
  const path = join(dir, `${id}.json`);
  await writeFile(`${path}.tmp`, JSON.stringify(rec), { mode: 0o600 });
  await rename(`${path}.tmp`, path);
  return path;
}

/** Removes a record; one already gone is fine. */
export async function deleteRecord(path: string): Promise<void> {
  await unlink(path).catch((err: NodeJS.ErrnoException) => {
    if (err.code !== 'ENOENT') throw err;
  });
}

const message = (err: unknown): string => (err instanceof Error ? err.message : String(err));

/** A record's content, checked field by field (it is read back, so untrusted). */
export function parseRecord(text: string): TopologyRecord | undefined {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return undefined;
  }
  const r = v as Partial<TopologyRecord> | null;
  const owner = r?.owner as Partial<ProcessIdentity> | undefined;
  const strings = (o: unknown, keys: readonly string[]): boolean =>
    typeof o === 'object' &&
    o !== null &&
    keys.every((k) => typeof (o as Record<string, unknown>)[k] === 'string');
  const c = r?.cluster as Partial<ClusterRecord> | undefined;
  const clusterOk =
    c === undefined ||
    (strings(c, ['name', 'switch', 'backend', 'podCidr']) &&
      Array.isArray(c.nodes) &&
      c.nodes.every((n) => strings(n, ['name', 'namespace', 'address', 'podSubnet'])) &&
      Array.isArray(c.pods) &&
      c.pods.every((n) => strings(n, ['name', 'node', 'namespace', 'ip'])));
  if (
    r?.version !== 1 ||
    !clusterOk ||
    (r.persistent !== undefined && typeof r.persistent !== 'boolean') ||
    !Number.isInteger(owner?.pid) ||
    (owner?.pid ?? 0) <= 0 ||
    typeof owner?.startTime !== 'string' ||
    !/^\d*$/.test(owner.startTime) ||
    !Array.isArray(r.namespaces) ||
    !r.namespaces.every((p) => typeof p === 'string')
  )
    return undefined;
  return {
    version: 1,
    owner: { pid: owner.pid!, startTime: owner.startTime },
    namespaces: r.namespaces,
    ...(r.persistent ? { persistent: true } : {}),
    ...(c === undefined ? {} : { cluster: c as ClusterRecord }),
  };
}

/** The directory of a topology's files: beside its record, named after it. */
export function recordFilesDir(recordPath: string): string {
  return recordPath.replace(/\.json$/, '.d');
}

// Removes one recorded namespace: only a path named as createTopology names
// them, and only if it is a namespace (a file put there in its place stays).
async function removeNamespace(path: string): Promise<boolean> {
  checkRecordedPath(path, TEST_NAMESPACE_NAME, 'a test namespace');
  let ns: NetworkNamespace;
  try {
    ns = await NetworkNamespace.open(path);
  } catch (err) {
    if ((err as { code?: string }).code === 'ENOENT') return false;
    throw err;
  }
  await ns.remove();
  return true;
}

/**
 * Removes one registered topology: its namespaces, then its files, then its
 * record (the record goes last, so a removal that fails half way is tried
 * again by the next sweep). Says what it removed, or why not, in `report`.
 */
export async function removeTopology(
  path: string,
  rec: TopologyRecord,
  report: TopologySweepReport,
): Promise<boolean> {
  let failed = false;
  for (const ns of rec.namespaces) {
    try {
      if (await removeNamespace(ns)) report.removedNamespaces.push(ns);
    } catch (err) {
      failed = true;
      report.errors.push(`${path}: ${message(err)}`);
    }
  }
  if (failed) return false;
  const files = recordFilesDir(path);
  try {
    checkOwnDir(files);
    await rm(files, { recursive: true, force: true });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
      report.errors.push(`${path}: ${message(err)}`);
      return false;
    }
  }
  await deleteRecord(path);
  return true;
}

// The record files of a registry directory, in order (none when it does not exist).
async function recordPaths(dir: string): Promise<string[]> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
  checkPrivateDir(dir);
  return names
    .filter((n) => RECORD_NAME.test(n))
    .sort()
    .map((n) => join(dir, n));
}

/** Every parseable record in `dir` with its path (an absent directory has none). */
export async function listRecords(
  dir: string = defaultRecordDir(),
): Promise<{ path: string; record: TopologyRecord }[]> {
  const out: { path: string; record: TopologyRecord }[] = [];
  for (const path of await recordPaths(dir)) {
    const record = parseRecord(await readFile(path, 'utf8').catch(() => ''));
    if (record) out.push({ path, record });
  }
  return out;
}

/**
 * Removes every registered topology whose runner is dead (no such pid,
 * another start time, a zombie), with its namespaces, then its record. A
 * runner whose state cannot be read is kept, and said so in `errors`; a
 * record that does not parse is left for a person to look at, and a
 * persistent one (`podnet cluster up`'s) for `podnet cluster down`.
 */
export async function sweepTopologies(opts: { dir?: string } = {}): Promise<TopologySweepReport> {
  const dir = opts.dir ?? defaultRecordDir();
  const report: TopologySweepReport = { removedTopologies: [], removedNamespaces: [], errors: [] };
  for (const path of await recordPaths(dir)) {
    const rec = parseRecord(await readFile(path, 'utf8').catch(() => ''));
    if (!rec) {
      report.errors.push(`${path}: not a topology record; kept`);
      continue;
    }
    if (rec.persistent) continue;
    const status = processStatus(rec.owner);
    if (status !== 'dead') {
      if (status === 'unknown')
        report.errors.push(`${path}: cannot tell whether pid ${rec.owner.pid} runs; kept`);
      continue;
    }
    if (await removeTopology(path, rec, report)) report.removedTopologies.push(path);
  }
  return report;
}

const packageDir = dirname(fileURLToPath(new URL('../../package.json', import.meta.url)));

// Compiled beside this file (dist/testing/reaper-main.js); when this module
// runs from its TypeScript source (a test runner's transform), the build's.
function reaperMain(): string {
  const beside = fileURLToPath(new URL('./reaper-main.js', import.meta.url));
  for (const path of [beside, join(packageDir, 'dist', 'testing', 'reaper-main.js')]) {
    try {
      accessSync(path, constants.R_OK);
      return path;
    } catch {
      // Try the next one.
    }
  }
  return beside;
}

interface Watcher {
  child: ChildProcess;
  pipe: Writable;
  users: number;
  exited: Promise<void>;
}
const watchers = new Map<string, Watcher>();

/**
 * Holds a watcher for `dir` while any topology of this process is
 * registered there: the first caller starts it, later ones share it. The
 * returned release ends it (once the last user has released) and resolves
 * once it has exited, so a topology's removal leaves no process behind.
 */
export function holdWatcher(dir: string): () => Promise<void> {
  let w = watchers.get(dir);
  if (!w) {
    const me = processIdentity(process.pid);
    // Its own process group, so a ^C or a kill of the runner's group
    // leaves it to sweep; stdout and stderr ignored, so it holds no pipe
    // of the runner's that would keep a test harness waiting.
    const child = spawn(process.execPath, [reaperMain(), dir, String(me.pid), me.startTime], {
      stdio: ['pipe', 'ignore', 'ignore'],
      detached: true,
    });
    const pipe = child.stdin!;
    pipe.on('error', () => undefined); // a watcher that died must not fail the runner
    const exited = new Promise<void>((resolve) => {
      child.once('exit', () => resolve());
      child.once('error', () => resolve());
    });
    child.unref();
    (pipe as Writable & { unref?: () => void }).unref?.();
    w = { child, pipe, users: 0, exited };
    watchers.set(dir, w);
  }
  const held = w;
  held.users++;
  let released = false;
  return async () => {
    if (released) return;
    released = true;
    if (--held.users > 0) return;
    watchers.delete(dir);
    // Referenced again while it ends: otherwise a runner with nothing else
    // to do would exit before the watcher had, and this never resolve.
    held.child.ref();
    held.pipe.end(REAPER_GOODBYE);
    await held.exited;
  };
}

// IPAM for the native bridge driver, sharing the CNI host-local plugin's
// store so that native setups, the CNI path (the real host-local) and other
// CNI tools see one set of leases. The on-disk format and the allocation
// order are host-local's (containernetworking/plugins 1.1.1,
// plugins/ipam/host-local/backend):
//
//   <dataDir>/<network>/lock                  flocked (exclusive) around every operation
//   <dataDir>/<network>/<ip>                  one per lease: "<containerId>\r\n<ifName>"
//   <dataDir>/<network>/last_reserved_ip.<i>  the IP last reserved in range set i
//
// Every file of that directory is untrusted input (another tool, or another
// user with write access to a misconfigured dataDir, may have put anything
// there): a name that is not an IP in canonical form, a content that does not
// parse, a symlink, a directory, a FIFO are all skipped, never followed and
// never fatal.
//
// Sync fs, on purpose: an operation is a handful of syscalls on tiny files in
// one directory (create+write+close of the lease, a rewrite of
// last_reserved_ip, and one read of every lease of the network for the
// duplicate check). bench/ipam.js measured a reserve + release at ~50 us with
// sync calls, on tmpfs and on ext4 (/var/lib) alike, against 0.16-1.5 ms for
// the same operations through fs.promises (9-37 ms with 100 leases in the
// network), whose every call is a round trip through the libuv pool; the
// host-local plugin takes ~8 ms. Being synchronous, the part under the flock
// also runs in one tick: the lock is held for the shortest time, and two
// calls of one process never interleave. Only waiting for the lock is
// asynchronous (a timer between non-blocking attempts: no thread ever sleeps
// in flock).
import {
  closeSync,
  constants as fsConstants,
  ftruncateSync,
  mkdirSync,
  openSync,
  readSync,
  unlinkSync,
  writeSync,
} from 'node:fs';
import { constants as osConstants } from 'node:os';
import { isAbsolute, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import ipaddr from 'ipaddr.js';
import { ifNameProblem, nameProblem } from '../cni/validate.js';
import type { PodnetErrorCode } from '../error-codes.js';
import { InvalidArgumentError, PodnetError } from '../errors.js';
import { checkPrivateDir } from '../fsafe.js';
import { native, systemError } from '../native.js';

/** host-local's default dataDir (a conflist's `ipam.dataDir` overrides it). */
export const DEFAULT_IPAM_DATA_DIR = '/var/lib/cni/networks';

/** How long an operation waits for another holder of the network's lock, by default. */
export const DEFAULT_IPAM_LOCK_TIMEOUT_MS = 10_000;

/** One range of a range set, as host-local's config spells it. */
export interface IpamRange {
  /** The subnet, `10.88.0.0/16` (host bits must be zero). */
  subnet: string;
  /** First address to hand out (inclusive); default: the subnet's first host (.1). */
  rangeStart?: string;
  /** Last address to hand out (inclusive); default: the last before the broadcast (v4), the last (v6). */
  rangeEnd?: string;
  /** The gateway, never handed out; default: the subnet's first host (.1). */
  gateway?: string;
}

/** Where a network's leases live. */
export interface IpamStore {
  /** host-local's dataDir (absolute); default {@link DEFAULT_IPAM_DATA_DIR}. */
  dataDir?: string;
  /** The CNI network name: the leases are in `<dataDir>/<network>/`. */
  network: string;
  /** How long to wait for the network's lock; default {@link DEFAULT_IPAM_LOCK_TIMEOUT_MS}. */
  lockTimeoutMs?: number;
}

/** A reservation: one address per range set, for one container interface. */
export interface IpamRequest extends IpamStore {
  /**
   * host-local's `ranges`: a list of range sets, each a list of ranges of one
   * address family. One address is reserved in every set (dual stack: a v4
   * set and a v6 set).
   */
  ranges: readonly (readonly IpamRange[])[];
  /** The container ID (the CNI pattern: alphanumerics, `_`, `.`, `-`). */
  containerId: string;
  /** The interface name in the container. */
  ifName: string;
  /**
   * Static addresses (host-local's `ips` capability, the `IP` CNI arg), bare
   * or in CIDR form (the prefix is ignored, as host-local does): each must lie
   * in a range of a different range set, and that set gets it.
   */
  ips?: readonly string[];
}

/** One reserved address, in the shape of a CNI result's `ips` entry. */
export interface IpamLease {
  /** The address with its subnet's prefix length: `10.88.0.5/16`. */
  address: string;
  /** The gateway of the range it came from. */
  gateway: string;
  /** The address family. */
  version: 4 | 6;
  /** The index of the range set it came from (host-local's rangeID). */
  rangeSet: number;
}

/** What a releaser names: the leases of one container interface. */
export interface IpamOwner extends IpamStore {
  /** The container ID. */
  containerId: string;
  /** The interface name in the container. */
  ifName: string;
  /**
   * The addresses reserveAddresses returned (bare or CIDR), when the caller
   * journalled them: only those lease files are read.
   */
  ips?: readonly string[];
}

/** One lease file of a network, as listLeases reads it. */
export interface IpamLeaseFile {
  /** The leased address (the file's name), canonical: `10.88.0.5`, `fd00::5`. */
  ip: string;
  /** The container that holds it. */
  containerId: string;
  /** Its interface; undefined for a lease in the older format, whose content is only the ID. */
  ifName: string | undefined;
}

/** The codes an IpamError carries. */
export type IpamErrorCode = Extract<
  PodnetErrorCode,
  | 'ERR_PODNET_ADDRESS_TAKEN'
  | 'ERR_PODNET_NO_FREE_ADDRESS'
  | 'ERR_PODNET_DUPLICATE_LEASE'
  | 'ERR_PODNET_IPAM_BUSY'
>;

/**
 * An IPAM operation was refused: the static address is taken, a range set is
 * exhausted, the interface already has a lease in the network, or the
 * network's lock stayed held past the deadline. Nothing was written.
 */
export class IpamError extends PodnetError {
  /** The network. */
  readonly network: string;
  /** The address concerned (the taken one, or the one already leased), when there is one. */
  readonly address?: string;
  /** The range set concerned, when there is one. */
  readonly rangeSet?: number;

  constructor(
    code: IpamErrorCode,
    network: string,
    message: string,
    facts: { address?: string; rangeSet?: number } = {},
  ) {
    super(code, `network '${network}': ${message}`);
    this.network = network;
    if (facts.address !== undefined) this.address = facts.address;
    if (facts.rangeSet !== undefined) this.rangeSet = facts.rangeSet;
  }
}

// ---- Addresses: parsed strictly, compared and stepped as bigints ----------

interface Ip {
  version: 4 | 6;
  value: bigint;
}

/**
 * A user's or a file's address: IPv4 only in four-part decimal without
 * leading zeros (ipaddr.js would take `010.1.1.1` as octal, Go refuses it),
 * IPv6 without a zone and not v4-mapped (Go would turn that into IPv4, so
 * host-local would name its file differently). IPv4 is parsed here rather
 * than by ipaddr.js: it runs for lease names on the hot path, where
 * ipaddr.js's object per address was the largest cost measured.
 */
function parseIp(text: string): Ip | undefined {
  const v4 = IPV4.exec(text);
  if (v4 !== null) {
    let value = 0;
    for (let i = 1; i <= 4; i++) {
      const octet = Number(v4[i]);
      if (octet > 255) return undefined;
      value = value * 256 + octet;
    }
    return { version: 4, value: BigInt(value) };
  }
  if (!text.includes(':') || text.includes('%') || !ipaddr.IPv6.isValid(text)) return undefined;
  const v6 = ipaddr.IPv6.parse(text);
  if (v6.isIPv4MappedAddress()) return undefined;
  let value = 0n;
  for (const b of v6.toByteArray()) value = (value << 8n) | BigInt(b);
  return { version: 6, value };
}

const IPV4 = /^(0|[1-9]\d{0,2})\.(0|[1-9]\d{0,2})\.(0|[1-9]\d{0,2})\.(0|[1-9]\d{0,2})$/;

/** The address as Go's net.IP.String() writes it (RFC 5952 for v6): host-local's file name. */
function formatIp(version: 4 | 6, value: bigint): string {
  if (version === 4) {
    const n = Number(value);
    return `${n >>> 24}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;
  }
  const bytes: number[] = new Array(16);
  for (let i = 15, n = value; i >= 0; i--, n >>= 8n) bytes[i] = Number(n & 0xffn);
  return (ipaddr.fromByteArray(bytes) as ipaddr.IPv6).toRFC5952String();
}

/** The address a lease file's name stands for, if it is one exactly as host-local names it. */
function leaseName(name: string): Ip | undefined {
  const ip = parseIp(name);
  return ip !== undefined && formatIp(ip.version, ip.value) === name ? ip : undefined;
}

// ---- Range sets: host-local's Canonicalize, checked up front --------------

interface Range {
  version: 4 | 6;
  prefix: number;
  network: bigint;
  /** The v4 broadcast address; undefined for v6, which has none. */
  broadcast: bigint | undefined;
  start: bigint;
  end: bigint;
  gateway: bigint;
}

/** A range set: its ranges, all of one family, in the order they are walked. */
interface RangeSet {
  ranges: Range[];
}

function contains(r: Range, ip: Ip): boolean {
  return ip.version === r.version && ip.value >= r.start && ip.value <= r.end;
}

function setContains(set: RangeSet, ip: Ip): boolean {
  return set.ranges.some((r) => contains(r, ip));
}

function parseRange(raw: IpamRange, where: string): Range {
  const cidr = typeof raw?.subnet === 'string' ? raw.subnet.split('/') : [];
  const base = cidr.length === 2 ? parseIp(cidr[0]!) : undefined;
  const prefix = /^(0|[1-9]\d{0,2})$/.test(cidr[1] ?? '') ? Number(cidr[1]) : Number.NaN;
  const bits = base?.version === 4 ? 32 : 128;
  if (base === undefined || !(prefix <= bits))
    throw new InvalidArgumentError(`${where}.subnet '${String(raw?.subnet)}' is not a CIDR subnet`);
  // host-local refuses /31 and /32 (v6: /127, /128): no address to hand out.
  if (prefix > bits - 2)
    throw new InvalidArgumentError(`${where}.subnet '${raw.subnet}' is too small to allocate from`);
  const hostMask = (1n << BigInt(bits - prefix)) - 1n;
  if ((base.value & hostMask) !== 0n)
    throw new InvalidArgumentError(`${where}.subnet '${raw.subnet}' has host bits set`);
  const network = base.value;
  const last = network | hostMask;
  const inSubnet = (field: 'rangeStart' | 'rangeEnd' | 'gateway'): bigint | undefined => {
    const text = raw[field];
    if (text === undefined) return undefined;
    const ip = typeof text === 'string' ? parseIp(text) : undefined;
    if (ip === undefined || ip.version !== base.version || ip.value < network || ip.value > last)
      throw new InvalidArgumentError(
        `${where}.${field} '${String(text)}' is not an address in ${raw.subnet}`,
      );
    return ip.value;
  };
  const start = inSubnet('rangeStart') ?? network + 1n;
  const end = inSubnet('rangeEnd') ?? (base.version === 4 ? last - 1n : last);
  const gateway = inSubnet('gateway') ?? network + 1n;
  if (start > end)
    throw new InvalidArgumentError(`${where}: rangeStart is after rangeEnd in ${raw.subnet}`);
  return {
    version: base.version,
    prefix,
    network,
    broadcast: base.version === 4 ? last : undefined,
    start,
    end,
    gateway,
  };
}

function overlaps(a: Range, b: Range): boolean {
  return a.version === b.version && a.start <= b.end && b.start <= a.end;
}

/**
 * Validates host-local `ranges` as host-local's config loader does: every
 * set non-empty and of one family, no range overlapping another (within a
 * set or across sets), a subnet big enough to allocate from, rangeStart,
 * rangeEnd and gateway inside it (stricter than host-local, which takes a
 * gateway anywhere). Throws InvalidArgumentError naming the field.
 */
function parseRangeSets(ranges: IpamRequest['ranges']): RangeSet[] {
  if (!Array.isArray(ranges) || ranges.length === 0)
    throw new InvalidArgumentError('ranges must hold at least one range set');
  const sets = ranges.map((set, i): RangeSet => {
    if (!Array.isArray(set) || set.length === 0)
      throw new InvalidArgumentError(`ranges[${i}] must hold at least one range`);
    const parsed = set.map((r, j) => parseRange(r, `ranges[${i}][${j}]`));
    const version = parsed[0]!.version;
    if (parsed.some((r) => r.version !== version))
      throw new InvalidArgumentError(`ranges[${i}] mixes address families`);
    return { ranges: parsed };
  });
  const all = sets.flatMap((s, i) => s.ranges.map((r, j) => ({ r, at: `ranges[${i}][${j}]` })));
  for (let a = 0; a < all.length; a++)
    for (let b = a + 1; b < all.length; b++)
      if (overlaps(all[a]!.r, all[b]!.r))
        throw new InvalidArgumentError(`${all[a]!.at} overlaps ${all[b]!.at}`);
  return sets;
}

/** An address that is never handed out: the gateway, the network address, the v4 broadcast. */
function reservedInRange(r: Range, value: bigint): boolean {
  return value === r.gateway || value === r.network || value === r.broadcast;
}

/** A prefix length after an address, which host-local ignores in `ips`. */
const CIDR_SUFFIX = /\/(0|[1-9]\d{0,2})$/;

/**
 * Assigns the static addresses to range sets as host-local does (each set
 * takes a requested address it contains); an address in no set, a second
 * one for a set, or one never handed out is an InvalidArgumentError.
 */
function assignStatic(sets: RangeSet[], ips: readonly string[] | undefined): (Ip | undefined)[] {
  if (ips !== undefined && !Array.isArray(ips))
    throw new InvalidArgumentError('static IPs (ips) must be a list of addresses');
  const chosen: (Ip | undefined)[] = sets.map(() => undefined);
  for (const text of ips ?? []) {
    const bare = typeof text === 'string' ? text.replace(CIDR_SUFFIX, '') : '';
    const ip = parseIp(bare);
    if (ip === undefined) throw new InvalidArgumentError(`static IP '${text}' is not an address`);
    const i = sets.findIndex((s) => setContains(s, ip));
    if (i < 0) throw new InvalidArgumentError(`static IP '${text}' is in no range of the network`);
    if (chosen[i] !== undefined)
      throw new InvalidArgumentError(`static IP '${text}': range set ${i} already has one`);
    const r = sets[i]!.ranges.find((x) => contains(x, ip))!;
    if (reservedInRange(r, ip.value))
      throw new InvalidArgumentError(
        `static IP '${text}' is the gateway, network or broadcast address`,
      );
    chosen[i] = ip;
  }
  return chosen;
}

/**
 * host-local's allocation order (allocator.go's RangeIter): start after the
 * last reserved address when it is in the set, else at the first range's
 * start; walk the set's ranges in order, wrapping, until back at the first
 * address tried. Skips the gateway, and (stricter than host-local, which
 * relies on the defaults of rangeStart/rangeEnd) the network and broadcast
 * addresses.
 */
function* candidates(set: RangeSet, last: Ip | undefined): Generator<[bigint, Range]> {
  const ranges = set.ranges;
  const from = last === undefined ? -1 : ranges.findIndex((r) => contains(r, last));
  let idx = Math.max(from, 0);
  let cur = from < 0 ? undefined : last!.value;
  let first = from < 0 ? ranges[0]!.start : undefined;
  for (;;) {
    let r = ranges[idx]!;
    if (cur === undefined) {
      cur = r.start;
      first = cur;
    } else {
      if (cur === r.end) {
        idx = (idx + 1) % ranges.length;
        r = ranges[idx]!;
        cur = r.start;
      } else cur += 1n;
      if (first === undefined) first = cur;
      else if (cur === first) return;
    }
    if (!reservedInRange(r, cur)) yield [cur, r];
  }
}

// ---- The files --------------------------------------------------------------

const LINE_BREAK = '\r\n';
const LAST_RESERVED = 'last_reserved_ip.';
/** A lease file longer than this is not one host-local or podnet wrote (IDs are short). */
const MAX_LEASE_BYTES = 4096;
// Never through a symlink; O_NONBLOCK so that a FIFO put in place of a file
// cannot hang the open.
const READ_FLAGS = fsConstants.O_RDONLY | fsConstants.O_NOFOLLOW | fsConstants.O_NONBLOCK;
const CREATE_FLAGS =
  fsConstants.O_WRONLY | fsConstants.O_CREAT | fsConstants.O_EXCL | fsConstants.O_NONBLOCK;
// No O_TRUNC: on ext4 a truncation to zero makes the close start writeback
// (auto_da_alloc), measured at ~3.5 ms per reservation on /var/lib; writing
// over the old content and cutting it to length costs microseconds.
const REWRITE_FLAGS =
  fsConstants.O_WRONLY | fsConstants.O_CREAT | fsConstants.O_NOFOLLOW | fsConstants.O_NONBLOCK;
const readBuffer = Buffer.allocUnsafe(MAX_LEASE_BYTES + 1);

/** A small file's text, or undefined when it is missing, not a regular file, too big or unreadable. */
function readSmall(path: string): string | undefined {
  let fd: number;
  try {
    fd = openSync(path, READ_FLAGS);
  } catch {
    return undefined;
  }
  try {
    const n = readSync(fd, readBuffer, 0, readBuffer.length, 0);
    return n > MAX_LEASE_BYTES ? undefined : readBuffer.toString('utf8', 0, n);
  } catch {
    return undefined; // EISDIR, EAGAIN (a FIFO), EIO: not a lease
  } finally {
    closeSync(fd);
  }
}

/**
 * A lease file's content, parsed as host-local matches it (trimmed): `ID\r\nIFNAME`,
 * or the older `ID` alone. Undefined when either part is not a valid name.
 */
function parseLease(text: string): { containerId: string; ifName: string | undefined } | undefined {
  const trimmed = text.trim();
  const at = trimmed.indexOf(LINE_BREAK);
  const containerId = at < 0 ? trimmed : trimmed.slice(0, at);
  const ifName = at < 0 ? undefined : trimmed.slice(at + LINE_BREAK.length);
  if (nameProblem(containerId) !== undefined) return undefined;
  if (ifName !== undefined && ifNameProblem(ifName) !== undefined) return undefined;
  return { containerId, ifName };
}

interface LeaseEntry {
  name: string;
  containerId: string;
  ifName: string | undefined;
}

/** Only characters of an address: the cheap test before a name is read as a lease. */
const ADDRESS_CHARS = /^[0-9a-f.:]+$/;

/**
 * Every lease of the directory that `keep` accepts: a regular file (never a
 * symlink, a directory or a FIFO: native readDirFiles) whose name looks like
 * an address and whose content parses. The name is not yet checked to be an
 * address exactly as host-local writes it (see leaseName): the caller does
 * that for the few it keeps, since it costs more than the filter.
 */
function scanLeases(dir: string, keep: (l: LeaseEntry) => boolean = () => true): LeaseEntry[] {
  let files: string[];
  try {
    // One native call: open, read and close per file from here were most of
    // a reservation's cost in a network of many leases.
    files = native.readDirFiles(dir, MAX_LEASE_BYTES);
  } catch (err) {
    throw systemError(`reading leases in '${dir}'`, err);
  }
  const leases: LeaseEntry[] = [];
  for (let i = 0; i < files.length; i += 2) {
    const name = files[i]!;
    if (!ADDRESS_CHARS.test(name)) continue;
    const owner = parseLease(files[i + 1]!);
    if (owner === undefined) continue;
    const lease = { name, ...owner };
    if (keep(lease)) leases.push(lease);
  }
  return leases;
}

/** Creates a lease file, or returns false when the name is taken (by a file of any kind). */
function createLease(path: string, content: string): boolean {
  let fd: number;
  try {
    // O_EXCL never follows a symlink: one named like the address counts as taken.
    fd = openSync(path, CREATE_FLAGS, 0o644);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw systemError(`creating lease '${path}'`, err);
  }
  try {
    writeSync(fd, content);
  } catch (err) {
    closeSync(fd);
    unlinkSync(path);
    throw systemError(`writing lease '${path}'`, err);
  }
  closeSync(fd);
  return true;
}

/**
 * Records the last reserved address of a set. Best effort, as host-local
 * treats the file (a wrong or missing one only costs round-robin order): the
 * lease is already made, and a directory or symlink an intruder put in its
 * place must not undo it. A symlink is replaced, never written through.
 */
function writeLastReserved(dir: string, set: number, ip: string): void {
  const path = join(dir, `${LAST_RESERVED}${set}`);
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fd = openSync(path, REWRITE_FLAGS, 0o644);
      try {
        ftruncateSync(fd, writeSync(fd, ip, 0));
      } finally {
        closeSync(fd);
      }
      return;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ELOOP') return;
      try {
        unlinkSync(path);
      } catch {
        return;
      }
    }
  }
}

function readLastReserved(dir: string, set: number): Ip | undefined {
  const text = readSmall(join(dir, `${LAST_RESERVED}${set}`));
  return text === undefined ? undefined : parseIp(text.trim());
}

// ---- The store and its lock -----------------------------------------------

interface Store {
  dir: string;
  network: string;
  timeoutMs: number;
}

function openStore(where: IpamStore): Store {
  const dataDir = where.dataDir ?? DEFAULT_IPAM_DATA_DIR;
  if (typeof dataDir !== 'string' || !isAbsolute(dataDir))
    throw new InvalidArgumentError(`IPAM dataDir '${String(dataDir)}' must be an absolute path`);
  const problem = nameProblem(where.network);
  if (problem !== undefined) throw new InvalidArgumentError(`IPAM network name ${problem}`);
  const timeoutMs = where.lockTimeoutMs ?? DEFAULT_IPAM_LOCK_TIMEOUT_MS;
  if (!Number.isFinite(timeoutMs) || timeoutMs < 0)
    throw new InvalidArgumentError(`lockTimeoutMs ${timeoutMs} must be a number >= 0`);
  return { dir: join(dataDir, where.network), network: where.network, timeoutMs };
}

function checkOwner(containerId: unknown, ifName: unknown): void {
  const idProblem = nameProblem(containerId);
  if (idProblem !== undefined) throw new InvalidArgumentError(`container ID ${idProblem}`);
  const ifProblem = ifNameProblem(ifName);
  if (ifProblem !== undefined) throw new InvalidArgumentError(`interface name ${ifProblem}`);
}

/**
 * Network directories found private in this process. The leases are root's
 * records (another user able to write the directory could plant leases or
 * remove ours), so a directory is checked (checkPrivateDir: its owner and
 * mode, and every directory above it) before its first use; once per
 * process, as the check is most of an operation's cost otherwise.
 */
const checkedDirs = new Set<string>();

function checkDir(dir: string): void {
  if (checkedDirs.has(dir)) return;
  checkPrivateDir(dir);
  checkedDirs.add(dir);
}

const ENOENT = osConstants.errno.ENOENT;
const EWOULDBLOCK = osConstants.errno.EWOULDBLOCK;

/**
 * Runs `body` holding host-local's flock on `<dir>/lock`, as host-local
 * takes it. The file is never unlinked (host-local keeps it and may be
 * blocked on it), and nothing is written into it. The first attempt is made
 * at once; after that, a timer between non-blocking attempts, up to the
 * store's timeout. A missing directory is made (0755, as host-local does)
 * when `create`, and otherwise means an empty store: `body` is not run and
 * the result is undefined.
 */
async function withLock<T>(store: Store, create: boolean, body: () => T): Promise<T | undefined> {
  checkDir(store.dir);
  const path = join(store.dir, 'lock');
  const deadline = Date.now() + store.timeoutMs;
  let fd: number;
  for (let wait = 1; ; ) {
    try {
      fd = native.tryLockFile(path);
      break;
    } catch (err) {
      const errno = (err as { errno?: number }).errno;
      if (errno === ENOENT && create) {
        // Checked above while missing; made by us now, so ours.
        mkdirSync(store.dir, { recursive: true, mode: 0o755 });
        create = false;
        continue;
      }
      if (errno === ENOENT) return undefined;
      if (errno !== EWOULDBLOCK) throw systemError(`locking '${path}'`, err);
    }
    if (Date.now() >= deadline)
      throw new IpamError(
        'ERR_PODNET_IPAM_BUSY',
        store.network,
        `its lock '${path}' is still held after ${store.timeoutMs} ms`,
      );
    await sleep(wait);
    wait = Math.min(wait * 2, 20);
  }
  try {
    return body();
  } finally {
    closeSync(fd);
  }
}

// ---- Operations -------------------------------------------------------------

/**
 * Reserves one address in every range set of `req.ranges` for the container
 * interface, in host-local's order and format, and returns them in set
 * order. Static addresses (`req.ips`) are taken as asked or not at all.
 * Everything is checked before anything is written, and a failure removes
 * what this call wrote: on an error the store is as it was.
 *
 * Throws InvalidArgumentError (bad ranges, ID, interface name or static IP),
 * IpamError with ERR_PODNET_DUPLICATE_LEASE (the interface already holds an
 * address in one of the sets: the CNI spec forbids a second, as host-local
 * does), ERR_PODNET_ADDRESS_TAKEN (a static IP is leased),
 * ERR_PODNET_NO_FREE_ADDRESS (a set is exhausted), ERR_PODNET_IPAM_BUSY (lock
 * timeout), UnsafePathError (the directory is writable by others).
 */
export async function reserveAddresses(req: IpamRequest): Promise<IpamLease[]> {
  const store = openStore(req);
  checkOwner(req.containerId, req.ifName);
  const sets = parseRangeSets(req.ranges);
  const wanted = assignStatic(sets, req.ips);
  const { dir, network } = store;
  const leases = await withLock(store, true, () => {
    for (const lease of scanLeases(dir, (l) => ownedBy(l, req.containerId, req.ifName))) {
      const ip = leaseName(lease.name);
      if (ip !== undefined && sets.some((s) => setContains(s, ip)))
        throw new IpamError(
          'ERR_PODNET_DUPLICATE_LEASE',
          network,
          `${req.containerId}/${req.ifName} already holds ${lease.name}`,
          { address: lease.name },
        );
    }
    const content = `${req.containerId}${LINE_BREAK}${req.ifName}`;
    const made: string[] = [];
    try {
      const leases = sets.map((set, i) => {
        const lease = reserveOne(dir, network, set, i, wanted[i], content);
        made.push(join(dir, lease.ip));
        return lease;
      });
      // Only now that every set has its address: a failed call moves no hint.
      for (const l of leases) writeLastReserved(dir, l.rangeSet, l.ip);
      return leases.map(({ ip: _, ...lease }) => lease);
    } catch (err) {
      // Only files this call created (O_EXCL), under the lock still held.
      for (const path of made) unlinkSync(path);
      throw err;
    }
  });
  return leases!;
}

/** host-local's match: `ID\r\nIFNAME`, or an older lease holding the ID alone. */
function ownedBy(l: LeaseEntry, containerId: string, ifName: string): boolean {
  return l.containerId === containerId && (l.ifName === undefined || l.ifName === ifName);
}

function reserveOne(
  dir: string,
  network: string,
  set: RangeSet,
  index: number,
  wanted: Ip | undefined,
  content: string,
): IpamLease & { ip: string } {
  const lease = (value: bigint, r: Range) => {
    const ip = formatIp(r.version, value);
    return {
      ip,
      address: `${ip}/${r.prefix}`,
      gateway: formatIp(r.version, r.gateway),
      version: r.version,
      rangeSet: index,
    };
  };
  if (wanted !== undefined) {
    const r = set.ranges.find((x) => contains(x, wanted))!;
    const made = lease(wanted.value, r);
    if (!createLease(join(dir, made.ip), content))
      throw new IpamError('ERR_PODNET_ADDRESS_TAKEN', network, `${made.ip} is already leased`, {
        address: made.ip,
        rangeSet: index,
      });
    return made;
  }
  for (const [value, r] of candidates(set, readLastReserved(dir, index))) {
    const made = lease(value, r);
    if (createLease(join(dir, made.ip), content)) return made;
  }
  throw new IpamError(
    'ERR_PODNET_NO_FREE_ADDRESS',
    network,
    `no free address in range set ${index}`,
    {
      rangeSet: index,
    },
  );
}

/**
 * Releases the leases of a container interface, as host-local's ReleaseByID
 * does: every lease file whose content is `ID\r\nIFNAME`; when there is
 * none, those in the older format whose content is the ID alone. With
 * `owner.ips` (the addresses reserveAddresses returned, from the caller's
 * journal) only those files are read, and each released if it is this
 * interface's: teardown then costs no scan of the network's leases. Returns
 * the released addresses (none when the network has no directory).
 */
export async function releaseAddresses(owner: IpamOwner): Promise<string[]> {
  const store = openStore(owner);
  checkOwner(owner.containerId, owner.ifName);
  if (owner.ips !== undefined && !Array.isArray(owner.ips))
    throw new InvalidArgumentError('lease addresses (ips) must be a list of addresses');
  const named = owner.ips?.map((text) => {
    const ip = typeof text === 'string' ? parseIp(text.replace(CIDR_SUFFIX, '')) : undefined;
    if (ip === undefined)
      throw new InvalidArgumentError(`lease address '${text}' is not an address`);
    return formatIp(ip.version, ip.value);
  });
  const released = await withLock(store, false, () => {
    const mine = (l: LeaseEntry) => l.containerId === owner.containerId;
    const leases =
      named === undefined
        ? scanLeases(store.dir, mine)
        : named.flatMap((name) => {
            const text = readSmall(join(store.dir, name));
            const parsed = text === undefined ? undefined : parseLease(text);
            return parsed !== undefined && mine({ name, ...parsed }) ? [{ name, ...parsed }] : [];
          });
    let chosen = leases.filter((l) => l.ifName === owner.ifName);
    if (chosen.length === 0) chosen = leases.filter((l) => l.ifName === undefined);
    const done: string[] = [];
    for (const l of chosen) {
      if (leaseName(l.name) === undefined) continue;
      try {
        unlinkSync(join(store.dir, l.name));
        done.push(l.name);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT')
          throw systemError(`releasing lease '${join(store.dir, l.name)}'`, err);
      }
    }
    return done;
  });
  return released ?? [];
}

/**
 * The valid leases of a network (for gc), read under its lock; files that
 * are not valid leases are left out. Empty when the network has no directory.
 */
export async function listLeases(where: IpamStore): Promise<IpamLeaseFile[]> {
  const store = openStore(where);
  const leases = await withLock(store, false, () =>
    scanLeases(store.dir).flatMap((l) =>
      leaseName(l.name) === undefined
        ? []
        : [{ ip: l.name, containerId: l.containerId, ifName: l.ifName }],
    ),
  );
  return leases ?? [];
}

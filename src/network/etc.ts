// A container's /etc/resolv.conf and /etc/hosts, for engines that mount
// them, by podman's rules (libnetwork/resolvconf and libnetwork/etchosts):
// with DNS on for a network (its list runs dnsname), the nameserver is that
// network's gateway, where dnsname's dnsmasq answers, and dnsname's domain
// is searched first; otherwise the host's nameservers, less the loopback
// ones a container cannot reach. hosts: localhost, the host's address as
// host.containers.internal, then the container's own addresses under its
// name (and its pod's).
import { randomBytes } from 'node:crypto';
import {
  closeSync,
  fsyncSync,
  lstatSync,
  openSync,
  renameSync,
  unlinkSync,
  writeSync,
} from 'node:fs';
import { readFile } from 'node:fs/promises';
import { isIPv4 } from 'node:net';
import { join } from 'node:path';
import { normalizeResult, parseNetworkList } from '../cni/index.js';
import { checkOwnDir, UnsafePathError } from '../fsafe.js';
import type { ContainerState } from './types.js';

/** What resolv.conf content is built from: the host's file, parsed. */
export interface HostResolvConf {
  nameservers: string[];
  search: string[];
  options: string[];
}

/** podman's fallback when the host has no nameserver a container can reach. */
const DEFAULT_V4 = ['8.8.8.8', '8.8.4.4'];
const DEFAULT_V6 = ['2001:4860:4860::8888', '2001:4860:4860::8844'];

/** Parses resolv.conf text: nameserver, search (or domain) and options lines. */
export function parseResolvConf(text: string): HostResolvConf {
  const out: HostResolvConf = { nameservers: [], search: [], options: [] };
  for (const line of text.split('\n')) {
    const [key, ...rest] = line
      .replace(/[#;].*/, '')
      .trim()
      .split(/\s+/);
    if (key === 'nameserver' && rest[0]) out.nameservers.push(rest[0]);
    else if (key === 'search' || key === 'domain') out.search = rest;
    else if (key === 'options') out.options.push(...rest);
  }
  return out;
}

/** A loopback nameserver (127.0.0.0/8, ::1): a container's own loopback, not the host's. */
function isLoopback(ip: string): boolean {
  return isIPv4(ip) ? ip.startsWith('127.') : ip === '::1' || ip === '0:0:0:0:0:0:0:1';
}

/**
 * The host's resolv.conf as podman reads it: /etc/resolv.conf, unless all its
 * nameservers are loopback ones (systemd-resolved's stub at 127.0.0.53),
 * then systemd-resolved's list of the real upstreams when there is one.
 */
export async function readHostResolvConf(): Promise<HostResolvConf> {
  const etc = parseResolvConf(await readFile('/etc/resolv.conf', 'utf8').catch(() => ''));
  if (etc.nameservers.length > 0 && etc.nameservers.every(isLoopback)) {
    const resolved = await readFile('/run/systemd/resolve/resolv.conf', 'utf8').catch(
      () => undefined,
    );
    if (resolved !== undefined) return parseResolvConf(resolved);
  }
  return etc;
}

/** The container's resolv.conf content (see the file's head for the rules). */
export function buildResolvConf(state: ContainerState, host: HostResolvConf): string {
  const dnsServers: string[] = [];
  const domains: string[] = [];
  let ipv6 = false;
  for (const n of state.networks) {
    const list = parseNetworkList(n.config, `the state of container '${state.id}'`);
    const ips = normalizeResult(n.result).ips;
    if (ips.some((ip) => !isIPv4(ip.address.split('/')[0]!))) ipv6 = true;
    const dnsname = list.plugins.find((p) => p.type === 'dnsname')?.config;
    if (dnsname === undefined) continue;
    for (const ip of ips) if (ip.gateway) dnsServers.push(ip.gateway);
    const domain = dnsname['domainName'];
    if (typeof domain === 'string' && domain !== '') domains.push(domain);
  }
  let nameservers = [...new Set(dnsServers)];
  if (nameservers.length === 0) {
    nameservers = host.nameservers.filter((ns) => !isLoopback(ns));
    if (nameservers.length === 0) nameservers = [...DEFAULT_V4, ...(ipv6 ? DEFAULT_V6 : [])];
  }
  const search = [...new Set([...domains, ...host.search])];
  const lines: string[] = [];
  if (search.length) lines.push(`search ${search.join(' ')}`);
  for (const ns of nameservers) lines.push(`nameserver ${ns}`);
  if (host.options.length) lines.push(`options ${host.options.join(' ')}`);
  return `${lines.join('\n')}\n`;
}

/**
 * The container's hosts content, podman's (libnetwork/etchosts, with no base
 * file): localhost for 127.0.0.1 and ::1; host.containers.internal and
 * host.docker.internal for the first gateway (the host's address on the
 * container's first network with one: an internal network has none); then
 * each of the container's addresses with its name (and its pod's).
 */
export function buildHosts(state: ContainerState): string {
  const names = [...new Set([state.name, ...(state.pod === undefined ? [] : [state.pod])])];
  const lines = ['127.0.0.1\tlocalhost', '::1\tlocalhost'];
  const ips = state.networks.flatMap((n) => normalizeResult(n.result).ips);
  const gateway = ips.find((ip) => ip.gateway)?.gateway;
  if (gateway !== undefined)
    lines.push(`${gateway}\thost.containers.internal host.docker.internal`);
  for (const ip of ips) lines.push(`${ip.address.split('/')[0]}\t${names.join(' ')}`);
  return `${lines.join('\n')}\n`;
}

/** Checks that `dir` may take the files: a directory of the caller's, not a symlink. */
export function checkEtcDir(dir: string): void {
  let st: ReturnType<typeof lstatSync>;
  try {
    st = lstatSync(dir);
  } catch (err) {
    throw new UnsafePathError(dir, `cannot be used: ${(err as NodeJS.ErrnoException).code ?? err}`);
  }
  if (st.isSymbolicLink()) throw new UnsafePathError(dir, 'is a symbolic link');
  checkOwnDir(dir);
}

/**
 * Writes DIR/resolv.conf and DIR/hosts, each atomically (a temp file in DIR,
 * fsynced, renamed over the old one, so a reader sees the old or the new
 * file whole). DIR must be a directory of the caller's, not a symlink to one
 * (UnsafePathError): the files are then never written through a link.
 */
export function writeEtcFiles(dir: string, files: { resolvConf: string; hosts: string }): void {
  checkEtcDir(dir);
  for (const [name, text] of [
    ['resolv.conf', files.resolvConf],
    ['hosts', files.hosts],
  ] as const) {
    const tmp = join(dir, `.${name}.${randomBytes(6).toString('hex')}.tmp`);
    // 'wx': created here, never an existing file or a link planted at the name.
    const fd = openSync(tmp, 'wx', 0o644);
    try {
      writeSync(fd, text);
      fsyncSync(fd);
      closeSync(fd);
      renameSync(tmp, join(dir, name));
    } catch (err) {
      try {
        closeSync(fd);
      } catch {
        // Closed already.
      }
      try {
        unlinkSync(tmp);
      } catch {
        // Renamed or never there.
      }
      throw err;
    }
  }
}

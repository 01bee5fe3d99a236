// Subnets of networks, as podman's libnetwork reasons about them: a CIDR as
// a family, a base address and a prefix; overlap as "either contains the
// other's base"; a free IPv4 subnet as the first /24 of podman's default
// pools (10.89.0.0/16, then 10.90.0.0/15, ... up to 10.128.0.0/9) that meets
// no used subnet; a free IPv6 subnet as a random ULA /64 (RFC 4193 says
// random, not sequential). The host's routes (a netlink dump) are used
// subnets too. Pure functions over strings, tested without root.
import { randomBytes } from 'node:crypto';
import ipaddr from 'ipaddr.js';
import { InvalidArgumentError } from '../errors.js';
import type { Route } from '../netns/index.js';

/** A subnet: family, network address (host bits zero) and prefix length. */
export interface Subnet {
  readonly family: 4 | 6;
  readonly base: bigint;
  readonly prefix: number;
}

const BITS = { 4: 32, 6: 128 } as const;

function toBig(bytes: readonly number[]): bigint {
  return bytes.reduce((n, b) => (n << 8n) | BigInt(b), 0n);
}

function mask(family: 4 | 6, prefix: number): bigint {
  const bits = BigInt(BITS[family]);
  return ((1n << BigInt(prefix)) - 1n) << (bits - BigInt(prefix));
}

/** An IP address as a family and a number; InvalidArgumentError when it is not one. */
export function parseIp(text: string, what = 'IP address'): { family: 4 | 6; value: bigint } {
  // isValid alone accepts '10.1' and '0x0a.0.0.1'; podman (Go's net.ParseIP) does not.
  if (ipaddr.IPv4.isValidFourPartDecimal(text))
    return { family: 4, value: toBig(ipaddr.IPv4.parse(text).toByteArray()) };
  if (ipaddr.IPv6.isValid(text) && !text.includes('%'))
    return { family: 6, value: toBig(ipaddr.IPv6.parse(text).toByteArray()) };
  throw new InvalidArgumentError(`${what} '${text}' is not an IPv4 or IPv6 address`);
}

/** The text of an address of FAMILY (IPv6 in its shortest form). */
export function formatIp(family: 4 | 6, value: bigint): string {
  const bytes: number[] = [];
  for (let i = BITS[family] / 8 - 1; i >= 0; i--)
    bytes.push(Number((value >> BigInt(i * 8)) & 0xffn));
  return family === 4 ? bytes.join('.') : new ipaddr.IPv6(bytes).toRFC5952String();
}

/**
 * A CIDR as a subnet, its host bits cleared (podman also stores the network
 * address, not the address given); InvalidArgumentError when it is not one.
 */
export function parseSubnet(text: string, what = 'subnet'): Subnet {
  const slash = text.indexOf('/');
  const prefixText = slash === -1 ? '' : text.slice(slash + 1);
  if (!/^\d{1,3}$/.test(prefixText))
    throw new InvalidArgumentError(`${what} '${text}' is not in CIDR form (ADDRESS/PREFIX)`);
  let ip: { family: 4 | 6; value: bigint };
  try {
    ip = parseIp(text.slice(0, slash), what);
  } catch (cause) {
    throw new InvalidArgumentError(`${what} '${text}' is not in CIDR form (ADDRESS/PREFIX)`, {
      cause,
    });
  }
  const { family, value } = ip;
  const prefix = Number(prefixText);
  if (prefix > BITS[family])
    throw new InvalidArgumentError(`${what} '${text}' has a prefix longer than ${BITS[family]}`);
  return { family, base: value & mask(family, prefix), prefix };
}

/** A subnet in CIDR form. */
export function formatSubnet(s: Subnet): string {
  return `${formatIp(s.family, s.base)}/${s.prefix}`;
}

/** True when address VALUE of FAMILY lies in S. */
export function subnetContains(s: Subnet, family: 4 | 6, value: bigint): boolean {
  return s.family === family && (value & mask(family, s.prefix)) === s.base;
}

/** True when A and B share an address (podman's networkIntersect). */
export function subnetsOverlap(a: Subnet, b: Subnet): boolean {
  return subnetContains(a, b.family, b.base) || subnetContains(b, a.family, a.base);
}

/** The first address of S after its network address (podman's FirstIPInSubnet, the default gateway). */
export function firstHost(s: Subnet): bigint {
  return BITS[s.family] - s.prefix <= 1 ? s.base : s.base + 1n;
}

/** The last address of S (podman's LastIPInSubnet: the IPv4 broadcast address excluded). */
export function lastHost(s: Subnet): bigint {
  const last = s.base | (~mask(s.family, s.prefix) & ((1n << BigInt(BITS[s.family])) - 1n));
  return s.family === 4 && s.prefix < 31 ? last - 1n : last;
}

/** podman's default IPv4 subnet pools: bases and the size each subnet gets. */
export const DEFAULT_SUBNET_POOLS: readonly { base: string; size: number }[] = [
  { base: '10.89.0.0/16', size: 24 },
  { base: '10.90.0.0/15', size: 24 },
  { base: '10.92.0.0/14', size: 24 },
  { base: '10.96.0.0/11', size: 24 },
  { base: '10.128.0.0/9', size: 24 },
];

/** The first subnet of the pools that overlaps none of USED, or undefined when all are taken. */
export function freeIPv4Subnet(
  used: readonly Subnet[],
  pools: readonly { base: string; size: number }[] = DEFAULT_SUBNET_POOLS,
): Subnet | undefined {
  for (const pool of pools) {
    const base = parseSubnet(pool.base);
    const step = 1n << BigInt(32 - pool.size);
    for (let at = base.base; subnetContains(base, 4, at); at += step) {
      const candidate: Subnet = { family: 4, base: at, prefix: pool.size };
      if (!used.some((u) => subnetsOverlap(u, candidate))) return candidate;
    }
  }
  return undefined;
}

/**
 * A random ULA /64 (fdXX:XXXX:XXXX:XXXX::/64) that overlaps none of USED,
 * or undefined after 10000 tries, podman's limit. RANDOM is a test seam.
 */
export function freeIPv6Subnet(
  used: readonly Subnet[],
  random: (n: number) => Uint8Array = randomBytes,
): Subnet | undefined {
  for (let i = 0; i < 10_000; i++) {
    const bytes = [0xfd, ...random(7), 0, 0, 0, 0, 0, 0, 0, 0];
    const candidate: Subnet = { family: 6, base: toBig(bytes), prefix: 64 };
    if (!used.some((u) => subnetsOverlap(u, candidate))) return candidate;
  }
  return undefined;
}

/**
 * The subnets a host's routes take (a route dump from the kernel, decoded
 * by the rtnetlink codec): IPv4 routes of the main table and IPv6 routes
 * of every table, default routes left out (every one would overlap
 * everything), and the multicast and link-local ranges every IPv6 host
 * routes.
 */
export function routeSubnets(routes: readonly Route[]): Subnet[] {
  const out: Subnet[] = [];
  for (const r of routes) {
    if (r.prefixLength === 0 || (r.family === 4 && r.table !== 254)) continue;
    const s = parseSubnet(`${r.destination}/${r.prefixLength}`, 'a route');
    if (s.family === 6) {
      const top = s.base >> 112n;
      if (top >= 0xff00n || (top & 0xffc0n) === 0xfe80n) continue;
    }
    out.push(s);
  }
  return out;
}

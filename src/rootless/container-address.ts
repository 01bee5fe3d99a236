// The one check of a "container address": the address podnet's forwarder
// dials inside a container's namespace for every published port. Dialling
// a loopback address there would make every connection arrive from
// 127.0.0.1 and reach services bound only to the container's loopback
// (CVE-2021-20199), so the check goes by address class, not by spelling:
// `::0:1`, `0:0:0:0:0:0:0:1` and `::ffff:7f00:1` are all loopback.
import { isIP } from 'node:net';
import ipaddr from 'ipaddr.js';
import { InvalidArgumentError } from '../errors.js';
import { encodeSockaddr } from '../netns/sockaddr.js';

/**
 * IPv4 classes that are never a container's own address to dial:
 * 0.0.0.0/8 ("this network", which the kernel dials as loopback),
 * 127.0.0.0/8, multicast and the limited broadcast address.
 */
const REFUSED_V4 = new Set(['unspecified', 'loopback', 'multicast', 'broadcast']);
/** IPv6 classes likewise: `::`, `::1`, and multicast. */
const REFUSED_V6 = new Set(['unspecified', 'loopback', 'multicast']);
/** The deprecated IPv4-compatible block (RFC 4291 2.5.5.1), `::` and `::1` included. */
const V4_COMPATIBLE = ipaddr.IPv6.parseCIDR('::/96');

/** A container address that passed {@link checkContainerAddress}. */
export interface ContainerAddress {
  /** The address as given (an IP literal). */
  address: string;
  /** Its socket family: 6 for every IPv6 literal, an IPv4-mapped one included. */
  family: 4 | 6;
}

/**
 * Why `value` may not be dialled as a container's address, or undefined
 * when it may. The class is judged on the bytes podnet would dial (the
 * sockaddr it encodes), with an IPv4-mapped IPv6 address judged as the
 * IPv4 address it maps.
 */
export function containerAddressProblem(value: unknown): string | undefined {
  if (typeof value !== 'string' || isIP(value) === 0 || value.includes('%'))
    return 'it is not an IPv4 or IPv6 address (without a zone)';
  const { family, addr } = encodeSockaddr(value, 0);
  let ip: ipaddr.IPv4 | ipaddr.IPv6 = ipaddr.fromByteArray([
    ...(family === 4 ? addr.subarray(4, 8) : addr.subarray(8, 24)),
  ]);
  if (ip instanceof ipaddr.IPv6 && ip.isIPv4MappedAddress()) ip = ip.toIPv4Address();
  const range = ip.range();
  if ((ip instanceof ipaddr.IPv4 ? REFUSED_V4 : REFUSED_V6).has(range))
    return `it is in the ${range} range`;
  if (ip instanceof ipaddr.IPv6 && ip.match(V4_COMPATIBLE))
    return 'it is a deprecated IPv4-compatible address';
  return undefined;
}

/**
 * Checks the address a forwarder is to dial inside a container's
 * namespace: an IP literal of the container's own, never loopback or
 * unspecified in any spelling (IPv4-mapped forms included), multicast or
 * broadcast. Throws InvalidArgumentError (ERR_PODNET_INVALID_ARGUMENT)
 * naming the address and why.
 */
export function checkContainerAddress(value: unknown): ContainerAddress {
  const problem = containerAddressProblem(value);
  if (problem !== undefined) {
    throw new InvalidArgumentError(
      `container address ${JSON.stringify(value)} cannot be dialled: ${problem}; give the container's own address (a loopback peer inside would be CVE-2021-20199)`,
    );
  }
  return { address: value as string, family: isIP(value as string) as 4 | 6 };
}

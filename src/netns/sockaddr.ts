// struct sockaddr_in / sockaddr_in6 encoding for binding sockets that are
// opened inside a namespace.
import { isIP } from 'node:net';
import { InvalidArgumentError } from '../errors.js';

/** Kinds of socket `NetworkNamespace.socket` opens. */
export type SocketType = 'tcp4' | 'tcp6' | 'udp4' | 'udp6';

/** AF_*, SOCK_* and protocol numbers of a socket kind. */
export interface SocketParams {
  domain: number;
  type: number;
  protocol: number;
}

const AF_INET = 2;
const AF_INET6 = 10;
const SOCK_STREAM = 1;
const SOCK_DGRAM = 2;

/** Maps a socket kind to socket(2) arguments. */
export function socketParams(type: SocketType): SocketParams {
  switch (type) {
    case 'tcp4':
      return { domain: AF_INET, type: SOCK_STREAM, protocol: 0 };
    case 'tcp6':
      return { domain: AF_INET6, type: SOCK_STREAM, protocol: 0 };
    case 'udp4':
      return { domain: AF_INET, type: SOCK_DGRAM, protocol: 0 };
    case 'udp6':
      return { domain: AF_INET6, type: SOCK_DGRAM, protocol: 0 };
    default:
      throw new InvalidArgumentError(
        `socket type must be tcp4, tcp6, udp4 or udp6, not ${String(type)}`,
      );
  }
}

/** Checks a port number (0 means any). */
export function checkPort(port: unknown, what = 'port'): number {
  if (typeof port !== 'number' || !Number.isInteger(port) || port < 0 || port > 65535) {
    throw new InvalidArgumentError(
      `${what} must be an integer from 0 to 65535, not ${String(port)}`,
    );
  }
  return port;
}

/**
 * Encodes host:port as a sockaddr. Only IP literals: a namespace has no
 * resolver of its own, and a name looked up outside it would be misleading.
 */
export function encodeSockaddr(host: string, port: number): { family: 4 | 6; addr: Buffer } {
  const family = isIP(host);
  if (family === 4) {
    const b = Buffer.alloc(16);
    b.writeUInt16LE(AF_INET, 0);
    b.writeUInt16BE(port, 2);
    host.split('.').forEach((octet, i) => {
      b[4 + i] = Number(octet);
    });
    return { family: 4, addr: b };
  }
  if (family === 6 && !host.includes('%')) {
    const b = Buffer.alloc(28);
    b.writeUInt16LE(AF_INET6, 0);
    b.writeUInt16BE(port, 2);
    ipv6Bytes(host).copy(b, 8);
    return { family: 6, addr: b };
  }
  throw new InvalidArgumentError(`host must be an IPv4 or IPv6 address (no zone), not '${host}'`);
}

/** The 16 bytes of an IPv6 literal (the caller has checked it with isIP). */
export function ipv6Bytes(host: string): Buffer {
  // An embedded IPv4 tail (::ffff:1.2.3.4) becomes two hex groups.
  let text = host;
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (v4?.[1]) {
    const o = v4[1].split('.').map(Number);
    text = `${text.slice(0, -v4[1].length)}${((o[0]! << 8) | o[1]!).toString(16)}:${((o[2]! << 8) | o[3]!).toString(16)}`;
  }
  const [head = '', tail] = text.split('::');
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const groups = tail === undefined ? h : [...h, ...Array(8 - h.length - t.length).fill('0'), ...t];
  const b = Buffer.alloc(16);
  groups.forEach((g, i) => {
    b.writeUInt16BE(Number.parseInt(g, 16), i * 2);
  });
  return b;
}

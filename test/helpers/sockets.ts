// For tests of the addon's socket and fd calls (native.socketsHere,
// sendFds/recvFds, the user namespace helper's replies): the socket(2)
// constants they pass, and the fds a test opens, closed after each test.
// Needs the addon but no root, so unit tests may import it.
import { afterEach } from 'vitest';
import { native } from '../../src/native.js';

/** socket(2)'s IPv4 domain (linux/socket.h). */
export const AF_INET = 2;
/** socket(2)'s IPv6 domain. */
export const AF_INET6 = 10;
/** socket(2)'s netlink domain. */
export const AF_NETLINK = 16;
/** socket(2)'s stream type (linux/net.h): TCP in the inet domains. */
export const SOCK_STREAM = 1;
/** socket(2)'s datagram type: UDP in the inet domains. */
export const SOCK_DGRAM = 2;
/** socket(2)'s raw type: netlink's. */
export const SOCK_RAW = 3;

/**
 * Registers an afterEach (call it at the top of a file) that closes every
 * fd given to the returned function, which hands its fds back: so a test
 * that fails half way leaks none.
 */
export function closedAfterEach(): <T extends number[]>(fds: T) => T {
  const open: number[] = [];
  afterEach(() => {
    for (const fd of open.splice(0)) native.closeFd(fd);
  });
  return (fds) => {
    open.push(...fds);
    return fds;
  };
}

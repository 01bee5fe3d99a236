// The fds a user namespace helper sends back are untrusted input: exactly
// the number asked for, each a socket of the requested domain, type and
// protocol, or the request fails with a UserNamespaceError and every fd of
// the reply is closed. A lying helper (test/fixtures/rootless/userns-liar.mjs,
// standing in for unshare and the helper) produces the faults the real one
// cannot; no privileges are needed, as it never leaves the host's namespaces.
import { openSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { native } from '../../../../src/native.js';
import {
  checkHelperFds,
  UserNamespace,
  UserNamespaceError,
} from '../../../../src/rootless/userns/userns.js';
import { fixture } from '../../../helpers/fixtures.js';
import { openFds } from '../../../helpers/process.js';
import {
  AF_INET,
  AF_INET6,
  AF_NETLINK,
  closedAfterEach,
  SOCK_DGRAM,
  SOCK_RAW,
  SOCK_STREAM,
} from '../../../helpers/sockets.js';

const liar = fixture('rootless/userns-liar.mjs');

const track = closedAfterEach();
afterEach(() => {
  delete process.env['PODNET_TEST_LIAR_MODE'];
});
describe('socketInfo', () => {
  it('reports domain, type and protocol, and ENOTSOCK for a file', () => {
    const [tcp] = track(native.socketsHere(AF_INET, SOCK_STREAM, 0, 1));
    expect(native.socketInfo(tcp!)).toEqual([AF_INET, SOCK_STREAM, 6]);
    const [udp6] = track(native.socketsHere(AF_INET6, SOCK_DGRAM, 0, 1));
    expect(native.socketInfo(udp6!)).toEqual([AF_INET6, SOCK_DGRAM, 17]);
    const [nl] = track(native.socketsHere(AF_NETLINK, SOCK_RAW, 0, 1));
    expect(native.socketInfo(nl!)).toEqual([AF_NETLINK, SOCK_RAW, 0]);
    const file = openSync('/dev/null', 'r');
    track([file]);
    expect(() => native.socketInfo(file)).toThrow(expect.objectContaining({ errno: 88 }));
  });
});

describe('checkHelperFds', () => {
  const tcp4 = { domain: AF_INET, type: SOCK_STREAM, protocol: 0, count: 2 };

  it('accepts the sockets asked for (protocol 0 meaning the default)', () => {
    expect(checkHelperFds(tcp4, track(native.socketsHere(AF_INET, SOCK_STREAM, 0, 2)))).toBe(
      undefined,
    );
    const nl = { domain: AF_NETLINK, type: SOCK_RAW, protocol: 0, count: 1 };
    expect(checkHelperFds(nl, track(native.socketsHere(AF_NETLINK, SOCK_RAW, 0, 1)))).toBe(
      undefined,
    );
  });

  it('names what is wrong: the count, a non-socket, another kind of socket', () => {
    const one = track(native.socketsHere(AF_INET, SOCK_STREAM, 0, 1));
    expect(checkHelperFds(tcp4, one)).toMatch(/sent 1 fds for a request of 2/);
    const three = track(native.socketsHere(AF_INET, SOCK_STREAM, 0, 3));
    expect(checkHelperFds(tcp4, three)).toMatch(/sent 3 fds for a request of 2/);
    const file = openSync('/dev/null', 'r');
    track([file]);
    expect(checkHelperFds(tcp4, [one[0]!, file])).toMatch(/not a socket/);
    const udp = track(native.socketsHere(AF_INET, SOCK_DGRAM, 0, 1));
    expect(checkHelperFds(tcp4, [one[0]!, udp[0]!])).toMatch(/type 2, protocol 17 for one of/);
    const tcp6 = track(native.socketsHere(AF_INET6, SOCK_STREAM, 0, 1));
    expect(checkHelperFds(tcp4, [one[0]!, tcp6[0]!])).toMatch(/domain 10/);
  });
});

describe('a helper that sends the wrong fds', () => {
  it.each(['fewer', 'more', 'not-a-socket', 'wrong-type'])(
    'fails the start with ERR_PODNET_USERNS and keeps none of its fds (%s)',
    async (mode) => {
      process.env['PODNET_TEST_LIAR_MODE'] = mode;
      const before = openFds();
      const err = await UserNamespace.create({ program: liar, timeoutMs: 5000 }).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(UserNamespaceError);
      expect(err).toMatchObject({ code: 'ERR_PODNET_USERNS' });
      expect((err as Error).message).toMatch(/the helper sent/);
      // The reply's fds, the channel and the namespace fd are all closed
      // (the child's stdio pipes close as it is reaped).
      await expect.poll(openFds, { timeout: 2000 }).toBe(before);
    },
  );

  it('a helper of another protocol is refused at its first message', async () => {
    process.env['PODNET_TEST_LIAR_MODE'] = 'json';
    const before = openFds();
    const err = await UserNamespace.create({ program: liar, timeoutMs: 5000 }).catch(
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(UserNamespaceError);
    expect((err as Error).message).toMatch(/^the helper did not say it was ready/);
    await expect.poll(openFds, { timeout: 2000 }).toBe(before);
  });
});

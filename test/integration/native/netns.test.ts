// A namespace fd given to a socket-opening thread may be closed by
// JavaScript before the thread calls setns, and its number reused by
// another namespace. Each thread works on its own dup, taken before the
// call returns, so the socket still opens in the namespace that was asked
// for: here A has loopback up and B does not, so binding 127.0.0.1 tells
// them apart (EADDRNOTAVAIL in B).
import { closeSync, openSync } from 'node:fs';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { NetworkNamespace } from '../../../src/index.js';
import { native } from '../../../src/native.js';
import { encodeSockaddr } from '../../../src/netns/sockaddr.js';
import { inNetns, isRoot, type NetnsDir, tempNetnsDir, uniq } from '../../helpers/host.js';

const AF_INET = 2;
const SOCK_STREAM = 1;
const ROUNDS = 20;

describe.skipIf(!isRoot)('namespace fds handed to native threads', () => {
  let tmp: NetnsDir;
  let a: NetworkNamespace;
  let b: NetworkNamespace;

  beforeEach(async () => {
    tmp = tempNetnsDir();
    a = await NetworkNamespace.create({ dir: tmp.dir, name: `a-${uniq()}` });
    b = await NetworkNamespace.create({ dir: tmp.dir, name: `b-${uniq()}` });
    await inNetns(a.path, ['ip', 'link', 'set', 'lo', 'up']);
  });

  afterEach(async () => {
    await a?.remove();
    await b?.remove();
    await tmp.cleanup();
  });

  it('socketIn opens in the namespace asked for, though its fd is closed and reused at once', async () => {
    const loopback = encodeSockaddr('127.0.0.1', 0).addr;
    let reused = 0;
    for (let i = 0; i < ROUNDS; i++) {
      const nsfd = openSync(a.path, 'r');
      // Several threads at once, so that some of them start only after the
      // close below.
      const pending = Array.from({ length: 16 }, () =>
        native.socketIn(nsfd, AF_INET, SOCK_STREAM, 0, loopback),
      );
      closeSync(nsfd);
      // The lowest free number: usually the one just closed, now naming B.
      const other = openSync(b.path, 'r');
      if (other === nsfd) reused++;
      try {
        const results = await Promise.allSettled(pending);
        for (const r of results) if (r.status === 'fulfilled') native.closeFd(r.value);
        expect(results.filter((r) => r.status === 'rejected')).toEqual([]);
      } finally {
        closeSync(other);
      }
    }
    // The race the dup guards against was really set up.
    expect(reused).toBeGreaterThan(0);
  });

  it('socketsIn and socketInSync work on their own dup too', async () => {
    const nsfd = openSync(a.path, 'r');
    const pending = native.socketsIn(nsfd, AF_INET, SOCK_STREAM, 0, 4);
    closeSync(nsfd);
    const fds = await pending;
    expect(fds).toHaveLength(4);
    for (const fd of fds) native.closeFd(fd);

    const syncNsfd = openSync(a.path, 'r');
    const fd = native.socketInSync(
      syncNsfd,
      AF_INET,
      SOCK_STREAM,
      0,
      encodeSockaddr('127.0.0.1', 0).addr,
    );
    native.closeFd(fd);
    // The caller's fd is still the caller's: the thread closed only its dup.
    closeSync(syncNsfd);
  });

  it('rejects a namespace fd that is not open with EBADF from fcntl, before any thread starts', async () => {
    const nsfd = openSync(a.path, 'r');
    closeSync(nsfd);
    await expect(native.socketIn(nsfd, AF_INET, SOCK_STREAM, 0)).rejects.toMatchObject({
      errno: 9,
      syscall: 'fcntl',
    });
    await expect(native.socketsIn(nsfd, AF_INET, SOCK_STREAM, 0, 2)).rejects.toMatchObject({
      errno: 9,
      syscall: 'fcntl',
    });
  });
});

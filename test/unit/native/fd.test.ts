// The addon's fd passing (native/fd.cc), which needs no privileges:
// messages with and without fds over a SOCK_SEQPACKET pair, end of stream,
// the receive deadline, and sockets opened in the caller's own namespace;
// and its reader of a directory's small files (IPAM's leases).
import { execFileSync } from 'node:child_process';
import { fstatSync, mkdirSync, readlinkSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { native } from '../../../src/native.js';
import { AF_INET, closedAfterEach, SOCK_STREAM } from '../../helpers/sockets.js';
import { tempDirs } from '../../helpers/temp.js';

const track = closedAfterEach();

describe('fd passing', () => {
  it('sends a message with fds; the receiver gets new fds for the same files', async () => {
    const [a, b] = track(native.seqpacketPair());
    const socks = track(native.socketsHere(AF_INET, SOCK_STREAM, 0, 3));
    native.sendFds(a, Buffer.from('{"ok":true}'), socks);
    const msg = await native.recvFds(b, 1000);
    expect(msg!.data.toString()).toBe('{"ok":true}');
    expect(msg!.fds).toHaveLength(3);
    track(msg!.fds);
    for (const [i, fd] of msg!.fds.entries()) {
      expect(socks).not.toContain(fd);
      expect(fstatSync(fd).ino).toBe(fstatSync(socks[i]!).ino);
      expect(readlinkSync(`/proc/self/fd/${fd}`)).toMatch(/^socket:/);
    }
  });

  it('keeps message boundaries, resolves null at end of stream, and times out', async () => {
    const [a, b] = native.seqpacketPair();
    track([b]);
    native.sendFds(a, Buffer.from('one'));
    native.sendFds(a, Buffer.from('two'));
    expect((await native.recvFds(b, 1000))!.data.toString()).toBe('one');
    expect((await native.recvFds(b, 1000))!.data.toString()).toBe('two');
    await expect(native.recvFds(b, 30)).rejects.toMatchObject({ errno: 110, syscall: 'recvmsg' });
    native.closeFd(a);
    expect(await native.recvFds(b, 1000)).toBeNull();
  });

  it('refuses more fds than SCM_MAX_FD, and a bad count of sockets', () => {
    const [a] = track(native.seqpacketPair());
    expect(() => native.sendFds(a, Buffer.from('x'), new Array(254).fill(a))).toThrow(
      expect.objectContaining({ errno: 90, syscall: 'sendmsg' }),
    );
    expect(() => native.socketsHere(AF_INET, SOCK_STREAM, 0, 0)).toThrow(
      expect.objectContaining({ errno: 22 }),
    );
    expect(() => native.socketsHere(9999, SOCK_STREAM, 0, 1)).toThrow(
      expect.objectContaining({ errno: 97, syscall: 'socket' }),
    );
  });
});

describe('readDirFiles', () => {
  const dirs = tempDirs();

  it('reads the small regular files of a directory, and nothing else', () => {
    const dir = dirs();
    const outside = join(dirs(), 'target');
    writeFileSync(outside, 'secret');
    writeFileSync(join(dir, 'a'), 'one\r\ntwo');
    writeFileSync(join(dir, 'empty'), '');
    writeFileSync(join(dir, 'utf8'), 'é');
    writeFileSync(join(dir, 'big'), 'x'.repeat(65));
    writeFileSync(join(dir, 'fits'), 'x'.repeat(64));
    symlinkSync(outside, join(dir, 'link'));
    mkdirSync(join(dir, 'sub'));
    execFileSync('mkfifo', [join(dir, 'fifo')]);
    const files = native.readDirFiles(dir, 64);
    const got = Object.fromEntries(
      Array.from({ length: files.length / 2 }, (_, i) => [files[2 * i], files[2 * i + 1]]),
    );
    expect(got).toEqual({ a: 'one\r\ntwo', empty: '', utf8: 'é', fits: 'x'.repeat(64) });
  });

  it('throws for a directory it cannot open', () => {
    expect(() => native.readDirFiles(join(dirs(), 'missing'), 64)).toThrow(
      expect.objectContaining({ errno: 2, syscall: 'open' }),
    );
  });
});

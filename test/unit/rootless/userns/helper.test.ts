// The native user namespace helper (native/userns-helper.cc) driven
// directly over its channel, with the messages protocol.ts declares: so the
// two sides' layouts are checked against each other, and the helper's
// failure modes (malformed requests, a lost owner, a bad command line) are
// produced for real. It makes a user namespace, which needs no root; the
// sanitizer run (test/unit/native/sanitizers.test.ts) runs this file again
// against an AddressSanitizer build of the helper (PODNET_USERNS_HELPER).
import { type ChildProcess, spawn } from 'node:child_process';
import { openSync, readdirSync, readFileSync, readlinkSync, realpathSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { native, usernsHelperPath } from '../../../../src/native.js';
import {
  encodeRequest,
  PROTOCOL_VERSION,
  parseHelperReply,
  type SocketsRequest,
} from '../../../../src/rootless/userns/protocol.js';
import {
  checkHelperFds,
  UserNamespace,
  UserNamespaceError,
} from '../../../../src/rootless/userns/userns.js';
import { running, until } from '../../../helpers/process.js';
import { reportSkip } from '../../../helpers/skip.js';
import {
  AF_INET,
  AF_INET6,
  AF_NETLINK,
  closedAfterEach,
  SOCK_DGRAM,
  SOCK_RAW,
  SOCK_STREAM,
} from '../../../helpers/sockets.js';

const EINVAL = 22;
const EAFNOSUPPORT = 97;
const EADDRINUSE = 98;

function userNamespacesRefused(): string | undefined {
  const max = (() => {
    try {
      return Number(readFileSync('/proc/sys/user/max_user_namespaces', 'utf8'));
    } catch {
      return 0;
    }
  })();
  return max > 0 ? undefined : 'user namespaces are disabled (user.max_user_namespaces = 0)';
}
const why = reportSkip('the native user namespace helper tests', userNamespacesRefused());

interface Helper {
  readonly child: ChildProcess;
  channel: number;
  exited: Promise<{ code: number | null; stderr: string }>;
}

const started: Helper[] = [];
const track = closedAfterEach();
afterEach(async () => {
  for (const h of started.splice(0)) {
    if (h.channel >= 0) native.closeFd(h.channel);
    h.child.kill('SIGKILL');
    await h.exited;
  }
});

/**
 * The helper with ARGS, fd 3 a SOCK_SEQPACKET socket whose other end is
 * returned (or `fd3`), and `extra` as its fd 4 and up.
 */
function start(args: string[], fd3?: number, extra: number[] = []): Helper {
  const [ours, theirs] = fd3 === undefined ? native.seqpacketPair() : [-1, fd3];
  const child = spawn(usernsHelperPath(), args, {
    stdio: ['ignore', 'ignore', 'pipe', theirs, ...extra],
  });
  if (fd3 === undefined) native.closeFd(theirs);
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => {
    stderr += d;
  });
  const exited = new Promise<{ code: number | null; stderr: string }>((resolve) =>
    child.once('close', (code) => resolve({ code, stderr })),
  );
  const h = { child, channel: ours, exited };
  started.push(h);
  return h;
}

async function receive(h: Helper): Promise<{ data: Buffer; fds: number[] }> {
  const msg = await native.recvFds(h.channel, 5000);
  if (msg === null) throw new Error('the helper closed its channel');
  track(msg.fds);
  return msg;
}

/** A started helper, past its first message. */
async function ready(args: string[] = ['create'], extra: number[] = []): Promise<Helper> {
  const h = start(args, undefined, extra);
  const hello = await receive(h);
  expect(parseHelperReply(hello.data)).toEqual({ ok: true, pid: h.child.pid });
  expect(hello.fds).toEqual([]);
  return h;
}

async function ask(h: Helper, req: SocketsRequest | Buffer): Promise<[unknown, number[]]> {
  native.sendFds(h.channel, Buffer.isBuffer(req) ? req : encodeRequest(req));
  const msg = await receive(h);
  return [parseHelperReply(msg.data), msg.fds];
}

const tcp4 = { domain: AF_INET, type: SOCK_STREAM, protocol: 0, count: 1 };

describe('usernsHelperPath', () => {
  it('finds the build, or fails with one line saying where it looked', () => {
    expect(usernsHelperPath()).toMatch(/\/podnet-userns$/);
    const saved = process.env['PODNET_USERNS_HELPER'];
    process.env['PODNET_USERNS_HELPER'] = '/nonexistent/podnet-userns';
    try {
      expect(() => usernsHelperPath()).toThrow(
        expect.objectContaining({
          code: 'ERR_PODNET_NO_ADDON',
          message: expect.stringMatching(
            /^[^\n]*no executable \/nonexistent\/podnet-userns; build it/,
          ),
        }),
      );
    } finally {
      if (saved === undefined) delete process.env['PODNET_USERNS_HELPER'];
      else process.env['PODNET_USERNS_HELPER'] = saved;
    }
  });
});

describe.skipIf(why !== undefined)('the native user namespace helper', () => {
  it('holds new user and network namespaces, this user mapped to root, setgroups denied, no inherited fd', async () => {
    // An fd an ancestor leaked to it (here on purpose) is closed, not held
    // for the namespaces' lifetime.
    const leaked = openSync('/dev/null', 'r');
    track([leaked]);
    const h = await ready(['create'], [leaked]);
    const pid = h.child.pid!;
    expect(readdirSync(`/proc/${pid}/fd`).sort()).toEqual(['0', '1', '2', '3']);
    // The build that was meant (under the sanitizer run, the instrumented one).
    expect(readlinkSync(`/proc/${pid}/exe`)).toBe(realpathSync(usernsHelperPath()));
    expect(readlinkSync(`/proc/${pid}/ns/user`)).not.toBe(readlinkSync('/proc/self/ns/user'));
    expect(readlinkSync(`/proc/${pid}/ns/net`)).not.toBe(readlinkSync('/proc/self/ns/net'));
    const uid = process.getuid!();
    const gid = process.getgid!();
    const map = (f: string): string[] =>
      readFileSync(`/proc/${pid}/${f}`, 'utf8').trim().split(/\s+/);
    expect(map('uid_map')).toEqual(['0', String(uid), '1']);
    expect(map('gid_map')).toEqual(['0', String(gid), '1']);
    expect(readFileSync(`/proc/${pid}/setgroups`, 'utf8').trim()).toBe('deny');
  });

  it('answers each request with the sockets protocol.ts asks for, bound where asked', async () => {
    const h = await ready();
    for (const req of [
      { ...tcp4, count: 64 },
      { domain: AF_INET6, type: SOCK_DGRAM, protocol: 0, count: 2 },
      { domain: AF_NETLINK, type: SOCK_RAW, protocol: 0, count: 1 },
    ]) {
      const [reply, got] = await ask(h, req);
      expect(reply).toEqual({ ok: true });
      expect(checkHelperFds(req, got)).toBeUndefined();
    }
    // 127.0.0.1:80, bound inside: root there may bind a low port.
    const addr = Buffer.from([2, 0, 0, 80, 127, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0]);
    const [first, [listener]] = await ask(h, { ...tcp4, addr });
    expect(first).toEqual({ ok: true });
    expect(native.socketInfo(listener!)).toEqual([AF_INET, SOCK_STREAM, 6]);
    // Two UDP sockets on one address: the second bind fails, and the reply
    // is the kernel's error by name, with neither socket.
    const udp = { domain: AF_INET, type: SOCK_DGRAM, protocol: 0, count: 2, addr };
    expect(await ask(h, udp)).toEqual([{ ok: false, errno: EADDRINUSE, syscall: 'bind' }, []]);
    expect(await ask(h, { ...udp, count: 1 })).toMatchObject([{ ok: true }, [expect.any(Number)]]);
  });

  it('refuses a malformed request with EINVAL and goes on serving', async () => {
    const h = await ready();
    const good = encodeRequest(tcp4);
    const bad = (mutate: (b: Buffer) => void): Buffer => {
      const b = Buffer.from(good);
      mutate(b);
      return b;
    };
    for (const req of [
      Buffer.from('{"domain":2,"type":1,"protocol":0,"count":1}'), // the old JSON
      good.subarray(0, 19),
      bad((b) => b.writeUInt32LE(PROTOCOL_VERSION + 1, 0)),
      bad((b) => b.writeUInt32LE(0, 16)),
      bad((b) => b.writeUInt32LE(254, 16)),
      Buffer.concat([good, Buffer.alloc(129)]), // a sockaddr longer than any
    ]) {
      const [reply, got] = await ask(h, req);
      expect(reply).toEqual({ ok: false, errno: EINVAL, syscall: 'request' });
      expect(got).toEqual([]);
    }
    // A domain the kernel does not know: its errno, no fd.
    expect(await ask(h, { ...tcp4, domain: 9999 })).toEqual([
      { ok: false, errno: EAFNOSUPPORT, syscall: 'socket' },
      [],
    ]);
    // fds attached to a request are closed unread, and it is still refused.
    const file = openSync('/dev/null', 'r');
    track([file]);
    native.sendFds(h.channel, Buffer.alloc(0), [file]);
    expect(parseHelperReply((await receive(h)).data)).toMatchObject({ ok: false, errno: EINVAL });
    const [reply, got] = await ask(h, tcp4);
    expect(reply).toEqual({ ok: true });
    expect(checkHelperFds(tcp4, got)).toBeUndefined();
    // Nothing kept: stdin, stdout (both /dev/null), stderr and its channel
    // (polled: the helper closes its copies of the sockets just after the reply).
    await expect
      .poll(() => readdirSync(`/proc/${h.child.pid}/fd`).sort(), { timeout: 2000 })
      .toEqual(['0', '1', '2', '3']);
  });

  it('exits 0 when its owner closes the channel, and when its owner dies', async () => {
    const h = await ready();
    native.closeFd(h.channel);
    h.channel = -1;
    expect(await h.exited).toEqual({ code: 0, stderr: '' });

    // An owner killed outright: the kernel closes its end. The owner here is
    // another process (sleep) holding the channel; this one lets go of it.
    const orphan = start(['create']);
    const owner = spawn('sleep', ['600'], {
      stdio: ['ignore', 'ignore', 'ignore', orphan.channel],
    });
    native.closeFd(orphan.channel);
    orphan.channel = -1;
    try {
      await until('the helper to be in its own user namespace', () => {
        try {
          return (
            readlinkSync(`/proc/${orphan.child.pid}/ns/user`) !== readlinkSync('/proc/self/ns/user')
          );
        } catch {
          return false;
        }
      });
      expect(running(orphan.child.pid!)).toBe(true);
      owner.kill('SIGKILL');
      expect(await orphan.exited).toEqual({ code: 0, stderr: '' });
    } finally {
      owner.kill('SIGKILL');
    }
  });

  it('a command line or channel it cannot use: exit 2, one line on stderr, no namespace', async () => {
    const usage = start(['frobnicate']);
    expect(await usage.exited).toMatchObject({ code: 2, stderr: expect.stringMatching(/^usage:/) });
    const notPid = start(['join', '12x']);
    expect(await notPid.exited).toEqual({
      code: 2,
      stderr: "podnet-userns: join: '12x' is not a process id\n",
    });
    const file = openSync('/dev/null', 'r');
    track([file]);
    const noChannel = start(['create'], file);
    expect(await noChannel.exited).toEqual({
      code: 2,
      stderr: 'podnet-userns: fd 3 is not the SOCK_SEQPACKET socket podnet passes\n',
    });
  });

  it('join: the namespaces of another helper; a pid that is gone is a UserNamespaceError naming it', async () => {
    const u = await UserNamespace.create();
    try {
      const j = await UserNamespace.join(u.pid);
      expect(j.netns.inode).toBe(u.netns.inode);
      expect(readlinkSync(`/proc/${j.pid}/ns/user`)).toBe(readlinkSync(`/proc/${u.pid}/ns/user`));
      await j.close();
      expect(await j.exited).toEqual({ code: 0, signal: null });
    } finally {
      await u.close();
    }
    expect(running(u.pid)).toBe(false);
    const err = await UserNamespace.join(u.pid).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UserNamespaceError);
    expect((err as Error).message).toContain(`/proc/${u.pid}/ns/user: No such file or directory`);
  });
});

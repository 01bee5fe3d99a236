// ns.spawn: processes inside a namespace, started through the exec helper
// (native/exec-helper.c). Each test checks the kernel's view (the child's
// /proc/PID/ns/net against the namespace's inode), not podnet's word.
import { type ChildProcess, spawn } from 'node:child_process';
import diagnosticsChannel from 'node:diagnostics_channel';
import { once } from 'node:events';
import { chmodSync, readdirSync, readlinkSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  InvalidArgumentError,
  type NamespaceProcess,
  NetworkNamespace,
  PodnetSystemError,
} from '../../../src/index.js';
import { isRoot, type NetnsDir, tempNetnsDir } from '../../helpers/host.js';
import { pidExists, until } from '../../helpers/process.js';

const hostNetns = readlinkSync('/proc/self/ns/net');
// The user namespace helper is dist/rootless/userns/userns-main.js, found
// beside the module that starts it: that test uses the build.
const { UserNamespace } = (await import(
  new URL('../../../dist/index.js', import.meta.url).href
)) as typeof import('../../../src/index.js');

/** Everything a child wrote to stdout, and how it ended. */
async function outcome(
  child: ChildProcess,
): Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string }> {
  let stdout = '';
  child.stdout?.setEncoding('utf8').on('data', (d: string) => {
    stdout += d;
  });
  const [code, signal] = (await once(child, 'close')) as [number | null, NodeJS.Signals | null];
  return { code, signal, stdout };
}

/** The events a child emits, in order (errors by code). */
function events(child: ChildProcess): string[] {
  const seen: string[] = [];
  for (const name of ['spawn', 'error', 'exit', 'close']) {
    child.on(name, (arg: unknown) =>
      seen.push(name === 'error' ? `error ${(arg as { code: string }).code}` : name),
    );
  }
  return seen;
}

/** The inode of a namespace link such as `net:[4026531993]`. */
function inodeOf(link: string): number {
  return Number(/\[(\d+)\]/.exec(link)?.[1]);
}

describe.skipIf(!isRoot)('NetworkNamespace.spawn', () => {
  let tmp: NetnsDir;
  let ns: NetworkNamespace;
  const children: ChildProcess[] = [];
  const spawnIn = (
    target: NetworkNamespace,
    ...args: Parameters<NetworkNamespace['spawn']>
  ): NamespaceProcess => {
    const child = target.spawn(...args);
    children.push(child);
    return child;
  };

  beforeEach(async () => {
    tmp = tempNetnsDir();
    ns = await NetworkNamespace.create({ dir: tmp.dir });
  });
  afterEach(async () => {
    for (const child of children.splice(0)) {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    }
    await ns.remove();
    await tmp.cleanup();
  });

  it('runs the command inside: its netns inode is the namespace, its output and exit code come back', async () => {
    const child = spawnIn(ns, 'sh', [
      '-c',
      'readlink /proc/self/ns/net; echo "[$0] [$1] $#"; exit 7',
      'a b',
      'c',
    ]);
    const seen = events(child);
    const { code, stdout } = await outcome(child);
    const [link, echo] = stdout.trim().split('\n');
    expect(inodeOf(link!)).toBe(statSync(ns.path).ino);
    expect(inodeOf(link!)).not.toBe(inodeOf(hostNetns));
    expect(echo).toBe('[a b] [c] 1'); // argv as given: no shell splits 'a b'
    expect(code).toBe(7);
    expect(seen).toEqual(['spawn', 'exit', 'close']);
  });

  it('the pid is the command itself, published on podnet:netns:spawn; the namespace has its own links', async () => {
    const seen: unknown[] = [];
    const onSpawn = (message: unknown): void => {
      seen.push(message);
    };
    diagnosticsChannel.subscribe('podnet:netns:spawn', onSpawn);
    const child = spawnIn(ns, 'ip', ['-o', 'link', 'show']);
    diagnosticsChannel.unsubscribe('podnet:netns:spawn', onSpawn);
    await once(child, 'spawn');
    const pid = child.pid!;
    expect(seen).toEqual([{ path: ns.path, command: 'ip', args: ['-o', 'link', 'show'], pid }]);
    const { code, stdout } = await outcome(child);
    expect(code).toBe(0);
    expect(stdout.trim().split('\n')).toHaveLength(1); // lo, nothing of the host's
    expect(stdout).toContain('lo:');
    expect(pidExists(pid)).toBe(false); // exited and reaped
  });

  it('honours env, cwd, argv0, stdin and extra stdio fds, and leaks no fd of its own', async () => {
    const child = spawnIn(
      ns,
      'sh',
      [
        '-c',
        'echo "$FOO $(pwd) $0"; read line; echo "got $line"; echo extra >&3; ls /proc/self/fd',
      ],
      {
        env: { FOO: 'bar', PATH: '/usr/bin:/bin' },
        cwd: tmp.dir,
        argv0: 'renamed',
        stdio: ['pipe', 'pipe', 'inherit', 'pipe'],
      },
    );
    child.stdin!.end('hello\n');
    let extra = '';
    child.stdio[3]!.on('data', (d: Buffer) => {
      extra += d;
    });
    const { code, stdout } = await outcome(child);
    expect(code).toBe(0);
    const lines = stdout.trim().split('\n');
    // With -c and no further argument, sh's $0 is its argv[0].
    expect(lines.slice(0, 2)).toEqual([`bar ${tmp.dir} renamed`, 'got hello']);
    expect(extra).toBe('extra\n');
    // ls sees what it sees when Node spawns it directly (its stdio, the
    // extra fd, the directory it reads and whatever the test runner leaks):
    // no status socket and no namespace fd survived the exec.
    const direct = spawn('ls', ['/proc/self/fd'], { stdio: ['pipe', 'pipe', 'inherit', 'pipe'] });
    const plain = await outcome(direct);
    expect(lines.slice(2)).toEqual(plain.stdout.trim().split('\n'));
  });

  it('argv0 reaches the command as its argv[0]', async () => {
    const child = spawnIn(ns, 'sh', ['-c', 'tr "\\0" " " < /proc/$$/cmdline'], { argv0: 'named' });
    const { stdout } = await outcome(child);
    expect(stdout).toBe('named -c tr "\\0" " " < /proc/$$/cmdline ');
  });

  it("a fast command's output is kept for a reader who starts after 'spawn' or in 'exit', as with Node", async () => {
    const collect = (stream: NodeJS.ReadableStream): Promise<string> =>
      new Promise((resolve) => {
        let text = '';
        stream.setEncoding('utf8');
        stream.on('data', (d: string) => {
          text += d;
        });
        stream.on('end', () => resolve(text));
      });
    for (let i = 0; i < 20; i++) {
      const afterSpawn = spawnIn(ns, 'echo', [`a${i}`]);
      await once(afterSpawn, 'spawn');
      expect(await collect(afterSpawn.stdout!)).toBe(`a${i}\n`);

      // Node's "one last chance": reading from the 'exit' handler itself.
      const inExit = spawnIn(ns, 'echo', [`b${i}`]);
      const text = await new Promise<Promise<string>>((resolve) =>
        inExit.on('exit', () => resolve(collect(inExit.stdout!))),
      );
      expect(await text).toBe(`b${i}\n`);
      // And nobody reading at all: the output is flushed, 'close' still comes.
      const unread = spawnIn(ns, 'echo', [`c${i}`]);
      expect((await once(unread, 'close'))[0]).toBe(0);
    }
  });

  it('a missing command is an ENOENT error event as Node gives, exit 127, no spawn event', async () => {
    const child = spawnIn(ns, 'podnet-no-such-command', ['x']);
    const seen = events(child);
    const [err] = (await once(child, 'error')) as [PodnetSystemError & { spawnargs: string[] }];
    expect(err).toBeInstanceOf(PodnetSystemError);
    expect(err).toMatchObject({
      code: 'ENOENT',
      errno: -2,
      syscall: 'spawn podnet-no-such-command',
      path: 'podnet-no-such-command',
      spawnargs: ['x'],
    });
    expect(err.message).toBe(
      `starting 'podnet-no-such-command' in network namespace '${ns.path}': ENOENT: spawn podnet-no-such-command 'podnet-no-such-command'`,
    );
    const { code } = await outcome(child);
    expect(code).toBe(127);
    expect(seen).toEqual(['error ENOENT', 'exit', 'close']);
  });

  it('a file that is not executable is EACCES (126), and one with no #! line is never run by sh', async () => {
    const plain = join(tmp.dir, 'plain');
    writeFileSync(plain, 'echo ran\n');
    const denied = spawnIn(ns, plain);
    const [err] = (await once(denied, 'error')) as [PodnetSystemError];
    expect(err.code).toBe('EACCES');
    expect((await outcome(denied)).code).toBe(126);

    chmodSync(plain, 0o755);
    const script = spawnIn(ns, plain);
    const [noexec] = (await once(script, 'error')) as [PodnetSystemError];
    expect(noexec.code).toBe('ENOEXEC');
    const { code, stdout } = await outcome(script);
    expect(code).toBe(126);
    expect(stdout).toBe('');
  });

  it('a cwd that does not exist is an error about the command, as Node reports it', async () => {
    const child = spawnIn(ns, 'true', [], { cwd: join(tmp.dir, 'missing') });
    const [err] = (await once(child, 'error')) as [PodnetSystemError];
    expect(err).toMatchObject({ code: 'ENOENT', syscall: 'spawn true', path: 'true' });
    expect(child.pid).toBeUndefined();
  });

  it('an AbortSignal kills it; the pid is gone afterwards', async () => {
    const ac = new AbortController();
    const child = spawnIn(ns, 'sleep', ['100'], { signal: ac.signal });
    await once(child, 'spawn');
    const pid = child.pid!;
    expect(inodeOf(readlinkSync(`/proc/${pid}/ns/net`))).toBe(ns.inode);
    const aborted = once(child, 'error');
    ac.abort();
    expect(((await aborted) as [Error])[0].name).toBe('AbortError');
    const { signal } = await outcome(child);
    expect(signal).toBe('SIGTERM');
    expect(pidExists(pid)).toBe(false);
  });

  it('timeout kills it with killSignal', async () => {
    const child = spawnIn(ns, 'sleep', ['100'], { timeout: 100, killSignal: 'SIGINT' });
    expect((await outcome(child)).signal).toBe('SIGINT');
  });

  it('disposing the process kills it, with SIGKILL when it ignores its killSignal', async () => {
    const child = spawnIn(ns, 'sleep', ['100']);
    await once(child, 'spawn');
    const pid = child.pid!;
    await child[Symbol.asyncDispose]();
    expect(child.signalCode).toBe('SIGTERM');
    expect(pidExists(pid)).toBe(false);

    // One process (no child to orphan) that ignores SIGTERM: only SIGKILL ends it.
    const stubborn = spawnIn(ns, process.execPath, [
      '-e',
      "process.on('SIGTERM', () => {}); console.log('ready'); setInterval(() => {}, 1000)",
    ]);
    await once(stubborn.stdout!, 'data');
    const started = Date.now();
    await stubborn[Symbol.asyncDispose]();
    expect(stubborn.signalCode).toBe('SIGKILL');
    expect(Date.now() - started).toBeGreaterThanOrEqual(1900);
    expect(pidExists(stubborn.pid!)).toBe(false);
  });

  it('closing or disposing the namespace handle kills what it spawned, except detached processes', async () => {
    const other = await NetworkNamespace.open(ns.path);
    const child = spawnIn(other, 'sleep', ['100']);
    const detached = spawnIn(other, 'sleep', ['100'], { detached: true, stdio: 'ignore' });
    await Promise.all([once(child, 'spawn'), once(detached, 'spawn')]);
    await other[Symbol.asyncDispose]();
    expect(child.signalCode).toBe('SIGKILL');
    expect(pidExists(child.pid!)).toBe(false);
    expect(pidExists(detached.pid!)).toBe(true);
    detached.kill('SIGKILL');
    await once(detached, 'exit');
    expect(() => other.spawn('true')).toThrow(/is closed/);
  });

  it('uid and gid are taken after the namespace is entered', async () => {
    const child = spawnIn(ns, 'sh', ['-c', 'id -u; id -g; id -G; readlink /proc/self/ns/net'], {
      uid: 65534,
      gid: 65534,
    });
    const { code, stdout } = await outcome(child);
    expect(code).toBe(0);
    const [uid, gid, groups, link] = stdout.trim().split('\n');
    expect([uid, gid, groups]).toEqual(['65534', '65534', '65534']);
    expect(inodeOf(link!)).toBe(ns.inode);
  });

  it('no thread of this process leaves the host namespace while many processes start', async () => {
    const before = readdirSync('/proc/self/task').length;
    const batch = Array.from({ length: 40 }, () =>
      spawnIn(ns, 'sh', ['-c', 'readlink /proc/self/ns/net']),
    );
    const seen = new Set<string>();
    const watch = setInterval(() => {
      for (const t of readdirSync('/proc/self/task')) {
        try {
          seen.add(readlinkSync(`/proc/self/task/${t}/ns/net`));
        } catch {
          // The thread ended between the listing and the read.
        }
      }
    }, 1);
    const results = await Promise.all(batch.map(outcome));
    clearInterval(watch);
    for (const t of readdirSync('/proc/self/task'))
      seen.add(readlinkSync(`/proc/self/task/${t}/ns/net`));
    expect([...seen]).toEqual([hostNetns]);
    expect(new Set(results.map((r) => inodeOf(r.stdout)))).toEqual(new Set([ns.inode]));
    expect(results.every((r) => r.code === 0)).toBe(true);
    expect(readdirSync('/proc/self/task').length).toBeLessThanOrEqual(before + 4);
  });

  it('bad arguments throw before anything starts', () => {
    expect(() => ns.spawn('sh', ['-c', 'true'], { shell: true } as never)).toThrow(
      InvalidArgumentError,
    );
    expect(() => ns.spawn('')).toThrow(InvalidArgumentError);
    expect(() => ns.spawn('echo', ['a\0b'])).toThrow(InvalidArgumentError);
  });

  it("in a UserNamespace's network namespace it joins the user namespace first", async () => {
    await using userns = await UserNamespace.create();
    const child = spawnIn(userns.netns as unknown as NetworkNamespace, 'sh', [
      '-c',
      'readlink /proc/self/ns/net /proc/self/ns/user; id -u',
    ]);
    const { code, stdout } = await outcome(child);
    expect(code).toBe(0);
    const [net, user, uid] = stdout.trim().split('\n');
    expect(net).toBe(readlinkSync(`/proc/${userns.pid}/ns/net`));
    expect(user).toBe(readlinkSync(`/proc/${userns.pid}/ns/user`));
    expect(uid).toBe('0');
    // Closing the user namespace ends what runs in it.
    const sleeper = spawnIn(userns.netns as unknown as NetworkNamespace, 'sleep', ['100']);
    await once(sleeper, 'spawn');
    await userns.close();
    await until('the sleeper to be killed', () => sleeper.signalCode !== null);
    expect(sleeper.signalCode).toBe('SIGKILL');
  });
});

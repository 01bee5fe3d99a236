// UserNamespace: the helper that holds a user and a network namespace and
// opens sockets inside for its owner. Run as root here (the kernel treats
// root's user namespaces like anyone's); unprivileged.test.ts runs it as a
// plain user end to end.
import { spawn } from 'node:child_process';
import { readlinkSync } from 'node:fs';
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { isRoot } from '../../../helpers/host.js';
import { running, until } from '../../../helpers/process.js';

// The helper is build/Release/podnet-userns, found from the package the module
// that starts it belongs to: so this test uses the build, as a user's program would.
const dist = new URL('../../../../dist/index.js', import.meta.url).href;
const { PodnetSystemError, UserNamespace, UserNamespaceError } = (await import(
  dist
)) as typeof import('../../../../src/index.js');
type UserNamespace = import('../../../../src/index.js').UserNamespace;

const made: UserNamespace[] = [];
afterEach(async () => {
  await Promise.all(made.splice(0).map((u) => u.close()));
});
async function create(): Promise<UserNamespace> {
  const u = await UserNamespace.create();
  made.push(u);
  return u;
}

describe.skipIf(!isRoot)('UserNamespace', () => {
  it('holds new user and network namespaces; its netns works in-process', async () => {
    const u = await create();
    expect(readlinkSync(`/proc/${u.pid}/ns/user`)).not.toBe(readlinkSync('/proc/self/ns/user'));
    expect(readlinkSync(`/proc/${u.pid}/ns/net`)).not.toBe(readlinkSync('/proc/self/ns/net'));
    expect(u.netns.inode).toBe(Number(/\d+/.exec(readlinkSync(`/proc/${u.pid}/ns/net`))![0]));
    expect((await u.netns.links()).map((l) => l.name)).toEqual(['lo']);
    await u.netns.setLinkUp('lo');
    const server = net.createServer((s) => s.end('inside'));
    const { port } = await u.netns.listen(server, { host: '127.0.0.1' });
    const before = u.netns.linkStatsSync('lo').rxPackets;
    const socket = await u.netns.connect({ host: '127.0.0.1', port });
    let text = '';
    for await (const chunk of socket) text += chunk;
    server.close();
    expect(text).toBe('inside');
    expect(u.netns.linkStatsSync('lo').rxPackets).toBeGreaterThan(before);
  });

  it('a joined helper reaches the same namespaces', async () => {
    const u = await create();
    const j = await UserNamespace.join(u.pid);
    made.push(j);
    expect(j.netns.inode).toBe(u.netns.inode);
    await u.netns.addLink('podnet-br0', 'bridge');
    expect((await j.netns.links()).map((l) => l.name)).toContain('podnet-br0');
  });

  it('close() ends the helper; using the namespace afterwards is an error', async () => {
    const u = await create();
    await u.close();
    expect(running(u.pid)).toBe(false);
    expect(u.closed).toBe(true);
    expect(await u.exited).toEqual({ code: 0, signal: null });
    await expect(u.netns.socket({ type: 'tcp4' })).rejects.toMatchObject({
      code: 'ERR_PODNET_CLOSED',
    });
    await u.close(); // idempotent
  });

  it('the helper exits by itself when its owner dies', async () => {
    const script = `import { UserNamespace } from ${JSON.stringify(dist)};
      const u = await UserNamespace.create(); console.log(u.pid); setInterval(() => {}, 1000);`;
    const owner = spawn(process.execPath, ['--input-type=module', '-e', script], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const pid = await new Promise<number>((resolve) =>
      owner.stdout!.once('data', (d: Buffer) => resolve(Number(String(d).trim()))),
    );
    expect(running(pid)).toBe(true);
    owner.kill('SIGKILL');
    await until('the helper to exit', () => !running(pid));
  });

  it('a socket the kernel refuses is a PodnetSystemError from inside', async () => {
    const u = await create();
    const first = net.createServer();
    const { port } = await u.netns.listen(first, { host: '127.0.0.1' });
    // The helper's bind() fails: the port is taken inside.
    const err = await u.netns
      .listen(net.createServer(), { host: '127.0.0.1', port })
      .catch((e: unknown) => e);
    first.close();
    expect(err).toBeInstanceOf(PodnetSystemError);
    expect(err).toMatchObject({ code: 'EADDRINUSE', syscall: 'bind' });
  });

  it('a helper that cannot start is a UserNamespaceError with what it wrote', async () => {
    const err = await UserNamespace.create({ program: '/bin/false' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UserNamespaceError);
    expect(err).toMatchObject({ code: 'ERR_PODNET_USERNS' });
    await expect(UserNamespace.join(2 ** 22 + 7)).rejects.toBeInstanceOf(UserNamespaceError);
    await expect(UserNamespace.create({ program: '/nonexistent/unshare' })).rejects.toMatchObject({
      code: 'ERR_PODNET_USERNS',
    });
  });
});

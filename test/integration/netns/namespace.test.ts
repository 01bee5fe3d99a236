import { spawn } from 'node:child_process';
import {
  closeSync,
  existsSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  InvalidArgumentError,
  LinkNotFoundError,
  NetworkNamespace,
  NotANamespaceError,
  PodnetSystemError,
} from '../../../src/index.js';
import { createTopology } from '../../../src/testing/index.js';
import {
  freePort,
  type IpAddr,
  inNetns,
  ipAddrs,
  isRoot,
  type NetnsDir,
  tempNetnsDir,
  uniq,
} from '../../helpers/host.js';
import { run } from '../../helpers/process.js';

const hostNetns = readlinkSync('/proc/self/ns/net');

/** Filesystem type mounted exactly at PATH ('' when nothing is). */
function fstype(path: string): string {
  for (const line of mountinfo()) {
    const f = line.split(' ');
    if (f[4] === path) return f[f.indexOf('-') + 1] ?? '';
  }
  return '';
}

function mountinfo(): string[] {
  return readFileSync('/proc/self/mountinfo', 'utf8').split('\n');
}

function mountCount(path: string): number {
  return mountinfo().filter((l) => l.split(' ')[4] === path).length;
}

function threadNamespaces(): Set<string> {
  return new Set(
    readdirSync('/proc/self/task').map((t) => readlinkSync(`/proc/self/task/${t}/ns/net`)),
  );
}

describe.skipIf(!isRoot)('NetworkNamespace', () => {
  let tmp: NetnsDir;
  const made: NetworkNamespace[] = [];
  const track = (ns: NetworkNamespace): NetworkNamespace => {
    made.push(ns);
    return ns;
  };

  /**
   * Two namespaces joined by a veth (eth0 in each, SUBNET's .1 and .2), from
   * podnet/testing, with IPv6 off so no stray packet moves a counter.
   */
  const pair = async (subnet: string): Promise<[NetworkNamespace, NetworkNamespace]> => {
    const topo = await createTopology({ dir: tmp.dir, subnet });
    const [a, b] = topo.hosts.map((h) => track(h.ns)) as [NetworkNamespace, NetworkNamespace];
    for (const ns of [a, b])
      await inNetns(ns.path, ['sysctl', '-q', '-w', 'net.ipv6.conf.all.disable_ipv6=1']);
    return [a, b];
  };

  beforeEach(() => {
    tmp = tempNetnsDir();
  });
  afterEach(async () => {
    for (const ns of made.splice(0)) await ns.remove();
    await tmp.cleanup();
  });

  it('creates an nsfs mount with its own inode, and remove leaves no file and no mount', async () => {
    const ns = track(await NetworkNamespace.create({ dir: tmp.dir, name: 'a' }));
    expect(ns.path).toBe(join(tmp.dir, 'a'));
    expect(fstype(ns.path)).toBe('nsfs');
    expect(statSync(ns.path).ino).toBe(ns.inode);
    expect(ns.inode).not.toBe(statSync('/proc/self/ns/net').ino);
    expect((statSync(tmp.dir).mode & 0o777).toString(8)).toMatch(/^7/);
    await ns.remove();
    expect(existsSync(ns.path)).toBe(false);
    expect(fstype(ns.path)).toBe('');
    await ns.remove(); // a second remove is a no-op
    expect(ns.closed).toBe(true);
  });

  it('names it cni-<uuid> by default and lists it; /run/netns by default, seen by ip netns', async () => {
    const ns = track(await NetworkNamespace.create({ dir: tmp.dir }));
    expect(ns.name).toMatch(
      /^cni-[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/,
    );
    writeFileSync(join(tmp.dir, 'not-a-namespace'), '');
    expect(await NetworkNamespace.list(tmp.dir)).toEqual([{ name: ns.name, path: ns.path }]);
    expect(await NetworkNamespace.list(join(tmp.dir, 'missing'))).toEqual([]);

    const name = `podnet-test-${uniq()}`;
    const def = track(await NetworkNamespace.create({ name }));
    expect(def.path).toBe(`/run/netns/${name}`);
    expect(await run(['ip', 'netns', 'list'])).toContain(name);
    await def.remove();
    expect(await run(['ip', 'netns', 'list'])).not.toContain(name);
  });

  it('refuses an existing name with EEXIST and leaves the existing namespace intact', async () => {
    const ns = track(await NetworkNamespace.create({ dir: tmp.dir, name: 'dup' }));
    const ino = ns.inode;
    const err = await NetworkNamespace.create({ dir: tmp.dir, name: 'dup' }).catch(
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(PodnetSystemError);
    expect(err).toMatchObject({ code: 'EEXIST', errno: -17, syscall: 'open', path: ns.path });
    expect((err as Error).message).toContain(`creating network namespace '${ns.path}'`);
    expect(statSync(ns.path).ino).toBe(ino);
    expect(mountCount(ns.path)).toBe(1);
    expect(ns.linkStatsSync('lo').rxPackets).toBe(0);
  });

  it('leaves nothing when the directory is not writable', async () => {
    const ro = join(tmp.dir, 'ro');
    await run(['mkdir', ro]);
    await run(['mount', '--bind', ro, ro]);
    await run(['mount', '-o', 'remount,bind,ro', ro]);
    try {
      const err = await NetworkNamespace.create({ dir: ro, name: 'x' }).catch((e: unknown) => e);
      expect(err).toMatchObject({ code: 'EROFS' });
      expect(readdirSync(ro)).toEqual([]);
    } finally {
      while (
        await run(['umount', ro]).then(
          () => true,
          () => false,
        )
      ) {}
    }
  });

  it('is safe when several processes create in a fresh directory at once', async () => {
    const dir = join(tmp.dir, 'fresh');
    const nsModule = new URL('../../../dist/index.js', import.meta.url).href;
    const script = `const { NetworkNamespace } = await import(${JSON.stringify(nsModule)});
      const all = await Promise.all([0,1,2,3,4].map((i) => NetworkNamespace.create({ dir: ${JSON.stringify(dir)}, name: process.argv[1] + '-' + i })));
      for (const ns of all) ns.close();`;
    await Promise.all(
      ['p0', 'p1', 'p2', 'p3'].map(
        (p) =>
          new Promise<void>((resolve, reject) => {
            const child = spawn(process.execPath, ['--input-type=module', '-e', script, p], {
              stdio: 'inherit',
            });
            child.on('exit', (code) =>
              code === 0 ? resolve() : reject(new Error(`child ${p} exited ${code}`)),
            );
          }),
      ),
    );
    const list = await NetworkNamespace.list(dir);
    expect(list).toHaveLength(20);
    // The directory was bind-mounted onto itself exactly once.
    expect(mountCount(dir)).toBe(1);
    for (const e of list) await (await NetworkNamespace.open(e.path)).remove();
  });

  it('fromPid pins the namespace of a process, which stays usable after it exits', async () => {
    const child = spawn('unshare', ['--net', 'sleep', '30'], { stdio: 'ignore' });
    try {
      // unshare execs sleep in place: wait until the pid's namespace differs from ours.
      for (let i = 0; i < 100 && readlinkSync(`/proc/${child.pid}/ns/net`) === hostNetns; i++) {
        await new Promise((r) => setTimeout(r, 10));
      }
      const ns = track(
        await NetworkNamespace.fromPid(child.pid!, { dir: tmp.dir, name: 'frompid' }),
      );
      expect(ns.inode).toBe(statSync(`/proc/${child.pid}/ns/net`).ino);
      expect(fstype(ns.path)).toBe('nsfs');
    } finally {
      child.kill('SIGKILL');
      await new Promise((r) => child.once('exit', r));
    }
    const [ns] = made;
    const links = await ns!.links();
    expect(links.map((l) => l.name)).toEqual(['lo']);
    // Opened afresh after the process is gone, through the mount alone.
    const again = await NetworkNamespace.open(ns!.path);
    expect(again.inode).toBe(ns!.inode);
    expect(again.linkStatsSync('lo').txBytes).toBe(0);
    again.close();
  });

  it('open checks that the path is a network namespace', async () => {
    const host = await NetworkNamespace.open('/proc/self/ns/net');
    expect(host.inode).toBe(statSync('/proc/self/ns/net').ino);
    expect((await host.links()).some((l) => l.name === 'lo')).toBe(true);
    await host[Symbol.asyncDispose](); // opened, not owned: closes only
    expect(existsSync('/proc/self/ns/net')).toBe(true);

    await expect(NetworkNamespace.open('/proc/self/ns/mnt')).rejects.toMatchObject({
      code: 'ERR_PODNET_NOT_A_NAMESPACE',
      message: expect.stringContaining('another type'),
    });
    const file = join(tmp.dir, 'file');
    writeFileSync(file, 'x');
    await expect(NetworkNamespace.open(file)).rejects.toBeInstanceOf(NotANamespaceError);
    await expect(NetworkNamespace.open(join(tmp.dir, 'missing'))).rejects.toMatchObject({
      code: 'ENOENT',
      syscall: 'open',
    });
    await expect(NetworkNamespace.open('/nonexistent-dir/x')).rejects.toMatchObject({
      code: 'ENOENT',
    });
    await expect(NetworkNamespace.open('')).rejects.toBeInstanceOf(InvalidArgumentError);
  });

  it('rejects bad names and pids with typed errors and creates nothing', async () => {
    const dir = join(tmp.dir, 'untouched');
    for (const name of ['', '.', '..', 'a/b', '../x', 'x\0y', 'n'.repeat(256)]) {
      await expect(NetworkNamespace.create({ dir, name })).rejects.toBeInstanceOf(
        InvalidArgumentError,
      );
      await expect(NetworkNamespace.fromPid(1, { dir, name })).rejects.toBeInstanceOf(
        InvalidArgumentError,
      );
    }
    for (const pid of [0, -1, 1.5, Number.NaN]) {
      await expect(NetworkNamespace.fromPid(pid, { dir })).rejects.toBeInstanceOf(
        InvalidArgumentError,
      );
    }
    expect(existsSync(dir)).toBe(false);
    const err = await NetworkNamespace.fromPid(2 ** 22 + 1, { dir: tmp.dir, name: 'nopid' }).catch(
      (e: unknown) => e,
    );
    expect(err).toMatchObject({
      code: 'ENOENT',
      syscall: 'open',
      path: `/proc/${2 ** 22 + 1}/ns/net`,
    });
    expect(readdirSync(tmp.dir)).toEqual([]);
    await expect(NetworkNamespace.create({ dir: '/nonexistent-dir/sub' })).rejects.toMatchObject({
      code: 'ENOENT',
    });
    expect(existsSync('/nonexistent-dir')).toBe(false);
  });

  it('moves traffic over a veth between two namespaces, and its counters agree with ip -s', async () => {
    const [a, b] = await pair('10.231.7.0/24');
    const before = { a: a.linkStatsSync('eth0'), b: await b.linkStats('eth0') };

    const received: Buffer[] = [];
    const server = net.createServer((s) => {
      s.on('data', (d) => received.push(d));
      s.on('end', () => s.end());
    });
    const addr = await a.listen(server, { host: '10.231.7.1', port: 0 });
    expect(addr.address).toBe('10.231.7.1');
    const sent = 1_000_000;
    const client = await b.connect({ host: '10.231.7.1', port: addr.port });
    expect(client.localAddress).toBe('10.231.7.2');
    client.end(Buffer.alloc(sent, 7));
    await new Promise((r) => client.on('close', r));
    await new Promise((r) => server.close(r));
    expect(Buffer.concat(received).length).toBe(sent);

    const after = { a: a.linkStatsSync('eth0'), b: b.linkStatsSync('eth0', { bigint: true }) };
    expect(after.a.rxBytes - before.a.rxBytes).toBeGreaterThanOrEqual(sent);
    expect(after.b.txBytes - BigInt(before.b.txBytes)).toBeGreaterThanOrEqual(BigInt(sent));
    expect(after.a.txPackets).toBeGreaterThan(before.a.txPackets);

    // The same figures as iproute2 reads them (IPv6 is off: no stray packets).
    const ipA = JSON.parse(
      await inNetns(a.path, ['ip', '-s', '-j', 'link', 'show', 'dev', 'eth0']),
    )[0].stats64;
    expect(after.a).toMatchObject({
      rxBytes: ipA.rx.bytes,
      rxPackets: ipA.rx.packets,
      txBytes: ipA.tx.bytes,
      txPackets: ipA.tx.packets,
      rxDropped: ipA.rx.dropped,
    });
    const links = await a.links();
    const va = links.find((l) => l.name === 'eth0')!;
    expect(va).toMatchObject({ kind: 'veth', mtu: 1500, up: true });
    expect(va.statistics.rxBytes).toBe(ipA.rx.bytes);
    expect(va.mac).toMatch(/^([0-9a-f]{2}:){5}[0-9a-f]{2}$/);
  });

  it('a server listening through ns.listen is reachable from inside, not from the host', async () => {
    const [a, b] = await pair('10.231.8.0/24');
    // A port free on the host's loopback, then used inside the namespace.
    const port = await freePort();

    const server = net.createServer((s) => s.end(`hello ${s.remoteAddress}`));
    await a.listen(server, { port }); // 0.0.0.0 inside a
    const read = async (s: net.Socket): Promise<string> => {
      const chunks: Buffer[] = [];
      for await (const c of s) chunks.push(c as Buffer);
      return Buffer.concat(chunks).toString();
    };
    expect(await read(await b.connect({ host: '10.231.8.1', port }))).toBe('hello 10.231.8.2');
    expect(await read(await a.connect({ host: '127.0.0.1', port }))).toBe('hello 127.0.0.1');
    const fromHost = await new Promise<unknown>((resolve) => {
      const s = net.connect(port, '127.0.0.1');
      s.on('connect', () => resolve('connected'));
      s.on('error', resolve);
    });
    expect(fromHost).toMatchObject({ code: 'ECONNREFUSED' });
    // Same for a connect from b to an address nobody listens on.
    await expect(
      b.connect({ host: '10.231.8.1', port: port === 65535 ? 1 : port + 1 }),
    ).rejects.toMatchObject({
      code: 'ECONNREFUSED',
    });
    await new Promise((r) => server.close(r));
  });

  it('socket() hands back fds opened inside; IPv6 listen and UDP work', async () => {
    const a = track(await NetworkNamespace.create({ dir: tmp.dir, name: 'a' }));
    await inNetns(a.path, ['ip', 'link', 'set', 'lo', 'up']);
    const fd = await a.socket({ type: 'tcp6' });
    const server = net.createServer((s) => s.end('six'));
    await new Promise<void>((r) => server.listen({ fd }, r));
    const { port } = server.address() as net.AddressInfo;
    const ss = await inNetns(a.path, ['ss', '-Htln']);
    expect(ss).toContain(`:${port}`);
    const c = await a.connect({ host: '::1', port });
    const chunks: Buffer[] = [];
    for await (const x of c) chunks.push(x as Buffer);
    expect(Buffer.concat(chunks).toString()).toBe('six');
    await new Promise((r) => server.close(r));

    const s6 = net.createServer();
    expect((await a.listen(s6, { host: '::1' })).family).toBe('IPv6');
    await new Promise((r) => s6.close(r));
    const udp = await a.socket({ type: 'udp4' });
    expect(readlinkSync(`/proc/self/fd/${udp}`)).toMatch(/^socket:/);
    closeSync(udp);
    await expect(a.socket({ type: 'raw' as never })).rejects.toBeInstanceOf(InvalidArgumentError);
    await expect(a.listen(net.createServer(), { host: 'localhost' })).rejects.toBeInstanceOf(
      InvalidArgumentError,
    );
  });

  it('sockets() opens a batch inside the namespace, all O_CLOEXEC, or refuses a bad count', async () => {
    const a = track(await NetworkNamespace.create({ dir: tmp.dir, name: 'a' }));
    await a.setLinkUp('lo');
    const server = net.createServer((s) => s.end('inside'));
    const { port } = await a.listen(server, { host: '127.0.0.1' });
    const fds = await a.sockets({ type: 'tcp4', count: 5 });
    expect(new Set(fds).size).toBe(5);
    for (const fd of fds) {
      const flags = /^flags:\s+(\d+)$/m.exec(readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8'))?.[1];
      expect(Number.parseInt(flags ?? '0', 8) & 0o2000000).not.toBe(0); // O_CLOEXEC
    }
    // Each reaches the server on the namespace's own loopback.
    const replies = await Promise.all(
      fds.map(
        (fd) =>
          new Promise<string>((resolve, reject) => {
            const s = new net.Socket({ fd, readable: true, writable: true });
            const chunks: Buffer[] = [];
            s.on('data', (d: Buffer) => chunks.push(d));
            s.on('end', () => resolve(Buffer.concat(chunks).toString()));
            s.on('error', reject);
            s.connect(port, '127.0.0.1');
          }),
      ),
    );
    expect(replies).toEqual(Array(5).fill('inside'));
    await new Promise((r) => server.close(r));
    const udp = await a.sockets({ type: 'udp6', count: 2 });
    for (const fd of udp) closeSync(fd);
    for (const count of [0, 1.5, 254, undefined]) {
      await expect(a.sockets({ type: 'tcp4', count: count as number })).rejects.toBeInstanceOf(
        InvalidArgumentError,
      );
    }
    await expect(a.sockets({ type: 'sctp' as never, count: 1 })).rejects.toBeInstanceOf(
      InvalidArgumentError,
    );
  });

  it('reports a missing interface by name and namespace; close keeps the mount', async () => {
    const a = track(await NetworkNamespace.create({ dir: tmp.dir, name: 'a' }));
    expect(() => a.linkStatsSync()).toThrow(LinkNotFoundError);
    const err = await a.linkStats('nope0').catch((e: unknown) => e);
    expect(err).toMatchObject({
      code: 'ERR_PODNET_LINK_NOT_FOUND',
      ifname: 'nope0',
      netns: a.path,
    });
    expect(() => a.linkStatsSync('x'.repeat(16))).toThrow(InvalidArgumentError);
    a.close();
    a.close();
    expect(fstype(a.path)).toBe('nsfs');
    expect(() => a.linkStatsSync('lo')).toThrow(/closed/);
    await a.remove();
    expect(existsSync(a.path)).toBe(false);
  });

  it('creates veths, sets links up and adds addresses through netlink, as ip sees them', async () => {
    const a = track(await NetworkNamespace.create({ dir: tmp.dir, name: 'a' }));
    const b = track(await NetworkNamespace.create({ dir: tmp.dir, name: 'b' }));
    await a.setLinkUp('lo');
    await a.addVeth('va', { name: 'vb', netns: b }, { mtu: 9000 });
    await a.setLinkUp('va');
    await b.setLinkUp('vb');
    await a.addAddress('va', '10.231.9.1/24');
    await a.addAddress('va', 'fd00:231:9::1/64');
    await b.addAddress('vb', '10.231.9.2/24');
    const [ipA] = (await ipAddrs(a.path, 'va')) as [IpAddr];
    expect(ipA.mtu).toBe(9000);
    expect(ipA.flags).toContain('UP');
    expect(
      ipA.addr_info.map((x: { local: string; prefixlen: number }) => `${x.local}/${x.prefixlen}`),
    ).toEqual(expect.arrayContaining(['10.231.9.1/24', 'fd00:231:9::1/64']));
    expect((await a.link('lo')).up).toBe(true);
    expect((await b.link('vb')).kind).toBe('veth');

    const server = net.createServer((s) => s.end('over netlink'));
    const { port } = await a.listen(server, { host: '10.231.9.1' });
    const c = await b.connect({ host: '10.231.9.1', port });
    const chunks: Buffer[] = [];
    for await (const x of c) chunks.push(x as Buffer);
    expect(Buffer.concat(chunks).toString()).toBe('over netlink');
    await new Promise((r) => server.close(r));

    await expect(a.addVeth('va', { name: 'vc' })).rejects.toMatchObject({
      code: 'EEXIST',
      syscall: 'netlink',
    });
    await expect(a.setLinkUp('nope')).rejects.toBeInstanceOf(LinkNotFoundError);
    await expect(a.addAddress('va', '10.0.0.1')).rejects.toBeInstanceOf(InvalidArgumentError);
    await a.deleteLink('va');
    expect((await b.links()).map((l) => l.name)).toEqual(['lo']);
    await expect(a.deleteLink('va')).rejects.toBeInstanceOf(LinkNotFoundError);
  });

  it('await using removes an owned namespace', async () => {
    let path = '';
    {
      await using ns = await NetworkNamespace.create({ dir: tmp.dir });
      path = ns.path;
      expect(fstype(path)).toBe('nsfs');
    }
    expect(existsSync(path)).toBe(false);
  });

  it('1,000 create/remove cycles leave fds and mounts where they were', async () => {
    // The first create makes the directory a shared bind mount: count after it.
    await (await NetworkNamespace.create({ dir: tmp.dir, name: 'warm' })).remove();
    const fds = readdirSync('/proc/self/fd').length;
    const mounts = mountinfo().length;
    for (let i = 0; i < 1000; i++) {
      const ns = await NetworkNamespace.create({ dir: tmp.dir, name: `c${i}` });
      if (i % 100 === 0) ns.linkStatsSync('lo'); // opens the netlink socket too
      await ns.remove();
    }
    expect(readdirSync('/proc/self/fd').length).toBe(fds);
    expect(mountinfo().length).toBe(mounts);
    expect(readdirSync(tmp.dir)).toEqual([]);
  });

  it('closes the fds of a handle dropped without close() when it is collected', async () => {
    const ns = track(await NetworkNamespace.create({ dir: tmp.dir, name: 'dropped' }));
    const script = `
      import { readdirSync } from 'node:fs';
      const { NetworkNamespace } = await import(${JSON.stringify(new URL('../../../dist/index.js', import.meta.url).href)});
      const fds = () => readdirSync('/proc/self/fd').length;
      const before = fds();
      for (let i = 0; i < 200; i++) (await NetworkNamespace.open(process.argv[1])).linkStatsSync('lo');
      const held = fds() - before;
      for (let i = 0; i < 3; i++) { globalThis.gc(); await new Promise((r) => setTimeout(r, 50)); }
      console.log(JSON.stringify({ held, left: fds() - before }));`;
    const out = await run([
      process.execPath,
      '--expose-gc',
      '--input-type=module',
      '-e',
      script,
      ns.path,
    ]);
    const { held, left } = JSON.parse(out);
    expect(held).toBeGreaterThanOrEqual(200); // the namespace fds and their netlink sockets
    expect(left).toBeLessThan(10);
  });

  it('never moves a JS or libuv pool thread out of the host namespace', async () => {
    const a = track(await NetworkNamespace.create({ dir: tmp.dir, name: 'a' }));
    await Promise.all([
      ...Array.from({ length: 8 }, () => a.socket({ type: 'tcp4' }).then((fd) => closeSync(fd))),
      ...Array.from({ length: 8 }, () => a.linkStats('lo')),
      a.links(),
      NetworkNamespace.create({ dir: tmp.dir, name: 'b' }).then((b) => b.remove()),
    ]);
    a.linkStatsSync('lo');
    const spaces = threadNamespaces();
    expect([...spaces]).toEqual([hostNetns]);
    expect(readdirSync('/proc/self/task').length).toBeGreaterThan(1); // the pool threads were there to check
  });
});

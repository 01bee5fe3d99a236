// The 'slirp4netns' mode of Networking, as root: a new namespace with
// slirp4netns on tap0, ports published through slirp4netns's API or
// podnet's forwarder, and the engine's death seen by the attachment.
import { spawn } from 'node:child_process';
import dgram from 'node:dgram';
import diagnosticsChannel from 'node:diagnostics_channel';
import { existsSync, readdirSync } from 'node:fs';
import net from 'node:net';
import { dirname } from 'node:path';
import { describe, expect, it } from 'vitest';
import { InvalidArgumentError, pastaContainerAddress } from '../../../src/index.js';
import { probePasta } from '../../../src/rootless/index.js';
import { freePort, isRoot, readFromLoopback } from '../../helpers/host.js';
import { netEnvPerTest } from '../../helpers/network-env.js';
import { running } from '../../helpers/process.js';
import { reportSkip } from '../../helpers/skip.js';

const haveSlirp = ['/usr/bin/slirp4netns', '/bin/slirp4netns'].some((p) => existsSync(p));
reportSkip(
  'slirp4netns mode tests',
  isRoot && !haveSlirp ? 'slirp4netns is not installed' : undefined,
);

const havePasta = existsSync('/usr/bin/pasta');
reportSkip('pasta mode tests', isRoot && !havePasta ? 'pasta (passt) is not installed' : undefined);

describe.skipIf(!isRoot || !haveSlirp)("Networking, mode 'slirp4netns'", () => {
  const envs = netEnvPerTest();

  for (const handler of ['slirp4netns', 'rootlesskit'] as const) {
    it(`publishes a port through port_handler=${handler}; its counter (tap0, or the forwarder's and lo) moves; teardown stops the engine`, async () => {
      const env = await envs.use(0);
      const port = await freePort();
      const a = await env.net().setup({
        id: `slirp-${handler}`,
        name: 's',
        mode: 'slirp4netns',
        modeOptions: [`port_handler=${handler}`],
        portMappings: [{ hostIP: '127.0.0.1', hostPort: port, containerPort: 8080 }],
      });
      const slirp = a.slirp4netns!;
      expect(a.state.helpers).toEqual([
        {
          kind: 'slirp4netns',
          pid: slirp.pid,
          startTime: expect.any(String),
          dir: dirname(slirp.logPath),
        },
      ]);
      const server = net.createServer((s) => s.end(`peer ${s.remoteAddress}`));
      await a.netns!.listen(server, { port: 8080 });
      const reply = await readFromLoopback(port);
      server.close();
      // Both handlers deliver from a non-loopback peer inside (CVE-2021-20199).
      expect(reply).toMatch(/^peer /);
      expect(reply).not.toBe('peer 127.0.0.1');
      const stats = await a.stats();
      expect(stats.interfaces.map((i) => i.name)).toEqual(['tap0']);
      // slirp4netns delivers over tap0; the forwarder dials from inside the
      // namespace, so its traffic never crosses tap0 but lo, and the
      // forwarder counts it per port, in the container's view.
      if (handler === 'slirp4netns') {
        expect(stats.publishedVia).toBe('tap0');
        expect(stats.total.rxBytes).toBeGreaterThan(0);
        expect(stats.ports).toBeUndefined();
      } else {
        expect(stats.publishedVia).toBe('forwarder');
        expect(stats.ports).toEqual([
          {
            hostIP: '127.0.0.1',
            hostPort: port,
            containerPort: 8080,
            protocol: 'tcp',
            connections: 1,
            // The client's own FIN may not have reached the forwarder yet.
            active: expect.any(Number),
            rxBytes: 0, // the client only reads
            txBytes: Buffer.byteLength(reply),
            rxDatagrams: 0,
            txDatagrams: 0,
          },
        ]);
        const withLo = await a.stats({ loopback: 'published', loopbackInTotal: true });
        const lo = withLo.interfaces.find((i) => i.name === 'lo');
        expect(lo?.loopback).toBe(true);
        // The server's reply crossed lo once (sent and received there).
        expect(lo!.stats.rxBytes).toBeGreaterThan(Buffer.byteLength(reply));
        expect(withLo.total.rxBytes).toBe(
          withLo.interfaces.reduce((n, i) => n + i.stats.rxBytes, 0),
        );
      }
      expect(a.inspect().Ports).toEqual({
        '8080/tcp': [{ HostIp: '127.0.0.1', HostPort: String(port) }],
      });
      await a.teardown();
      expect(running(slirp.pid)).toBe(false);
      await expect(readFromLoopback(port)).rejects.toMatchObject({ code: 'ECONNREFUSED' });
    });
  }

  it('port_handler=rootlesskit forwards UDP, and TCP from an IPv6 host address', async () => {
    const env = await envs.use(0);
    const [udpPort, tcpPort] = [await freePort(), await freePort()];
    const a = await env.net().setup({
      id: 'slirp-udp',
      name: 's',
      mode: 'slirp4netns',
      modeOptions: ['port_handler=rootlesskit'],
      portMappings: [
        { hostIP: '127.0.0.1', hostPort: udpPort, containerPort: 5353, protocol: 'udp' },
        { hostIP: '::1', hostPort: tcpPort, containerPort: 8080 },
      ],
    });
    // A UDP echo inside the namespace, in a process of its own.
    const echo = spawn(
      'nsenter',
      [
        `--net=${a.netns!.path}`,
        process.execPath,
        '-e',
        `const s = require('node:dgram').createSocket('udp4');
         s.on('message', (m, r) => s.send(Buffer.concat([Buffer.from('echo '), m]), r.port, r.address));
         s.bind(5353, '0.0.0.0', () => console.log('ready'));`,
      ],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    const server = net.createServer((s) => s.end(`peer ${s.remoteAddress}`));
    try {
      await new Promise((r) => echo.stdout!.once('data', r));
      const client = dgram.createSocket('udp4');
      const reply = new Promise<string>((r) => client.once('message', (m) => r(m.toString())));
      client.send('hello', udpPort, '127.0.0.1');
      expect(await reply).toBe('echo hello');
      client.close();
      await a.netns!.listen(server, { port: 8080 });
      const tcp = await new Promise<string>((resolve, reject) => {
        const c = net.connect(tcpPort, '::1');
        const chunks: Buffer[] = [];
        c.on('data', (d: Buffer) => chunks.push(d));
        c.on('end', () => resolve(Buffer.concat(chunks).toString()));
        c.on('error', reject);
      });
      expect(tcp).toMatch(/^peer /);
      expect(tcp).not.toBe('peer 127.0.0.1');
      // Each port's own counters: one datagram each way, one connection.
      const { ports } = await a.stats();
      expect(ports?.map((p) => [p.protocol, p.hostPort])).toEqual([
        ['udp', udpPort],
        ['tcp', tcpPort],
      ]);
      expect(ports![0]).toMatchObject({
        connections: 0,
        rxDatagrams: 1,
        txDatagrams: 1,
        rxBytes: 'hello'.length,
        txBytes: 'echo hello'.length,
      });
      expect(ports![1]).toMatchObject({ connections: 1, rxBytes: 0, txBytes: tcp.length });
    } finally {
      server.close();
      const exited = new Promise((r) => echo.once('exit', r));
      echo.kill('SIGKILL');
      await exited;
      await a.teardown();
    }
  });

  it('the attachment reports when slirp4netns dies, and teardown still cleans up', async () => {
    const env = await envs.use(0);
    const seen: { name: string; message: Record<string, unknown> }[] = [];
    const listeners = (['podnet:slirp:start', 'podnet:slirp:exit'] as const).map((name) => {
      const fn = (message: unknown): void => {
        seen.push({ name, message: message as Record<string, unknown> });
      };
      diagnosticsChannel.subscribe(name, fn);
      return () => diagnosticsChannel.unsubscribe(name, fn);
    });
    const a = await env.net().setup({ id: 'slirp-dies', name: 's', mode: 'slirp4netns' });
    const slirp = a.slirp4netns!;
    process.kill(slirp.pid, 'SIGKILL');
    const exit = await Promise.race([
      slirp.exited,
      new Promise((r) => setTimeout(() => r('late'), 2000)),
    ]);
    expect(exit).toMatchObject({ signal: 'SIGKILL', requested: false });
    for (const off of listeners) off();
    expect(seen).toEqual([
      { name: 'podnet:slirp:start', message: expect.objectContaining({ pid: slirp.pid }) },
      {
        name: 'podnet:slirp:exit',
        message: expect.objectContaining({ pid: slirp.pid, signal: 'SIGKILL' }),
      },
    ]);
    await a.teardown();
    expect(existsSync(a.state.netnsPath)).toBe(false);
  });

  it('another Networking (as another process would) tears it down and stops the engine by pid', async () => {
    const env = await envs.use(0);
    const a = await env.net().setup({ id: 'slirp-elsewhere', name: 's', mode: 'slirp4netns' });
    const pid = a.slirp4netns!.pid;
    await (await env.net().load('slirp-elsewhere')).teardown();
    await Promise.race([a.slirp4netns!.exited, new Promise((r) => setTimeout(r, 3000))]);
    expect(running(pid)).toBe(false);
    // This process still owns its handle (log, socket dir): its teardown
    // after the other one's is fine and releases them.
    await a.teardown();
  });

  it('bad options and ports are refused before anything is made', async () => {
    const env = await envs.use(0);
    const nw = env.net();
    await expect(
      nw.setup({ id: 'bad', name: 'b', mode: 'slirp4netns', modeOptions: ['no_such_option=1'] }),
    ).rejects.toBeInstanceOf(InvalidArgumentError);
    await expect(
      nw.setup({
        id: 'bad',
        name: 'b',
        mode: 'slirp4netns',
        modeOptions: ['port_handler=slirp4netns'],
        portMappings: [{ hostIP: '::1', hostPort: 8080, containerPort: 80 }],
      }),
    ).rejects.toBeInstanceOf(InvalidArgumentError);
    await expect(
      nw.setup({ id: 'bad', name: 'b', mode: 'pasta', modeOptions: ['--runas', '1000'] }),
    ).rejects.toBeInstanceOf(InvalidArgumentError);
    expect(readdirSync(env.netnsDir)).toEqual([]);
  });
});

/** What a client on the host's loopback gets from a port: the reply, or the error's code. */
function replyOrError(port: number): Promise<string> {
  return readFromLoopback(port).then(
    (text) => `reply ${JSON.stringify(text)}`,
    (err: NodeJS.ErrnoException) => `error ${err.code}`,
  );
}

describe.skipIf(!isRoot || !havePasta)("Networking, mode 'pasta'", () => {
  const envs = netEnvPerTest();

  it('publishes ports with a non-loopback peer inside; a server on 127.0.0.1 inside is not reachable; teardown stops all', async () => {
    const env = await envs.use(0);
    const [port, loPort] = [await freePort(), await freePort()];
    const a = await env.net().setup({
      id: 'pasta-1',
      name: 'p',
      mode: 'pasta',
      portMappings: [
        { hostIP: '127.0.0.1', hostPort: port, containerPort: 8080 },
        { hostIP: '127.0.0.1', hostPort: loPort, containerPort: 8081 },
      ],
    });
    const pasta = a.pasta!;
    expect(a.state.helpers).toEqual([
      {
        kind: 'pasta',
        pid: pasta.pid,
        startTime: expect.any(String),
        dir: dirname(pasta.logPath),
      },
    ]);
    const binary = await probePasta();
    // This machine's pasta decides who publishes: podnet's forwarder when
    // pasta would splice a loopback client into the namespace's loopback.
    expect(pasta.args.includes(`127.0.0.1/${port}:8080`)).toBe(!binary.splicesLoopback);
    const address = await pastaContainerAddress(a.netns!);
    const server = net.createServer((s) => s.end(`peer ${s.remoteAddress}`));
    await a.netns!.listen(server, { port: 8080 });
    const local = net.createServer((s) => s.end('loopback only'));
    await a.netns!.listen(local, { port: 8081, host: '127.0.0.1' });
    try {
      // The forwarder (or a new pasta) dials the container's own address:
      // the peer is that address, never 127.0.0.1 (CVE-2021-20199).
      expect(await readFromLoopback(port)).toBe(`peer ${address}`);
      expect(address).not.toMatch(/^127\./);
      // The loopback-only server answers inside, and not on its published port.
      const inside = await a.netns!.connect({ host: '127.0.0.1', port: 8081 });
      const text = await new Promise<string>((resolve) => {
        let t = '';
        inside.on('data', (d: Buffer) => {
          t += d;
        });
        inside.on('end', () => resolve(t));
      });
      expect(text).toBe('loopback only');
      expect(await replyOrError(loPort)).toMatch(/^(reply ""|error ECONNRESET)$/);
    } finally {
      server.close();
      local.close();
    }
    // Loopback clients cross the namespace's lo either way: pasta splices
    // them to the container's address, or podnet's forwarder dials it.
    const stats = await a.stats({ loopback: true });
    expect(stats.interfaces.length).toBeGreaterThan(1);
    expect(stats.publishedVia).toBe(binary.splicesLoopback ? 'forwarder' : 'lo');
    const lo = stats.interfaces.find((i) => i.loopback === true);
    expect(lo?.name).toBe('lo');
    expect(lo!.stats.rxBytes).toBeGreaterThan(0);
    // Not in the total unless asked.
    expect(stats.total.rxBytes).toBe(
      stats.interfaces.filter((i) => !i.loopback).reduce((n, i) => n + i.stats.rxBytes, 0),
    );
    if (binary.splicesLoopback) {
      const [published] = stats.ports!;
      expect(published).toMatchObject({ hostPort: port, containerPort: 8080, connections: 1 });
      expect(published!.txBytes).toBe(`peer ${address}`.length);
    }
    await a.teardown();
    expect(running(pasta.pid)).toBe(false);
    await expect(readFromLoopback(port)).rejects.toMatchObject({ code: 'ECONNREFUSED' });
  });

  it("pasta's own -t is refused where this pasta would splice loopback clients, and nothing is left", async () => {
    const env = await envs.use(0);
    const port = await freePort();
    const setup = env
      .net()
      .setup({ id: 'own-t', name: 'p', mode: 'pasta', modeOptions: ['-t', `${port}:8080`] });
    if ((await probePasta()).splicesLoopback) {
      await expect(setup).rejects.toThrow(
        new RegExp(`^pasta option '-t ${port}:8080': this pasta .* would splice loopback clients`),
      );
    } else {
      const a = await setup;
      expect(a.pasta!.args).toEqual(expect.arrayContaining(['-t', `${port}:8080`]));
      await a.teardown();
    }
    expect(await env.leftovers()).toEqual([]);
  });

  it("as root, pasta's --pcap is refused before anything is made", async () => {
    const env = await envs.use(0);
    const nw = env.net();
    await expect(
      nw.setup({ id: 'pcap', name: 'p', mode: 'pasta', modeOptions: ['--pcap', '/tmp/x.pcap'] }),
    ).rejects.toThrow(/^pasta option '--pcap': as root/);
    expect(await env.leftovers()).toEqual([]);
  });
});

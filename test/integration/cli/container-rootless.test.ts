// `podnet up --mode slirp4netns` exits at once, so a keeper process owns
// slirp4netns and the forwarder until `podnet down` (in another process).
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { NetworkNamespace, pastaContainerAddress } from '../../../src/index.js';
import { probePasta } from '../../../src/rootless/index.js';
import {
  freePort,
  isRoot,
  type NetnsDir,
  readFromLoopback,
  TEST_PREFIX,
  tempNetnsDir,
} from '../../helpers/host.js';
import { podnet, run, running } from '../../helpers/process.js';
import { reportSkip } from '../../helpers/skip.js';

const haveSlirp = existsSync('/usr/bin/slirp4netns');
reportSkip(
  'podnet up --mode slirp4netns tests',
  isRoot && !haveSlirp ? 'slirp4netns is not installed' : undefined,
);

describe.skipIf(!isRoot || !haveSlirp)('podnet up --mode slirp4netns (keeper process)', () => {
  let ns: NetnsDir;
  let stateDir: string;
  let dirs: string[];
  beforeEach(() => {
    ns = tempNetnsDir();
    stateDir = mkdtempSync(join(tmpdir(), TEST_PREFIX));
    dirs = ['--state-dir', stateDir, '--netns-dir', ns.dir];
  });
  afterEach(async () => {
    for (const f of readdirSync(stateDir))
      await podnet(['down', f.replace(/\.json$/, ''), ...dirs]);
    await ns.cleanup();
    rmSync(stateDir, { recursive: true, force: true });
  });

  const state = (id: string) => JSON.parse(readFileSync(join(stateDir, `${id}.json`), 'utf8'));

  it('up, traffic through the published port, stats, down: each its own process', async () => {
    const port = await freePort();
    const up = await podnet([
      'up',
      'kept',
      '--mode',
      'slirp4netns',
      '-p',
      `127.0.0.1:${port}:8080`,
      ...dirs,
    ]);
    expect(up.stderr).toBe('');
    expect(up.code).toBe(0);
    const { helpers, netnsPath } = state('kept');
    expect(helpers.map((h: { kind: string }) => h.kind)).toEqual(['keeper', 'slirp4netns']);
    for (const h of helpers) expect(running(h.pid)).toBe(true);

    const inside = await NetworkNamespace.open(netnsPath);
    const server = net.createServer((s) => s.end(`peer ${s.remoteAddress}`));
    await inside.listen(server, { port: 8080 });
    const reply = await readFromLoopback(port);
    server.close();
    inside.close();
    expect(reply).toBe('peer 10.0.2.100'); // the forwarder dials the container's address, not 127.0.0.1

    // stats, another process, asks the keeper for its forwarder's counters;
    // lo, which the forwarder's connection crossed, is listed too, flagged.
    const stats = JSON.parse((await podnet(['stats', 'kept', '--json', ...dirs])).stdout);
    expect(stats[0].interfaces.map((i: { name: string }) => i.name)).toEqual(['tap0', 'lo']);
    expect(stats[0].interfaces[1].loopback).toBe(true);
    expect(stats[0].interfaces[1].stats.rxBytes).toBeGreaterThan(reply.length);
    expect(stats[0].publishedVia).toBe('forwarder');
    expect(stats[0].ports).toEqual([
      {
        hostIP: '127.0.0.1',
        hostPort: port,
        containerPort: 8080,
        protocol: 'tcp',
        connections: 1,
        active: expect.any(Number),
        rxBytes: 0,
        txBytes: reply.length,
        rxDatagrams: 0,
        txDatagrams: 0,
      },
    ]);
    const text = (await podnet(['stats', 'kept', ...dirs])).stdout;
    expect(text).toMatch(/lo \(loopback\)/);
    expect(text).toContain(`127.0.0.1:${port}->8080/tcp`);
    const exposition = (await podnet(['stats', 'kept', '--format', 'openmetrics', ...dirs])).stdout;
    expect(exposition).toContain(
      `podnet_published_port_transmit_bytes_total{id="kept",name="kept",host_ip="127.0.0.1",host_port="${port}",container_port="8080",protocol="tcp"} ${reply.length}\n`,
    );

    const down = await podnet(['down', 'kept', ...dirs]);
    expect(down.code).toBe(0);
    for (const h of helpers) expect(running(h.pid)).toBe(false);
    expect(existsSync(netnsPath)).toBe(false);
    expect(readdirSync(stateDir)).toEqual([]);
  });

  it('-p HOSTIP::CTRPORT and -p CTRPORT get a free host port that inspect shows and traffic reaches', async () => {
    const up = await podnet([
      'up',
      'free',
      '--mode',
      'slirp4netns',
      '-p',
      '127.0.0.1::8080',
      '-p',
      '8081',
      '--json',
      ...dirs,
    ]);
    expect(up.stderr).toBe('');
    expect(up.code).toBe(0);
    const ports = JSON.parse(up.stdout).Ports as Record<
      string,
      { HostIp: string; HostPort: string }[]
    >;
    expect(Object.keys(ports)).toEqual(['8080/tcp', '8081/tcp']);
    const [onLoopback] = ports['8080/tcp']!;
    const [onAll] = ports['8081/tcp']!;
    expect(onLoopback!.HostIp).toBe('127.0.0.1');
    expect(onAll!.HostIp).toBe('');
    const chosen = [Number(onLoopback!.HostPort), Number(onAll!.HostPort)];
    for (const p of chosen) expect(p).toBeGreaterThan(0);
    expect(chosen[0]).not.toBe(chosen[1]);
    // Recorded in the state: another process's inspect shows the same ports.
    const inspect = await podnet(['inspect', 'free', ...dirs]);
    expect(JSON.parse(inspect.stdout).Ports).toEqual(ports);
    expect(state('free').portMappings.map((m: { hostPort: number }) => m.hostPort)).toEqual(chosen);

    const inside = await NetworkNamespace.open(state('free').netnsPath);
    const servers = [8080, 8081].map((p) => net.createServer((s) => s.end(`port ${p}`)));
    try {
      await inside.listen(servers[0]!, { port: 8080 });
      await inside.listen(servers[1]!, { port: 8081 });
      expect(await readFromLoopback(chosen[0]!)).toBe('port 8080');
      expect(await readFromLoopback(chosen[1]!)).toBe('port 8081');
    } finally {
      for (const s of servers) s.close();
      inside.close();
    }
    expect((await podnet(['down', 'free', ...dirs])).code).toBe(0);
  });

  it('the keeper exits when slirp4netns dies; down still cleans up', async () => {
    expect((await podnet(['up', 'dies', '--mode', 'slirp4netns', ...dirs])).code).toBe(0);
    const [keeper, slirp] = state('dies').helpers as { pid: number }[];
    process.kill(slirp!.pid, 'SIGKILL');
    for (let i = 0; i < 100 && running(keeper!.pid); i++)
      await new Promise((r) => setTimeout(r, 20));
    expect(running(keeper!.pid)).toBe(false);
    expect((await podnet(['down', 'dies', ...dirs])).code).toBe(0);
    expect(readdirSync(ns.dir)).toEqual([]);
  });

  it.skipIf(!existsSync('/usr/bin/pasta'))(
    'up --mode pasta publishes ports through a keeper: a non-loopback peer inside, nothing of 127.0.0.1 inside; down stops it',
    async () => {
      const [port, loPort] = [await freePort(), await freePort()];
      const up = await podnet([
        'up',
        'pasta1',
        '--mode',
        'pasta',
        '-p',
        `127.0.0.1:${port}:8080`,
        '-p',
        `127.0.0.1:${loPort}:8081`,
        ...dirs,
      ]);
      expect(up.stderr).toBe('');
      expect(up.code).toBe(0);
      const { helpers, netnsPath } = state('pasta1');
      expect(helpers.map((h: { kind: string }) => h.kind)).toEqual(['keeper', 'pasta']);
      expect(readFileSync(`/proc/${helpers[1].pid}/comm`, 'utf8').trim()).toMatch(/^pas(ta|st)/); // pasta runs as passt.avx2 where the CPU allows
      const inside = await NetworkNamespace.open(netnsPath);
      const address = await pastaContainerAddress(inside);
      const server = net.createServer((s) => s.end(`peer ${s.remoteAddress}`));
      await inside.listen(server, { port: 8080 });
      const local = net.createServer((s) => s.end('loopback only'));
      await inside.listen(local, { port: 8081, host: '127.0.0.1' });
      try {
        // Whoever publishes (pasta itself, or the keeper's forwarder where
        // this pasta would splice loopback clients), the peer is the
        // container's own address (CVE-2021-20199).
        expect(await readFromLoopback(port)).toBe(`peer ${address}`);
        const reached = await readFromLoopback(loPort).then(
          (text) => `reply ${JSON.stringify(text)}`,
          (err: NodeJS.ErrnoException) => `error ${err.code}`,
        );
        expect(reached).toMatch(/^(reply ""|error ECONNRESET)$/);
      } finally {
        server.close();
        local.close();
        inside.close();
      }
      // The loopback client crossed the namespace's lo (pasta's splice, or
      // the keeper's forwarder), which stats then lists, flagged.
      const [stats] = JSON.parse((await podnet(['stats', 'pasta1', '--json', ...dirs])).stdout);
      const lo = stats.interfaces.find((i: { name: string }) => i.name === 'lo');
      expect(lo.loopback).toBe(true);
      expect(lo.stats.rxBytes).toBeGreaterThan(`peer ${address}`.length);
      if ((await probePasta()).splicesLoopback) {
        expect(stats.publishedVia).toBe('forwarder');
        expect(stats.ports[0]).toMatchObject({ hostPort: port, connections: 1 });
        expect(stats.ports[0].txBytes).toBe(`peer ${address}`.length);
      } else {
        expect(stats.publishedVia).toBe('lo');
      }
      expect((await podnet(['down', 'pasta1', ...dirs])).code).toBe(0);
      for (const h of helpers) expect(running(h.pid)).toBe(false);
    },
  );

  it('gc stops the keeper of a setup whose process died after starting it', async () => {
    // The CLI process is killed right after the keeper started: its state
    // (phase 'setup', owner dead) already names the keeper and slirp4netns.
    const script = `
      import dc from 'node:diagnostics_channel';
      const { Networking } = await import(${JSON.stringify(new URL('../../../dist/index.js', import.meta.url).href)});
      dc.subscribe('podnet:network:setup', (m) => { if (m.phase === 'slirp4netns') process.kill(process.pid, 'SIGKILL'); });
      await new Networking({ keeper: true, stateDir: process.argv[1], netnsDir: process.argv[2] })
        .setup({ id: 'orphan', name: 'o', mode: 'slirp4netns' });`;
    await run([process.execPath, '--input-type=module', '-e', script, stateDir, ns.dir]).catch(
      () => undefined,
    );
    const { helpers } = state('orphan');
    expect(helpers.map((h: { kind: string }) => h.kind)).toEqual(['keeper', 'slirp4netns']);
    for (const h of helpers) expect(running(h.pid)).toBe(true);
    const gc = JSON.parse((await podnet(['gc', '--json', ...dirs])).stdout);
    expect(gc.removedStates).toEqual(['orphan']);
    for (const h of helpers) expect(running(h.pid)).toBe(false);
    expect(readdirSync(ns.dir)).toEqual([]);
  });

  it('a failure inside the keeper (host port taken) is reported and leaves nothing', async () => {
    const taken = net.createServer().listen(0, '127.0.0.1');
    await new Promise((r) => taken.once('listening', r));
    const { port } = taken.address() as net.AddressInfo;
    try {
      const up = await podnet([
        'up',
        'busy',
        '--mode',
        'slirp4netns',
        '-p',
        `127.0.0.1:${port}:80`,
        ...dirs,
      ]);
      expect(up.code).toBe(1);
      expect(up.stderr).toMatch(
        new RegExp(`127\\.0\\.0\\.1:${port}.*\\[ERR_PODNET_PORT_IN_USE\\]\\n$`),
      );
      expect(readdirSync(stateDir)).toEqual([]);
      expect(readdirSync(ns.dir)).toEqual([]);
    } finally {
      taken.close();
    }
  });
});

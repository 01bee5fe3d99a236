import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { InvalidArgumentError } from '../../../../src/errors.js';
import {
  addHostfwdRequest,
  parseSlirpApiReply,
  Slirp4netnsApi,
  Slirp4netnsApiError,
  Slirp4netnsApiIoError,
  Slirp4netnsApiReplyError,
} from '../../../../src/rootless/index.js';

describe('parseSlirpApiReply', () => {
  it('reads the replies slirp4netns 1.2.0 sends', () => {
    expect(parseSlirpApiReply('add_hostfwd', '{"return":{"id":1}}')).toEqual({ id: 1 });
    expect(parseSlirpApiReply('remove_hostfwd', '{"return":{}}')).toBeUndefined();
    const entry =
      '{"id":1,"proto":"tcp","host_addr":"127.0.0.1","host_port":18080,"guest_addr":"10.0.2.100","guest_port":80}';
    const want = [
      {
        id: 1,
        proto: 'tcp',
        hostAddr: '127.0.0.1',
        hostPort: 18080,
        guestAddr: '10.0.2.100',
        guestPort: 80,
      },
    ];
    expect(parseSlirpApiReply('list_hostfwd', `{"entries":[${entry}]}`)).toEqual(want);
    expect(parseSlirpApiReply('list_hostfwd', `{"return":{"entries":[${entry}]}}`)).toEqual(want);
    expect(parseSlirpApiReply('list_hostfwd', '{"entries":[]}')).toEqual([]);
  });

  it('turns an error reply into a typed error keeping desc', () => {
    const run = () =>
      parseSlirpApiReply(
        'remove_hostfwd',
        '{"error":{"desc":"bad request: remove_hostfwd: bad arguments.id"}}',
      );
    expect(run).toThrow(Slirp4netnsApiError);
    try {
      run();
    } catch (e) {
      expect(e).toMatchObject({
        code: 'ERR_PODNET_SLIRP4NETNS_API',
        execute: 'remove_hostfwd',
        desc: 'bad request: remove_hostfwd: bad arguments.id',
      });
    }
  });

  it.each([
    ['add_hostfwd', ''],
    ['add_hostfwd', 'not json'],
    ['add_hostfwd', '{"return":{"id":"1"}}'],
    ['add_hostfwd', '{"return":{"id":-1}}'],
    ['add_hostfwd', '[]'],
    ['list_hostfwd', '{"entries":[{"id":1}]}'],
    [
      'list_hostfwd',
      '{"entries":[{"id":1,"proto":"sctp","host_addr":"0.0.0.0","host_port":1,"guest_addr":"x","guest_port":1}]}',
    ],
    [
      'list_hostfwd',
      '{"entries":[{"id":1,"proto":"tcp","host_addr":"0.0.0.0","host_port":70000,"guest_addr":"x","guest_port":1}]}',
    ],
    ['remove_hostfwd', '{"ok":true}'],
    ['remove_hostfwd', '{"error":{"desc":5}}'],
  ] as const)('rejects a malformed %s reply %s', (execute, text) => {
    expect(() => parseSlirpApiReply(execute as 'add_hostfwd', text)).toThrow(
      Slirp4netnsApiReplyError,
    );
  });
});

describe('addHostfwdRequest', () => {
  it('fills slirp4netns defaults and validates', () => {
    expect(addHostfwdRequest({ proto: 'tcp', hostPort: 8080, guestPort: 80 })).toEqual({
      execute: 'add_hostfwd',
      arguments: { proto: 'tcp', host_addr: '0.0.0.0', host_port: 8080, guest_port: 80 },
    });
    expect(
      addHostfwdRequest({
        proto: 'udp',
        hostAddr: '127.0.0.1',
        hostPort: 53,
        guestAddr: '10.0.2.100',
        guestPort: 5353,
      }).execute,
    ).toBe('add_hostfwd');
    for (const bad of [
      { proto: 'sctp' as 'tcp', hostPort: 1, guestPort: 1 },
      { proto: 'tcp' as const, hostPort: 0, guestPort: 1 },
      { proto: 'tcp' as const, hostPort: 1, guestPort: 65536 },
      { proto: 'tcp' as const, hostPort: 1.5, guestPort: 1 },
      { proto: 'tcp' as const, hostAddr: '::1', hostPort: 1, guestPort: 1 },
      { proto: 'tcp' as const, hostPort: 1, guestAddr: 'localhost', guestPort: 1 },
    ]) {
      expect(() => addHostfwdRequest(bad)).toThrow(InvalidArgumentError);
    }
  });
});

describe('Slirp4netnsApi over a unix socket', () => {
  let dir: string;
  let server: Server;
  let requests: string[];
  let open: Set<Socket>;
  let reply: (request: string, sock: Socket) => void;

  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), 'podnet-unit-'));
    requests = [];
    // Like slirp4netns: read the request to EOF, only then answer and close.
    open = new Set();
    server = createServer({ allowHalfOpen: true }, (sock) => {
      open.add(sock);
      sock.on('close', () => open.delete(sock));
      const chunks: Buffer[] = [];
      sock.on('data', (c: Buffer) => chunks.push(c));
      sock.on('end', () => {
        const text = Buffer.concat(chunks).toString();
        requests.push(text);
        reply(text, sock);
      });
    });
    await new Promise<void>((r) => server.listen(join(dir, 'api.sock'), r));
  });

  afterEach(async () => {
    for (const sock of open) sock.destroy();
    await new Promise((r) => server.close(r));
    rmSync(dir, { recursive: true, force: true });
  });

  it('sends one half-closed request per call and parses the reply', async () => {
    reply = (text, sock) => {
      const req = JSON.parse(text) as { execute: string };
      sock.end(
        req.execute === 'add_hostfwd'
          ? '{"return":{"id":7}}'
          : req.execute === 'list_hostfwd'
            ? '{"entries":[]}'
            : '{"return":{}}',
      );
    };
    const api = new Slirp4netnsApi(join(dir, 'api.sock'));
    expect(await api.addPortForward({ proto: 'tcp', hostPort: 8080, guestPort: 80 })).toBe(7);
    expect(await api.listPortForwards()).toEqual([]);
    await api.removePortForward(7);
    expect(requests.map((r) => JSON.parse(r))).toEqual([
      {
        execute: 'add_hostfwd',
        arguments: { proto: 'tcp', host_addr: '0.0.0.0', host_port: 8080, guest_port: 80 },
      },
      { execute: 'list_hostfwd' },
      { execute: 'remove_hostfwd', arguments: { id: 7 } },
    ]);
  });

  it('reports error replies, malformed replies and silence distinctly', async () => {
    const api = new Slirp4netnsApi(join(dir, 'api.sock'), { timeoutMs: 200 });
    reply = (_t, sock) =>
      sock.end('{"error":{"desc":"bad request: add_hostfwd: bad arguments.proto"}}');
    await expect(api.addPortForward({ proto: 'tcp', hostPort: 1, guestPort: 1 })).rejects.toThrow(
      Slirp4netnsApiError,
    );
    reply = (_t, sock) => sock.end('{"return":');
    await expect(api.listPortForwards()).rejects.toThrow(Slirp4netnsApiReplyError);
    reply = () => undefined; // never answers
    const err = await api.removePortForward(1).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Slirp4netnsApiIoError);
    expect(err).toMatchObject({ code: 'ERR_PODNET_SLIRP4NETNS_API_IO', timedOut: true });
  });

  it('is an I/O error when nothing listens', async () => {
    const api = new Slirp4netnsApi(join(dir, 'missing.sock'));
    await expect(api.listPortForwards()).rejects.toMatchObject({
      code: 'ERR_PODNET_SLIRP4NETNS_API_IO',
      timedOut: false,
      message: expect.stringContaining('ENOENT'),
    });
  });
});

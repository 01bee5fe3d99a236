// TCP between namespaces a test made (ns.listen, ns.connect): an echo
// server, a server that answers with the address it saw, a connect with a
// deadline, a timed one-byte round trip, "does A reach B", and a line
// echoed across. Traffic goes only to the address the caller names, which
// must be inside its own namespaces. For integration tests (it needs the
// namespaces, not root itself).
import type net from 'node:net';
import { createServer } from 'node:net';
import type { NetworkNamespace } from '../../src/netns/index.js';

/** A server a test started inside a namespace: its port, and close(), which ends its connections too. */
export interface TcpServer {
  port: number;
  close(): Promise<void>;
}

async function serve(
  ns: NetworkNamespace,
  host: string,
  onConnection: (s: net.Socket) => void,
): Promise<TcpServer> {
  const conns = new Set<net.Socket>();
  const srv = createServer((s) => {
    conns.add(s);
    s.on('error', () => undefined).on('close', () => conns.delete(s));
    onConnection(s);
  });
  const { port } = await ns.listen(srv, { host });
  return {
    port,
    close: () =>
      new Promise<void>((r) => {
        for (const s of conns) s.destroy();
        srv.close(() => r());
      }),
  };
}

/** A TCP echo server in NS at HOST. */
export function echoServer(ns: NetworkNamespace, host: string): Promise<TcpServer> {
  return serve(ns, host, (s) => s.pipe(s));
}

/** A server in NS at HOST that answers each connection with the address it came from, then closes it. */
export function whoamiServer(ns: NetworkNamespace, host: string): Promise<TcpServer> {
  return serve(ns, host, (s) => s.end(`${s.remoteAddress}\n`));
}

/** A connection from inside NS to HOST:PORT, or 'connect timed out' after `timeoutMs`. */
export async function connectWithin(
  ns: NetworkNamespace,
  host: string,
  port: number,
  timeoutMs = 3000,
): Promise<net.Socket> {
  let timer: NodeJS.Timeout | undefined;
  const attempt = ns.connect({ host, port });
  try {
    return await Promise.race([
      attempt,
      new Promise<never>((_, rej) => {
        timer = setTimeout(() => rej(new Error('connect timed out')), timeoutMs);
      }),
    ]);
  } catch (err) {
    // The SYN may still get through later (a retransmission, a heal): drop that socket then.
    attempt.then((s) => s.destroy()).catch(() => undefined);
    throw err;
  } finally {
    clearTimeout(timer);
  }
}

/** One byte there and back on an open connection to an echo server, timed (ms). */
export async function rtt(sock: net.Socket): Promise<number> {
  const t0 = process.hrtime.bigint();
  const got = new Promise<void>((resolve) => sock.once('data', () => resolve()));
  sock.write('x');
  await got;
  return Number(process.hrtime.bigint() - t0) / 1e6;
}

/**
 * One byte from FROM to an echo server in TO at HOST and back, timed (ms)
 * once the connection is up (its handshake is not counted); rejects when
 * the connection is not up within `timeoutMs`.
 */
export async function roundTrip(
  from: NetworkNamespace,
  to: NetworkNamespace,
  host: string,
  timeoutMs = 2000,
): Promise<number> {
  const server = await echoServer(to, host);
  try {
    const sock = await connectWithin(from, host, server.port, timeoutMs);
    try {
      return await rtt(sock);
    } finally {
      sock.destroy();
    }
  } finally {
    await server.close();
  }
}

/** Whether FROM gets a byte echoed by TO at HOST (a connection within `timeoutMs`). */
export async function reaches(
  from: NetworkNamespace,
  to: NetworkNamespace,
  host: string,
  timeoutMs = 1500,
): Promise<boolean> {
  try {
    await roundTrip(from, to, host, timeoutMs);
    return true;
  } catch {
    return false;
  }
}

/**
 * What FROM is seen as by the {@link whoamiServer} at HOST:PORT, or the
 * error's message ('connect timed out', 'no answer') after `timeoutMs`.
 */
export async function seenAs(
  from: NetworkNamespace,
  host: string,
  port: number,
  timeoutMs = 2000,
): Promise<string> {
  try {
    const sock = await connectWithin(from, host, port, timeoutMs);
    return await new Promise<string>((resolve, reject) => {
      let got = '';
      const timer = setTimeout(() => {
        sock.destroy();
        reject(new Error('no answer'));
      }, timeoutMs);
      sock.setEncoding('utf8').on('data', (d: string) => {
        got += d;
      });
      sock.once('error', reject);
      sock.once('close', () => {
        clearTimeout(timer);
        resolve(got.trim());
      });
    });
  } catch (err) {
    return (err as Error).message;
  }
}

/**
 * LINE (ending in a newline) sent from FROM to an echo server in TO at
 * HOST: what came back, and the source address the server saw.
 */
export async function echoLine(
  from: NetworkNamespace,
  to: NetworkNamespace,
  host: string,
  line: string,
  timeoutMs = 5000,
): Promise<{ echo: string; seen: string }> {
  let seen = '';
  const server = await serve(to, host, (s) => {
    seen = s.remoteAddress ?? '';
    s.pipe(s);
  });
  try {
    const sock = await connectWithin(from, host, server.port, timeoutMs);
    try {
      const echo = await new Promise<string>((resolve, reject) => {
        let got = '';
        sock.setEncoding('utf8');
        sock.on('data', (d: string) => {
          got += d;
          if (got.endsWith('\n')) resolve(got);
        });
        sock.on('error', reject);
        sock.setTimeout(timeoutMs, () =>
          sock.destroy(new Error(`no echo from ${host}:${server.port}`)),
        );
        sock.write(line);
      });
      return { echo, seen };
    } finally {
      sock.destroy();
    }
  } finally {
    await server.close();
  }
}

// The helper inside an unprivileged user's user and network namespace (see
// userns.ts). unshare(1) starts it there, so it is root in the user
// namespace and already in the network namespace: opening a socket is a
// plain socket(2) call, no setns. It serves requests on fd 3 (a
// SOCK_SEQPACKET socket) one message at a time and exits when its owner
// closes the other end, so it never outlives the process that made it.
//
// Protocol: each request is JSON { domain, type, protocol, count, addr? }
// (addr: a raw sockaddr, base64); each reply is JSON { ok: true } with the
// fds attached, or { ok: false, errno, syscall }. The first message, sent
// unasked, is { ok: true, pid } once the helper is ready.
import { native } from '../../native.js';

const CHANNEL = 3;

interface Request {
  domain: number;
  type: number;
  protocol: number;
  count: number;
  addr?: string;
}

function send(message: object, fds?: number[]): void {
  native.sendFds(CHANNEL, Buffer.from(JSON.stringify(message)), fds);
}

async function serve(): Promise<void> {
  send({ ok: true, pid: process.pid });
  for (;;) {
    const msg = await native.recvFds(CHANNEL, -1);
    if (msg === null) return; // the owner is gone
    for (const fd of msg.fds) native.closeFd(fd); // requests carry none
    let fds: number[] = [];
    try {
      const req = JSON.parse(msg.data.toString('utf8')) as Request;
      fds = native.socketsHere(
        req.domain,
        req.type,
        req.protocol,
        req.count,
        req.addr === undefined ? undefined : Buffer.from(req.addr, 'base64'),
      );
      send({ ok: true }, fds);
    } catch (err) {
      const e = err as { errno?: unknown; syscall?: unknown };
      send({
        ok: false,
        errno: typeof e.errno === 'number' ? e.errno : 22, // EINVAL: a malformed request
        syscall: typeof e.syscall === 'string' ? e.syscall : 'socket',
      });
    } finally {
      for (const fd of fds) native.closeFd(fd);
    }
  }
}

// Signals meant for the owner's terminal must not take the namespace away
// under it: the owner ends this helper by closing the channel.
process.on('SIGINT', () => undefined);
serve().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`podnet userns helper: ${String((err as Error)?.message ?? err)}\n`);
    process.exit(1);
  },
);

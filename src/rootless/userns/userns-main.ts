// The helper inside an unprivileged user's user and network namespace (see
// userns.ts). unshare(1) starts it there, so it is root in the user
// namespace and already in the network namespace: opening a socket is a
// plain socket(2) call, no setns. It serves requests on fd 3 (a
// SOCK_SEQPACKET socket) one message at a time and exits when its owner
// closes the other end, so it never outlives the process that made it.
//
// The messages are declared in protocol.ts.
import { native } from '../../native.js';
import {
  HELPER_CHANNEL_FD as CHANNEL,
  encodeMessage,
  type HelperReply,
  parseSocketsRequest,
} from './protocol.js';

const EINVAL = 22;

function send(message: HelperReply, fds?: number[]): void {
  native.sendFds(CHANNEL, encodeMessage(message), fds);
}

async function serve(): Promise<void> {
  send({ ok: true, pid: process.pid });
  for (;;) {
    const msg = await native.recvFds(CHANNEL, -1);
    if (msg === null) return; // the owner is gone
    for (const fd of msg.fds) native.closeFd(fd); // requests carry none
    let fds: number[] = [];
    try {
      const req = parseSocketsRequest(msg.data);
      if (req === undefined) throw Object.assign(new Error('malformed request'), { errno: EINVAL });
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
        errno: typeof e.errno === 'number' ? e.errno : EINVAL,
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

// The user namespace helper's protocol, declared once for the owner
// (userns.ts); the helper is native/userns-helper.cc, whose constants must
// agree with these (test/unit/rootless/userns/helper.test.ts drives the
// real binary through this module). Messages are small fixed layouts of
// little-endian 32-bit integers, one per SOCK_SEQPACKET message on the
// helper's fd 3, each starting with PROTOCOL_VERSION, so a helper of another
// build is refused at its first message:
// - helper -> owner, first and unasked: version, 0, its pid, once it is ready;
// - owner -> helper: version, domain, type, protocol, count, then optionally
//   the raw sockaddr to bind every socket to;
// - helper -> owner: version, 0, 0 with the fds attached, or version, errno,
//   0 and the name of the call that failed.
// What the helper sends is read as untrusted input: every field checked,
// nothing cast.

/** The helper's end of the channel. */
export const HELPER_CHANNEL_FD = 3;

/** The layout's version: the first field of every message. */
export const PROTOCOL_VERSION = 1;

/** The longest sockaddr a request may carry (sizeof(struct sockaddr_storage)). */
const MAX_SOCKADDR = 128;
/** The kernel's limit of fds per SCM_RIGHTS message (SCM_MAX_FD). */
const MAX_FDS = 253;
const REQUEST_HEADER = 20;
const REPLY_HEADER = 12;
const MAX_SYSCALL_NAME = 16;

/** Ask the helper to open `count` sockets (and bind them to `addr`, a raw sockaddr). */
export interface SocketsRequest {
  domain: number;
  type: number;
  protocol: number;
  count: number;
  addr?: Buffer;
}

/** The helper's answer to a request, or its first message (with its pid). */
export type HelperReply =
  | { ok: true; pid?: number }
  | { ok: false; errno: number; syscall: string };

const isField = (n: number): boolean => Number.isInteger(n) && n >= 0 && n <= 0x7fffffff;

/**
 * A request as bytes. Throws a RangeError for one the helper could not
 * serve (callers validate before, so this is a programming error).
 */
export function encodeRequest(req: SocketsRequest): Buffer {
  const addr = req.addr ?? Buffer.alloc(0);
  if (
    ![req.domain, req.type, req.protocol].every(isField) ||
    !Number.isInteger(req.count) ||
    req.count < 1 ||
    req.count > MAX_FDS ||
    addr.length > MAX_SOCKADDR
  )
    throw new RangeError(`not a request the user namespace helper serves: ${JSON.stringify(req)}`);
  const out = Buffer.alloc(REQUEST_HEADER + addr.length);
  out.writeUInt32LE(PROTOCOL_VERSION, 0);
  out.writeUInt32LE(req.domain, 4);
  out.writeUInt32LE(req.type, 8);
  out.writeUInt32LE(req.protocol, 12);
  out.writeUInt32LE(req.count, 16);
  addr.copy(out, REQUEST_HEADER);
  return out;
}

/** A reply as the owner reads it; undefined when it is not one. */
export function parseHelperReply(data: Buffer): HelperReply | undefined {
  if (data.length < REPLY_HEADER || data.length > REPLY_HEADER + MAX_SYSCALL_NAME) return undefined;
  if (data.readUInt32LE(0) !== PROTOCOL_VERSION) return undefined;
  const errno = data.readUInt32LE(4);
  const pid = data.readUInt32LE(8);
  const name = data.subarray(REPLY_HEADER).toString('latin1');
  if (errno === 0) {
    if (name !== '' || pid > 0x7fffffff) return undefined;
    return pid === 0 ? { ok: true } : { ok: true, pid };
  }
  if (errno > 4095 || pid !== 0 || !/^[a-z_]+$/.test(name)) return undefined;
  return { ok: false, errno, syscall: name };
}

// The user namespace helper's protocol, declared once: userns.ts (the
// owner) and userns-main.ts (the helper) both import it, and each side
// checks what it reads against these schemas, casting nothing. Messages
// are JSON, one per SOCK_SEQPACKET message on the helper's fd 3:
// - helper -> owner, first and unasked: { ok: true, pid } once it is ready;
// - owner -> helper: a {@link SocketsRequest};
// - helper -> owner: { ok: true } with the fds attached, or
//   { ok: false, errno, syscall }.
import * as v from 'valibot';

/** The helper's end of the channel. */
export const HELPER_CHANNEL_FD = 3;

/** Ask the helper to open `count` sockets (and bind them to `addr`, a raw sockaddr in base64). */
export interface SocketsRequest {
  domain: number;
  type: number;
  protocol: number;
  count: number;
  addr?: string;
}

/** The helper's answer to a request, or its first message (with its pid). */
export type HelperReply =
  | { ok: true; pid?: number }
  | { ok: false; errno: number; syscall: string };

const Int = v.pipe(v.number(), v.integer(), v.minValue(0));

const SocketsRequestSchema = v.strictObject({
  domain: Int,
  type: Int,
  protocol: Int,
  count: v.pipe(Int, v.minValue(1)),
  addr: v.exactOptional(v.pipe(v.string(), v.base64())),
});

const HelperReplySchema = v.variant('ok', [
  v.strictObject({ ok: v.literal(true), pid: v.exactOptional(v.pipe(Int, v.minValue(1))) }),
  v.strictObject({ ok: v.literal(false), errno: v.pipe(Int, v.minValue(1)), syscall: v.string() }),
]);

/** One message as bytes. */
export function encodeMessage(message: SocketsRequest | HelperReply): Buffer {
  return Buffer.from(JSON.stringify(message));
}

function decode(data: Buffer): unknown {
  try {
    return JSON.parse(data.toString('utf8'));
  } catch {
    return undefined;
  }
}

/** A request as the helper reads it; undefined when it is not one. */
export function parseSocketsRequest(data: Buffer): SocketsRequest | undefined {
  const parsed = v.safeParse(SocketsRequestSchema, decode(data));
  return parsed.success ? parsed.output : undefined;
}

/** A reply as the owner reads it; undefined when it is not one. */
export function parseHelperReply(data: Buffer): HelperReply | undefined {
  const parsed = v.safeParse(HelperReplySchema, decode(data));
  return parsed.success ? parsed.output : undefined;
}

import { connect } from 'node:net';
import ipaddr from 'ipaddr.js';
import * as v from 'valibot';
import { publish } from '../../diagnostics.js';
import { InvalidArgumentError } from '../../errors.js';
import { isPortNumber } from '../../ports.js';
import { Slirp4netnsApiError, Slirp4netnsApiIoError, Slirp4netnsApiReplyError } from '../errors.js';

/** A port to publish through slirp4netns (its add_hostfwd request). */
export interface SlirpPortForward {
  /** Transport protocol. */
  proto: 'tcp' | 'udp';
  /** Host IPv4 address to listen on (slirp4netns: 0.0.0.0). */
  hostAddr?: string;
  /** Host port to listen on. */
  hostPort: number;
  /** Address inside the namespace (slirp4netns: the guest, 10.0.2.100 by default). */
  guestAddr?: string;
  /** Port inside the namespace. */
  guestPort: number;
}

/** A port forward slirp4netns reports (list_hostfwd), with its id. */
export interface SlirpPortForwardEntry {
  /** The id to remove it by. */
  id: number;
  /** Transport protocol. */
  proto: 'tcp' | 'udp';
  /** Host address it listens on. */
  hostAddr: string;
  /** Host port it listens on. */
  hostPort: number;
  /** Address inside the namespace. */
  guestAddr: string;
  /** Port inside the namespace. */
  guestPort: number;
}

/** The requests slirp4netns's API understands. */
export type SlirpApiRequest =
  | {
      execute: 'add_hostfwd';
      arguments: {
        proto: 'tcp' | 'udp';
        host_addr: string;
        host_port: number;
        guest_addr?: string;
        guest_port: number;
      };
    }
  | { execute: 'list_hostfwd' }
  | { execute: 'remove_hostfwd'; arguments: { id: number } };

const Port = v.pipe(
  v.number(),
  v.check((n) => isPortNumber(n), 'not a port number'),
);
const Id = v.pipe(v.number(), v.integer(), v.minValue(0));
const ErrorReply = v.object({ error: v.object({ desc: v.string() }) });
const AddReply = v.object({ return: v.object({ id: Id }) });
const RemoveReply = v.object({ return: v.object({}) });
const Entry = v.object({
  id: Id,
  proto: v.picklist(['tcp', 'udp']),
  host_addr: v.string(),
  host_port: Port,
  guest_addr: v.string(),
  guest_port: Port,
});
// slirp4netns <= 1.2 answers list_hostfwd with bare `{"entries":[...]}`; accept
// the `{"return":{...}}` envelope the other requests use as well.
const ListBody = v.object({ entries: v.array(Entry) });
const ListReply = v.union([ListBody, v.object({ return: ListBody })]);

/**
 * Parses one API reply to `execute`. `{"error":{"desc":...}}` becomes a
 * Slirp4netnsApiError keeping desc; anything not shaped as that request's
 * reply is a Slirp4netnsApiReplyError. Returns the reply's payload.
 */
export function parseSlirpApiReply(execute: 'add_hostfwd', text: string): { id: number };
export function parseSlirpApiReply(execute: 'list_hostfwd', text: string): SlirpPortForwardEntry[];
export function parseSlirpApiReply(execute: 'remove_hostfwd', text: string): undefined;
export function parseSlirpApiReply(
  execute: SlirpApiRequest['execute'],
  text: string,
): { id: number } | SlirpPortForwardEntry[] | undefined {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (cause) {
    throw new Slirp4netnsApiReplyError(execute, text, 'not JSON', { cause });
  }
  const err = v.safeParse(ErrorReply, json);
  if (err.success) throw new Slirp4netnsApiError(execute, err.output.error.desc);
  const shape = (issues: v.BaseIssue<unknown>[]) =>
    issues.map((i) => `${v.getDotPath(i) ?? '(root)'}: ${i.message}`).join('; ');
  switch (execute) {
    case 'add_hostfwd': {
      const r = v.safeParse(AddReply, json);
      if (!r.success) throw new Slirp4netnsApiReplyError(execute, text, shape(r.issues));
      return { id: r.output.return.id };
    }
    case 'list_hostfwd': {
      const r = v.safeParse(ListReply, json);
      if (!r.success) throw new Slirp4netnsApiReplyError(execute, text, shape(r.issues));
      const body = 'return' in r.output ? r.output.return : r.output;
      return body.entries.map((e) => ({
        id: e.id,
        proto: e.proto,
        hostAddr: e.host_addr,
        hostPort: e.host_port,
        guestAddr: e.guest_addr,
        guestPort: e.guest_port,
      }));
    }
    case 'remove_hostfwd': {
      const r = v.safeParse(RemoveReply, json);
      if (!r.success) throw new Slirp4netnsApiReplyError(execute, text, shape(r.issues));
      return undefined;
    }
  }
}

function checkPort(what: string, port: number): void {
  if (!isPortNumber(port)) {
    throw new InvalidArgumentError(`slirp4netns port forward: ${what} ${port} is not a port`);
  }
}

function checkIPv4(what: string, addr: string): void {
  // slirp4netns's API is IPv4 only (inet_pton(AF_INET)).
  if (!ipaddr.IPv4.isValidFourPartDecimal(addr)) {
    throw new InvalidArgumentError(`slirp4netns port forward: ${what} '${addr}' is not IPv4`);
  }
}

/**
 * The add_hostfwd request for a port forward, validated first (slirp4netns
 * would otherwise read a bad port as 0 or a fraction silently truncated).
 */
export function addHostfwdRequest(fwd: SlirpPortForward): SlirpApiRequest {
  if (fwd.proto !== 'tcp' && fwd.proto !== 'udp') {
    throw new InvalidArgumentError(
      `slirp4netns port forward: unknown proto '${String(fwd.proto)}'`,
    );
  }
  checkPort('host port', fwd.hostPort);
  checkPort('guest port', fwd.guestPort);
  const hostAddr = fwd.hostAddr ?? '0.0.0.0';
  checkIPv4('host address', hostAddr);
  const args: Extract<SlirpApiRequest, { execute: 'add_hostfwd' }>['arguments'] = {
    proto: fwd.proto,
    host_addr: hostAddr,
    host_port: fwd.hostPort,
    guest_port: fwd.guestPort,
  };
  if (fwd.guestAddr !== undefined) {
    checkIPv4('guest address', fwd.guestAddr);
    args.guest_addr = fwd.guestAddr;
  }
  return { execute: 'add_hostfwd', arguments: args };
}

/** Replies are tiny; anything bigger is not slirp4netns talking. */
const MAX_REPLY_BYTES = 1024 * 1024;
/** Default deadline of one API request. */
export const DEFAULT_SLIRP_API_TIMEOUT_MS = 5000;

/**
 * Sends one request on a fresh connection and returns the raw reply:
 * slirp4netns reads a request until EOF (hence end() after writing, the
 * half-close it requires), answers, and closes, so the reply is read to EOF.
 */
export function slirpApiRoundTrip(
  socketPath: string,
  request: SlirpApiRequest,
  timeoutMs: number = DEFAULT_SLIRP_API_TIMEOUT_MS,
): Promise<string> {
  const { execute } = request;
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const sock = connect({ path: socketPath, allowHalfOpen: true });
    const chunks: Buffer[] = [];
    let size = 0;
    let done = false;
    const finish = (err: Error | undefined, text?: string) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      sock.destroy();
      publish('podnet:slirp:api', {
        socketPath,
        execute,
        ok: err === undefined,
        ms: Date.now() - started,
      });
      if (err !== undefined) reject(err);
      else resolve(text ?? '');
    };
    const timer = setTimeout(
      () =>
        finish(new Slirp4netnsApiIoError(execute, socketPath, `no reply in ${timeoutMs} ms`, true)),
      timeoutMs,
    );
    sock.on('connect', () => sock.end(JSON.stringify(request)));
    sock.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_REPLY_BYTES) {
        finish(
          new Slirp4netnsApiReplyError(
            execute,
            Buffer.concat(chunks).toString('utf8'),
            `larger than ${MAX_REPLY_BYTES} bytes`,
          ),
        );
        return;
      }
      chunks.push(chunk);
    });
    sock.on('end', () => finish(undefined, Buffer.concat(chunks).toString('utf8')));
    sock.on('error', (cause: NodeJS.ErrnoException) =>
      finish(
        new Slirp4netnsApiIoError(execute, socketPath, cause.code ?? cause.message, false, {
          cause,
        }),
      ),
    );
  });
}

/**
 * A client of slirp4netns's API socket (`--api-socket`): one connection per
 * request, each with its own deadline.
 */
export class Slirp4netnsApi {
  /** Path of the API socket. */
  readonly socketPath: string;
  /** Deadline of each request, in milliseconds. */
  readonly timeoutMs: number;

  constructor(socketPath: string, opts: { timeoutMs?: number } = {}) {
    this.socketPath = socketPath;
    this.timeoutMs = opts.timeoutMs ?? DEFAULT_SLIRP_API_TIMEOUT_MS;
  }

  /** Publishes a port (add_hostfwd) and returns the id slirp4netns gave it. */
  async addPortForward(fwd: SlirpPortForward): Promise<number> {
    const request = addHostfwdRequest(fwd);
    const text = await slirpApiRoundTrip(this.socketPath, request, this.timeoutMs);
    return parseSlirpApiReply('add_hostfwd', text).id;
  }

  /** The port forwards slirp4netns has (list_hostfwd). */
  async listPortForwards(): Promise<SlirpPortForwardEntry[]> {
    const text = await slirpApiRoundTrip(
      this.socketPath,
      { execute: 'list_hostfwd' },
      this.timeoutMs,
    );
    return parseSlirpApiReply('list_hostfwd', text);
  }

  /** Removes a port forward by id (remove_hostfwd); an unknown id is a Slirp4netnsApiError. */
  async removePortForward(id: number): Promise<void> {
    if (!Number.isSafeInteger(id) || id < 0) {
      throw new InvalidArgumentError(`slirp4netns port forward id ${id} is not an id`);
    }
    const text = await slirpApiRoundTrip(
      this.socketPath,
      { execute: 'remove_hostfwd', arguments: { id } },
      this.timeoutMs,
    );
    parseSlirpApiReply('remove_hostfwd', text);
  }
}

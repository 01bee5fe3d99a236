// The detached forwarder's protocol, declared once: the job the parent
// writes on its stdin, the report it writes back on fd 3, and the
// counters its stats endpoint answers with. The parent
// (process.ts) and the forwarder process (forwarder-main.ts) both import
// it; each side checks what it reads against these schemas, casting
// nothing.
import * as v from 'valibot';
import { InvalidArgumentError } from '../../errors.js';
import type { RelayPortStats } from '../../native.js';
import { isPortNumber, type PortMapping, PortMappingSchema } from '../../ports.js';
import { containerAddressProblem } from '../container-address.js';

/** One forwarded port, after ranges are expanded. */
export interface ForwardedPort {
  /** Host address listened on ('0.0.0.0' when the mapping named none). */
  hostIP: string;
  /** Host port listened on (the one the kernel picked when the mapping said 0). */
  hostPort: number;
  /** Port dialled at the container's address. */
  containerPort: number;
  /** The protocol forwarded. */
  protocol: 'tcp' | 'udp';
}

/** Counters of one forwarder. */
export interface ForwarderStats {
  /** TCP connections being relayed now. */
  active: number;
  /** TCP connections handed to the relay since start. */
  connections: number;
  /** TCP connections that ended with an error (the container refused or reset, or close() cut them). */
  failed: number;
  /** TCP connections accepted but refused before relaying (no pipe could be made: out of fds or memory). */
  dropped: number;
  /** Bytes relayed, both directions and both protocols together (UDP: payload bytes). */
  bytes: number;
  /** UDP flows (client address:port) made since start. */
  flows: number;
  /** UDP flows open now (not yet expired). */
  activeFlows: number;
  /** UDP datagrams relayed, both directions together. */
  datagrams: number;
  /** UDP datagrams dropped: no socket for a new flow, a full send buffer, or larger than 64 KiB. */
  datagramsDropped: number;
  /** The same, per forwarded port, in the order of PortForwarder.ports. */
  ports: ForwardedPortStats[];
}

/**
 * Counters of one forwarded port, in the container's view (as its
 * interfaces' are): rx is what clients sent to the container, tx what went
 * back to them.
 */
export interface ForwardedPortStats extends ForwardedPort, RelayPortStats {}

/** The job sent to forwarder-main.ts on stdin. */
export interface ForwarderJob {
  netns?: string;
  usernsPid?: number;
  containerAddress: string;
  mappings: PortMapping[];
  udpIdleTimeoutMs?: number;
  /** Whether fd 4 is an exit fd to watch. */
  exitFd: boolean;
}

/** What forwarder-main.ts reports once it forwards every port. */
export interface ForwarderReport {
  /** The ports forwarded, with the host ports actually bound. */
  ports: ForwardedPort[];
}

const ForwarderJobSchema = v.strictObject({
  netns: v.exactOptional(v.pipe(v.string(), v.minLength(1))),
  usernsPid: v.exactOptional(v.pipe(v.number(), v.integer(), v.minValue(1))),
  containerAddress: v.pipe(
    v.string(),
    v.check((a) => containerAddressProblem(a) === undefined, 'not a container address to dial'),
  ),
  mappings: v.array(PortMappingSchema),
  udpIdleTimeoutMs: v.exactOptional(v.number()),
  exitFd: v.boolean(),
});

const ForwarderReportSchema = v.looseObject({
  ports: v.array(
    v.strictObject({
      hostIP: v.pipe(v.string(), v.ip()),
      hostPort: v.pipe(
        v.number(),
        v.check((n) => isPortNumber(n), 'not a port number'),
      ),
      containerPort: v.pipe(
        v.number(),
        v.check((n) => isPortNumber(n), 'not a port number'),
      ),
      protocol: v.picklist(['tcp', 'udp']),
    }),
  ),
});

function issueText(
  what: string,
  issues: [v.BaseIssue<unknown>, ...v.BaseIssue<unknown>[]],
): string {
  const issue = issues[0];
  const where = issue.path?.map((p) => String(p.key)).join('.') ?? `(${what})`;
  return `${where}: ${issue.message}`;
}

/**
 * Checks the shape of a forwarder job (untrusted: it comes through a pipe),
 * and its container address by class (no loopback or unspecified address in
 * any spelling). Port numbers, host addresses and the timeout are checked by
 * PortForwarder.start.
 */
export function parseForwarderJob(raw: unknown): ForwarderJob {
  const parsed = v.safeParse(ForwarderJobSchema, raw);
  if (!parsed.success)
    throw new InvalidArgumentError(`forwarder job: ${issueText('job', parsed.issues)}`);
  if ((parsed.output.netns === undefined) === (parsed.output.usernsPid === undefined))
    throw new InvalidArgumentError('forwarder job: needs exactly one of netns and usernsPid');
  return parsed.output;
}

/**
 * Checks a forwarder's report (untrusted: another process wrote it): every
 * port it bound, each with an IP address, ports and a protocol. Throws an
 * Error naming what is wrong.
 */
export function parseForwarderReport(raw: unknown): ForwarderReport {
  const parsed = v.safeParse(ForwarderReportSchema, raw);
  if (!parsed.success) throw new Error(issueText('report', parsed.issues));
  return { ports: parsed.output.ports };
}

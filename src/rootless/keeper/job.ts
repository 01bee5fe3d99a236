// The keeper's protocol, declared once: the job the parent writes on its
// stdin and the report it writes back on fd 3. keeper.ts (the parent) and
// keeper-main.ts (the keeper) both import it; each side checks what it
// reads against these schemas, casting nothing.
import * as v from 'valibot';
import { InvalidArgumentError } from '../../errors.js';
import { type PortMapping, PortMappingSchema } from '../../ports.js';

/** What the keeper is asked to run (JSON on its stdin); see {@link KeeperOptions}. */
export interface KeeperJob {
  engine: 'slirp4netns' | 'pasta' | 'none';
  /** A namespace path, or 'userns'. */
  netns: string;
  options: string[];
  ports: PortMapping[];
}

const KeeperJobSchema = v.strictObject({
  engine: v.picklist(['slirp4netns', 'pasta', 'none']),
  netns: v.pipe(v.string(), v.minLength(1)),
  options: v.array(v.string()),
  ports: v.array(PortMappingSchema),
});

/**
 * Checks the shape of a keeper job (untrusted: it comes through a pipe).
 * Options and ports are checked by the engines that take them, and the
 * address the forwarder dials by PortForwarder.start, whatever the keeper
 * derives it from (slirp4netns's cidr, pasta's namespace).
 */
export function parseKeeperJob(raw: unknown): KeeperJob {
  const parsed = v.safeParse(KeeperJobSchema, raw);
  if (!parsed.success) {
    const issue = parsed.issues[0];
    const where = issue.path?.map((p) => String(p.key)).join('.') ?? '(job)';
    throw new InvalidArgumentError(`keeper job: ${where}: ${issue.message}`);
  }
  return parsed.output;
}

/** What keeper-main.ts reports once its engines run. */
export interface KeeperReport {
  /** The engine's pid (slirp4netns or pasta; none for engine 'none'). */
  enginePid?: number;
  /** The engine's private directory. */
  engineDir?: string;
  /** The pid of the UserNamespace helper holding the namespaces ('userns' jobs). */
  usernsPid?: number;
}

const Pid = v.pipe(v.number(), v.integer(), v.minValue(2));
const KeeperReportSchema = v.looseObject({
  enginePid: v.exactOptional(Pid),
  engineDir: v.exactOptional(v.pipe(v.string(), v.startsWith('/'))),
  usernsPid: v.exactOptional(Pid),
});

/**
 * Checks a keeper's report (untrusted: another process wrote it) and keeps
 * only its fields. Throws an Error naming what is wrong.
 */
export function parseKeeperReport(raw: unknown): KeeperReport {
  const parsed = v.safeParse(KeeperReportSchema, raw);
  if (!parsed.success) {
    const issue = parsed.issues[0];
    throw new Error(
      `${issue.path?.map((p) => String(p.key)).join('.') ?? '(report)'}: ${issue.message}`,
    );
  }
  const { enginePid, engineDir, usernsPid } = parsed.output;
  return {
    ...(enginePid === undefined ? {} : { enginePid }),
    ...(engineDir === undefined ? {} : { engineDir }),
    ...(usernsPid === undefined ? {} : { usernsPid }),
  };
}

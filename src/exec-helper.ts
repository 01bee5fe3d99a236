// podnet-exec's protocol, declared once: the argv native/exec-helper.c
// reads and the status record it writes when it cannot start the command.
// Both of its users import it, ns.spawn (src/netns/spawn.ts) and the CNI
// runtime's plugins in a namespace (src/cni/invoke/exec.ts); neither knows
// the layout otherwise. Below every layer, as native.ts is.
import { PodnetError, PodnetSystemError } from './errors.js';

/** What the helper is asked to do: the argv it gets after its own path. */
export interface ExecHelperJob {
  /** The fd of its status socket (the command's stdio come before it). */
  statusFd: number;
  /** The fd of the nsfs file of the network namespace to join. */
  nsFd: number;
  /** Join the namespace's owning user namespace first (NS_GET_USERNS on that fd). */
  joinUserns: boolean;
  /** Taken after the namespace is entered; undefined keeps the caller's. */
  uid?: number | undefined;
  /** Taken after the namespace is entered; undefined keeps the caller's. */
  gid?: number | undefined;
  /** The file to execute (looked up on PATH when it has no '/'). */
  file: string;
  /** Its argv[0]. */
  argv0: string;
  /** The rest of its argv. */
  args: readonly string[];
}

/** The helper's argv for JOB (see native/exec-helper.c). */
export function execHelperArgv(job: ExecHelperJob): string[] {
  return [
    String(job.statusFd),
    String(job.nsFd),
    job.joinUserns ? 'user' : 'net',
    job.uid === undefined ? '-' : String(job.uid),
    job.gid === undefined ? '-' : String(job.gid),
    job.file,
    job.argv0,
    ...job.args,
  ];
}

/** Where the helper stopped: joining a namespace, taking ids, or the exec itself. */
export type ExecHelperStage = 'userns' | 'netns' | 'creds' | 'exec';

/** A failure the helper reported: its stage and the (positive) errno. */
export interface ExecHelperFailure {
  stage: ExecHelperStage;
  errno: number;
}

/** The stage numbers of native/exec-helper.c. */
const STAGES: Record<number, ExecHelperStage> = { 1: 'userns', 2: 'netns', 3: 'creds', 4: 'exec' };
/** Each stage before the exec: the call that failed and what it was for. */
const BEFORE_EXEC: Record<Exclude<ExecHelperStage, 'exec'>, { syscall: string; what: string }> = {
  userns: { syscall: 'setns', what: "joining the namespace's user namespace" },
  netns: { syscall: 'setns', what: 'joining the network namespace' },
  creds: { syscall: 'setuid', what: 'taking the uid and gid' },
};
/** The length of the status record: two native int32s, the stage and the errno. */
export const EXEC_STATUS_BYTES = 8;

/**
 * What the status socket held when it closed: undefined for nothing (the
 * exec closed it: the command runs), else the helper's failure. The record
 * comes from another process: a length, stage or errno podnet does not
 * know is an ERR_PODNET_EXEC_HELPER PodnetError (DOING says what was being
 * started), returned, not thrown.
 */
export function decodeExecStatus(
  record: Buffer,
  doing: string,
): ExecHelperFailure | PodnetError | undefined {
  if (record.length === 0) return undefined;
  const known = record.length === EXEC_STATUS_BYTES;
  const stage = known ? STAGES[record.readInt32LE(0)] : undefined;
  const errno = known ? record.readInt32LE(4) : 0;
  if (stage === undefined || errno <= 0) {
    return new PodnetError(
      'ERR_PODNET_EXEC_HELPER',
      `${doing}: the exec helper sent a report podnet does not know (${record.length} bytes: ${record.toString('hex').slice(0, 32)})`,
    );
  }
  return { stage, errno };
}

/**
 * The error of a failure before the exec (joining a namespace, taking the
 * ids), as a system error of the call that failed: `DOING: joining the
 * network namespace: EPERM: setns 'NSPATH'`.
 */
export function stageError(
  doing: string,
  stage: Exclude<ExecHelperStage, 'exec'>,
  errno: number,
  nsPath: string,
): PodnetSystemError {
  const { syscall, what } = BEFORE_EXEC[stage];
  return new PodnetSystemError(`${doing}: ${what}`, {
    errno,
    syscall,
    ...(stage === 'creds' ? {} : { path: nsPath }),
  });
}

// rootlesskit 1.1 with its builtin port driver, its parent in HOST: it
// publishes 127.0.0.1:PORTS -> PORT and IPERF_PORT of its child's namespace,
// where `sh` starts iperf3 -s and execs the Node server. --net=slirp4netns
// gives the child its network namespace (the builtin driver does not move the
// data through slirp4netns: the child dials 127.0.0.1:PORT inside and passes
// the socket to the parent, which copies). rootlesskit needs subuid/subgid
// ranges for the user it runs as, and root has none here: it runs in a mount
// namespace of its own (unshare) where a file of the run's work dir is bound
// over /etc/subuid and /etc/subgid, so the machine's files are not touched.
// Detached: its own process group, killed as a whole.
import { spawn } from 'node:child_process';
import { closeSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { hasExited, isListening, killGroup, waitFor } from '../../lib/procs.js';
import { IPERF_PORT, PORT, ROLE_START_MS, ROLES } from '../context.js';

const PORTS = [7006, 7106];

/** The argv of nsenter: into HOST, a private mount namespace, then rootlesskit. */
function argv(ctx, state, subid) {
  const iperf = ctx.programs.iperf3;
  const childCmd = [
    'sh',
    '-c',
    `${iperf ? `iperf3 -s -p ${IPERF_PORT} --rcv-timeout 10000 >/dev/null & ` : ''}exec "$@"`,
    'sh',
    process.execPath,
    ROLES,
    'server',
    String(PORT),
  ];
  const rootlesskit = [
    'rootlesskit',
    `--state-dir=${state}`,
    '--net=slirp4netns',
    '--disable-host-loopback',
    '--port-driver=builtin',
    `--publish=127.0.0.1:${PORTS[0]}:${PORT}/tcp`,
    `--publish=127.0.0.1:${PORTS[1]}:${IPERF_PORT}/tcp`,
    '--pidns', // the child is init of a PID namespace: its death ends every server
    ...childCmd,
  ];
  return [
    `--net=${ctx.host.path}`,
    'unshare',
    '--mount',
    '--propagation=private',
    'sh',
    '-c',
    'mount --bind "$0" /etc/subuid && mount --bind "$0" /etc/subgid && exec "$@"',
    subid,
    ...rootlesskit,
  ];
}

/** SIGTERM to rootlesskit's process group, SIGKILL after 5 s; then its state is gone. */
async function stop(ctx, pgid, exited) {
  killGroup(pgid, 'SIGTERM');
  const timer = setTimeout(() => killGroup(pgid, 'SIGKILL'), 5000);
  await exited;
  // The group outlives its leader while its other members exit.
  for (let i = 0; i < 250 && killGroup(pgid, 0); i++) await sleep(20);
  killGroup(pgid, 'SIGKILL');
  clearTimeout(timer);
  ctx.procs.deleteGroup(pgid);
}

/** Contender of bench/forward.js (the interface is described there). */
export default {
  name: 'rootlesskit builtin port driver',
  needs: ['rootlesskit', 'slirp4netns'],
  async start(ctx) {
    const subid = join(ctx.work, 'subid');
    writeFileSync(subid, 'root:100000:65536\n');
    const state = join(ctx.work, 'rootlesskit');
    const log = join(ctx.work, 'rootlesskit.log');
    const logFd = openSync(log, 'w');
    const child = spawn('nsenter', argv(ctx, state, subid), {
      stdio: ['ignore', 'pipe', logFd],
      detached: true,
    });
    closeSync(logFd);
    ctx.procs.addGroup(child.pid);
    let out = '';
    child.stdout.on('data', (d) => {
      out += d;
    });
    const exited = new Promise((resolve) => child.once('exit', resolve));
    const childPid = () => {
      try {
        return Number(readFileSync(join(state, 'child_pid'), 'utf8'));
      } catch {
        return 0;
      }
    };
    try {
      await waitFor(
        'rootlesskit',
        () => {
          if (hasExited(child)) {
            throw new Error(`rootlesskit exited: ${readFileSync(log, 'utf8').trim()}`);
          }
          return (
            out.includes('ready') &&
            childPid() > 0 &&
            (!ctx.programs.iperf3 || isListening(childPid(), IPERF_PORT)) &&
            isListening(child.pid, PORTS[0], '127.0.0.1') &&
            isListening(child.pid, PORTS[1], '127.0.0.1')
          );
        },
        ROLE_START_MS,
      );
    } catch (err) {
      await stop(ctx, child.pid, exited);
      throw err;
    }
    // nsenter, unshare and sh exec: the pid is rootlesskit's parent's.
    const comm = readFileSync(`/proc/${child.pid}/comm`, 'utf8').trim();
    if (comm !== 'rootlesskit') throw new Error(`rootlesskit's pid is ${comm}'s`);
    return {
      from: ctx.host,
      to: '127.0.0.1',
      ports: PORTS,
      // The parent copies the bytes; the child dials each connection.
      procs: [
        { pid: child.pid, children: false },
        { pid: childPid(), children: false },
      ],
      stop: () => stop(ctx, child.pid, exited),
    };
  },
};

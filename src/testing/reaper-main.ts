// The watcher of a test runner's topologies (see reaper.ts): started with
// argv DIR PID STARTTIME and the read end of a pipe the runner holds as
// stdin. The runner writes REAPER_GOODBYE and closes the pipe when its last
// topology is removed; end of file without it means the runner died, so
// this sweeps DIR (every record of a dead runner, its own first) and exits.
import { processStatus } from '../process.js';
import { REAPER_GOODBYE, sweepTopologies } from './reaper.js';

const [dir, pid, startTime] = process.argv.slice(2);
const owner = { pid: Number(pid), startTime: startTime ?? '' };
let said = '';
process.stdin.setEncoding('utf8');
process.stdin.on('data', (d: string) => {
  said += d;
});
process.stdin.on('end', () => {
  if (said.includes(REAPER_GOODBYE) || dir === undefined) process.exit(0);
  void reap(dir);
});

async function reap(where: string): Promise<void> {
  // End of file comes when the dying runner's fds are closed, a moment
  // before the kernel marks it a zombie; wait for that (at most 2 s: a
  // runner that closed the pipe by mistake and lives on keeps its records).
  for (let i = 0; i < 200 && processStatus(owner) === 'alive'; i++)
    await new Promise((r) => setTimeout(r, 10));
  await sweepTopologies({ dir: where }).catch(() => undefined);
  process.exit(0);
}

// undo() signals a journal's helper only while the process still is that
// helper: pid, start time and command line. Here for the user namespace
// helper, whose command line is the native podnet-userns: a live one named
// by the journal is stopped; another program at a journal's pid (a planted
// or reused pid) is left alone. A user namespace needs no root.
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { BridgeDriver } from '../../../src/bridge/index.js';
import { CniRuntime } from '../../../src/cni/index.js';
import { native, usernsHelperPath } from '../../../src/native.js';
import { StateStore } from '../../../src/network/state.js';
import { type UndoContext, undo } from '../../../src/network/undo.js';
import { processIdentity } from '../../../src/process.js';
import { running, until } from '../../helpers/process.js';
import { reportSkip } from '../../helpers/skip.js';
import { containerState } from '../../helpers/state.js';

const children: ChildProcess[] = [];
const dirs: string[] = [];
afterEach(() => {
  for (const c of children.splice(0)) c.kill('SIGKILL');
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function context(): UndoContext {
  const dir = mkdtempSync(join(tmpdir(), 'podnet-test-undo-'));
  dirs.push(dir);
  const cni = new CniRuntime({ confDir: dir, cacheDir: dir });
  return { cni, store: new StateStore(dir), bridge: new BridgeDriver(cni.cache) };
}

/** A user namespace helper this test holds the channel of, so it stays until signalled. */
async function helper(): Promise<{ child: ChildProcess; channel: number }> {
  const [ours, theirs] = native.seqpacketPair();
  const child = spawn(usernsHelperPath(), ['create'], {
    stdio: ['ignore', 'ignore', 'ignore', theirs],
  });
  native.closeFd(theirs);
  children.push(child);
  const hello = await native.recvFds(ours, 5000);
  expect(hello).not.toBeNull();
  return { child, channel: ours };
}

const why = reportSkip(
  'the undo tests of the user namespace helper',
  Number(readFileSync('/proc/sys/user/max_user_namespaces', 'utf8')) > 0
    ? undefined
    : 'user namespaces are disabled (user.max_user_namespaces = 0)',
);

describe.skipIf(why !== undefined)('undo and the user namespace helper', () => {
  it('stops the podnet-userns the journal names', async () => {
    const { child, channel } = await helper();
    try {
      const id = processIdentity(child.pid!);
      const state = containerState({
        id: 'undo-userns',
        ownsNetns: false,
        netnsPath: `/proc/${id.pid}/ns/net`,
        helpers: [{ kind: 'userns', ...id }],
      });
      expect(await undo(context(), state)).toEqual([id.pid]);
      await until('the helper to end', () => !running(id.pid));
    } finally {
      native.closeFd(channel);
    }
  });

  it('leaves another program at the journal pid alone', async () => {
    const sleeper = spawn('sleep', ['600'], { stdio: 'ignore' });
    children.push(sleeper);
    await until('sleep to run', () => processIdentity(sleeper.pid!).startTime !== '');
    const id = processIdentity(sleeper.pid!);
    const state = containerState({
      id: 'undo-planted',
      ownsNetns: false,
      netnsPath: `/proc/${id.pid}/ns/net`,
      helpers: [{ kind: 'userns', ...id }],
    });
    expect(await undo(context(), state)).toEqual([]);
    expect(running(id.pid)).toBe(true);
  });
});

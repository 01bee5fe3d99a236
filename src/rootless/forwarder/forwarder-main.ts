// A port forwarder in a process of its own, as podman's rootlessport is:
// started by PortForwarder.spawnDetached in its own process group, it reads
// its job (job.ts) as JSON on stdin, reports the bound ports
// (or a typed error) on fd 3, then forwards until SIGTERM or, when it was
// given one, until its exit fd (fd 4) reads EOF. Its counters are served
// on its stats endpoint (stats-endpoint.ts) meanwhile.
import net from 'node:net';
import { NetworkNamespace } from '../../netns/index.js';
import { runDetached } from '../detached.js';
import { UserNamespace } from '../userns/userns.js';
import { PortForwarder } from './forwarder.js';
import { type ForwarderReport, parseForwarderJob } from './job.js';
import { serveForwarderStats } from './stats-endpoint.js';

const EXIT_FD = 4;

void runDetached('ERR_PODNET_FORWARDER', async (raw) => {
  const job = parseForwarderJob(raw);
  // An unprivileged user's namespace is reached through a helper inside it.
  const userns = job.usernsPid === undefined ? undefined : await UserNamespace.join(job.usernsPid);
  const ns = userns?.netns ?? (await NetworkNamespace.open(job.netns!));
  let fwd: PortForwarder;
  try {
    fwd = await PortForwarder.start({
      netns: ns,
      containerAddress: job.containerAddress,
      mappings: job.mappings,
      ...(job.udpIdleTimeoutMs === undefined ? {} : { udpIdleTimeoutMs: job.udpIdleTimeoutMs }),
    });
  } catch (err) {
    ns.close();
    await userns?.close();
    throw err;
  }
  try {
    await serveForwarderStats(() => fwd.stats());
  } catch (err) {
    await fwd.close();
    ns.close();
    await userns?.close();
    throw err;
  }
  let stopping = false;
  const stop = async (): Promise<void> => {
    if (stopping) return;
    stopping = true;
    await fwd.close();
    ns.close();
    await userns?.close();
    process.exit(0);
  };
  process.on('SIGTERM', () => void stop());
  process.on('SIGINT', () => void stop());
  if (job.exitFd) {
    // A pipe or socket whose writers are elsewhere: EOF (or an error) once
    // they are all gone. Whatever is written to it is ignored.
    const exit = new net.Socket({ fd: EXIT_FD, readable: true, writable: false });
    exit.on('data', () => undefined);
    exit.on('end', () => void stop());
    exit.on('error', () => void stop());
  }
  return { ports: [...fwd.ports] } satisfies ForwarderReport;
});

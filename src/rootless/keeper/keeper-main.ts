// The keeper: a small detached process that owns a container's rootless
// engines (slirp4netns and the port forwarder, or pasta) for a process that exits
// right after setting them up, as `podnet up` does (podman's conmon plays
// this part). It reads its job as JSON on stdin, reports on fd 3 once the
// engines run (or why they could not start), then lives until SIGTERM, when
// it stops them and exits. If the engine dies, it exits too, so a keeper
// never outlives the network it keeps. When it runs a port forwarder, the
// forwarder's counters are served on its stats endpoint
// (forwarder/stats-endpoint.ts), for `podnet stats`.
import { dirname } from 'node:path';
import { NetworkNamespace } from '../../netns/index.js';
import { runDetached } from '../detached.js';
import { type RootlessEngines, startPasta, startSlirp4netns, stopEngines } from '../engines.js';
import { serveForwarderStats } from '../forwarder/stats-endpoint.js';
import { parseSlirp4netnsOptions } from '../slirp4netns/options.js';
import { UserNamespace } from '../userns/userns.js';
import { type KeeperReport, parseKeeperJob } from './job.js';

void runDetached('ERR_PODNET_KEEPER', async (raw) => {
  const job = parseKeeperJob(raw);
  // 'userns': an unprivileged user's namespaces, made and held here.
  const userns = job.netns === 'userns' ? await UserNamespace.create() : undefined;
  const ns = userns?.netns ?? (await NetworkNamespace.open(job.netns));
  let engines: RootlessEngines = {};
  try {
    if (userns) await ns.setLinkUp('lo');
    engines =
      job.engine === 'none'
        ? {}
        : job.engine === 'pasta'
          ? await startPasta(ns, job.options, job.ports, undefined, userns?.pid)
          : await startSlirp4netns(
              ns,
              parseSlirp4netnsOptions(job.options),
              job.ports,
              undefined,
              userns?.pid,
            );
    const fwd = engines.forwarder;
    if (fwd) await serveForwarderStats(() => fwd.stats());
  } catch (err) {
    await stopEngines(engines).catch(() => undefined);
    ns.close();
    await userns?.close();
    throw err;
  }
  // Nothing else keeps the event loop alive when no port is forwarded.
  const alive = setInterval(() => undefined, 1 << 30);
  let stopping = false;
  const stop = async (code: number): Promise<never> => {
    if (!stopping) {
      stopping = true;
      clearInterval(alive);
      await stopEngines(engines).catch(() => undefined);
      ns.close();
      await userns?.close();
    }
    process.exit(code);
  };
  process.on('SIGTERM', () => void stop(0));
  process.on('SIGINT', () => void stop(0));
  const engine = engines.slirp ?? engines.pasta;
  void engine?.exited.then((e) => {
    if (!e.requested) void stop(1);
  });
  // Nor does it outlive the namespaces it holds.
  void userns?.exited.then(() => {
    if (!stopping) void stop(1);
  });
  return {
    ...(engine ? { enginePid: engine.pid, engineDir: dirname(engine.logPath) } : {}),
    ...(userns ? { usernsPid: userns.pid } : {}),
  } satisfies KeeperReport;
});

// `socat TCP-LISTEN:...,fork TCP:CTR_ADDR:PORT` in HOST, one per port. It
// crosses the veth: socat cannot dial inside another namespace.
import { spawn } from 'node:child_process';
import { isListening, stopChild, waitFor } from '../../lib/procs.js';
import { CTR_ADDR, IPERF_PORT, PORT, ROLE_START_MS } from '../context.js';

const PORTS = [7003, 7103];

/** socat has no "ready" line: resolves once its port accepts. */
async function startSocat(ctx, hostPort, port) {
  const argv = [
    'socat',
    `TCP-LISTEN:${hostPort},bind=127.0.0.1,fork,reuseaddr,backlog=4096`,
    `TCP:${CTR_ADDR}:${port}`,
  ];
  const child = ctx.procs.add(
    spawn('nsenter', [`--net=${ctx.host.path}`, ...argv], { stdio: 'ignore' }),
  );
  await waitFor('socat', () => isListening(child.pid, hostPort, '127.0.0.1'), ROLE_START_MS);
  return child;
}

/** Contender of bench/forward.js (the interface is described there). */
export default {
  name: 'socat fork',
  needs: ['socat'],
  async start(ctx) {
    const socats = [
      await startSocat(ctx, PORTS[0], PORT),
      await startSocat(ctx, PORTS[1], IPERF_PORT),
    ];
    return {
      from: ctx.host,
      to: '127.0.0.1',
      ports: PORTS,
      // Each connection is a forked worker: its CPU counts once socat has reaped it.
      procs: socats.map((s) => ({ pid: s.pid, children: true })),
      stop: () => Promise.all(socats.map((s) => stopChild(s))),
    };
  },
};

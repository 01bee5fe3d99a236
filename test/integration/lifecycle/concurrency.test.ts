// Many podnet processes on one host at once: the same ID set up eight times,
// gc running in a loop under setups and teardowns, fifty setups on one
// network. Each test runs in a throwaway host of its own
// (test/helpers/throwaway-host.ts) that has already run one container, and
// ends with the host equal to what it held before.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { uniq } from '../../helpers/host.js';
import {
  CONF_FLAGS,
  limited,
  nsfsMounted,
  ok,
  skipReason,
  startTogether,
  stateOf,
  type WarmHost,
  warmHost,
} from '../../helpers/lifecycle-env.js';
import { settledDiff } from '../../helpers/throwaway-host.js';

const GC_LOOP = new URL('../../helpers/gc-loop.mjs', import.meta.url).pathname;

/** podnet's error output: one line, with a stable code. */
const ONE_LINE_ERROR = /^podnet: [^\n]+ \[(ERR_PODNET_[A-Z_]+)\]\n$/;

/** host-local's leases on the default network, as IP -> file content. */
function leases(warm: WarmHost): Map<string, string> {
  const dir = warm.host.path('/var/lib/cni/networks/podman');
  const out = new Map<string, string>();
  for (const f of readdirSync(dir)) {
    if (f === 'lock' || f.startsWith('last_reserved_ip')) continue;
    out.set(f, readFileSync(join(dir, f), 'utf8'));
  }
  return out;
}

describe.skipIf(skipReason !== undefined)('podnet processes racing on one host', () => {
  let warm: WarmHost | undefined;

  afterEach(async () => {
    await warm?.host.close();
    warm = undefined;
  });

  // A round's race is decided in a few ms of each process's run: three
  // rounds, each started from one instant (startTogether), to be seen losing.
  it('8 x `podnet up` of one ID at once, 3 rounds: one wins, 7 get ERR_PODNET_CONTAINER_EXISTS, the winner stays intact', async () => {
    warm = await warmHost();
    const { host, baseline } = warm;
    for (let round = 1; round <= 3; round++) {
      const id = `same-${round}-${uniq()}`;
      const together = startTogether(1500);
      const runs = await Promise.all(
        Array.from({ length: 8 }, () =>
          host.podnet(['up', id, '-p', '127.0.0.1:8080:80', '--json', ...CONF_FLAGS], together),
        ),
      );
      const winners = runs.filter((r) => r.code === 0);
      const losers = runs.filter((r) => r.code !== 0);
      // The winner's container, as it said: state, namespace, address, lease,
      // rules; all gathered first, so a failure shows the whole picture.
      const ip =
        winners.length > 0
          ? (JSON.parse(winners[0]!.stdout) as { IPAddress: string }).IPAddress
          : '';
      const state = await stateOf(host, id);
      const netns = state?.netnsPath ?? '';
      const addr = await host.run([
        'nsenter',
        `--net=${netns}`,
        'ip',
        '-o',
        '-4',
        'addr',
        'show',
        'eth0',
      ]);
      // The native driver's DNAT: elements of its map of ports on one host address.
      const nat = await host.run(['nft', 'list', 'map', 'inet', 'podnet', 'dnat4']);
      const mapped = [...nat.stdout.matchAll(/: (\d+\.\d+\.\d+\.\d+) \. (\d+)/g)].map(
        (m) => `${m[1]}:${m[2]}`,
      );
      const seen = {
        round,
        winners: winners.length,
        losers: losers.map((l) => ONE_LINE_ERROR.exec(l.stderr)?.[1] ?? l.stderr),
        phase: state?.phase,
        mounted: netns !== '' && (await nsfsMounted(host, netns)),
        namespaces: readdirSync(host.path('/run/netns')).length,
        eth0HasAddress: addr.stdout.includes(` ${ip}/16 `),
        leases: [...leases(warm).entries()].map(([k, v]) => [k, v.split(/\r?\n/)[0]]),
        dnatRules: mapped.length,
        dnatToWinner: mapped.includes(`${ip}:80`),
      };
      expect(seen).toEqual({
        round,
        winners: 1,
        losers: Array(7).fill('ERR_PODNET_CONTAINER_EXISTS'),
        phase: 'ready',
        mounted: true,
        namespaces: 1,
        eth0HasAddress: true,
        leases: [[ip, id]],
        dnatRules: 1,
        dnatToWinner: true,
      });

      await ok(host, ['down', id]);
      await ok(host, ['gc']);
      expect(await settledDiff(host, baseline)).toEqual([]);
    }
  });

  it('gc in a loop while 20 containers are set up and torn down: each setup fails cleanly or ends ready and mounted', async () => {
    warm = await warmHost();
    const { host, baseline } = warm;
    const loop = host.spawn([process.execPath, GC_LOOP, CONF_FLAGS[1]!]);
    let loopOut = '';
    loop.stdout?.on('data', (d: Buffer) => {
      loopOut += d.toString();
    });
    const loopEnded = new Promise((r) => loop.on('close', r));
    const problems: string[] = [];
    let ready = 0;
    try {
      await limited(
        4,
        Array.from({ length: 20 }, (_, i) => async () => {
          const id = `loop-${i}-${uniq()}`;
          const up = await host.podnet(['up', id, '-p', `127.0.0.1:${9000 + i}:80`, ...CONF_FLAGS]);
          const state = await stateOf(host, id);
          if (up.code !== 0) {
            if (!ONE_LINE_ERROR.test(up.stderr))
              problems.push(`${id}: up failed without a one-line coded error: ${up.stderr}`);
            if (state) problems.push(`${id}: up failed and left state (phase ${state.phase})`);
            return;
          }
          if (state?.phase !== 'ready')
            problems.push(`${id}: up succeeded, state is ${state?.phase ?? 'gone'}`);
          else if (!(await nsfsMounted(host, state.netnsPath!)))
            problems.push(`${id}: up succeeded, namespace ${state.netnsPath} not mounted`);
          else ready++;
          const down = await host.podnet(['down', id, ...CONF_FLAGS]);
          if (down.code !== 0) problems.push(`${id}: down failed: ${down.stderr.trim()}`);
        }),
      );
    } finally {
      loop.stdin?.end();
      await loopEnded;
    }
    const { runs: gcRuns, errors: gcErrors } = JSON.parse(
      loopOut || '{"runs":0,"errors":["the gc loop printed nothing"]}',
    ) as { runs: number; errors: string[] };
    console.log(
      `gc loop: ${gcRuns} runs during 20 setups and teardowns; ${ready} setups ended ready and mounted`,
    );
    await ok(host, ['gc']);
    // gc's own complaints while racing are shown, not judged: the contract is the setups'.
    expect(problems, `gc reported: ${gcErrors.join('; ') || 'nothing'}`).toEqual([]);
    expect(ready).toBeGreaterThan(0);
    expect(gcRuns).toBeGreaterThan(1);
    expect(await settledDiff(host, baseline)).toEqual([]);
  });

  it('50 setups at once on one network: 50 distinct addresses, nothing left after teardown', async () => {
    warm = await warmHost();
    const { host, baseline } = warm;
    const ids = Array.from({ length: 50 }, (_, i) => `fifty-${i}-${uniq()}`);
    const ups = await Promise.all(
      ids.map((id) => host.podnet(['up', id, '--json', ...CONF_FLAGS])),
    );
    expect(ups.filter((r) => r.code !== 0).map((r) => r.stderr)).toEqual([]);
    const ips = ups.map((r) => (JSON.parse(r.stdout) as { IPAddress: string }).IPAddress);
    expect(new Set(ips).size).toBe(50);
    expect(leases(warm).size).toBe(50);
    const downs = await Promise.all(ids.map((id) => host.podnet(['down', id, ...CONF_FLAGS])));
    expect(downs.filter((r) => r.code !== 0).map((r) => r.stderr)).toEqual([]);
    await ok(host, ['gc']);
    expect(await settledDiff(host, baseline)).toEqual([]);
  });
});

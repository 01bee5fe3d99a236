// The throwaway host the lifecycle tests stand on: what is made inside shows
// in its snapshot and nowhere on the real host, and closing it ends what
// runs inside. If these fail, the crash and concurrency tests prove nothing.
import { execFileSync } from 'node:child_process';
import { afterEach, describe, expect, it } from 'vitest';
import { uniq } from '../../helpers/host.js';
import { skipReason } from '../../helpers/lifecycle-env.js';
import { running, until } from '../../helpers/process.js';
import { diffSnapshots, type ThrowawayHost, throwawayHost } from '../../helpers/throwaway-host.js';

describe.skipIf(skipReason !== undefined)('throwaway host', () => {
  let host: ThrowawayHost | undefined;

  afterEach(async () => {
    await host?.close();
    host = undefined;
  });

  it('shows what is made inside in its snapshot, and none of it on the real host', async () => {
    host = await throwawayHost();
    const before = await host.snapshot();
    const tag = `podnet-test-${uniq()}`;
    const link = `pt${uniq(3)}`;
    const steps = [
      [
        'iptables',
        '-t',
        'raw',
        '-A',
        'PREROUTING',
        '-m',
        'comment',
        '--comment',
        tag,
        '-j',
        'ACCEPT',
      ],
      ['ip6tables', '-t', 'security', '-N', 'PT-TEST'],
      ['ip', 'link', 'add', link, 'type', 'bridge'],
      ['nft', 'add', 'table', 'inet', 'podnet'],
      ['nft', 'add', 'set', 'inet', 'podnet', 'subnets4', '{ type ipv4_addr; flags interval; }'],
      ['nft', 'add', 'element', 'inet', 'podnet', 'subnets4', '{ 10.88.0.0/16 }'],
      ['mkdir', '-p', '/run/podnet', '/var/lib/cni/networks/podman'],
      ['touch', `/run/podnet/${tag}.json`, '/var/lib/cni/networks/podman/10.88.0.9'],
    ];
    for (const argv of steps) expect((await host.run(argv)).stderr).toBe('');
    const sleeper = host.spawn(['sleep', '60']);
    await until('the sleeper to enter the host', () =>
      host!.processes().some((p) => p.startsWith(`${sleeper.pid} `)),
    );

    expect(diffSnapshots(before, await host.snapshot())).toEqual([
      'processes: + sleep 60',
      `links: + ${link} bridge master=-`,
      `iptables raw: + -A PREROUTING -m comment --comment ${tag} -j ACCEPT`,
      'ip6tables security: + :PT-TEST -',
      // Sorted lines, as every section.
      'nftables table inet podnet: + elements = { 10.88.0.0/16 }',
      'nftables table inet podnet: + flags interval',
      'nftables table inet podnet: + set subnets4 {',
      'nftables table inet podnet: + table inet podnet {',
      'nftables table inet podnet: + type ipv4_addr',
      'nftables table inet podnet: + }',
      `podnet state (/run/podnet): + /run/podnet/${tag}.json`,
      'host-local leases (/var/lib/cni/networks): + /var/lib/cni/networks/podman/10.88.0.9',
    ]);
    const real = (cmd: string, args: string[]): string =>
      execFileSync(cmd, args, { encoding: 'utf8' });
    expect(real('iptables-save', ['-t', 'raw'])).not.toContain(tag);
    expect(real('ip', ['-o', 'link', 'show'])).not.toContain(`${link}:`);

    const holder = host.pid;
    await host.close();
    host = undefined;
    await until('the sleeper to be killed', () => !running(sleeper.pid!));
    expect(running(holder)).toBe(false);
  });
});

// `podnet network`'s flags as the library's options: the pure part of the command.
import { describe, expect, it } from 'vitest';
import type { FlagValues } from '../../../src/cli/flags.js';
import {
  connectOptions,
  createOptions,
  listFilters,
  parsePairs,
} from '../../../src/cli/network.js';

describe('podnet network flags', () => {
  it('turns create flags into create options, --opt as repeatable comma lists', () => {
    expect(
      createOptions('web', {
        subnet: ['10.1.0.0/24', 'fd00::/64'],
        gateway: ['10.1.0.254'],
        'ip-range': ['10.1.0.128/25'],
        ipv6: true,
        internal: true,
        'disable-dns': true,
        driver: 'macvlan',
        opt: ['mtu=1400,mode=bridge', 'parent=eth0'],
        route: ['10.9.0.0/16,10.1.0.9'],
        label: ['a=b=c', 'flag'],
      }),
    ).toEqual({
      name: 'web',
      driver: 'macvlan',
      subnets: ['10.1.0.0/24', 'fd00::/64'],
      gateway: ['10.1.0.254'],
      ipRange: ['10.1.0.128/25'],
      ipv6: true,
      internal: true,
      dns: false,
      options: { mtu: '1400', mode: 'bridge', parent: 'eth0' },
      routes: [{ destination: '10.9.0.0/16', gateway: '10.1.0.9' }],
      labels: { a: 'b=c', flag: '' },
    });
    expect(createOptions(undefined, {})).toEqual({});
  });

  it('refuses malformed flags as usage errors', () => {
    const cases: [FlagValues, RegExp][] = [
      [{ driver: 'overlay' }, /--driver 'overlay'/],
      [{ opt: ['mtu'] }, /--opt 'mtu': expected mtu=VALUE/],
      [{ route: ['10.0.0.0/8'] }, /--route '10\.0\.0\.0\/8': expected DEST-CIDR,GATEWAY/],
      [{ label: ['=x'] }, /--label '=x': expected KEY=VALUE/],
    ];
    for (const [flags, message] of cases)
      expect(() => createOptions('n', flags), message.source).toThrow(message);
    expect(() => listFilters({ filter: ['colour=red'] })).toThrow(/--filter 'colour=red'/);
  });

  it('reads ls filters by key, and pairs with or without commas', () => {
    expect(
      listFilters({ filter: ['name=^a', 'label=x=1', 'label=y', 'driver=bridge', 'id=ab'] }),
    ).toEqual({
      name: ['^a'],
      label: ['x=1', 'y'],
      driver: ['bridge'],
      id: ['ab'],
    });
    expect(parsePairs('label', ['k=v,w'], false)).toEqual({ k: 'v,w' });
    expect(parsePairs('opt', ['k=v,w=x'], true)).toEqual({ k: 'v', w: 'x' });
  });

  it('turns connect flags into the per-network options, --alias repeatable', () => {
    expect(
      connectOptions({
        ip: '10.1.0.9',
        ip6: 'fd00::9',
        mac: '02:42:0a:01:00:09',
        alias: ['a', 'b'],
      }),
    ).toEqual({ ip: '10.1.0.9', ip6: 'fd00::9', mac: '02:42:0a:01:00:09', aliases: ['a', 'b'] });
    expect(connectOptions({} as FlagValues)).toEqual({});
  });
});

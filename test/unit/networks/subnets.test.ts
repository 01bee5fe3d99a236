// Subnet arithmetic, podman's free-subnet rule and the /proc/net route parsers.
import { describe, expect, it } from 'vitest';
import {
  formatSubnet,
  freeIPv4Subnet,
  freeIPv6Subnet,
  parseSubnet,
  routeSubnets,
  subnetsOverlap,
} from '../../../src/networks/subnets.js';
import { throwsInvalidArgument } from '../../helpers/errors.js';

const s = (t: string) => parseSubnet(t);

describe('subnets', () => {
  it('parses CIDRs to their network address and refuses what is not one', () => {
    expect(formatSubnet(s('10.89.3.7/24'))).toBe('10.89.3.0/24');
    expect(formatSubnet(s('fd00:1:2:3:4::1/64'))).toBe('fd00:1:2:3::/64');
    for (const bad of ['10.89.0.0', '10.1/8', '10.0.0.0/33', 'fd00::/129', 'x/24', '0x0a.0.0.0/8'])
      throwsInvalidArgument(() => parseSubnet(bad), bad);
  });

  it('overlaps when either contains the other, never across families', () => {
    expect(subnetsOverlap(s('10.0.0.0/8'), s('10.89.1.0/24'))).toBe(true);
    expect(subnetsOverlap(s('10.89.1.0/24'), s('10.0.0.0/8'))).toBe(true);
    expect(subnetsOverlap(s('10.89.1.0/24'), s('10.89.2.0/24'))).toBe(false);
    expect(subnetsOverlap(s('0.0.0.0/0'), s('::/0'))).toBe(false);
  });

  it('picks the first free /24 from 10.89.0.0/16 upwards, then the next pool', () => {
    expect(formatSubnet(freeIPv4Subnet([])!)).toBe('10.89.0.0/24');
    expect(formatSubnet(freeIPv4Subnet([s('10.89.0.0/24'), s('10.89.1.0/25')])!)).toBe(
      '10.89.2.0/24',
    );
    expect(formatSubnet(freeIPv4Subnet([s('10.89.0.0/16')])!)).toBe('10.90.0.0/24');
    expect(freeIPv4Subnet([s('10.0.0.0/8')])).toBeUndefined();
  });

  it('picks a random ULA /64 that overlaps nothing used', () => {
    let calls = 0;
    const random = (n: number) => new Uint8Array(n).fill(calls++ === 0 ? 1 : 2);
    const used = [s('fd01:101:101:101::/64')];
    expect(formatSubnet(freeIPv6Subnet(used, random)!)).toBe('fd02:202:202:202::/64');
    expect(formatSubnet(freeIPv6Subnet([])!)).toMatch(/^fd[0-9a-f]{2}:.*::\/64$/);
  });

  it('takes the subnets of the main table and IPv6 routes, leaving out default, link-local and multicast', () => {
    const route = (destination: string, prefixLength: number, table = 254) => ({
      family: (destination.includes(':') ? 6 : 4) as 4 | 6,
      destination,
      prefixLength,
      table,
      protocol: 2,
      scope: 253,
      type: 1,
    });
    const routes = [
      route('0.0.0.0', 0),
      route('10.0.0.0', 16),
      route('10.89.0.0', 24),
      route('10.99.0.1', 32, 255), // the local table: not the main one
      route('fd00:1111:2222:3333::', 64),
      route('fe80::', 64),
      route('ff00::', 8, 255),
      route('::', 0),
    ];
    expect(routeSubnets(routes).map(formatSubnet)).toEqual([
      '10.0.0.0/16',
      '10.89.0.0/24',
      'fd00:1111:2222:3333::/64',
    ]);
  });
});

// Subnet arithmetic, podman's free-subnet rule and the /proc/net route parsers.
import { describe, expect, it } from 'vitest';
import {
  formatSubnet,
  freeIPv4Subnet,
  freeIPv6Subnet,
  parseIPv4Routes,
  parseIPv6Routes,
  parseSubnet,
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

  it('reads /proc/net/route and /proc/net/ipv6_route, default and link-local routes left out', () => {
    const v4 = `Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT
eth0\t00000000\t0100000A\t0003\t0\t0\t0\t00000000\t0\t0\t0
eth0\t0000000A\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0
br0\t0000590A\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0
`;
    expect(parseIPv4Routes(v4).map(formatSubnet)).toEqual(['10.0.0.0/16', '10.89.0.0/24']);
    const v6 = [
      'fd0011112222333300000000000000 00 00000000000000000000000000000000 00 00000000000000000000000000000000 00000400 00000001 00000000 00000001     eth0',
      'fd001111222233330000000000000000 40 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000001 00000000 00000001     br0',
      'fe800000000000000000000000000000 40 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000001 00000000 00000001     eth0',
      '00000000000000000000000000000000 00 00000000000000000000000000000000 00 fe800000000000000000000000000001 00000400 00000001 00000000 00000003     eth0',
      'ff000000000000000000000000000000 08 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000001 00000000 00000001     eth0',
    ].join('\n');
    expect(parseIPv6Routes(v6).map(formatSubnet)).toEqual(['fd00:1111:2222:3333::/64']);
  });
});

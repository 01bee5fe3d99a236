import { describe, expect, it } from 'vitest';
import { InvalidArgumentError } from '../../../src/errors.js';
import { checkPort, encodeSockaddr, socketParams } from '../../../src/netns/sockaddr.js';

describe('encodeSockaddr', () => {
  it('encodes sockaddr_in with the port in network order', () => {
    const { family, addr } = encodeSockaddr('10.1.2.3', 8080);
    expect(family).toBe(4);
    expect(addr.toString('hex')).toBe('02001f900a0102030000000000000000');
  });

  it('encodes sockaddr_in6, with :: compression and an IPv4 tail', () => {
    expect(encodeSockaddr('::1', 80).addr.subarray(8, 24).toString('hex')).toBe(
      '00000000000000000000000000000001',
    );
    expect(encodeSockaddr('fd00:1::2', 1).addr.subarray(8, 24).toString('hex')).toBe(
      'fd000001000000000000000000000002',
    );
    expect(encodeSockaddr('::ffff:10.0.0.1', 1).addr.subarray(8, 24).toString('hex')).toBe(
      '00000000000000000000ffff0a000001',
    );
    expect(encodeSockaddr('1:2:3:4:5:6:7:8', 1).addr.length).toBe(28);
  });

  it('rejects names and zones', () => {
    expect(() => encodeSockaddr('localhost', 1)).toThrow(InvalidArgumentError);
    expect(() => encodeSockaddr('fe80::1%eth0', 1)).toThrow(InvalidArgumentError);
  });
});

describe('checkPort and socketParams', () => {
  it('accepts 0..65535 only', () => {
    expect(checkPort(0)).toBe(0);
    expect(checkPort(65535)).toBe(65535);
    for (const bad of [-1, 65536, 1.5, '80', Number.NaN])
      expect(() => checkPort(bad)).toThrow(InvalidArgumentError);
  });

  it('maps socket kinds and rejects others', () => {
    expect(socketParams('udp6')).toEqual({ domain: 10, type: 2, protocol: 0 });
    expect(() => socketParams('sctp' as never)).toThrow(/tcp4, tcp6, udp4 or udp6/);
  });
});

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { InvalidArgumentError, isPodnetError } from '../../../src/errors.js';
import {
  checkContainerAddress,
  containerAddressProblem,
} from '../../../src/rootless/container-address.js';
import { parseForwarderJob } from '../../../src/rootless/forwarder/job.js';
import { PortForwarder } from '../../../src/rootless/index.js';
import { parseKeeperJob } from '../../../src/rootless/keeper/job.js';

/** Every spelling the issue named, and others of the same classes. */
const LOOPBACK = [
  '127.0.0.1',
  '127.0.0.2',
  '127.255.255.254',
  '::1',
  '::0:1',
  '0:0:0:0:0:0:0:1',
  '0000:0000:0000:0000:0000:0000:0000:0001',
  '0::0:0:1',
  '::ffff:7f00:1',
  '::FFFF:7F00:1',
  '::ffff:127.0.0.1',
  '::ffff:127.1.2.3',
  '0:0:0:0:0:ffff:7f00:0001',
];
const UNSPECIFIED = [
  '0.0.0.0',
  '0.1.2.3', // 0.0.0.0/8: connect() to it reaches this host
  '::',
  '::0',
  '0:0:0:0:0:0:0:0',
  '::ffff:0.0.0.0',
  '::ffff:0:0',
];
const OTHER_REFUSED = [
  '224.0.0.1',
  '255.255.255.255',
  'ff02::1',
  '::ffff:224.0.0.1',
  '::127.0.0.1', // IPv4-compatible (deprecated): Linux does not dial it as IPv4
  '::7f00:1',
  '::10.0.2.100',
];
const NOT_ADDRESSES = [
  '',
  'localhost',
  '127.1',
  '0x7f.0.0.1',
  '2130706433',
  '127.0.0.1 ',
  ' 10.0.2.100',
  '10.0.2.100/24',
  '[::1]',
  'fe80::1%eth0',
  '1.2.3.4.5',
  ':::1',
  42,
  null,
  undefined,
  {},
];
const ACCEPTED = [
  '10.0.2.100',
  '192.0.2.2',
  '172.16.0.5',
  '169.254.1.2',
  'fd00::2',
  '2001:db8::5',
  '::ffff:10.0.2.100',
  '::ffff:a00:264',
  'fe80::1',
  '1.0.0.0',
  '126.255.255.255',
  '128.0.0.0',
];

describe('the container address guard', () => {
  it.each([...LOOPBACK, ...UNSPECIFIED, ...OTHER_REFUSED])('refuses %s', (address) => {
    expect(containerAddressProblem(address)).toBeDefined();
    const err = (() => {
      try {
        checkContainerAddress(address);
      } catch (e) {
        return e;
      }
      return undefined;
    })();
    expect(err).toBeInstanceOf(InvalidArgumentError);
    expect(isPodnetError(err) && err.code).toBe('ERR_PODNET_INVALID_ARGUMENT');
    expect((err as Error).message).toContain(JSON.stringify(address));
    expect((err as Error).message).not.toContain('\n');
  });

  it('names the class it refused', () => {
    expect(containerAddressProblem('::0:1')).toBe('it is in the loopback range');
    expect(containerAddressProblem('::ffff:7f00:1')).toBe('it is in the loopback range');
    expect(containerAddressProblem('::0')).toBe('it is in the unspecified range');
    expect(containerAddressProblem('::7f00:1')).toBe('it is a deprecated IPv4-compatible address');
  });

  it.each(NOT_ADDRESSES)('refuses %j as not an address', (value) => {
    expect(containerAddressProblem(value)).toMatch(/not an IPv4 or IPv6 address/);
    expect(() => checkContainerAddress(value)).toThrow(InvalidArgumentError);
  });

  it.each(ACCEPTED)('accepts %s with its socket family', (address) => {
    expect(checkContainerAddress(address)).toEqual({
      address,
      family: address.includes(':') ? 6 : 4,
    });
  });

  it('refuses every 127.0.0.0/8 and 0.0.0.0/8 address, bare and IPv4-mapped, in any IPv6 spelling', () => {
    const octet = fc.integer({ min: 0, max: 255 });
    fc.assert(
      fc.property(
        fc.constantFrom(0, 127),
        octet,
        octet,
        octet,
        fc.boolean(),
        fc.boolean(),
        (first, b, c, d, hexTail, zeros) => {
          const v4 = `${first}.${b}.${c}.${d}`;
          expect(containerAddressProblem(v4)).toBeDefined();
          const tail = hexTail
            ? `${((first << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`
            : v4;
          const mapped = zeros ? `0:0:0:0:0:ffff:${tail}` : `::ffff:${tail}`;
          expect(containerAddressProblem(mapped)).toBeDefined();
        },
      ),
    );
  });

  it('refuses ::1 however its zero groups are written', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 6 }), fc.integer({ min: 1, max: 4 }), (cut, pad) => {
        // Seven zero groups, some written out (padded to `pad` digits), the rest as '::'.
        const written = Array.from({ length: cut }, () => '0'.repeat(pad));
        const text = cut === 0 ? '::1' : `${written.join(':')}::${'0'.repeat(pad - 1)}1`;
        expect(containerAddressProblem(text)).toBe('it is in the loopback range');
      }),
    );
  });

  it('accepts every IPv4 address outside the refused blocks, bare and IPv4-mapped', () => {
    fc.assert(
      fc.property(fc.ipV4(), (v4) => {
        const first = Number(v4.split('.')[0]);
        // 240.0.0.0/4 (reserved) stays: Linux can route it as unicast.
        const refused =
          first === 0 || first === 127 || (first >= 224 && first < 240) || v4 === '255.255.255.255';
        expect(containerAddressProblem(v4) === undefined).toBe(!refused);
        expect(containerAddressProblem(`::ffff:${v4}`) === undefined).toBe(!refused);
      }),
    );
  });
});

describe('the guard where a container address is accepted', () => {
  it.each(['::0:1', '0:0:0:0:0:0:0:1', '::ffff:7f00:1', '::0'])(
    'PortForwarder.start and spawnDetached refuse %s before anything is made',
    async (containerAddress) => {
      const opts = { mappings: [{ hostIP: '127.0.0.1', hostPort: 0, containerPort: 80 }] };
      // No namespace is needed: the address is refused before it would be used.
      await expect(
        PortForwarder.start({ ...opts, netns: undefined as never, containerAddress }),
      ).rejects.toThrow(/loopback|unspecified/);
      await expect(
        PortForwarder.spawnDetached({ ...opts, netns: '/nonexistent', containerAddress }),
      ).rejects.toThrow(InvalidArgumentError);
      expect(() =>
        parseForwarderJob({ ...opts, netns: '/run/netns/x', containerAddress, exitFd: false }),
      ).toThrow(/containerAddress/);
    },
  );

  it('the keeper checks its job (untrusted: it comes through a pipe) before it starts anything', () => {
    const job = { engine: 'pasta', netns: 'userns', options: [], ports: [] };
    expect(parseKeeperJob(job)).toEqual(job);
    for (const bad of [
      null,
      { ...job, engine: 'sh' },
      { ...job, netns: '' },
      { ...job, options: [1] },
      { ...job, ports: [{ hostPort: '80', containerPort: 80 }] },
      { ...job, containerAddress: '10.0.2.5' },
    ]) {
      expect(() => parseKeeperJob(bad)).toThrow(InvalidArgumentError);
    }
  });
});

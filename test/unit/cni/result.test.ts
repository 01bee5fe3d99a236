import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  type CniResult,
  type CniResult020,
  type CniResult040,
  type CniResult100,
  convertResult,
  normalizeResult,
  parseResult,
} from '../../../src/cni/index.js';

const r020: CniResult020 = {
  cniVersion: '0.2.0',
  ip4: { ip: '10.1.2.3/24', gateway: '10.1.2.1', routes: [{ dst: '0.0.0.0/0' }] },
  ip6: { ip: 'fd00::3/64', gateway: 'fd00::1', routes: [{ dst: '::/0', gw: 'fd00::1' }] },
  dns: { nameservers: ['10.1.2.1'] },
};
const r040: CniResult040 = {
  cniVersion: '0.4.0',
  interfaces: [
    { name: 'veth1', mac: '00:11:22:33:44:55' },
    { name: 'eth0', sandbox: '/run/netns/a' },
  ],
  ips: [
    { version: '4', address: '10.1.2.3/24', gateway: '10.1.2.1', interface: 1 },
    { version: '6', address: 'fd00::3/64', gateway: 'fd00::1', interface: 1 },
  ],
  routes: [{ dst: '0.0.0.0/0' }, { dst: '::/0', gw: 'fd00::1' }],
  dns: { nameservers: ['10.1.2.1'], search: ['example'] },
};
const r100: CniResult100 = {
  cniVersion: '1.0.0',
  interfaces: [
    { name: 'veth1', mac: '00:11:22:33:44:55' },
    { name: 'eth0', sandbox: '/run/netns/a' },
  ],
  ips: [
    { address: '10.1.2.3/24', gateway: '10.1.2.1', interface: 1 },
    { address: 'fd00::3/64', gateway: 'fd00::1', interface: 1 },
  ],
  routes: [{ dst: '0.0.0.0/0' }, { dst: '::/0', gw: 'fd00::1' }],
  dns: { nameservers: ['10.1.2.1'], search: ['example'] },
};

describe('parseResult', () => {
  it('accepts each version shape and drops unknown fields', () => {
    expect(parseResult({ ...r020, extra: 1 }, '1.0.0')).toEqual(r020);
    expect(parseResult({ ...r040, extra: 1 }, '1.0.0')).toEqual(r040);
    expect(parseResult(r100, '0.4.0')).toEqual(r100);
    const r110 = {
      cniVersion: '1.1.0',
      interfaces: [{ name: 'eth0', mtu: 1500, socketPath: '/s', pciID: '0000:00:01.0' }],
      routes: [{ dst: '10.0.0.0/8', mtu: 1400, advmss: 1360, priority: 10, table: 100, scope: 0 }],
    };
    expect(parseResult(r110, '1.0.0')).toEqual(r110);
  });

  it('uses the fallback version when the result has none', () => {
    expect(parseResult({ ips: [{ address: '10.0.0.2/8' }] }, '1.0.0')).toEqual({
      cniVersion: '1.0.0',
      ips: [{ address: '10.0.0.2/8' }],
    });
    expect(
      parseResult({ ips: [{ version: '4', address: '10.0.0.2/8' }] }, '0.3.1').cniVersion,
    ).toBe('0.3.1');
  });

  it.each([
    ['not an object', 'x'],
    ['an array', []],
    ['null', null],
    ['unknown version', { cniVersion: '0.9.0' }],
    ['version not a string', { cniVersion: 1 }],
    ['address without prefix', { cniVersion: '1.0.0', ips: [{ address: '10.0.0.1' }] }],
    ['bad address', { cniVersion: '1.0.0', ips: [{ address: '10.0.0.256/24' }] }],
    ['prefix too long', { cniVersion: '1.0.0', ips: [{ address: '10.0.0.1/33' }] }],
    ['v6 prefix too long', { cniVersion: '1.0.0', ips: [{ address: 'fd00::1/129' }] }],
    ['leading zero prefix', { cniVersion: '1.0.0', ips: [{ address: '10.0.0.1/024' }] }],
    ['non-decimal v4', { cniVersion: '1.0.0', ips: [{ address: '0x0a.0.0.1/8' }] }],
    ['bad gateway', { cniVersion: '1.0.0', ips: [{ address: '10.0.0.1/8', gateway: 'gw' }] }],
    [
      'negative interface',
      { cniVersion: '1.0.0', ips: [{ address: '10.0.0.1/8', interface: -1 }] },
    ],
    [
      'fractional interface',
      { cniVersion: '1.0.0', ips: [{ address: '10.0.0.1/8', interface: 0.5 }] },
    ],
    ['interface without name', { cniVersion: '1.0.0', interfaces: [{ mac: 'x' }] }],
    ['ips not an array', { cniVersion: '1.0.0', ips: {} }],
    ['route without dst', { cniVersion: '1.0.0', routes: [{ gw: '10.0.0.1' }] }],
    ['dns nameservers not strings', { cniVersion: '1.0.0', dns: { nameservers: [1] } }],
    ['0.4.0 missing version', { cniVersion: '0.4.0', ips: [{ address: '10.0.0.1/8' }] }],
    [
      '0.4.0 version mismatch',
      { cniVersion: '0.4.0', ips: [{ version: '6', address: '10.0.0.1/8' }] },
    ],
    ['0.2.0 ip4 holding v6', { cniVersion: '0.2.0', ip4: { ip: 'fd00::1/64' } }],
    ['0.2.0 ip6 holding v4', { cniVersion: '0.2.0', ip6: { ip: '10.0.0.1/8' } }],
  ])('rejects %s', (_what, raw) => {
    expect(() => parseResult(raw, '1.0.0')).toThrow(/result|cniVersion|JSON object/);
  });
});

describe('convertResult', () => {
  it('0.2.0 -> 0.4.0 -> 1.0.0 and back', () => {
    const up = convertResult(r020, '0.4.0');
    expect(up).toEqual({
      cniVersion: '0.4.0',
      ips: [
        { version: '4', address: '10.1.2.3/24', gateway: '10.1.2.1' },
        { version: '6', address: 'fd00::3/64', gateway: 'fd00::1' },
      ],
      routes: [{ dst: '0.0.0.0/0' }, { dst: '::/0', gw: 'fd00::1' }],
      dns: { nameservers: ['10.1.2.1'] },
    });
    expect(convertResult(up, '0.2.0')).toEqual(r020);
    expect(convertResult(convertResult(r020, '1.0.0'), '0.1.0')).toEqual({
      ...r020,
      cniVersion: '0.1.0',
    });
  });

  it('0.4.0 <-> 1.0.0', () => {
    expect(convertResult(r040, '1.0.0')).toEqual(r100);
    expect(convertResult(r100, '0.4.0')).toEqual(r040);
    expect(convertResult(r100, '0.3.0')).toEqual({ ...r040, cniVersion: '0.3.0' });
    expect(convertResult(r100, '1.1.0')).toEqual({ ...r100, cniVersion: '1.1.0' });
  });

  it('drops what the target cannot hold', () => {
    const r: CniResult = {
      cniVersion: '1.1.0',
      interfaces: [{ name: 'eth0', mtu: 9000, socketPath: '/s', pciID: 'p', sandbox: '/n' }],
      ips: [{ address: '10.0.0.2/24' }, { address: '10.0.0.3/24' }],
      routes: [{ dst: 'fd00::/8' }, { dst: '10.0.0.0/8', mtu: 1400 }],
    };
    expect(convertResult(r, '0.4.0')).toEqual({
      cniVersion: '0.4.0',
      interfaces: [{ name: 'eth0', sandbox: '/n' }],
      ips: [
        { version: '4', address: '10.0.0.2/24' },
        { version: '4', address: '10.0.0.3/24' },
      ],
      routes: [{ dst: 'fd00::/8' }, { dst: '10.0.0.0/8', mtu: 1400 }],
    });
    // 0.2.0: first address per family; a route only with an address of its family.
    expect(convertResult(r, '0.2.0')).toEqual({
      cniVersion: '0.2.0',
      ip4: { ip: '10.0.0.2/24', routes: [{ dst: '10.0.0.0/8', mtu: 1400 }] },
    });
  });

  it('refuses to make a 0.2.0 result without addresses', () => {
    expect(() =>
      convertResult({ cniVersion: '1.0.0', interfaces: [{ name: 'lo' }] }, '0.2.0'),
    ).toThrow(/no IP address/);
  });
});

describe('normalizeResult', () => {
  it('gives the 1.1.0 form with every list present', () => {
    expect(normalizeResult({ cniVersion: '0.3.1' })).toEqual({
      cniVersion: '1.1.0',
      interfaces: [],
      ips: [],
      routes: [],
      dns: {},
    });
    const fromOld = normalizeResult(r040);
    expect(fromOld).toEqual({ ...r100, cniVersion: '1.1.0' });
    expect(normalizeResult(r100)).toEqual(fromOld);
  });
});

// Generators of valid results, limited to what each version can express, so
// that converting away and back is the identity.
const v4 = fc.ipV4();
const v6 = fc.ipV6();
const cidr4 = fc.tuple(v4, fc.integer({ min: 0, max: 32 })).map(([a, p]) => `${a}/${p}`);
const cidr6 = fc.tuple(v6, fc.integer({ min: 0, max: 128 })).map(([a, p]) => `${a}/${p}`);
const anyCidr = fc.oneof(cidr4, cidr6);
const anyIp = fc.oneof(v4, v6);
const str = fc.string({ minLength: 1, maxLength: 8 });
const dns = fc.record(
  {
    nameservers: fc.array(anyIp, { minLength: 1, maxLength: 2 }),
    domain: str,
    search: fc.array(str, { minLength: 1, maxLength: 2 }),
    options: fc.array(str, { minLength: 1, maxLength: 2 }),
  },
  { requiredKeys: [] },
);
const route = fc.record(
  {
    dst: anyCidr,
    gw: anyIp,
    mtu: fc.nat(),
    advmss: fc.nat(),
    priority: fc.nat(),
    table: fc.nat(),
    scope: fc.integer({ min: -1, max: 255 }),
  },
  { requiredKeys: ['dst'] },
);
const iface040 = fc.record({ name: str, mac: str, sandbox: str }, { requiredKeys: ['name'] });
const ip100 = fc.record(
  { address: anyCidr, gateway: anyIp, interface: fc.nat(4) },
  { requiredKeys: ['address'] },
);
const result100 = fc.record(
  {
    cniVersion: fc.constantFrom('1.0.0' as const, '1.1.0' as const),
    interfaces: fc.array(iface040),
    ips: fc.array(ip100),
    routes: fc.array(route),
    dns,
  },
  { requiredKeys: ['cniVersion'] },
) as fc.Arbitrary<CniResult100>;

// libcni's JSON is omitempty: an empty dns object is never written.
const clean = (r: CniResult): CniResult =>
  'dns' in r && r.dns !== undefined && Object.keys(r.dns).length === 0
    ? (({ dns: _d, ...rest }) => rest)(r)
    : r;

describe('round trips (fast-check)', () => {
  it('1.x -> 0.4.0 -> 1.x is the identity (for fields 0.4.0 has)', () => {
    fc.assert(
      fc.property(result100, (r) => {
        const back = convertResult(convertResult(r, '0.4.0'), r.cniVersion);
        expect(back).toEqual(clean(r));
      }),
    );
  });

  it('0.4.0 -> 1.x -> 0.4.0 is the identity, and parse accepts what convert makes', () => {
    fc.assert(
      fc.property(
        result100,
        fc.constantFrom('0.3.0' as const, '0.3.1' as const, '0.4.0' as const),
        (r, to) => {
          const old = convertResult(r, to);
          expect(parseResult(JSON.parse(JSON.stringify(old)), '1.0.0')).toEqual(old);
          expect(convertResult(convertResult(old, '1.1.0'), to)).toEqual(old);
        },
      ),
    );
  });

  it('0.2.0 -> 1.x -> 0.2.0 is the identity', () => {
    const ipcfg = (c: fc.Arbitrary<string>, dst: fc.Arbitrary<string>) =>
      fc.record(
        {
          ip: c,
          gateway: anyIp,
          routes: fc.array(fc.record({ dst, gw: anyIp }, { requiredKeys: ['dst'] }), {
            minLength: 1,
          }),
        },
        { requiredKeys: ['ip'] },
      );
    const r020gen = fc
      .record(
        {
          cniVersion: fc.constantFrom('0.1.0' as const, '0.2.0' as const),
          ip4: ipcfg(cidr4, cidr4),
          ip6: ipcfg(cidr6, cidr6),
          dns,
        },
        { requiredKeys: ['cniVersion'] },
      )
      .filter((r) => r.ip4 !== undefined || r.ip6 !== undefined) as fc.Arbitrary<CniResult020>;
    fc.assert(
      fc.property(r020gen, fc.constantFrom('0.4.0' as const, '1.1.0' as const), (r, via) => {
        expect(convertResult(convertResult(r, via), r.cniVersion)).toEqual(clean(r));
      }),
    );
  });

  it('normalising is idempotent and independent of the source version', () => {
    fc.assert(
      fc.property(result100, (r) => {
        const n = normalizeResult(r);
        expect(normalizeResult(n)).toEqual(n);
        expect(normalizeResult(convertResult(r, '0.4.0'))).toEqual(n);
      }),
    );
  });
});

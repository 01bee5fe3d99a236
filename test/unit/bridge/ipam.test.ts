// The native driver's IPAM on temp dirs: host-local's order, format and
// rules, typed refusals that write nothing, and a data dir full of traps.
// The real host-local beside it is in test/integration/bridge/ipam.test.ts.
import { execFileSync } from 'node:child_process';
import {
  closeSync,
  existsSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { beforeEach, describe, expect, it } from 'vitest';
import {
  IpamError,
  type IpamRange,
  type IpamRequest,
  listLeases,
  releaseAddresses,
  reserveAddresses,
} from '../../../src/bridge/ipam.js';
import { InvalidArgumentError } from '../../../src/errors.js';
import { native } from '../../../src/native.js';
import { tempDirs } from '../../helpers/temp.js';

const temp = tempDirs();
let dataDir: string;
let dir: string;
const network = 'ipamtest';
const V4: IpamRange[][] = [[{ subnet: '10.1.0.0/24' }]];

beforeEach(() => {
  dataDir = temp();
  dir = join(dataDir, network);
});

function req(containerId: string, over: Partial<IpamRequest> = {}): IpamRequest {
  return { dataDir, network, ranges: V4, containerId, ifName: 'eth0', ...over };
}

async function ip(containerId: string, over: Partial<IpamRequest> = {}): Promise<string> {
  const [lease] = await reserveAddresses(req(containerId, over));
  return lease!.address.split('/')[0]!;
}

/** The directory's names and contents, to show that a refused call wrote nothing. */
function snapshot(): Record<string, string> {
  if (!existsSync(dir)) return {};
  return Object.fromEntries(
    readdirSync(dir).map((n) => {
      const st = lstatSync(join(dir, n));
      return [n, st.isFile() ? readFileSync(join(dir, n), 'utf8') : `<${st.mode.toString(8)}>`];
    }),
  );
}

async function refusal(p: Promise<unknown>): Promise<{ code: string; message: string }> {
  try {
    await p;
  } catch (err) {
    return err as { code: string; message: string };
  }
  throw new Error('expected a refusal');
}

describe('reserveAddresses', () => {
  it("writes host-local's files: the lease, last_reserved_ip, the lock", async () => {
    const leases = await reserveAddresses(req('c1'));
    expect(leases).toEqual([
      { address: '10.1.0.2/24', gateway: '10.1.0.1', version: 4, rangeSet: 0 },
    ]);
    expect(readFileSync(join(dir, '10.1.0.2'), 'utf8')).toBe('c1\r\neth0');
    expect(readFileSync(join(dir, 'last_reserved_ip.0'), 'utf8')).toBe('10.1.0.2');
    // 0644 as host-local makes it (less what the umask takes away).
    expect(statSync(join(dir, '10.1.0.2')).mode & 0o133).toBe(0);
    expect(lstatSync(join(dir, 'lock')).isFile()).toBe(true);
  });

  it('goes round-robin after last_reserved_ip, wrapping, skipping taken addresses', async () => {
    const ranges = [[{ subnet: '10.1.0.0/24', rangeStart: '10.1.0.10', rangeEnd: '10.1.0.13' }]];
    expect(await ip('a', { ranges })).toBe('10.1.0.10');
    expect(await ip('b', { ranges })).toBe('10.1.0.11');
    await releaseAddresses({ dataDir, network, containerId: 'a', ifName: 'eth0' });
    // .10 is free again, but the next one is after the last reserved.
    expect(await ip('c', { ranges })).toBe('10.1.0.12');
    expect(await ip('d', { ranges })).toBe('10.1.0.13');
    expect(await ip('e', { ranges })).toBe('10.1.0.10');
    const before = snapshot();
    const err = await refusal(reserveAddresses(req('f', { ranges })));
    expect(err).toBeInstanceOf(IpamError);
    expect(err.code).toBe('ERR_PODNET_NO_FREE_ADDRESS');
    expect(snapshot()).toEqual(before);
  });

  it('wraps after the last address, and rewrites last_reserved_ip to its new length', async () => {
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'last_reserved_ip.0'), '10.1.0.254\n');
    expect(await ip('c1')).toBe('10.1.0.2');
    expect(readFileSync(join(dir, 'last_reserved_ip.0'), 'utf8')).toBe('10.1.0.2');
  });

  it('starts at rangeStart when last_reserved_ip is outside the set, and walks ranges in order', async () => {
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'last_reserved_ip.0'), '192.168.9.9');
    const ranges = [
      [
        { subnet: '10.1.0.0/24', rangeStart: '10.1.0.253' },
        { subnet: '10.2.0.0/24', rangeEnd: '10.2.0.2', gateway: '10.2.0.2' },
      ],
    ];
    const got = [];
    for (const id of ['a', 'b', 'c']) got.push(await ip(id, { ranges }));
    // .254 ends the first range (.255 is the broadcast), the second starts at .1 and skips its gateway.
    expect(got).toEqual(['10.1.0.253', '10.1.0.254', '10.2.0.1']);
    expect((await refusal(reserveAddresses(req('d', { ranges })))).code).toBe(
      'ERR_PODNET_NO_FREE_ADDRESS',
    );
    expect(readFileSync(join(dir, 'last_reserved_ip.0'), 'utf8')).toBe('10.2.0.1');
  });

  it('never hands out the network or broadcast address, even inside rangeStart..rangeEnd', async () => {
    const ranges = [[{ subnet: '10.1.0.0/29', rangeStart: '10.1.0.0', rangeEnd: '10.1.0.7' }]];
    const got = [];
    for (let i = 0; i < 5; i++) got.push(await ip(`c${i}`, { ranges }));
    expect(got).toEqual(['10.1.0.2', '10.1.0.3', '10.1.0.4', '10.1.0.5', '10.1.0.6']);
    expect((await refusal(reserveAddresses(req('x', { ranges })))).code).toBe(
      'ERR_PODNET_NO_FREE_ADDRESS',
    );
  });

  it('gives one address per range set: dual stack, IPv6 named as Go writes it', async () => {
    const ranges = [[{ subnet: '10.1.0.0/24' }], [{ subnet: 'fd00:0:0:0:0:0:1:0/126' }]];
    const leases = await reserveAddresses(req('c1', { ranges }));
    expect(leases).toEqual([
      { address: '10.1.0.2/24', gateway: '10.1.0.1', version: 4, rangeSet: 0 },
      { address: 'fd00::1:2/126', gateway: 'fd00::1:1', version: 6, rangeSet: 1 },
    ]);
    expect(readFileSync(join(dir, 'fd00::1:2'), 'utf8')).toBe('c1\r\neth0');
    expect(readFileSync(join(dir, 'last_reserved_ip.1'), 'utf8')).toBe('fd00::1:2');
    // IPv6 has no broadcast: the last address of the subnet is handed out.
    const [, v6] = await reserveAddresses(req('c2', { ranges }));
    expect(v6!.address).toBe('fd00::1:3/126');
    // The v6 set is exhausted: the v4 lease of this call is taken back, no hint moves.
    const before = snapshot();
    const err = await refusal(reserveAddresses(req('c3', { ranges })));
    expect(err.code).toBe('ERR_PODNET_NO_FREE_ADDRESS');
    expect((err as IpamError).rangeSet).toBe(1);
    expect(snapshot()).toEqual(before);
  });

  it('reserves a static IP as asked (bare or CIDR), and records it as the last reserved', async () => {
    const ranges = [[{ subnet: '10.1.0.0/24' }], [{ subnet: 'fd00::/64' }]];
    const leases = await reserveAddresses(req('c1', { ranges, ips: ['fd00::99/64', '10.1.0.50'] }));
    expect(leases.map((l) => l.address)).toEqual(['10.1.0.50/24', 'fd00::99/64']);
    expect(readFileSync(join(dir, 'last_reserved_ip.0'), 'utf8')).toBe('10.1.0.50');
    expect(await ip('c2')).toBe('10.1.0.51');
  });

  it('refuses a taken static IP with ERR_PODNET_ADDRESS_TAKEN and writes nothing', async () => {
    const ranges = [[{ subnet: '10.1.0.0/24' }], [{ subnet: 'fd00::/64' }]];
    await reserveAddresses(req('c1', { ranges, ips: ['10.1.0.50'] }));
    const before = snapshot();
    const err = await refusal(
      reserveAddresses(req('c2', { ranges, ips: ['fd00::7', '10.1.0.50'] })),
    );
    expect(err).toBeInstanceOf(IpamError);
    expect(err.code).toBe('ERR_PODNET_ADDRESS_TAKEN');
    expect((err as IpamError).address).toBe('10.1.0.50');
    expect(snapshot()).toEqual(before);
  });

  it.each([
    ['10.9.0.5', 'in no range'],
    ['10.1.0.1', 'gateway'],
    ['10.1.0.255', 'in no range'], // past the default rangeEnd
    ['010.1.0.5', 'not an address'],
    ['10.1.0.5%eth0', 'not an address'],
    ['::ffff:10.1.0.5', 'not an address'],
  ])('refuses static IP %s as an invalid argument, before touching the disk', async (addr, why) => {
    const err = await refusal(reserveAddresses(req('c1', { ips: [addr] })));
    expect(err).toBeInstanceOf(InvalidArgumentError);
    expect(err.message).toContain(why);
    expect(existsSync(dir)).toBe(false);
  });

  it('refuses two static IPs for one range set', async () => {
    const err = await refusal(reserveAddresses(req('c1', { ips: ['10.1.0.5', '10.1.0.6'] })));
    expect(err).toBeInstanceOf(InvalidArgumentError);
    expect(err.message).toContain('range set 0 already has one');
  });

  it('refuses a second lease for an ID and ifName (ERR_PODNET_DUPLICATE_LEASE), not for another ifName', async () => {
    await reserveAddresses(req('c1'));
    const before = snapshot();
    for (const ips of [undefined, ['10.1.0.77']]) {
      const err = await refusal(reserveAddresses(req('c1', ips ? { ips } : {})));
      expect(err.code).toBe('ERR_PODNET_DUPLICATE_LEASE');
      expect((err as IpamError).address).toBe('10.1.0.2');
      expect(snapshot()).toEqual(before);
    }
    expect(await ip('c1', { ifName: 'eth1' })).toBe('10.1.0.3');
    // A lease outside the requested sets (another subnet of the network name) does not count.
    expect(await ip('c1', { ranges: [[{ subnet: '10.2.0.0/24' }]] })).toBe('10.2.0.2');
  });

  it("counts an older-format lease (the ID alone) as the ID's on any ifName, as host-local does", async () => {
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, '10.1.0.9'), 'old\n');
    const err = await refusal(reserveAddresses(req('old', { ifName: 'net7' })));
    expect(err.code).toBe('ERR_PODNET_DUPLICATE_LEASE');
  });

  it('hands out distinct addresses to many calls at once', async () => {
    const ranges = [[{ subnet: '10.1.0.0/24' }], [{ subnet: 'fd00::/120' }]];
    const all = await Promise.all(
      Array.from({ length: 60 }, (_, i) => reserveAddresses(req(`c${i}`, { ranges }))),
    );
    for (const set of [0, 1]) {
      const addrs = all.map((l) => l[set]!.address);
      expect(new Set(addrs).size).toBe(60);
    }
    expect((await listLeases({ dataDir, network })).length).toBe(120);
  });

  it('waits for the lock, then fails with ERR_PODNET_IPAM_BUSY, writing nothing and keeping the lock file', async () => {
    mkdirSync(dir, { recursive: true });
    const held = native.tryLockFile(join(dir, 'lock'));
    let open = true;
    const unlock = () => {
      if (open) closeSync(held);
      open = false;
    };
    try {
      const started = Date.now();
      const err = await refusal(reserveAddresses(req('c1', { lockTimeoutMs: 60 })));
      expect(err).toBeInstanceOf(IpamError);
      expect(err.code).toBe('ERR_PODNET_IPAM_BUSY');
      expect(Date.now() - started).toBeGreaterThanOrEqual(60);
      expect(Object.keys(snapshot())).toEqual(['lock']);
      // Freed while a call waits: that call goes on.
      const waiting = reserveAddresses(req('c2', { lockTimeoutMs: 5000 }));
      setTimeout(unlock, 30);
      expect((await waiting)[0]!.address).toBe('10.1.0.2/24');
    } finally {
      unlock();
    }
    expect(existsSync(join(dir, 'lock'))).toBe(true);
  });
});

describe('releaseAddresses', () => {
  it("frees only the interface's own leases, in every set, and names them", async () => {
    const ranges = [[{ subnet: '10.1.0.0/24' }], [{ subnet: 'fd00::/64' }]];
    await reserveAddresses(req('c1', { ranges }));
    await reserveAddresses(req('c1', { ranges, ifName: 'eth1' }));
    await reserveAddresses(req('c2', { ranges }));
    const released = await releaseAddresses({
      dataDir,
      network,
      containerId: 'c1',
      ifName: 'eth0',
    });
    expect(released.sort()).toEqual(['10.1.0.2', 'fd00::2']);
    expect((await listLeases({ dataDir, network })).map((l) => l.ip).sort()).toEqual([
      '10.1.0.3',
      '10.1.0.4',
      'fd00::3',
      'fd00::4',
    ]);
    expect(await releaseAddresses({ dataDir, network, containerId: 'c1', ifName: 'eth0' })).toEqual(
      [],
    );
  });

  it('falls back to older-format leases (the ID alone) only when no current one matches', async () => {
    await reserveAddresses(req('c1'));
    writeFileSync(join(dir, '10.1.0.40'), 'c1');
    expect(await releaseAddresses({ dataDir, network, containerId: 'c1', ifName: 'eth0' })).toEqual(
      ['10.1.0.2'],
    );
    expect(await releaseAddresses({ dataDir, network, containerId: 'c1', ifName: 'eth0' })).toEqual(
      ['10.1.0.40'],
    );
  });

  it("with the journalled ips, reads only those files, and frees each only if it is the interface's", async () => {
    const ranges = [[{ subnet: '10.1.0.0/24' }], [{ subnet: 'fd00::/64' }]];
    const mine = await reserveAddresses(req('c1', { ranges }));
    await reserveAddresses(req('c2', { ranges }));
    const owner = { dataDir, network, containerId: 'c1', ifName: 'eth0' };
    // 10.1.0.3 is c2's: named by a stale journal, it stays.
    const released = await releaseAddresses({
      ...owner,
      ips: [...mine.map((l) => l.address), '10.1.0.3', '10.1.0.99'],
    });
    expect(released).toEqual(['10.1.0.2', 'fd00::2']);
    expect((await listLeases({ dataDir, network })).map((l) => l.containerId)).toEqual([
      'c2',
      'c2',
    ]);
    const err = await refusal(releaseAddresses({ ...owner, ips: ['10.1.0.2; rm'] }));
    expect(err).toBeInstanceOf(InvalidArgumentError);
  });

  it('creates nothing for a network that has no directory', async () => {
    expect(await releaseAddresses({ dataDir, network, containerId: 'c1', ifName: 'eth0' })).toEqual(
      [],
    );
    expect(await listLeases({ dataDir, network })).toEqual([]);
    expect(existsSync(dir)).toBe(false);
  });
});

describe('a hostile data dir', () => {
  it('is read safely: symlinks, directories, FIFOs, garbage and odd names are never leases', async () => {
    mkdirSync(dir, { recursive: true });
    const outside = join(dataDir, 'outside');
    writeFileSync(outside, 'c1\r\neth0');
    symlinkSync(outside, join(dir, '10.1.0.2')); // a symlink named like an IP, "owned" by c1
    symlinkSync('/nonexistent', join(dir, '10.1.0.3')); // dangling
    mkdirSync(join(dir, '10.1.0.4')); // a directory named like an IP
    execFileSync('mkfifo', [join(dir, '10.1.0.5')]); // a FIFO: opening it must not hang
    writeFileSync(join(dir, '10.1.0.6'), 'not a\0lease\r\n\r\n/../x');
    writeFileSync(join(dir, '10.1.0.7'), `${'x'.repeat(5000)}\r\neth0`);
    writeFileSync(join(dir, '010.1.0.8'), 'c1\r\neth0'); // not canonical
    writeFileSync(join(dir, 'FD00::8'), 'c1\r\neth0'); // not canonical
    writeFileSync(join(dir, 'junk'), 'c1\r\neth0');
    symlinkSync(outside, join(dir, 'last_reserved_ip.0'));

    expect(await listLeases({ dataDir, network })).toEqual([]);
    // None of them is c1's lease, so c1 may reserve; all of them are taken names.
    expect(await ip('c1')).toBe('10.1.0.8');
    expect(await releaseAddresses({ dataDir, network, containerId: 'c1', ifName: 'eth0' })).toEqual(
      ['10.1.0.8'],
    );
    // Nothing was followed or written through.
    expect(readFileSync(outside, 'utf8')).toBe('c1\r\neth0');
    expect(lstatSync(join(dir, '10.1.0.2')).isSymbolicLink()).toBe(true);
    expect(lstatSync(join(dir, '10.1.0.4')).isDirectory()).toBe(true);
    // The symlinked hint was replaced by a file of our own.
    expect(lstatSync(join(dir, 'last_reserved_ip.0')).isFile()).toBe(true);
    expect(readFileSync(join(dir, 'last_reserved_ip.0'), 'utf8')).toBe('10.1.0.8');
  });

  it('survives a directory in place of last_reserved_ip', async () => {
    mkdirSync(join(dir, 'last_reserved_ip.0'), { recursive: true });
    expect(await ip('c1')).toBe('10.1.0.2');
    expect(await ip('c2')).toBe('10.1.0.3');
  });

  it('refuses a lock that is a symlink, and a directory others may write', async () => {
    mkdirSync(dir, { recursive: true });
    symlinkSync(join(dataDir, 'elsewhere'), join(dir, 'lock'));
    expect((await refusal(reserveAddresses(req('c1')))).code).toBe('ELOOP');
    expect(existsSync(join(dataDir, 'elsewhere'))).toBe(false);
    const open = join(dataDir, 'open');
    mkdirSync(open, { mode: 0o777 });
    execFileSync('chmod', ['0777', open]);
    const err = await refusal(reserveAddresses(req('c1', { dataDir: open })));
    expect(err.code).toBe('ERR_PODNET_UNSAFE_PATH');
    expect(readdirSync(open)).toEqual([]);
  });
});

describe('bad input', () => {
  it.each<[string, Partial<IpamRequest>, string]>([
    ['no range set', { ranges: [] }, 'at least one range set'],
    ['an empty set', { ranges: [[]] }, 'at least one range'],
    ['a subnet with host bits', { ranges: [[{ subnet: '10.1.0.1/24' }]] }, 'host bits'],
    ['a /31', { ranges: [[{ subnet: '10.1.0.0/31' }]] }, 'too small'],
    ['a /127', { ranges: [[{ subnet: 'fd00::/127' }]] }, 'too small'],
    ['no prefix', { ranges: [[{ subnet: '10.1.0.0' }]] }, 'not a CIDR'],
    ['an octal subnet', { ranges: [[{ subnet: '010.1.0.0/24' }]] }, 'not a CIDR'],
    [
      'rangeStart outside',
      { ranges: [[{ subnet: '10.1.0.0/24', rangeStart: '10.2.0.1' }]] },
      'rangeStart',
    ],
    [
      'a v6 gateway in a v4 range',
      { ranges: [[{ subnet: '10.1.0.0/24', gateway: 'fd00::1' }]] },
      'gateway',
    ],
    [
      'rangeStart after rangeEnd',
      { ranges: [[{ subnet: '10.1.0.0/24', rangeStart: '10.1.0.9', rangeEnd: '10.1.0.8' }]] },
      'after rangeEnd',
    ],
    [
      'mixed families in a set',
      { ranges: [[{ subnet: '10.1.0.0/24' }, { subnet: 'fd00::/64' }]] },
      'mixes',
    ],
    [
      'overlapping sets',
      { ranges: [[{ subnet: '10.1.0.0/24' }], [{ subnet: '10.1.0.0/16' }]] },
      'overlaps',
    ],
    ['a network name with a slash', { network: '../etc' }, 'network name'],
    ['ips that are not a list', { ips: '10.1.0.5' as unknown as string[] }, 'must be a list'],
    ['a relative dataDir', { dataDir: 'var/lib' }, 'absolute'],
    ['a container ID with a space', { containerId: 'a b' }, 'container ID'],
    ['an ifName with a slash', { ifName: 'a/b' }, 'interface name'],
  ])('refuses %s as an invalid argument, creating nothing', async (_, over, naming) => {
    const err = await refusal(reserveAddresses(req('c1', over)));
    expect(err).toBeInstanceOf(InvalidArgumentError);
    expect(err.message).toContain(naming);
    expect(readdirSync(dataDir)).toEqual([]);
  });
});

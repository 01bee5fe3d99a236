// The Networks API over a temp config dir: files written whole, 0644, never
// over another; read back as create returned them; an unsafe dir refused.
import { chmodSync, existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CniRuntime } from '../../../src/cni/index.js';
import { Networking } from '../../../src/network/index.js';
import { Networks } from '../../../src/networks/index.js';
import { parseSubnet, subnetsOverlap } from '../../../src/networks/subnets.js';
import { tempDirs } from '../../helpers/temp.js';

const temp = tempDirs();

function networks(opts: { dnsname?: boolean } = {}): { nets: Networks; confDir: string } {
  const root = temp();
  const confDir = join(root, 'net.d');
  const pluginDir = temp();
  if (opts.dnsname) writeFileSync(join(pluginDir, 'dnsname'), '', { mode: 0o755 });
  const networking = new Networking({
    cni: new CniRuntime({ confDir, pluginDirs: [pluginDir] }),
    stateDir: join(root, 'state'),
    netnsDir: join(root, 'netns'),
  });
  return { nets: new Networks({ networking }), confDir };
}

async function refusal(p: Promise<unknown>): Promise<{ code: string; message: string }> {
  try {
    await p;
  } catch (e) {
    return e as { code: string; message: string };
  }
  throw new Error('expected a refusal');
}

describe('Networks', () => {
  it('creates two networks on two free subnets, files 0644, read back as created', async () => {
    const { nets, confDir } = networks({ dnsname: true });
    const a = await nets.create({ name: 'a' });
    const b = await nets.create({ name: 'b' });
    const [sa, sb] = [parseSubnet(a.subnets![0]!.subnet), parseSubnet(b.subnets![0]!.subnet)];
    expect(subnetsOverlap(sa, sb)).toBe(false);
    expect(a.network_interface).not.toBe(b.network_interface);
    expect(statSync(join(confDir, 'a.conflist')).mode & 0o777).toBe(0o644);
    expect(readdirSync(confDir).sort()).toEqual(['a.conflist', 'b.conflist']);
    expect(await nets.inspect('a')).toEqual({ ...a, containers: {} });
    expect((await nets.list({ name: ['^b$'] })).map((n) => n.name)).toEqual(['b']);
    expect((await nets.list()).map((n) => n.name)).toEqual(['podman', 'a', 'b']);
    expect(a.dns_enabled).toBe(true);
    expect(await nets.exists('a')).toBe(true);
    expect(await nets.exists('c')).toBe(false);
  });

  it('creates at the same time take the lock in turn: no two get one subnet or bridge', async () => {
    const { nets, confDir } = networks();
    const made = await Promise.all(['p1', 'p2', 'p3', 'p4'].map((name) => nets.create({ name })));
    const subnets = made.map((n) => parseSubnet(n.subnets![0]!.subnet));
    for (let i = 0; i < subnets.length; i++)
      for (let j = i + 1; j < subnets.length; j++)
        expect(subnetsOverlap(subnets[i]!, subnets[j]!), `${i} ${j}`).toBe(false);
    expect(new Set(made.map((n) => n.network_interface)).size).toBe(4);
    // The lock file goes with its last holder.
    expect(readdirSync(confDir).sort()).toEqual([
      'p1.conflist',
      'p2.conflist',
      'p3.conflist',
      'p4.conflist',
    ]);
  });

  it('without the dnsname plugin, no DNS (as podman)', async () => {
    const { nets, confDir } = networks();
    const n = await nets.create({ name: 'n' });
    expect(n.dns_enabled).toBe(false);
    expect(readFileSync(join(confDir, 'n.conflist'), 'utf8')).not.toContain('dnsname');
  });

  it('never overwrites a file, even one naming another network', async () => {
    const { nets, confDir } = networks();
    await nets.create({ name: 'first' });
    const theirs = '{"cniVersion":"1.0.0","name":"other","plugins":[{"type":"bridge"}]}';
    writeFileSync(join(confDir, 'taken.conflist'), theirs);
    const err = await refusal(nets.create({ name: 'taken' }));
    expect(err.code).toBe('ERR_PODNET_NETWORK_EXISTS');
    expect(readFileSync(join(confDir, 'taken.conflist'), 'utf8')).toBe(theirs);
    expect(readdirSync(confDir).sort()).toEqual(['first.conflist', 'taken.conflist']);
  });

  it('bad input makes not even the config dir; a bad name filter is a typed error', async () => {
    const { nets, confDir } = networks();
    expect((await refusal(nets.create({ name: 'a/b' }))).code).toBe('ERR_PODNET_INVALID_ARGUMENT');
    expect(existsSync(confDir)).toBe(false);
    expect((await refusal(nets.list({ name: ['('] }))).code).toBe('ERR_PODNET_INVALID_ARGUMENT');
  });

  it('refuses a config dir others may write, before writing anything', async () => {
    const { nets, confDir } = networks();
    await nets.create({ name: 'x' });
    chmodSync(confDir, 0o777);
    const err = await refusal(nets.create({ name: 'y' }));
    expect(err.code).toBe('ERR_PODNET_UNSAFE_PATH');
    expect(readdirSync(confDir)).toEqual(['x.conflist']);
    chmodSync(confDir, 0o755);
  });
});

import { describe, expect, it } from 'vitest';
import { runtimeConf } from '../../../src/network/plan.js';
import { containerState } from '../../helpers/state.js';

const NETNS = '/run/netns/cni-1b2c3d4e';

describe('runtimeConf', () => {
  it("podman's CNI backend: ips and CNI_ARGS IP (one list), mac and MAC, aliases keyed by network", () => {
    const s = containerState({ netnsPath: NETNS, id: 'c1', name: 'app1' });
    const rt = runtimeConf(s, 'web', false, {
      ip: '10.89.0.9',
      ip6: 'fd10:89::9',
      mac: '02:42:0a:59:00:09',
      aliases: ['api'],
    });
    expect(rt.capabilityArgs).toEqual({
      ips: ['10.89.0.9', 'fd10:89::9'],
      mac: '02:42:0a:59:00:09',
      aliases: { web: ['api'] },
    });
    expect(rt.args).toContainEqual(['IP', '10.89.0.9,fd10:89::9']);
    expect(rt.args).toContainEqual(['MAC', '02:42:0a:59:00:09']);
  });

  it('ports go to the first network only; no static settings, no IP or MAC', () => {
    const s = containerState({
      netnsPath: NETNS,
      portMappings: [{ hostPort: 8080, containerPort: 80 }],
    });
    expect(runtimeConf(s, 'web', true, {}).capabilityArgs).toHaveProperty('portMappings');
    const second = runtimeConf(s, 'db', false, {});
    expect(second.capabilityArgs).toEqual({});
    expect(second.args.map(([k]) => k)).not.toContain('IP');
    expect(second.args.map(([k]) => k)).not.toContain('MAC');
  });
});

import { describe, expect, it } from 'vitest';
import { InvalidArgumentError } from '../../../../src/errors.js';
import { parseKeeperJob, parseKeeperReport } from '../../../../src/rootless/keeper/job.js';

describe('parseKeeperJob', () => {
  const job = {
    engine: 'pasta',
    netns: 'userns',
    options: ['--no-dhcp'],
    ports: [{ hostIP: '127.0.0.1', hostPort: 8080, containerPort: 80 }],
  };

  it('accepts a well-formed job as it is', () => {
    expect(parseKeeperJob(job)).toEqual(job);
  });

  it.each([
    [{ ...job, engine: 'vpnkit' }, /keeper job: engine/],
    [{ ...job, netns: '' }, /keeper job: netns/],
    [{ ...job, ports: [{ hostPort: '80', containerPort: 80 }] }, /keeper job: ports\.0\.hostPort/],
    [{ ...job, extra: 1 }, /keeper job: extra/],
  ])('refuses %j', (bad, message) => {
    expect(() => parseKeeperJob(bad)).toThrow(InvalidArgumentError);
    expect(() => parseKeeperJob(bad)).toThrow(message);
  });
});

describe('parseKeeperReport', () => {
  it('keeps the pids and the directory, and nothing else', () => {
    expect(
      parseKeeperReport({
        ok: true,
        enginePid: 1234,
        engineDir: '/tmp/podnet-pasta-x',
        usernsPid: 99,
      }),
    ).toEqual({ enginePid: 1234, engineDir: '/tmp/podnet-pasta-x', usernsPid: 99 });
    expect(parseKeeperReport({ ok: true })).toEqual({});
  });

  it.each([
    [{ enginePid: '1234' }, /enginePid/],
    [{ enginePid: 1 }, /enginePid/],
    [{ usernsPid: 2.5 }, /usernsPid/],
    [{ engineDir: 'relative' }, /engineDir/],
  ])('refuses %j', (report, message) => {
    expect(() => parseKeeperReport(report)).toThrow(message);
  });
});

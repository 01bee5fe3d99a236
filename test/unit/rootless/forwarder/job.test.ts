import { describe, expect, it } from 'vitest';
import { InvalidArgumentError } from '../../../../src/index.js';
import { parseForwarderJob, parseForwarderReport } from '../../../../src/rootless/forwarder/job.js';

describe('parseForwarderJob', () => {
  const job = {
    netns: '/run/netns/c1',
    containerAddress: '10.0.2.100',
    mappings: [
      { hostIP: '127.0.0.1', hostPort: 8080, containerPort: 80 },
      { hostPort: 5353, containerPort: 53, protocol: 'udp', range: 2 },
    ],
    exitFd: true,
  };
  const { netns: _netns, ...withoutNetns } = job;

  it('accepts a well-formed job as it is', () => {
    expect(parseForwarderJob(job)).toEqual(job);
    expect(parseForwarderJob({ ...withoutNetns, usernsPid: 4321 })).toEqual({
      ...withoutNetns,
      usernsPid: 4321,
    });
    expect(parseForwarderJob({ ...job, udpIdleTimeoutMs: 1000 })).toMatchObject({
      udpIdleTimeoutMs: 1000,
    });
  });

  it.each([
    [null, /\(job\)/],
    [{ ...job, netns: '' }, /netns/],
    [{ ...job, exitFd: 4 }, /exitFd/],
    [{ ...job, mappings: [{ hostPort: '80', containerPort: 80 }] }, /mappings\.0\.hostPort/],
    [{ ...job, mappings: [{ hostPort: 80, containerPort: 80, protocol: 'sctp' }] }, /protocol/],
    [{ ...job, mappings: [{ hostPort: 80, containerPort: 80, extra: 1 }] }, /extra/],
    [{ ...job, command: 'rm -rf /' }, /command/],
    [{ ...job, udpIdleTimeoutMs: '60s' }, /udpIdleTimeoutMs/],
    [{ ...job, usernsPid: 4321 }, /exactly one of netns and usernsPid/],
    [{ ...job, netns: undefined }, /netns/],
    [{ ...withoutNetns, usernsPid: 0 }, /usernsPid/],
    [withoutNetns, /exactly one of netns and usernsPid/],
  ])('refuses %j', (raw, where) => {
    expect(() => parseForwarderJob(raw)).toThrow(InvalidArgumentError);
    expect(() => parseForwarderJob(raw)).toThrow(where);
  });
});

describe('parseForwarderReport', () => {
  const port = { hostIP: '127.0.0.1', hostPort: 40000, containerPort: 80, protocol: 'tcp' };

  it('takes the ports a forwarder reports, and nothing else of the report', () => {
    expect(parseForwarderReport({ ok: true, ports: [port] })).toEqual({ ports: [port] });
  });

  it.each([
    [{ ok: true }, /ports/],
    [{ ports: [{ ...port, hostPort: 0 }] }, /ports\.0\.hostPort: not a port number/],
    [{ ports: [{ ...port, hostIP: 'localhost' }] }, /hostIP/],
    [{ ports: [{ ...port, protocol: 'sctp' }] }, /protocol/],
    [{ ports: [{ ...port, fd: 3 }] }, /fd/],
  ])('refuses %j', (report, message) => {
    expect(() => parseForwarderReport(report)).toThrow(message);
  });
});

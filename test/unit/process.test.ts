// Whether a recorded process is still the one podnet started: no root needed.
import { describe, expect, it } from 'vitest';
import { processIdentity, processStatus } from '../../src/process.js';

describe('processStatus', () => {
  it('is definite only where /proc is: alive, another start time, no such pid', () => {
    const me = processIdentity(process.pid);
    expect(processStatus(me)).toBe('alive');
    expect(processStatus({ ...me, startTime: '1' })).toBe('dead');
    expect(processStatus({ pid: 2 ** 22 + 1, startTime: '1' })).toBe('dead');
    expect(processStatus(undefined)).toBe('dead');
  });
});

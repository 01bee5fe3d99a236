// The choice between RTM_GETSTATS and RTM_GETLINK, made once per process
// from the first RTM_GETSTATS answer (a fresh copy of the module per case).
import { beforeEach, describe, expect, it, vi } from 'vitest';

type Choice = typeof import('../../../src/netns/stats-channel.js');
let choice: Choice;

beforeEach(async () => {
  vi.resetModules();
  choice = await import('../../../src/netns/stats-channel.js');
});

describe('the statistics request', () => {
  it('is RTM_GETSTATS until the kernel answers, and stays so after a good answer', () => {
    expect([choice.useGetStats(), choice.getStatsKnown()]).toEqual([true, false]);
    expect(choice.noteGetStats(25)).toBe(false);
    expect([choice.useGetStats(), choice.getStatsKnown()]).toEqual([true, true]);
    // Decided: a later EOPNOTSUPP (not a kernel's answer to GETSTATS any more) changes nothing.
    expect(choice.noteGetStats(-95)).toBe(false);
    expect(choice.useGetStats()).toBe(true);
  });

  it('is RTM_GETLINK from the first EOPNOTSUPP on (a kernel before 4.7)', () => {
    expect(choice.noteGetStats(-95)).toBe(true);
    expect([choice.useGetStats(), choice.getStatsKnown()]).toEqual([false, false]);
    expect(choice.noteGetStats(25)).toBe(false);
    expect(choice.useGetStats()).toBe(false);
  });

  it('takes another error (ENODEV: a missing link) as a kernel that has RTM_GETSTATS', () => {
    expect(choice.noteGetStats(-19)).toBe(false);
    expect(choice.getStatsKnown()).toBe(true);
  });
});

// The trace context rules (what counts as an active trace, how a plugin's
// environment carries it) and the NODE_DEBUG=podnet subscriber, without root.
import { spawnSync } from 'node:child_process';
import diagnosticsChannel from 'node:diagnostics_channel';
import { describe, expect, it } from 'vitest';
import { withTrace } from '../../src/cni/invoke/env.js';
import { checkTrace, currentTrace, traced, validTrace } from '../../src/diagnostics.js';
import { InvalidArgumentError } from '../../src/errors.js';

const TP = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01';

describe('validTrace and checkTrace', () => {
  it.each([
    ['00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-0', 'flags too short'],
    ['ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01', 'version ff'],
    ['00-00000000000000000000000000000000-b7ad6b7169203331-01', 'a zero trace id'],
    ['00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01', 'a zero parent id'],
    ['00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01', 'upper case'],
    [`${TP}\nX=1`, 'a line feed (an environment variable smuggled in)'],
  ])('refuses %s (%s)', (traceparent) => {
    expect(validTrace({ traceparent })).toBeUndefined();
    expect(() => checkTrace({ traceparent })).toThrow(InvalidArgumentError);
  });

  it('keeps a valid traceparent, and a tracestate only when it is printable ASCII', () => {
    expect(validTrace({ traceparent: TP, tracestate: 'a=1,b=2' })).toEqual({
      traceparent: TP,
      tracestate: 'a=1,b=2',
    });
    expect(validTrace({ traceparent: TP, tracestate: 'a=\n1' })).toEqual({ traceparent: TP });
    expect(() => checkTrace({ traceparent: TP, tracestate: 'x'.repeat(513) })).toThrow(
      InvalidArgumentError,
    );
    expect(() => checkTrace({ tracestate: 'a=1' })).toThrow(InvalidArgumentError);
    expect(checkTrace({})).toBeUndefined();
  });
});

describe('traced', () => {
  it('runs an inner operation in the outer trace unless a start subscriber gives it its own', async () => {
    const own = '00-4bf92f3577b34da6a3ce929d0e0e4736-53995c3f42cd8ad8-01';
    const ch = diagnosticsChannel.tracingChannel<unknown, Record<string, unknown>>(
      'podnet:cni:exec',
    );
    const seen: unknown[] = [];
    const handlers = {
      start: (c: Record<string, unknown>) => {
        seen.push(c['traceparent']);
        if (c['plugin'] === 'mine') c['traceparent'] = own;
      },
      end: () => {},
      asyncStart: () => {},
      asyncEnd: () => {},
      error: () => {},
    };
    ch.subscribe(handlers);
    try {
      const inner = (plugin: string) =>
        traced('podnet:cni:exec', { plugin }, async () => currentTrace()?.traceparent);
      const got = await traced('podnet:network:setup', { id: 'x', traceparent: TP }, async () => [
        await inner('theirs'),
        await inner('mine'),
      ]);
      expect(got).toEqual([TP, own]);
      expect(seen).toEqual([TP, TP]);
      expect(await inner('outside')).toBeUndefined();
    } finally {
      ch.unsubscribe(handlers);
    }
  });
});

describe('withTrace', () => {
  it("adds TRACEPARENT and TRACESTATE, replacing a base environment's tracestate", () => {
    const base = { PATH: '/bin', TRACESTATE: 'old=1' };
    expect(withTrace(base, { traceparent: TP })).toEqual({ PATH: '/bin', TRACEPARENT: TP });
    expect(withTrace(base, { traceparent: TP, tracestate: 'a=1' })).toEqual({
      PATH: '/bin',
      TRACEPARENT: TP,
      TRACESTATE: 'a=1',
    });
    expect(withTrace(base, undefined)).toBe(base);
  });
});

describe('NODE_DEBUG=podnet', () => {
  it('logs the tracing events of an operation, as it logs the plain channels (on the build)', () => {
    const dist = new URL('../../dist/diagnostics.js', import.meta.url).href;
    const script = `
      const { traced } = await import(${JSON.stringify(dist)});
      await traced('podnet:network:setup', { id: 'dbg' }, async () => 1);
      await traced('podnet:network:setup', { id: 'dbg2' }, async () => { throw new Error('no'); }).catch(() => {});`;
    const child = spawnSync(process.execPath, ['--input-type=module', '-e', script], {
      env: { ...process.env, NODE_DEBUG: 'podnet' },
      encoding: 'utf8',
    });
    expect(child.status).toBe(0);
    const lines = child.stderr.split('\n').filter((l) => l.startsWith('PODNET '));
    expect(lines.map((l) => / (podnet:\S+) \{/.exec(l)?.[1])).toEqual([
      'podnet:network:setup:start',
      'podnet:network:setup:asyncEnd',
      'podnet:network:setup:start',
      'podnet:network:setup:error',
      'podnet:network:setup:asyncEnd',
    ]);
  });
});

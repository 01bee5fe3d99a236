import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { findExecutable } from '../../../src/rootless/executable.js';

describe('findExecutable', () => {
  const dir = mkdtempSync(join(tmpdir(), 'podnet-test-exec-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('looks on PATH, skipping relative entries', async () => {
    writeFileSync(join(dir, 'tool'), '#!/bin/sh\n', { mode: 0o755 });
    expect(await findExecutable('tool', `relative:${dir}`)).toBe(join(dir, 'tool'));
    expect(await findExecutable('tool', 'relative:/nonexistent')).toBeUndefined();
  });

  it('checks a path it is given, and takes no file that is not executable', async () => {
    writeFileSync(join(dir, 'plain'), 'x', { mode: 0o644 });
    expect(await findExecutable(join(dir, 'tool'))).toBe(join(dir, 'tool'));
    expect(await findExecutable(join(dir, 'plain'))).toBeUndefined();
    expect(await findExecutable('plain', dir)).toBeUndefined();
    expect(await findExecutable(dir, dir)).toBeUndefined();
  });
});

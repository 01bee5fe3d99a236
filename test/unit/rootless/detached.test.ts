// The starter's side of a detached helper: the helper's report is untrusted,
// so only podnet's own codes and errno names pass through it; a missing
// report within the deadline gets the caller's timeout code. Tiny helper
// programs stand in for the keeper and the forwarder (no root needed).
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { spawnDetached } from '../../../src/rootless/detached.js';
import { ForwarderProcessError } from '../../../src/rootless/errors.js';
import { tempDirs } from '../../helpers/temp.js';

const temp = tempDirs();

function helper(body: string): string {
  const main = join(temp(), 'helper.mjs');
  writeFileSync(main, `import { writeSync } from 'node:fs';\n${body}\n`);
  return main;
}

function start(main: string, timeoutMs = 5_000) {
  return spawnDetached({
    main,
    job: {},
    timeoutMs,
    accept: () => ({}),
    error: (code, message, cause) => new ForwarderProcessError(code, message, { cause }),
    code: 'ERR_PODNET_FORWARDER',
    timeoutCode: 'ERR_PODNET_FORWARDER_TIMEOUT',
  });
}

const failWith = (code: string): string =>
  `writeSync(3, JSON.stringify({ ok: false, code: ${JSON.stringify(code)}, message: 'no' }) + '\\n'); process.exit(1);`;

describe('a detached helper that fails to start', () => {
  it('passes on its own podnet code or errno name', async () => {
    await expect(start(helper(failWith('ERR_PODNET_PORT_IN_USE')))).rejects.toMatchObject({
      code: 'ERR_PODNET_PORT_IN_USE',
      message: 'forwarder process: no',
    });
    await expect(start(helper(failWith('EADDRINUSE')))).rejects.toMatchObject({
      code: 'EADDRINUSE',
    });
  });

  it('replaces a code that is neither with the caller’s own', async () => {
    for (const bogus of ['ERR_PODNET_MADE_UP', 'toString', 'not a code\nsecond line']) {
      await expect(start(helper(failWith(bogus)))).rejects.toMatchObject({
        code: 'ERR_PODNET_FORWARDER',
      });
    }
  });

  it('that never reports gets the timeout code, a literal of the table', async () => {
    const err = await start(helper('setInterval(() => {}, 1000);'), 300).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ForwarderProcessError);
    expect(err).toMatchObject({ code: 'ERR_PODNET_FORWARDER_TIMEOUT' });
  });
});

// The native unit tests, the decoder fuzz and the relay stress test, run
// again against an AddressSanitizer + UBSan build of the addon and of the
// user namespace helper (scripts/build-sanitized.js, into a temp dir:
// build/Release is left alone).
// A sanitizer run that is not really sanitizing would pass for the wrong
// reason, so the same setup must first catch two deliberate bugs of a probe
// addon, and the podnet builds must carry the sanitizers' hooks.
import { execFile, execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { closeSync, mkdtempSync, openSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('../../..', import.meta.url));

/** The test files whose native calls run against the sanitizer build. */
const NATIVE_TESTS = [
  'test/unit/native.test.ts',
  'test/unit/native/netlink.test.ts',
  'test/unit/native/netlink-fuzz.test.ts',
  'test/unit/native/nfnetlink.test.ts',
  'test/unit/native/fd.test.ts',
  'test/unit/rootless/userns/userns.test.ts',
  'test/unit/rootless/userns/helper.test.ts',
  'test/unit/native/relay.test.ts',
  'test/unit/native/relay-stress.test.ts',
  'test/unit/native/rtnl-channel.test.ts',
  'test/unit/native/delayline.test.ts',
];

interface Build {
  addon: string;
  probe: string;
  helper: string;
  execHelper: string;
  preload: string;
}

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs node ARGS with the sanitizer runtime preloaded; never rejects. */
function sanitized(build: Build, args: string[], env: Record<string, string> = {}): Promise<Run> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      args,
      {
        cwd: root,
        timeout: 80_000,
        maxBuffer: 16 * 1024 * 1024,
        env: {
          ...process.env,
          ...env,
          // Node itself is not instrumented: libasan must be loaded first.
          LD_PRELOAD: build.preload,
          // Node does not free everything at exit; leaks are not this test's matter.
          ASAN_OPTIONS: 'detect_leaks=0:halt_on_error=1:abort_on_error=0',
          UBSAN_OPTIONS: 'halt_on_error=1:print_stacktrace=1',
        },
      },
      (err, stdout, stderr) => {
        const code = err ? (typeof err.code === 'number' ? err.code : null) : 0;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

describe('the addon under AddressSanitizer and UBSan', () => {
  let dir: string;
  let build: Build;

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'podnet-test-sanitize-'));
    const out = execFileSync(process.execPath, [join(root, 'scripts/build-sanitized.js'), dir], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    build = JSON.parse(out.trim().split('\n').at(-1)!) as Build;
    // Every source of the addon at -O1 with both sanitizers: over two minutes on a loaded 2-core machine.
  }, 300_000);

  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('is instrumented, and the runtime catches a heap overflow and a signed overflow', async () => {
    for (const binary of [build.addon, build.helper]) {
      const undefinedSymbols = execFileSync('nm', ['-D', '--undefined-only', binary], {
        encoding: 'utf8',
      });
      expect(undefinedSymbols).toMatch(/__asan_init/);
      expect(undefinedSymbols).toMatch(/__ubsan_handle_/);
    }

    const heap = await sanitized(build, [
      '-e',
      `require(${JSON.stringify(build.probe)}).heapOverflow(37)`,
    ]);
    expect(heap.code).not.toBe(0);
    expect(heap.stderr).toMatch(/AddressSanitizer: heap-buffer-overflow/);

    const ub = await sanitized(build, [
      '-e',
      `require(${JSON.stringify(build.probe)}).signedOverflow(1)`,
    ]);
    expect(ub.code).not.toBe(0);
    expect(ub.stderr).toMatch(/runtime error: signed integer overflow/);
  }, 60_000);

  it('runs the native unit tests, the decoder fuzz and the relay stress test cleanly', async () => {
    const vitest = join(root, 'node_modules/vitest/vitest.mjs');
    const run = await sanitized(
      build,
      [vitest, 'run', '--project', 'unit', '--reporter', 'dot', ...NATIVE_TESTS],
      { PODNET_ADDON_PATH: build.addon, PODNET_USERNS_HELPER: build.helper, NO_COLOR: '1' },
    );
    const report = `${run.stdout}\n${run.stderr}`;
    // The child's own summary, so a CI log shows what ran under the sanitizers.
    console.log(
      report
        .split('\n')
        .filter((l) => /Test Files|Tests {2}/.test(l))
        .join('\n'),
    );
    expect(report).not.toMatch(/AddressSanitizer|runtime error:/);
    expect(run.code, report).toBe(0);
    // Every file ran (the loader test among them: the sanitizer build was the one loaded).
    expect(report).toMatch(new RegExp(`Test Files\\s+${NATIVE_TESTS.length} passed`));
  }, 90_000);

  it("runs ns.spawn's exec helper cleanly: bad arguments, setns, the PATH search, exec failures", async () => {
    const nm = execFileSync('nm', ['-D', '--undefined-only', build.execHelper], {
      encoding: 'utf8',
    });
    expect(nm).toMatch(/__asan_init/);
    const asRoot = process.getuid?.() === 0;
    // The helper as ns.spawn starts it: status socket at fd 3, this
    // process's own namespace at fd 4 (only root may setns, even into it).
    const helper = async (
      argv: string[],
      env: Record<string, string> = {},
    ): Promise<{ code: number | null; stderr: string; status: Buffer; stdout: string }> => {
      const nsfd = openSync('/proc/self/ns/net', 'r');
      try {
        const child = spawn(build.execHelper, argv, {
          stdio: ['ignore', 'pipe', 'pipe', 'pipe', nsfd],
          env: {
            ASAN_OPTIONS: 'detect_leaks=0:halt_on_error=1',
            UBSAN_OPTIONS: 'halt_on_error=1',
            ...env,
          },
        });
        const chunks: Record<string, Buffer[]> = { stdout: [], stderr: [], status: [] };
        child.stdout!.on('data', (d: Buffer) => chunks['stdout']!.push(d));
        child.stderr!.on('data', (d: Buffer) => chunks['stderr']!.push(d));
        child.stdio[3]!.on('data', (d: Buffer) => chunks['status']!.push(d));
        const [code] = (await once(child, 'close')) as [number | null];
        return {
          code,
          stdout: Buffer.concat(chunks['stdout']!).toString(),
          stderr: Buffer.concat(chunks['stderr']!).toString(),
          status: Buffer.concat(chunks['status']!),
        };
      } finally {
        closeSync(nsfd);
      }
    };
    const record = (stage: number, errno: number): Buffer => {
      const b = Buffer.alloc(8);
      b.writeInt32LE(stage, 0);
      b.writeInt32LE(errno, 4);
      return b;
    };
    const EPERM = 1;
    const ENOENT = 2;
    const EACCES = 13;

    const usage = await helper(['x']);
    expect(usage.code).toBe(125);
    expect(usage.stderr).toMatch(/^podnet-exec: usage/);
    expect((await helper(['3', '3', 'net', '-', '-', 'true', 'true'])).code).toBe(125);
    expect((await helper(['3', '4', 'net', '12a', '-', 'true', 'true'])).code).toBe(125);

    const ran = await helper(['3', '4', 'net', '-', '-', 'sh', 'sh', '-c', 'echo in']);
    if (asRoot) expect([ran.code, ran.stdout, ran.status.length]).toEqual([0, 'in\n', 0]);
    else expect([ran.code, ran.status]).toEqual([126, record(2, EPERM)]);

    // PATH: an empty entry, one longer than PATH_MAX, a file, then nothing found.
    const dir = mkdtempSync(join(tmpdir(), 'podnet-test-exec-'));
    try {
      writeFileSync(join(dir, 'plain'), '');
      const path = ['', 'x'.repeat(5000), join(dir, 'plain'), dir, '/nonexistent'].join(':');
      const missing = await helper(['3', '4', 'net', '-', '-', 'podnet-nope', 'podnet-nope'], {
        PATH: path,
      });
      const denied = await helper(['3', '4', 'net', '-', '-', 'plain', 'plain'], { PATH: path });
      const creds = await helper(['3', '4', 'net', '65534', '65534', 'id', 'id', '-u'], {
        PATH: '/usr/bin:/bin',
      });
      if (asRoot) {
        expect([missing.code, missing.status]).toEqual([127, record(4, ENOENT)]);
        expect([denied.code, denied.status]).toEqual([126, record(4, EACCES)]);
        expect([creds.code, creds.stdout]).toEqual([0, '65534\n']);
      } else {
        for (const r of [missing, denied, creds]) expect(r.status).toEqual(record(2, EPERM));
      }
      for (const r of [usage, ran, missing, denied, creds])
        expect(r.stderr).not.toMatch(/AddressSanitizer|runtime error:/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 30_000);
});

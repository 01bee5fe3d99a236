import { defineConfig } from 'vitest/config';

// Two projects: `unit` needs nothing but Node; `integration` makes real kernel
// objects and runs real plugins, so it needs root (it skips elsewhere with the
// reason printed, and never in CI, where a skip is a failure).
export default defineConfig({
  test: {
    pool: 'forks',
    projects: [
      {
        test: {
          name: 'unit',
          include: ['test/unit/**/*.test.ts'],
          pool: 'forks',
        },
      },
      {
        test: {
          name: 'integration',
          include: ['test/integration/**/*.test.ts'],
          pool: 'forks',
          globalSetup: ['test/helpers/leak-check.ts'],
          // One file at a time: the files share the host's links, iptables
          // and CPU (2 cores), and the pack test rebuilds the addon.
          fileParallelism: false,
          testTimeout: 60_000,
          hookTimeout: 60_000,
        },
      },
    ],
  },
});

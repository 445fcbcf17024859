import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // The container test needs podman and a base image, the Postfix benchmark's test root and Debian's
    // postfix: CI runs each on its own (deploy/ci-container.sh, deploy/ci-postfix.sh) after the suite, so
    // that `npm test` never shows them as skipped.
    exclude: [
      '**/node_modules/**',
      ...(process.env.RELAY_CONTAINER_TEST === '1' ? [] : ['test/system/container.test.ts']),
      ...(process.env.RELAY_POSTFIX_TEST === '1' ? [] : ['test/system/vs-postfix.test.ts']),
    ],
    // Integration tests start real relay processes and an HTTPS emulator: give them room, and run
    // files in separate processes so one test's relay cannot disturb another's.
    pool: 'forks',
    testTimeout: 60_000,
    hookTimeout: 60_000,
    maxWorkers: 2,
  },
});

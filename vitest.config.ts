import { defineConfig } from 'vitest/config'

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 30_000,
    hookTimeout: 30_000,
    pool: 'forks',
    // Many files start real processes, sockets, network namespaces and timed protocols; on a
    // 2-core machine running two such files at once makes their timing flaky, so files run
    // one after another (tests inside a file already overlap their waits).
    fileParallelism: false,
  },
})

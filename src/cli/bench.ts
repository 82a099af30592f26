import { ExitCode } from './exit-codes.js'

/**
 * `gilmsg bench [--quick] [--only CASE,...] [--out FILE] [--report FILE.html]`
 * runs the benchmark (`bench/main.ts`, compiled beside the CLI in `dist/`);
 * `gilmsg bench --report-from RESULTS.json [--report FILE.html]` renders the
 * HTML report of an earlier run. `--help` describes the options. Resolves
 * with its exit code: 0 every case ran (or the report was written), 1 a case
 * failed or the report could not be written, 2 usage error.
 */
export async function run(argv: string[]): Promise<number> {
  let bench: typeof import('../../bench/main.js')
  try {
    bench = await import('../../bench/main.js')
  } catch (e) {
    process.stderr.write(`gilmsg bench: the benchmark is not available in this build: ${(e as Error).message}\n`)
    return ExitCode.Failure
  }
  return bench.runBench(argv)
}

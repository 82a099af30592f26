/**
 * Case 7: `gilmsg publish --recipients r1 r2` as a new process, start
 * included, with the recipients (two `gilmsg tail` processes, RSA-2048
 * certificates, fedmsg's `x509`) and a relay (in the runner's process)
 * already running. Timed from spawn to exit, 50 runs (3 with --quick) after
 * one untimed warm-up, alternating with the baseline: `node -e ''`, a bare
 * Node.js start. Every publish must exit 0 (both ACKs in).
 */
import { mkdirSync } from 'node:fs'
import { join } from 'node:path'
import { formatLatency } from '../lib/format.js'
import { CLI_SCRIPT, LineProcess, runTimed, type TimedRun } from '../lib/proc.js'
import { certname, startBenchRelay, writeConfig } from '../lib/setup.js'
import { roundSummary, summarize } from '../lib/stats.js'
import { line, type BenchCase, type BenchContext, type CaseResult } from '../lib/types.js'

export const cliCase: BenchCase = {
  id: 'cli',
  title: 'gilmsg publish as a new process',
  async run(ctx: BenchContext): Promise<CaseResult[]> {
    const pki = await ctx.pki()
    const runs = ctx.quick ? 3 : 50
    const dir = join(ctx.dir, 'cli')
    mkdirSync(dir, { recursive: true })
    const relay = await startBenchRelay()
    const tails: LineProcess[] = []
    try {
      // One config for every process, as in the README; names pick the certificate and the store files.
      const config = writeConfig(dir, 'gilmsg', pki, { certname: certname('rsa', 'pub'), family: 'rsa', relay, extra: { name: 'pub' } })
      const env = { ...ctx.childEnv, GILMSG_CONFIG: config }
      for (const r of ['r1', 'r2'] as const) {
        const cn = certname('rsa', r)
        tails.push(new LineProcess(`tail-${cn}`, process.execPath, [CLI_SCRIPT, 'tail', '--config', config, '--name', cn, '--certname', cn], env))
      }
      await Promise.all(tails.map((t) => t.waitForLine(/"msg":"listening on/, 30_000)))
      const recipients = [certname('rsa', 'r1'), certname('rsa', 'r2')]
      const publishArgs = [CLI_SCRIPT, 'publish', '--config', config, '--name', 'pub', '--certname', certname('rsa', 'pub'), '--recipients', ...recipients, '--ack-timeout', '10', '--message', 'bench']
      const publish = (): Promise<TimedRun> => runTimed(process.execPath, publishArgs, { env, timeoutMs: 30_000 })
      const bare = (): Promise<TimedRun> => runTimed(process.execPath, ['-e', ''], { env, timeoutMs: 30_000 })

      ctx.progress(`cli: warm-up publish (absorbs the recipients' slow joiner)`)
      const warm = await publish()
      if (warm.code !== 0) throw new Error(`warm-up gilmsg publish exited ${warm.code}: ${warm.stderr.trim()}`)
      await bare()
      const publishMs: number[] = []
      const bareMs: number[] = []
      const failures: string[] = []
      ctx.progress(`cli: ${runs} x (gilmsg publish, node -e '')`)
      for (let i = 0; i < runs; i++) {
        const p = await publish()
        if (p.code === 0) publishMs.push(p.ms)
        else failures.push(`exit ${p.code ?? p.signal}: ${p.stderr.trim().split('\n').slice(-1)[0] ?? ''}`)
        bareMs.push((await bare()).ms)
        if ((i + 1) % 10 === 0) ctx.progress(`cli: ${i + 1}/${runs}`)
      }
      if (publishMs.length === 0) throw new Error(`every gilmsg publish failed: ${failures.slice(0, 3).join('; ')}`)
      const p = summarize(publishMs)
      const b = summarize(bareMs)
      return [
        line({
          id: 'cli.publish',
          name: 'wall time of one `gilmsg publish --recipients r1 r2` process vs `node -e \'\'`',
          figure: p.p50,
          unit: 'ms p50',
          baseline: b.p50,
          baselineUnit: 'ms p50 (node -e)',
          target: { text: "<= 300 ms and <= 5x node -e ''", met: (f, _b, ratio) => f <= 300 && ratio <= 5 },
          notes: `publish ${formatLatency(p)}; node -e ${formatLatency(b)}; ${publishMs.length}/${runs} ok${failures.length ? `, ${failures.length} FAILED` : ''}`,
          details: { runs, publish: roundSummary(p), bare: roundSummary(b), failures, publishMs, bareMs },
          latency: [
            { label: 'gilmsg publish --recipients r1 r2 (new process)', distribution: roundSummary(p) },
            { label: "node -e ''", distribution: roundSummary(b), floor: true },
          ],
        }),
      ]
    } finally {
      await Promise.all(tails.map((t) => t.stop()))
      await relay.relay.close()
    }
  },
}

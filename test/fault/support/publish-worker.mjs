// A publisher process for the network fault tests (test/fault/netns*.test.ts), run
// inside a network namespace on the compiled library (`npm run build` first).
//
//   node publish-worker.mjs CONFIG [--max-ms 180000] [--backoff-base-ms B --backoff-cap-ms C]
//
// Opens gilmsg from CONFIG (outbox, no inbox; the default resend backoff unless both
// --backoff-* are given), prints {"ev":"open"}, then reads one JSON
// command per stdin line:
//   {"cmd":"run","label":L,"count":N,"intervalMs":I,"ackTimeoutMs":T,"recipients":[..],"topic":"t"}
//       calls publish() N times, one every I ms without waiting for the previous ones
//       (pipelined), each with ackTimeout T (its deadline). Prints {"ev":"start","label":L}
//       when the first is called, then one line per message as it settles:
//       {"ev":"acked","label","n","msgId","sentAtMs","ms","acks":{cn: ms}}   (ms: from the
//         publish() call to its resolution, i.e. time to full acknowledgement; acks: each
//         recipient's ACK, ms after the call)
//       {"ev":"failed","label","n","msgId","ms","code","message","missing":[..],"acked":[..]}
//       and once all have settled {"ev":"done","label","resends":R,"resendsTo":{cn: R}}.
//   {"cmd":"quit"}  closes gilmsg and exits 0 (as does the end of stdin: the test is gone).
// It exits 3 after --max-ms in any case, so that it never outlives a test.
import { createInterface } from 'node:readline'
import { parseArgs } from 'node:util'
import { loadConfig } from '../../../dist/src/config/config.js'
import { openGilmsg } from '../../../dist/src/reliable/from-config.js'

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    'max-ms': { type: 'string', default: '180000' },
    modname: { type: 'string', default: 'app' },
    'backoff-base-ms': { type: 'string' },
    'backoff-cap-ms': { type: 'string' },
  },
})
const say = (o) => process.stdout.write(`${JSON.stringify(o)}\n`)
const configPath = positionals[0]
if (configPath === undefined) {
  process.stderr.write('usage: publish-worker.mjs CONFIG\n')
  process.exit(2)
}
setTimeout(() => {
  process.stderr.write(`publish-worker: still running after ${values['max-ms']} ms, giving up\n`)
  process.exit(3)
}, Number(values['max-ms'])).unref()

// The resend schedule is the library's default unless both --backoff-* options are given.
const backoff =
  values['backoff-base-ms'] !== undefined && values['backoff-cap-ms'] !== undefined
    ? { baseMs: Number(values['backoff-base-ms']), capMs: Number(values['backoff-cap-ms']) }
    : undefined
const g = await openGilmsg(loadConfig({ file: configPath }), { inbox: false, ...(backoff ? { backoff } : {}) })
g.on('background:error', (e) => process.stderr.write(`publish-worker: background error: ${e.message}\n`))
const publisher = g.publisher
say({ ev: 'open', pid: process.pid })

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

async function runCase(c) {
  const resends0 = publisher.resends
  const resendsTo0 = publisher.resendsTo.snapshot()
  const t0 = performance.now()
  const settled = []
  say({ ev: 'start', label: c.label })
  for (let n = 0; n < c.count; n++) {
    const wait = t0 + n * c.intervalMs - performance.now()
    if (wait > 0) await sleep(wait)
    const wall = Date.now()
    const started = performance.now()
    const sentAtMs = Math.round(started - t0)
    settled.push(
      g.publish(c.topic, { label: c.label, n }, { recipients: c.recipients, ackTimeout: c.ackTimeoutMs, modname: values.modname }).then(
        (r) =>
          say({
            ev: 'acked',
            label: c.label,
            n,
            msgId: r.msgId,
            sentAtMs,
            ms: performance.now() - started,
            acks: Object.fromEntries(r.recipients.map((a) => [a.cn, a.at - wall])),
          }),
        (e) =>
          say({
            ev: 'failed',
            label: c.label,
            n,
            msgId: e?.msgId ?? null,
            sentAtMs,
            ms: performance.now() - started,
            code: e?.code ?? null,
            message: String(e?.message ?? e),
            missing: e?.missing ?? null,
            acked: e?.acked?.map((a) => a.cn) ?? null,
          }),
      ),
    )
  }
  await Promise.all(settled)
  const resendsTo = publisher.resendsTo.snapshot()
  say({
    ev: 'done',
    label: c.label,
    resends: publisher.resends - resends0,
    resendsTo: Object.fromEntries(Object.entries(resendsTo).map(([cn, k]) => [cn, k - (resendsTo0[cn] ?? 0)])),
  })
}

let quitting = false
async function quit(code) {
  if (quitting) return
  quitting = true
  await g.close()
  process.exit(code)
}

let queue = Promise.resolve()
const lines = createInterface({ input: process.stdin })
lines.on('line', (line) => {
  if (line.trim() === '') return
  let c
  try {
    c = JSON.parse(line)
  } catch {
    process.stderr.write(`publish-worker: not JSON: ${line}\n`)
    return
  }
  if (c.cmd === 'quit') queue = queue.then(() => quit(0))
  else if (c.cmd === 'run') queue = queue.then(() => runCase(c)).catch((e) => say({ ev: 'error', label: c.label, message: String(e?.message ?? e) }))
  else process.stderr.write(`publish-worker: unknown command ${line}\n`)
})
lines.on('close', () => void quit(0))

import { busFromConfig } from '../../bus/from-config.js'
import type { Bus } from '../../bus/bus.js'
import type { GilmsgConfig } from '../../config/config.js'
import { AckTimeoutError, errorMessage } from '../../errors.js'
import { MemoryInboxStore } from '../../inbox/memory.js'
import { MemoryOutboxStore } from '../../outbox/memory.js'
import { Gilmsg } from '../../reliable/gilmsg.js'
import { fail, ok, type CheckResult } from './result.js'

/** The modname and topic of the message `gilmsg check --roundtrip` sends itself: `<prefix>.<env>.gilmsg.check`. */
export const ROUNDTRIP_MODNAME = 'gilmsg'
export const ROUNDTRIP_TOPIC = 'check'

/**
 * `roundtrip`: publishes a guaranteed message to this process's own certificate CN through
 * the configured bus (binding `endpoints[name]` or connecting to `relay_inbound`, as any
 * publisher) and waits up to `timeoutMs` for its own signed ACK, which proves signing,
 * validation, the sockets, the relay and the ACK path at once. The outbox and inbox used
 * are in memory: the stores on disk are not touched.
 */
export async function roundtripCheck(config: GilmsgConfig, timeoutMs: number): Promise<CheckResult> {
  const name = 'roundtrip'
  const started = performance.now()
  let bus: Bus
  try {
    bus = await busFromConfig(config, { onCrlEvent: () => {} })
  } catch (e) {
    return fail(name, `cannot open the bus: ${errorMessage(e)}`)
  }
  const cn = bus.signer?.cn
  if (cn === undefined) {
    await bus.close()
    return fail(name, 'this process has no signing certificate (sign_messages is false): nothing can acknowledge to it')
  }
  let g: Gilmsg
  try {
    g = await Gilmsg.open({ bus, outbox: new MemoryOutboxStore(), inbox: new MemoryInboxStore(), resendRate: config.resend_rate, acceptLegacyAcks: false })
  } catch (e) {
    return fail(name, errorMessage(e))
  }
  try {
    const topic = bus.fullTopic(ROUNDTRIP_TOPIC, ROUNDTRIP_MODNAME)
    const sub = await g.subscribe(topic)
    const consumed = (async () => {
      for await (const _ of sub) {
        // acknowledged on receipt (ack: 'auto'); nothing else to do with it
      }
    })()
    try {
      const receipt = await g.publish(ROUNDTRIP_TOPIC, { check: 'roundtrip', at: new Date().toISOString() }, {
        recipients: [cn],
        ackTimeout: timeoutMs,
        modname: ROUNDTRIP_MODNAME,
      })
      const ms = Math.round(performance.now() - started)
      return ok(name, `${receipt.msgId} on ${topic} acknowledged by ${cn} (${receipt.recipients[0]?.disposition ?? '?'}) in ${ms} ms`)
    } finally {
      await sub.close()
      await consumed
    }
  } catch (e) {
    if (e instanceof AckTimeoutError) {
      return fail(name, `no ACK from ${cn} (this process) within ${timeoutMs} ms: the message or its ACK did not make it through the bus (see the relay and endpoint lines)`)
    }
    return fail(name, errorMessage(e))
  } finally {
    await g.close()
  }
}

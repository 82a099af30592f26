/**
 * A relay in a process of its own (case `relay`), so that its CPU time can be read from
 * /proc/PID/stat apart from the processes it serves.
 *
 *   relay --mode native|js
 *
 * Binds an inbound and an outbound address on tcp://127.0.0.1:* and replies
 * `ready {inbound, outbound}`; runs until `exit`.
 */
import { parseArgs } from 'node:util'
import { startRelay } from '../../src/index.js'
import { reply, serve } from '../lib/worker.js'

const { values } = parseArgs({ options: { mode: { type: 'string' } } })
const mode = values.mode === 'js' ? 'js' : 'native'
const relay = await startRelay({ inbound: ['tcp://127.0.0.1:*'], outbound: ['tcp://127.0.0.1:*'], mode })
serve({}, { onExit: () => relay.close() })
reply({ type: 'ready', inbound: relay.endpoints.inbound[0], outbound: relay.endpoints.outbound[0] })

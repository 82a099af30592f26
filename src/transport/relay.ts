import { Proxy, XPublisher, XSubscriber } from 'zeromq'
import { InvalidArgumentError } from '../errors.js'
import { DEFAULT_RELAY_MODE, RELAY_MODES, type RelayMode } from '../util/defaults.js'
import { checkAddresses } from '../util/options.js'
import { JsRelay } from './relay-js.js'
import { NativeRelay } from './relay-native.js'
import type { Relay, RelayOptions } from './relay-types.js'
import { InboundWatch } from './relay-watch.js'
import { bindAll } from './zmq-connect.js'
import { applySocketOptions, resolveSocketOptions } from './zmq-options.js'

export type { Relay, RelayMode, RelayOptions } from './relay-types.js'

/**
 * Starts a relay: an XSUB socket bound on `inbound` and an XPUB socket bound
 * on `outbound`. Messages go from the first to the second byte for byte
 * (never re-serialised), subscriptions the other way, so publishers send only
 * the topics somebody subscribed to. Every socket refuses frames over
 * `maxMessageBytes` before receiving them (see
 * {@link ZmqSocketOptions.maxMessageBytes}): such a publisher is disconnected
 * (counted in `inboundDisconnects`), and forwarding goes on.
 *
 * `mode` `native` (the default) leaves the forwarding to libzmq's proxy on a
 * thread of its own: nothing is checked but the frame size, and `forwarded`
 * and `dropped` are `undefined`. `mode` `js` forwards in a JavaScript loop
 * that also drops and counts what a Python fedmsg subscriber would choke on
 * (not 2 frames, not UTF-8, too large together). Resolves once both sockets
 * are bound; rejects with `TransportError` "cannot bind <address>: <reason>"
 * (nothing is left open) or `InvalidArgumentError` for an invalid option
 * (nothing is opened).
 */
export async function startRelay(options: RelayOptions): Promise<Relay> {
  const o = resolveSocketOptions(options)
  const mode = checkMode(options.mode ?? DEFAULT_RELAY_MODE)
  const inboundAddresses = checkAddresses('inbound', options.inbound, true)
  const outboundAddresses = checkAddresses('outbound', options.outbound, true)
  const inbound = new XSubscriber()
  const outbound = new XPublisher()
  let relay: JsRelay | NativeRelay | undefined
  // Watched before binding: a publisher waiting to reconnect is accepted at once.
  const watch = new InboundWatch(inbound, options.onInboundDisconnect, () => relay?.closeSockets())
  try {
    applySocketOptions(inbound, o)
    applySocketOptions(outbound, o)
    const endpoints = {
      inbound: await bindAll(inbound, inboundAddresses),
      outbound: await bindAll(outbound, outboundAddresses),
    }
    relay =
      mode === 'native'
        ? new NativeRelay(new Proxy(inbound, outbound), watch, endpoints)
        : new JsRelay({ inbound, outbound, watch }, endpoints, o.maxMessageBytes, options.onDrop)
    if (watch.failure !== undefined) relay.closeSockets()
    return relay
  } catch (err) {
    watch.stop()
    inbound.close()
    outbound.close()
    throw err
  }
}

function checkMode(mode: unknown): RelayMode {
  if (!(RELAY_MODES as readonly unknown[]).includes(mode)) throw InvalidArgumentError.format('mode', RELAY_MODES.join(' or '), mode)
  return mode as RelayMode
}

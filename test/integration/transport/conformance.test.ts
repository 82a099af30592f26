import { XPublisher } from 'zeromq'
import type { PubSocket, SubSocket } from '../../../src/transport/transport.js'
import { ZmqTransport } from '../../../src/transport/zmq.js'
import type { RawSender, TransportUnderTest } from './conformance.js'
import { describeTransportConformance } from './conformance.js'
import { removeIpcFiles, TRANSPORTS } from './helpers.js'

for (const { name, bindAddress } of TRANSPORTS) {
  describeTransportConformance(`ZeroMQ over ${name}`, (): TransportUnderTest => {
    const opened: { close(): unknown }[] = []
    const track = <T extends { close(): unknown }>(socket: T): T => {
      opened.push(socket)
      return socket
    }
    return {
      endpointPattern: name === 'tcp' ? /^tcp:\/\/127\.0\.0\.1:\d+$/ : /^ipc:\/\/.+\.sock$/,
      openPublisher: async (): Promise<PubSocket> =>
        track(await new ZmqTransport({ bind: [bindAddress()], subscribeTo: [] }).openPublisher()),
      openSubscriber: async (from, options, maxMessageBytes): Promise<SubSocket> => {
        const subscribeTo = from.flatMap((source) => source.endpoints)
        const transport = new ZmqTransport({ subscribeTo, ...(maxMessageBytes === undefined ? {} : { maxMessageBytes }) })
        return track(await transport.openSubscriber(options))
      },
      // A bare XPUB: it sends whatever frames it is given, and reports each subscription it receives.
      openRawSender: async (): Promise<RawSender> => {
        const socket = track(new XPublisher({ linger: 0, verbosity: 'allSubs' }))
        await socket.bind(bindAddress())
        return {
          endpoints: [socket.lastEndpoint!],
          waitForSubscriptions: async (count) => {
            for (let seen = 0; seen < count; seen++) await socket.receive()
          },
          send: async (...frames) => {
            await socket.send(frames)
          },
        }
      },
      close: async () => {
        for (const socket of opened.splice(0).reverse()) await socket.close()
        removeIpcFiles()
      },
    }
  })
}

/**
 * Binding as fedmsg binds (src/bus/from-config.ts, src/transport/zmq-connect.ts): a named
 * process binds the first free address of `endpoints[name]`, so that several processes of one
 * service share one list; a process that finds none free names every address it tried.
 */
import { createServer } from 'node:net'
import { afterEach, describe, expect, it } from 'vitest'
import { transportFromConfig } from '../../../src/bus/from-config.js'
import { parseConfig } from '../../../src/config/config.js'
import { TransportError } from '../../../src/errors.js'
import type { PubSocket } from '../../../src/transport/transport.js'
import { bindAddressOf } from '../../../src/transport/zmq-connect.js'

const open: PubSocket[] = []

afterEach(async () => {
  for (const pub of open.splice(0)) await pub.close()
})

/** A TCP port on 127.0.0.1 that nothing listens on (the kernel picks it; it is released at once). */
async function freePort(): Promise<number> {
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const address = server.address()
  await new Promise<void>((resolve) => server.close(() => resolve()))
  if (address === null || typeof address === 'string') throw new Error('no port')
  return address.port
}

describe('a named publisher binds the first free address of endpoints[name]', () => {
  it('a second process of the same name binds the second address; a third names every address tried', async () => {
    const list = [`tcp://127.0.0.1:${await freePort()}`, `tcp://127.0.0.1:${await freePort()}`]
    const config = parseConfig({ name: 'svc', endpoints: { svc: list }, sign_messages: false, validate_signatures: false })
    const first = await transportFromConfig(config).openPublisher()
    open.push(first)
    const second = await transportFromConfig(config).openPublisher()
    open.push(second)
    expect(first.endpoints).toEqual([list[0]])
    expect(second.endpoints).toEqual([list[1]])
    const third = transportFromConfig(config).openPublisher()
    await expect(third).rejects.toThrow(TransportError)
    await expect(transportFromConfig(config).openPublisher()).rejects.toThrow(
      new RegExp(`cannot bind any of 2 addresses.*${list[0]} \\(.*in use.*\\), ${list[1]} \\(.*in use.*\\)`, 'i'),
    )
  })

  it('binds the first address again once its holder closed it', async () => {
    const list = [`tcp://127.0.0.1:${await freePort()}`, `tcp://127.0.0.1:${await freePort()}`]
    const config = parseConfig({ name: 'svc', endpoints: { svc: list }, sign_messages: false, validate_signatures: false })
    const first = await transportFromConfig(config).openPublisher()
    expect(first.endpoints).toEqual([list[0]])
    await first.close()
    // libzmq releases the port in its I/O thread after close() returns: until then the second address is taken.
    const deadline = Date.now() + 5000
    for (;;) {
      const again = await transportFromConfig(config).openPublisher()
      open.push(again)
      if (again.endpoints[0] === list[0] || Date.now() > deadline) {
        expect(again.endpoints).toEqual([list[0]])
        break
      }
      await again.close()
      await new Promise((resolve) => setTimeout(resolve, 20))
    }
  })
})

describe('bindAddressOf', () => {
  it('rewrites a tcp host to * as fedmsg does, keeps loopback hosts and other transports', () => {
    expect(bindAddressOf('tcp://app01.example.com:3000')).toBe('tcp://*:3000')
    expect(bindAddressOf('tcp://192.0.2.7:3001')).toBe('tcp://*:3001')
    expect(bindAddressOf('tcp://[2001:db8::1]:3002')).toBe('tcp://*:3002')
    expect(bindAddressOf('tcp://*:3003')).toBe('tcp://*:3003')
    expect(bindAddressOf('tcp://127.0.0.1:3004')).toBe('tcp://127.0.0.1:3004')
    expect(bindAddressOf('tcp://127.1.2.3:3005')).toBe('tcp://127.1.2.3:3005')
    expect(bindAddressOf('tcp://localhost:3006')).toBe('tcp://localhost:3006')
    expect(bindAddressOf('tcp://[::1]:3007')).toBe('tcp://[::1]:3007')
    expect(bindAddressOf('ipc:///run/gilmsg/a.sock')).toBe('ipc:///run/gilmsg/a.sock')
    expect(bindAddressOf('inproc://x')).toBe('inproc://x')
  })
})

import { describe, expect, it } from 'vitest'
import { MemoryOutboxData, MemoryOutboxStore } from '../../../src/outbox/memory.js'
import { describeOutboxConformance, newMessage } from './conformance.js'

describeOutboxConformance('memory', async () => {
  const data = new MemoryOutboxData()
  return { store: new MemoryOutboxStore(data), reopen: async () => new MemoryOutboxStore(data) }
})

describe('MemoryOutboxStore', () => {
  it('reopen() and new MemoryOutboxStore(data) share the data of a closed store', async () => {
    const store = new MemoryOutboxStore()
    const m = newMessage()
    await store.add(m).durable
    await store.close()
    expect(store.reopen().get(m.msgId)?.state).toBe('pending')
    expect(new MemoryOutboxStore(store.data).counts().pending).toBe(1)
  })

  it('settles writes on a microtask, after the caller continues', async () => {
    const store = new MemoryOutboxStore()
    const order: string[] = []
    const p = store.add(newMessage()).durable.then(() => order.push('resolved'))
    order.push('sync')
    await p
    expect(order).toEqual(['sync', 'resolved'])
  })
})

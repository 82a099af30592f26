import { describe, expect, it } from 'vitest'
import { MemoryInboxData, MemoryInboxStore } from '../../../src/inbox/memory.js'
import { describeInboxConformance, getOf, newEntry } from './conformance.js'

describeInboxConformance('memory', async () => {
  const data = new MemoryInboxData()
  return { store: new MemoryInboxStore(data), reopen: async () => new MemoryInboxStore(data) }
})

describe('MemoryInboxStore', () => {
  it('reopen() and new MemoryInboxStore(data) share the data of a closed store', async () => {
    const store = new MemoryInboxStore()
    const e = newEntry()
    await store.put(e)
    await store.close()
    expect(getOf(store.reopen(), e)).toEqual(e)
    expect(getOf(new MemoryInboxStore(store.data), e)).toEqual(e)
  })
})

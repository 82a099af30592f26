/**
 * untilInterrupted (issue 14): the first SIGINT/SIGTERM starts a graceful
 * shutdown; a second one exits at once, even when another listener (a
 * library's) would otherwise keep the process alive. Signals are emitted
 * in-process (`process.emit`), so the test process is never signalled.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { SECOND_SIGNAL_EXIT, untilInterrupted } from '../../../src/cli/signals.js'

const EVENTS = ['SIGINT', 'SIGTERM', 'exit'] as const
let before: Map<string, Function[]>
const listeners = (event: (typeof EVENTS)[number]): Function[] => (event === 'exit' ? process.listeners('exit') : process.listeners(event))
/** The listeners added to `event` since the test began. */
const added = (event: (typeof EVENTS)[number]): Function[] => listeners(event).filter((l) => !before.get(event)?.includes(l))

beforeEach(() => {
  before = new Map(EVENTS.map((e) => [e, listeners(e)]))
})
afterEach(() => {
  vi.restoreAllMocks()
  for (const e of EVENTS) for (const l of added(e)) process.off(e, l as () => void)
})

describe('untilInterrupted', () => {
  it.each(['SIGINT', 'SIGTERM'] as const)('resolves on the first %s; a second signal of either kind exits at once with 128 + its number', async (first) => {
    const exit = vi.spyOn(process, 'exit').mockImplementation((() => undefined) as never)
    const foreign = (): void => undefined
    process.on('SIGTERM', foreign)
    try {
      const interrupted = untilInterrupted()
      process.emit(first, first)
      expect(await interrupted).toBe(first)
      expect(exit).not.toHaveBeenCalled()
      const second = first === 'SIGINT' ? 'SIGTERM' : 'SIGINT'
      process.emit(second, second)
      expect(exit).toHaveBeenCalledWith(SECOND_SIGNAL_EXIT[second])
      expect(SECOND_SIGNAL_EXIT).toEqual({ SIGINT: 130, SIGTERM: 143 })
    } finally {
      process.off('SIGTERM', foreign)
    }
  })

  it('resolves "abort" when the signal aborts, and then leaves signals alone', async () => {
    const exit = vi.spyOn(process, 'exit').mockImplementation((() => undefined) as never)
    const stop = new AbortController()
    const interrupted = untilInterrupted(stop.signal)
    expect(added('SIGINT')).toHaveLength(1)
    stop.abort()
    expect(await interrupted).toBe('abort')
    for (const e of EVENTS) expect(added(e)).toEqual([])
    expect(exit).not.toHaveBeenCalled()
    expect(await untilInterrupted(stop.signal)).toBe('abort')
    for (const e of EVENTS) expect(added(e)).toEqual([])
  })

  it('removes its second-signal handlers when the process exits', async () => {
    vi.spyOn(process, 'exit').mockImplementation((() => undefined) as never)
    const interrupted = untilInterrupted()
    process.emit('SIGTERM', 'SIGTERM')
    await interrupted
    expect(added('SIGTERM')).toHaveLength(1)
    expect(added('SIGINT')).toHaveLength(1)
    for (const l of added('exit')) (l as () => void)()
    expect(added('SIGTERM')).toEqual([])
    expect(added('SIGINT')).toEqual([])
  })
})

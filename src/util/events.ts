/** A minimal typed event emitter: listeners per event name, no implicit "error" event. */
export class Emitter<Events extends { [K in keyof Events]: (...args: never[]) => void }> {
  readonly #listeners = new Map<keyof Events, Set<Events[keyof Events]>>()

  /** Adds a listener; returns the function that removes it. */
  on<K extends keyof Events>(event: K, listener: Events[K]): () => void {
    let set = this.#listeners.get(event)
    if (set === undefined) this.#listeners.set(event, (set = new Set()))
    set.add(listener)
    return () => {
      set.delete(listener)
    }
  }

  /** True when `event` has at least one listener. */
  listens(event: keyof Events): boolean {
    return (this.#listeners.get(event)?.size ?? 0) > 0
  }

  /** Calls every listener of `event`; a listener that throws does not stop the others and is reported on the next tick. */
  emit<K extends keyof Events>(event: K, ...args: Parameters<Events[K]>): void {
    const set = this.#listeners.get(event)
    if (set === undefined) return
    for (const l of set) {
      try {
        ;(l as (...a: Parameters<Events[K]>) => void)(...args)
      } catch (e) {
        queueMicrotask(() => {
          throw e
        })
      }
    }
  }
}

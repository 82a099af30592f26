import { InvalidArgumentError } from '../errors.js'

/** A Map that holds at most `capacity` entries: setting one more forgets the oldest (by first insertion). */
export class BoundedMap<K, V> {
  readonly capacity: number
  readonly #map = new Map<K, V>()

  constructor(capacity: number) {
    if (!Number.isInteger(capacity) || capacity < 1) throw InvalidArgumentError.format('capacity', 'an integer >= 1', capacity)
    this.capacity = capacity
  }

  get(key: K): V | undefined {
    return this.#map.get(key)
  }

  set(key: K, value: V): void {
    this.#map.set(key, value)
    if (this.#map.size > this.capacity) this.#map.delete(this.#map.keys().next().value as K)
  }

  /** Forgets `key`; true when it was there. */
  delete(key: K): boolean {
    return this.#map.delete(key)
  }

  get size(): number {
    return this.#map.size
  }
}

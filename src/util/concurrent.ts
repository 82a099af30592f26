/**
 * Maps an async iterable through `fn` with up to `limit` calls in flight,
 * yielding the results in source order and skipping `undefined` results.
 * `fn` must not reject (catch inside it). Ending the loop early returns the
 * source iterator.
 */
export async function* mapOrdered<T, U>(
  source: AsyncIterable<T>,
  fn: (item: T) => Promise<U | undefined>,
  limit: number,
): AsyncGenerator<U, void, undefined> {
  const it = source[Symbol.asyncIterator]()
  const pending: Promise<U | undefined>[] = []
  let done = false
  let next: Promise<IteratorResult<T>> | undefined
  try {
    for (;;) {
      if (!done && next === undefined && pending.length < limit) next = it.next()
      if (pending.length === 0) {
        if (next === undefined) return
        const r = await next
        next = undefined
        if (r.done) done = true
        else pending.push(fn(r.value))
        continue
      }
      const head = pending[0] as Promise<U | undefined>
      if (next !== undefined) {
        const src = next
        const won = await Promise.race([src.then((r) => ({ r })), head.then(() => undefined)])
        if (won !== undefined) {
          next = undefined
          if (won.r.done) done = true
          else pending.push(fn(won.r.value))
          continue
        }
      }
      const value = await head
      pending.shift()
      if (value !== undefined) yield value
    }
  } finally {
    if (!done) {
      // With a read still pending, the source cannot return before its next item (or its close):
      // ask it to return, but do not wait, so that `break` never blocks on a quiet socket.
      const returned = it.return?.()
      if (next === undefined) await returned
      else void returned?.catch(() => undefined)
    }
  }
}

/**
 * The CA certificate and the CRL from an http(s) URL, as fedmsg takes them: fetched (with
 * Node's built-in `fetch`) to a cache file, fetched again once the cache is older than its
 * expiry, the last good copy kept when a fetch fails. Nothing fetched replaces a cached
 * copy unless it is a certificate (the CA) or a CRL whose signature the CA verifies and
 * that is not older than the CRL already accepted (the CRL). Cache files are written
 * atomically, mode 0600, in a directory only their owner can write.
 */
import { createHash, randomBytes, X509Certificate } from 'node:crypto'
import { mkdirSync, readFileSync, renameSync, statSync, unlinkSync, writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { CertificateError, errorMessage, GilmsgError } from '../errors.js'
import { systemClock, type Clock } from '../util/clock.js'
import { GROUP_OTHER_WRITE, octalMode, POSIX_MODES, shellWord } from '../util/permissions.js'
import { crlRollback, readCaCrl, type CrlMark } from './crl.js'
import { pemToDer } from './pem.js'

/** How long one fetch (connection, answer and body) may take before it is abandoned. */
export const DEFAULT_FETCH_TIMEOUT_MS = 10_000
/** The largest body accepted from a CA or CRL URL. */
export const MAX_FETCH_BYTES = 32 * 1024 * 1024
/** How soon a failed CRL refresh is tried again (at most every `crl_cache_expiry`). */
export const CRL_RETRY_MS = 60_000

const HTTP_URL = /^https?:\/\//i
const LOOPBACK_HOST = /^(?:127(?:\.\d{1,3}){3}|localhost|\[::1\])$/i

/** Whether a `ca_cert_location` / `crl_location` is an http(s) URL (else a file path). */
export function isRemoteLocation(location: string): boolean {
  return HTTP_URL.test(location)
}

/** The cache file of `url` when the config names none: `<dir>/<first 32 hex digits of SHA-256(url)><ext>`. */
export function defaultCachePath(dir: string, url: string, ext: string): string {
  return join(dir, `${createHash('sha256').update(url).digest('hex').slice(0, 32)}${ext}`)
}

/**
 * Why the CA may not be fetched from `url`, or undefined when it may: over https, or plain
 * http from a loopback host only (127.x.x.x, localhost, [::1]). Whoever can change a CA
 * fetched over the network can sign anything as anyone; a CRL needs no such rule, since it
 * is refused unless the CA signed it.
 */
export function caUrlRefusal(url: string): string | undefined {
  let parsed: URL
  try {
    parsed = new URL(url)
  } catch {
    return `${url} is not a valid URL`
  }
  if (parsed.protocol === 'https:') return undefined
  if (parsed.protocol === 'http:' && LOOPBACK_HOST.test(parsed.hostname)) return undefined
  return `${url}: the CA is fetched only over https (plain http only from a loopback host), since whoever can alter it in transit could sign any message as anyone`
}

/** Options of {@link fetchText}. */
export interface FetchOptions {
  /** Default {@link DEFAULT_FETCH_TIMEOUT_MS}. */
  readonly timeoutMs?: number | undefined
  /** Called with the final URL after redirects; throws to refuse it. */
  readonly checkUrl?: ((url: string) => void) | undefined
  /** Abandons the fetch (it then rejects as "abandoned"). */
  readonly signal?: AbortSignal | undefined
}

/**
 * GETs `url` and resolves with its body as text. Rejects with {@link CertificateError}
 * "cannot fetch <url>: ..." when the server cannot be reached, answers other than 2xx,
 * sends more than {@link MAX_FETCH_BYTES}, has not finished within `timeoutMs`, or
 * `signal` aborted it.
 */
export async function fetchText(url: string, options: FetchOptions = {}): Promise<string> {
  const timeoutMs = options.timeoutMs ?? DEFAULT_FETCH_TIMEOUT_MS
  const fail = (why: string, cause?: unknown): never => {
    throw new CertificateError(`cannot fetch ${url}: ${why}`, cause === undefined ? undefined : { cause })
  }
  const why = (err: unknown): string =>
    (err as Error | undefined)?.name === 'TimeoutError'
      ? `no complete answer within ${timeoutMs} ms`
      : (err as Error | undefined)?.name === 'AbortError'
        ? 'abandoned'
        : `${errorMessage(err)}${(err as Error).cause !== undefined ? ` (${errorMessage((err as Error).cause)})` : ''}`
  const timeout = AbortSignal.timeout(timeoutMs)
  const signal = options.signal === undefined ? timeout : AbortSignal.any([timeout, options.signal])
  let res: Response
  try {
    res = await fetch(url, { signal, redirect: 'follow' })
  } catch (err) {
    return fail(why(err), err)
  }
  try {
    options.checkUrl?.(res.url)
    if (!res.ok) fail(`HTTP ${res.status}${res.statusText ? ` ${res.statusText}` : ''}`)
    if (res.body === null) return ''
    const chunks: Uint8Array[] = []
    let size = 0
    for await (const chunk of res.body) {
      size += chunk.byteLength
      if (size > MAX_FETCH_BYTES) fail(`the answer is larger than ${MAX_FETCH_BYTES} bytes`)
      chunks.push(chunk)
    }
    return Buffer.concat(chunks).toString('utf8')
  } catch (err) {
    if (err instanceof GilmsgError) throw err
    return fail(why(err), err)
  } finally {
    if (res.body !== null && !res.bodyUsed) await res.body.cancel().catch(() => undefined)
  }
}

function checkCacheDir(dir: string): void {
  if (!POSIX_MODES) return
  const st = statSync(dir)
  const uid = process.getuid?.()
  if ((st.mode & GROUP_OTHER_WRITE) !== 0 || (uid !== undefined && st.uid !== uid && st.uid !== 0)) {
    throw new CertificateError(
      `the cache directory ${dir} (mode ${octalMode(st.mode)}, owner uid ${st.uid}) may be written by others, who could replace what is cached there: ` +
        `make it yours and run chmod go-w ${shellWord(dir)}`,
    )
  }
}

/**
 * Writes `text` to the cache file `path` atomically (a temporary file, mode 0600, renamed
 * over it), creating its directory (0700) if needed. Throws {@link CertificateError} when
 * the directory may be written by group or others, or by another user than root or this one.
 */
export function writeCacheFile(path: string, text: string): void {
  const dir = dirname(path)
  const tmp = join(dir, `.${randomBytes(6).toString('hex')}.tmp`)
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 })
    checkCacheDir(dir)
    writeFileSync(tmp, text, { mode: 0o600, flag: 'wx' })
    renameSync(tmp, path)
  } catch (err) {
    try {
      unlinkSync(tmp)
    } catch {
      // Not created, or already renamed.
    }
    if (err instanceof GilmsgError) throw err
    throw new CertificateError(`cannot write the cache file ${path}: ${errorMessage(err)}`, { cause: err })
  }
}

/** A cache file's text and age, or undefined when it does not exist. Throws {@link CertificateError} as {@link writeCacheFile} for its directory, or when it cannot be read. */
function readCache(path: string, now: number): { readonly text: string; readonly ageMs: number } | undefined {
  try {
    const st = statSync(path)
    checkCacheDir(dirname(path))
    return { text: readFileSync(path, 'utf8'), ageMs: now - st.mtimeMs }
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    if (err instanceof GilmsgError) throw err
    throw new CertificateError(`cannot read the cache file ${path}: ${errorMessage(err)}`, { cause: err })
  }
}

function expired(ageMs: number, expirySec: number): boolean {
  return ageMs >= expirySec * 1000
}

/** Options of {@link loadRemoteCa}. */
export interface RemoteCaOptions {
  readonly url: string
  readonly cachePath: string
  /** Seconds after which a cached CA is fetched again; 0: never once cached (fedmsg's default). */
  readonly expirySec: number
  readonly timeoutMs?: number | undefined
  readonly clock?: Clock | undefined
  /** Told when a fetch failed or was refused and the cached copy is used instead. */
  readonly onStale?: ((error: CertificateError) => void) | undefined
}

function checkCaPem(pem: string, url: string): void {
  try {
    const cert = new X509Certificate(pemToDer(pem, 'CERTIFICATE'))
    if (!cert.ca) throw new Error('it is not a CA certificate (basicConstraints cA is not set)')
  } catch (err) {
    throw new CertificateError(`${url} did not give a CA certificate: ${errorMessage(err)}`, { cause: err })
  }
}

/**
 * The CA certificate (PEM) from `url`, through its cache: the cached copy while it is
 * younger than `expirySec` (always when 0), else a new copy fetched and cached. When a
 * fetch fails or gives no CA certificate, the cached copy is used (and `onStale` told); with
 * no cached copy it rejects with {@link CertificateError} naming the URL. Rejects at once,
 * fetching nothing, for a URL {@link caUrlRefusal} refuses.
 */
export async function loadRemoteCa(options: RemoteCaOptions): Promise<string> {
  const { url, cachePath } = options
  const refusal = caUrlRefusal(url)
  if (refusal !== undefined) throw new CertificateError(`ca_cert_location ${refusal}`)
  const cached = readCache(cachePath, (options.clock ?? systemClock).now())
  if (cached !== undefined && (options.expirySec === 0 || !expired(cached.ageMs, options.expirySec))) return cached.text
  try {
    const pem = await fetchText(url, {
      timeoutMs: options.timeoutMs,
      checkUrl: (final) => {
        const why = caUrlRefusal(final)
        if (why !== undefined) throw new CertificateError(`redirected to ${why}`)
      },
    })
    checkCaPem(pem, url)
    writeCacheFile(cachePath, pem)
    return pem
  } catch (err) {
    if (!(err instanceof CertificateError) || cached === undefined) throw err
    options.onStale?.(new CertificateError(`${err.message}; using the cached copy ${cachePath}`, { cause: err }))
    return cached.text
  }
}

/** Options of {@link RemoteCrl}. */
export interface RemoteCrlOptions {
  readonly url: string
  readonly cachePath: string
  /** The CA that must have signed every CRL fetched. */
  readonly caPem: string
  /** Seconds between fetches while running; 0: fetched at start only. */
  readonly expirySec: number
  readonly timeoutMs?: number | undefined
  /** Default {@link systemClock} (its timers never keep the process alive). */
  readonly clock?: Clock | undefined
  /** The newest CRL already accepted for the CA: an older one fetched is refused. */
  readonly newestAccepted: () => CrlMark | undefined
  /** Told of every failed or refused fetch; the cached copy stays. */
  readonly onError: (error: CertificateError) => void
  /** Called after a new CRL was written to the cache file. */
  readonly onUpdated: () => void
}

/**
 * A CRL kept current from a URL in a cache file (which the CRL watcher then loads). Call
 * {@link RemoteCrl.start} to refresh it every `expirySec`; a failed refresh is tried again
 * after {@link CRL_RETRY_MS} (or `expirySec` if sooner).
 */
export class RemoteCrl implements Disposable {
  readonly #opts: RemoteCrlOptions
  readonly #clock: Clock
  readonly #ca: X509Certificate
  #cancelTimer: (() => void) | undefined
  readonly #abort = new AbortController()
  #closed = false

  /** Throws {@link CertificateError} when `caPem` is not a certificate. */
  constructor(options: RemoteCrlOptions) {
    this.#opts = options
    this.#clock = options.clock ?? systemClock
    try {
      this.#ca = new X509Certificate(pemToDer(options.caPem, 'CERTIFICATE'))
    } catch (err) {
      throw new CertificateError(`cannot parse the CA certificate: ${errorMessage(err)}`, { cause: err })
    }
  }

  /** The age (ms) of the cache file, or undefined when there is none. Throws as {@link writeCacheFile} for an unsafe directory. */
  cacheAgeMs(): number | undefined {
    return readCache(this.#opts.cachePath, this.#clock.now())?.ageMs
  }

  /**
   * Fetches the CRL, checks it (signed by the CA, not older than the newest accepted) and
   * writes it to the cache when it differs from the cached copy. Rejects with
   * {@link CertificateError} naming the URL when any step fails; the cache is then untouched.
   */
  async fetchNow(): Promise<void> {
    const { url, cachePath } = this.#opts
    const pem = await fetchText(url, { timeoutMs: this.#opts.timeoutMs, signal: this.#abort.signal })
    const crl = readCaCrl(pem, this.#ca, `the CRL from ${url}`)
    const rollback = crlRollback(this.#opts.newestAccepted(), crl)
    if (rollback !== undefined) throw new CertificateError(`the CRL from ${url} is refused: ${rollback}`)
    let cachedText: string | undefined
    try {
      cachedText = readFileSync(cachePath, 'utf8')
    } catch {
      cachedText = undefined
    }
    if (cachedText === pem || this.#closed) return
    writeCacheFile(cachePath, pem)
    this.#opts.onUpdated()
  }

  /**
   * Refreshes after `firstMs` (default `expirySec`), then every `expirySec`; after a failure,
   * again after {@link CRL_RETRY_MS} (or `expirySec` if sooner) until one succeeds. Failures
   * go to `onError`. With `expirySec` 0 only the first refresh (and its retries) is made;
   * with `expirySec` 0 and no `firstMs`, none.
   */
  start(firstMs?: number): void {
    const every = this.#opts.expirySec * 1000
    if (firstMs === undefined && every === 0) return
    this.#schedule(firstMs ?? every)
  }

  #schedule(ms: number): void {
    if (this.#closed) return
    this.#cancelTimer = this.#clock.setTimer(() => {
      this.#cancelTimer = undefined
      const every = this.#opts.expirySec * 1000
      this.fetchNow()
        .then(
          () => every > 0 && this.#schedule(every),
          (err: unknown) => {
            if (this.#closed) return
            this.#opts.onError(err instanceof CertificateError ? err : new CertificateError(`cannot refresh the CRL from ${this.#opts.url}: ${errorMessage(err)}`, { cause: err }))
            this.#schedule(every > 0 ? Math.min(every, CRL_RETRY_MS) : CRL_RETRY_MS)
          },
        )
    }, ms)
  }

  /** Stops refreshing and abandons a fetch in progress (so that it keeps no process alive). Idempotent. */
  close(): void {
    if (this.#closed) return
    this.#closed = true
    this.#abort.abort()
    this.#cancelTimer?.()
    this.#cancelTimer = undefined
  }

  [Symbol.dispose](): void {
    this.close()
  }
}

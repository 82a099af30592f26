/**
 * How `gilmsg enqueue` wakes a running `gilmsg agent`: a Unix socket beside
 * the outbox (`<outbox>.agent.sock`, mode 0600). A client writes the msg_ids
 * it committed, one per line; the agent sends what is unsent in the outbox
 * at once and, when the client ends, answers `ok` and closes. Whoever holds
 * the socket owns the outbox: a second agent finds it live and is refused.
 */
import { chmodSync, statSync, unlinkSync } from 'node:fs'
import { createConnection, createServer, type Server, type Socket } from 'node:net'
import { ConfigError, GilmsgError } from '../errors.js'

/** What is appended to the outbox's path to name the agent's socket. */
export const AGENT_SOCKET_SUFFIX = '.agent.sock'
/** The longest path a Unix socket may have on Linux (`sun_path` holds 108 bytes with the final NUL). */
export const MAX_SOCKET_PATH_BYTES = 107
/** The longest line a client may send (a msg_id is about 41 bytes); a longer one ends the connection. */
export const MAX_NOTIFY_LINE_BYTES = 256
/** Clients served at once; more wait in the listen backlog. */
export const MAX_NOTIFY_CONNECTIONS = 64
/** How long `enqueue` waits for the agent's `ok` after its last msg_id. */
export const NOTIFY_CONFIRM_TIMEOUT_MS = 2000

/** Another agent owns the outbox (its socket answers). */
export class AgentRunningError extends GilmsgError {
  constructor(readonly socketPath: string) {
    super('GILMSG_STORE', `another gilmsg agent already owns this outbox (it answers on ${socketPath}); stop it first, or give this one another --name`)
  }
}

/** `<outbox>.agent.sock`; throws a `ConfigError` when that is too long for a Unix socket. */
export function agentSocketPath(outboxPath: string): string {
  const path = outboxPath + AGENT_SOCKET_SUFFIX
  const bytes = Buffer.byteLength(path)
  if (bytes > MAX_SOCKET_PATH_BYTES) {
    throw new ConfigError(
      `the agent's socket ${path} would be ${bytes} bytes long, over the ${MAX_SOCKET_PATH_BYTES} a Unix socket path may have: ` +
        'set outbox_path (or XDG_STATE_HOME) to a shorter path',
    )
  }
  return path
}

function listenOn(server: Server, path: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (e: Error): void => reject(e)
    server.once('error', onError)
    server.listen(path, () => {
      server.off('error', onError)
      resolve()
    })
  })
}

/** True when something accepts connections on `path`; false when nothing listens there (a stale file, or none). */
function answers(path: string): Promise<boolean> {
  return new Promise((resolve, reject) => {
    const probe = createConnection(path)
    probe.once('connect', () => {
      probe.destroy()
      resolve(true)
    })
    probe.once('error', (e: NodeJS.ErrnoException) => {
      if (e.code === 'ECONNREFUSED' || e.code === 'ENOENT') resolve(false)
      else reject(e)
    })
  })
}

/** The agent's end: calls `onNotify` with the msg_ids clients name. */
export class AgentListener {
  readonly path: string
  readonly #server: Server
  readonly #ino: number
  readonly #sockets = new Set<Socket>()
  #closing: Promise<void> | undefined

  private constructor(path: string, server: Server) {
    this.path = path
    this.#server = server
    this.#ino = statSync(path).ino
  }

  /**
   * Listens on `path` (mode 0600). A stale socket file (nobody answers: an
   * agent that was killed) is replaced. Rejects with {@link AgentRunningError}
   * when another process answers there. Callers serialise concurrent starts
   * (the agent holds the outbox's write lock meanwhile).
   */
  static async listen(path: string, onNotify: (msgIds: readonly string[]) => void): Promise<AgentListener> {
    const server = createServer((socket) => serve(socket, onNotify))
    server.maxConnections = MAX_NOTIFY_CONNECTIONS
    try {
      await listenOn(server, path)
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw e
      if (await answers(path)) throw new AgentRunningError(path)
      unlinkSync(path)
      await listenOn(server, path)
    }
    chmodSync(path, 0o600)
    const listener = new AgentListener(path, server)
    server.on('connection', (s: Socket) => {
      listener.#sockets.add(s)
      s.once('close', () => listener.#sockets.delete(s))
    })
    return listener
  }

  /** Stops listening, ends the connections and removes the socket file if it is still this one's. Idempotent. */
  close(): Promise<void> {
    this.#closing ??= new Promise<void>((resolve) => {
      this.#server.close(() => resolve())
      for (const s of this.#sockets) s.destroy()
      try {
        if (statSync(this.path).ino === this.#ino) unlinkSync(this.path)
      } catch {
        // Already gone: nothing to remove.
      }
    })
    return this.#closing
  }
}

function serve(socket: Socket, onNotify: (msgIds: readonly string[]) => void): void {
  let buffered = ''
  socket.setEncoding('utf8')
  socket.on('data', (chunk: string) => {
    buffered += chunk
    const lines = buffered.split('\n')
    buffered = lines.pop() ?? ''
    if (Buffer.byteLength(buffered) > MAX_NOTIFY_LINE_BYTES) {
      socket.destroy()
      return
    }
    const ids = lines.map((l) => l.trim()).filter((l) => l !== '' && l.length <= MAX_NOTIFY_LINE_BYTES)
    if (ids.length > 0) onNotify(ids)
  })
  socket.on('end', () => socket.end('ok\n'))
  socket.on('error', () => socket.destroy())
}

/**
 * The client's end, kept open while a command commits messages. Connecting
 * resolves undefined when no agent listens (the messages stay in the outbox
 * for when one starts).
 */
export class AgentNotifier {
  readonly #socket: Socket
  #failed = false
  readonly #confirmed: Promise<boolean>

  private constructor(socket: Socket) {
    this.#socket = socket
    let reply = ''
    this.#confirmed = new Promise((resolve) => {
      socket.setEncoding('utf8')
      socket.on('data', (d: string) => (reply += d))
      socket.once('close', () => resolve(reply.startsWith('ok')))
    })
    socket.on('error', () => {
      this.#failed = true
    })
  }

  /** Connects to the agent at `path`; undefined when none listens there. Rejects only on an unexpected error (e.g. EACCES). */
  static connect(path: string): Promise<AgentNotifier | undefined> {
    return new Promise((resolve, reject) => {
      const socket = createConnection(path)
      socket.once('connect', () => {
        socket.removeAllListeners('error')
        resolve(new AgentNotifier(socket))
      })
      socket.once('error', (e: NodeJS.ErrnoException) => {
        if (e.code === 'ECONNREFUSED' || e.code === 'ENOENT') resolve(undefined)
        else reject(e)
      })
    })
  }

  /** Names committed messages to the agent. Never throws: a lost notification is found by the agent's own checks. */
  notify(msgIds: readonly string[]): void {
    if (this.#failed || msgIds.length === 0) return
    this.#socket.write(msgIds.join('\n') + '\n')
  }

  /** Ends the connection; resolves true once the agent confirmed, false if it did not within `timeoutMs`. */
  async close(timeoutMs = NOTIFY_CONFIRM_TIMEOUT_MS): Promise<boolean> {
    this.#socket.end()
    let timer: NodeJS.Timeout | undefined
    const timeout = new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), timeoutMs)))
    const confirmed = await Promise.race([this.#confirmed, timeout])
    clearTimeout(timer)
    if (!confirmed) this.#socket.destroy()
    return confirmed && !this.#failed
  }
}

/**
 * Test hosts as Linux network namespaces that the test creates itself, for the
 * fault tests (test/fault/netns*.test.ts).
 *
 * Topology: one namespace `gm-sw-<pid>` holds a bridge (`br0`); every host is a
 * namespace `gm-<host>-<pid>` whose `eth0` is one end of a veth pair, the other
 * end (`p-<host>`) being a port of that bridge. Both ends of every veth pair
 * live in namespaces made here, and the addresses (10.203.1.0/24) exist only
 * inside them: nothing in the root namespace is touched beyond creating and
 * deleting these namespaces.
 *
 * Faults: an nftables table `bridge gm_fault` in the switch namespace drops N%
 * of the frames a host sends into its link and N% of those the link carries
 * to it (`numgen random mod 100 < N drop` on bridge port `p-<host>`): N% loss
 * in each direction of that host's link; 100 is a partition of the host.
 * Frames are dropped in transit, as a lossy link would: the sending TCP sees
 * no error (a drop in the sender's own OUTPUT hook is reported back to TCP,
 * which simply retries, so it is not loss at all), and each frame carries one
 * TCP segment (hosts' eth0 has gso_max_segs 1: no 64 KiB GSO super-frames that
 * one drop would turn into a burst loss). Counters record what crossed and
 * what was dropped. This kernel has no netem, so there is no delay injection.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { readdirSync, rmSync } from 'node:fs'
import { join } from 'node:path'
import { createInterface } from 'node:readline'

/** Namespace names this module makes: `gm-<role>-<pid>`. */
const NAME = /^gm-([a-z][a-z0-9]{0,7})-(\d+)$/
/** The subnet of the test network, inside the namespaces only. */
export const SUBNET_PREFIX = '10.203.1.'
const NFT_TABLE = 'gm_fault'

export interface CommandResult {
  readonly ok: boolean
  readonly status: number | null
  readonly stdout: string
  readonly stderr: string
  /** The error starting it (ENOENT when the program is missing). */
  readonly error?: string
}

/** Runs a command to completion (at most `timeoutMs`), never throwing. */
export function run(cmd: string, args: readonly string[], input?: string, timeoutMs = 10_000): CommandResult {
  const r = spawnSync(cmd, args, { input: input ?? '', encoding: 'utf8', timeout: timeoutMs })
  return {
    ok: r.status === 0 && r.error === undefined,
    status: r.status,
    stdout: r.stdout ?? '',
    stderr: r.stderr ?? '',
    ...(r.error ? { error: `${(r.error as NodeJS.ErrnoException).code ?? ''} ${r.error.message}`.trim() } : {}),
  }
}

/** Runs a command, throwing with its stderr if it fails. */
export function must(cmd: string, args: readonly string[], input?: string): string {
  const r = run(cmd, args, input)
  if (!r.ok) throw new Error(`${cmd} ${args.join(' ')} failed (status ${r.status}${r.error ? `, ${r.error}` : ''}): ${r.stderr.trim()}`)
  return r.stdout
}

export type Support = { readonly ok: true } | { readonly ok: false; readonly reason: string; readonly isRoot: boolean }

/**
 * Whether this process can build the test network: root, `ip` (iproute2) and
 * `nft` (nftables) present, and a namespace can really be created (a
 * container may forbid it).
 */
export function probeNetns(): Support {
  const isRoot = process.getuid?.() === 0
  if (!isRoot) return { ok: false, isRoot, reason: `not root (uid ${process.getuid?.() ?? '?'}): network namespaces need root` }
  const ip = run('ip', ['-V'])
  if (ip.error !== undefined) return { ok: false, isRoot, reason: `ip not found (${ip.error}): apt-get install iproute2` }
  const nft = run('nft', ['--version'])
  if (nft.error !== undefined) return { ok: false, isRoot, reason: `nft not found (${nft.error}): apt-get install nftables` }
  const probe = `gm-probe-${process.pid}`
  const add = run('ip', ['netns', 'add', probe])
  if (!add.ok) return { ok: false, isRoot, reason: `cannot create a network namespace: ip netns add ${probe}: ${add.stderr.trim() || add.error}` }
  try {
    const t = run(
      'ip',
      ['netns', 'exec', probe, 'nft', '-f', '-'],
      `table bridge ${NFT_TABLE} {\n  chain forward {\n    type filter hook forward priority 0; policy accept;\n    iifname "p-x" numgen random mod 100 < 10 counter drop\n  }\n}\n`,
    )
    if (!t.ok) return { ok: false, isRoot, reason: `nftables does not work in a namespace: ${t.stderr.trim() || t.error}` }
  } finally {
    run('ip', ['netns', 'del', probe])
  }
  return { ok: true }
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM'
  }
}

/**
 * Deletes namespaces named `gm-<role>-<pid>` (for the given roles, plus
 * `probe`) whose creating process `<pid>` is gone: what a crashed earlier run
 * left behind. Processes still running inside them (that run's relay, tails,
 * worker) are killed by pid first. Namespaces of a live process (another run
 * going on now) are left alone. Returns the names removed.
 */
export function removeStaleNamespaces(roles: readonly string[]): string[] {
  const removed: string[] = []
  const list = run('ip', ['netns', 'list'])
  if (!list.ok) return removed
  for (const line of list.stdout.split('\n')) {
    const name = line.split(' ')[0] ?? ''
    const m = NAME.exec(name)
    if (m === null || !(roles.includes(m[1] as string) || m[1] === 'probe')) continue
    const owner = Number(m[2])
    if (owner === process.pid || pidAlive(owner)) continue
    for (const p of run('ip', ['netns', 'pids', name]).stdout.split(/\s+/).filter((s) => /^\d+$/.test(s))) {
      try {
        process.kill(Number(p), 'SIGKILL')
      } catch {
        // already gone
      }
    }
    if (run('ip', ['netns', 'del', name]).ok) removed.push(name)
  }
  return removed
}

/** Loss of a link in percent: both directions, or from the host (`out`) and to it (`in`). */
export type LinkLoss = number | { readonly out: number; readonly in: number }

/**
 * Removes the directories `<parent>/<prefix><pid>-*` whose process `<pid>` is
 * gone (left by a crashed earlier run). Returns their paths.
 */
export function removeStaleDirs(parent: string, prefix: string): string[] {
  const removed: string[] = []
  let names: string[]
  try {
    names = readdirSync(parent)
  } catch {
    return removed
  }
  for (const name of names) {
    if (!name.startsWith(prefix)) continue
    const m = /^(\d+)-/.exec(name.slice(prefix.length))
    if (m === null) continue
    const owner = Number(m[1])
    if (owner === process.pid || pidAlive(owner)) continue
    const path = join(parent, name)
    rmSync(path, { recursive: true, force: true })
    removed.push(path)
  }
  return removed
}

/** Frames counted on a host's link since the loss was last set: from the host (out) and to it (in). */
export interface LinkCounters {
  /** Every frame the host sent into the link, dropped or not. */
  readonly outFrames: number
  readonly outDropped: number
  /** Every frame the link carried towards the host, dropped or not. */
  readonly inFrames: number
  readonly inDropped: number
}

/** A process running inside a host namespace, its output collected line by line. */
export class NsProcess {
  readonly child: ChildProcess
  readonly stdoutLines: string[] = []
  readonly stderrLines: string[] = []
  /** Resolves once the process exited and its output was read. */
  readonly closed: Promise<{ code: number | null; signal: NodeJS.Signals | null }>
  readonly #listeners: ((line: string) => void)[] = []

  constructor(
    readonly label: string,
    ns: string,
    argv: readonly string[],
    options: { env?: NodeJS.ProcessEnv; cwd?: string } = {},
  ) {
    // `ip netns exec` enters the namespace and execs argv: the child's pid is the program's own.
    this.child = spawn('ip', ['netns', 'exec', ns, ...argv], {
      stdio: ['pipe', 'pipe', 'pipe'],
      env: { ...process.env, ...options.env },
      ...(options.cwd !== undefined ? { cwd: options.cwd } : {}),
    })
    this.child.stdin?.on('error', () => {}) // EPIPE once it is gone: its exit tells the story
    this.closed = once(this.child, 'close').then(([code, signal]) => ({ code: code as number | null, signal: signal as NodeJS.Signals | null }))
    createInterface({ input: this.child.stdout as NodeJS.ReadableStream }).on('line', (l) => {
      this.stdoutLines.push(l)
      for (const f of this.#listeners) f(l)
    })
    createInterface({ input: this.child.stderr as NodeJS.ReadableStream }).on('line', (l) => this.stderrLines.push(l))
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null
  }

  /** Calls `f` for each stdout line read from now on. */
  onLine(f: (line: string) => void): void {
    this.#listeners.push(f)
  }

  /** Writes a line to its stdin. */
  send(line: string): void {
    this.child.stdin?.write(`${line}\n`)
  }

  /** The first line (already read or coming) of `stream` matching `re`; rejects after `timeoutMs` or if it exits first. */
  async waitFor(re: RegExp, stream: 'stdout' | 'stderr', timeoutMs: number): Promise<string> {
    const lines = stream === 'stdout' ? this.stdoutLines : this.stderrLines
    const until = Date.now() + timeoutMs
    for (;;) {
      const hit = lines.find((l) => re.test(l))
      if (hit !== undefined) return hit
      if (!this.running) throw new Error(`${this.label} exited before printing ${re} on ${stream}: ${this.describe()}`)
      if (Date.now() > until) throw new Error(`${this.label}: no ${stream} line matching ${re} within ${timeoutMs} ms: ${this.describe()}`)
      await new Promise((r) => setTimeout(r, 10))
    }
  }

  /** SIGKILL (or `signal`), then waits (bounded) until it is gone. Never rejects. */
  async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    if (this.running) this.child.kill(signal)
    let timer: NodeJS.Timeout | undefined
    await Promise.race([this.closed, new Promise((r) => (timer = setTimeout(r, 5000)))])
    clearTimeout(timer)
  }

  describe(): string {
    return `exit=${this.child.exitCode} signal=${this.child.signalCode}\n  stdout tail: ${this.stdoutLines.slice(-3).join(' | ')}\n  stderr: ${this.stderrLines.slice(-10).join('\n  ')}`
  }
}

/**
 * The test network: a switch namespace with a bridge and one namespace per
 * host, each on the bridge through a veth pair. Call {@link destroy} when done;
 * it is also called (synchronously) if the process exits first.
 */
export class Lab {
  readonly switchNs: string
  readonly #hosts = new Map<string, { ns: string; ip: string }>()
  readonly #procs = new Set<NsProcess>()
  readonly #loss = new Map<string, { out: number; in: number }>()
  readonly #onExit = (): void => this.destroySync()
  #destroyed = false

  private constructor(readonly suffix: string) {
    this.switchNs = `gm-sw-${suffix}`
  }

  /** Builds the switch and the hosts (names: lowercase, at most 8 characters). Throws (after cleaning up) on failure. */
  static create(hosts: readonly string[]): Lab {
    const lab = new Lab(String(process.pid))
    process.on('exit', lab.#onExit)
    try {
      lab.#build(hosts)
    } catch (e) {
      lab.destroySync()
      throw e
    }
    return lab
  }

  #build(hosts: readonly string[]): void {
    const sw = this.switchNs
    must('ip', ['netns', 'add', sw])
    must('ip', ['-n', sw, 'link', 'add', 'br0', 'type', 'bridge'])
    must('ip', ['-n', sw, 'link', 'set', 'br0', 'up'])
    hosts.forEach((host, i) => {
      if (!/^[a-z][a-z0-9]{0,7}$/.test(host) || host === 'sw' || host === 'probe') throw new Error(`bad host name ${host}`)
      const ns = `gm-${host}-${this.suffix}`
      const ip = `${SUBNET_PREFIX}${i + 1}`
      must('ip', ['netns', 'add', ns])
      this.#hosts.set(host, { ns, ip })
      // Both ends are made inside our namespaces: `p-<host>` in the switch, `eth0` in the host.
      must('ip', ['-n', sw, 'link', 'add', `p-${host}`, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns])
      must('ip', ['-n', sw, 'link', 'set', `p-${host}`, 'master', 'br0', 'up'])
      must('ip', ['-n', ns, 'link', 'set', 'lo', 'up'])
      must('ip', ['-n', ns, 'addr', 'add', `${ip}/24`, 'dev', 'eth0'])
      // One TCP segment per frame (no TSO/GSO super-frames), so that a dropped frame is one lost packet.
      must('ip', ['-n', ns, 'link', 'set', 'dev', 'eth0', 'gso_max_segs', '1', 'gso_max_size', '1500'])
      must('ip', ['-n', ns, 'link', 'set', 'eth0', 'up'])
    })
  }

  /** The host names, in creation order. */
  get hosts(): string[] {
    return [...this.#hosts.keys()]
  }

  #host(host: string): { ns: string; ip: string } {
    const h = this.#hosts.get(host)
    if (h === undefined) throw new Error(`no host ${host}`)
    return h
  }

  ns(host: string): string {
    return this.#host(host).ns
  }

  ip(host: string): string {
    return this.#host(host).ip
  }

  /** Starts `argv` inside `host`'s namespace; it is killed by {@link destroy}. */
  spawn(host: string, label: string, argv: readonly string[], options: { env?: NodeJS.ProcessEnv; cwd?: string } = {}): NsProcess {
    if (this.#destroyed) throw new Error('lab destroyed')
    const p = new NsProcess(label, this.ns(host), argv, options)
    this.#procs.add(p)
    return p
  }

  /**
   * Sets the loss of hosts' links, in percent of the frames crossing each:
   * a number applies to both directions, `{ out, in }` to frames from the
   * host and to it separately (`{ out: 30, in: 0 }` is netem's `loss 30%` on
   * the host's egress). 0: none, 100: cut. E.g. `{ pub: 10, r1: { out: 30, in: 0 } }`;
   * hosts not named keep their setting. The whole fault table is replaced in
   * one nftables transaction, which restarts every counter at 0.
   */
  setLoss(losses: Readonly<Record<string, LinkLoss>>): void {
    for (const [host, loss] of Object.entries(losses)) {
      this.#host(host)
      const l = typeof loss === 'number' ? { out: loss, in: loss } : loss
      for (const percent of [l.out, l.in]) {
        if (!Number.isInteger(percent) || percent < 0 || percent > 100) throw new Error(`loss of ${host}: expected 0..100, got ${percent}`)
      }
      this.#loss.set(host, { out: l.out, in: l.in })
    }
    // Frames from the host enter the bridge on p-<host> (iifname); frames to it leave on it (oifname).
    const rules: string[] = []
    for (const host of this.#hosts.keys()) {
      const loss = this.#loss.get(host) ?? { out: 0, in: 0 }
      for (const [dir, match] of [['out', 'iifname'], ['in', 'oifname']] as const) {
        const percent = loss[dir]
        rules.push(`${match} "p-${host}" counter comment "${host} ${dir} all"`)
        if (percent === 100) rules.push(`${match} "p-${host}" counter drop comment "${host} ${dir} dropped"`)
        else if (percent > 0) rules.push(`${match} "p-${host}" numgen random mod 100 < ${percent} counter drop comment "${host} ${dir} dropped"`)
      }
    }
    const script =
      `table bridge ${NFT_TABLE}\ndelete table bridge ${NFT_TABLE}\n` +
      `table bridge ${NFT_TABLE} {\n  chain forward {\n    type filter hook forward priority 0; policy accept;\n` +
      rules.map((r) => `    ${r}\n`).join('') +
      `  }\n}\n`
    must('ip', ['netns', 'exec', this.switchNs, 'nft', '-f', '-'], script)
  }

  /** The loss last set for `host`'s link, in percent per direction. */
  loss(host: string): { out: number; in: number } {
    return this.#loss.get(host) ?? { out: 0, in: 0 }
  }

  /** Frames the fault table counted on `host`'s link since the loss was last set (zeros if never set). */
  counters(host: string): LinkCounters {
    this.#host(host)
    const c = { outFrames: 0, outDropped: 0, inFrames: 0, inDropped: 0 }
    const r = run('ip', ['netns', 'exec', this.switchNs, 'nft', '-j', 'list', 'table', 'bridge', NFT_TABLE])
    if (!r.ok) return c
    const items = (JSON.parse(r.stdout) as { nftables: { rule?: { comment?: string; expr: Record<string, unknown>[] } }[] }).nftables
    for (const { rule } of items) {
      const [h, dir, kind] = (rule?.comment ?? '').split(' ')
      if (rule === undefined || h !== host) continue
      const packets = (rule.expr.find((e) => 'counter' in e)?.['counter'] as { packets: number } | undefined)?.packets ?? 0
      if (dir === 'out') c[kind === 'dropped' ? 'outDropped' : 'outFrames'] += packets
      else c[kind === 'dropped' ? 'inDropped' : 'inFrames'] += packets
    }
    return c
  }

  /**
   * Forgets what TCP learnt about its peers in every host (`ip tcp_metrics
   * flush`): a new connection would otherwise start from the round-trip
   * estimates, inflated by loss, of an earlier one to the same address.
   */
  flushTcpMetrics(): void {
    for (const { ns } of this.#hosts.values()) run('ip', ['-n', ns, 'tcp_metrics', 'flush', 'all'])
  }

  /** Bytes that TCP sockets in `host`'s namespace hold unsent or unacknowledged (the Send-Q column of `ss`). */
  sendQueued(host: string): number {
    const r = run('ip', ['netns', 'exec', this.ns(host), 'ss', '-tnH'])
    let total = 0
    for (const line of r.stdout.split('\n')) {
      const cols = line.trim().split(/\s+/)
      if (cols.length >= 3) total += Number(cols[2]) || 0
    }
    return total
  }

  /** Kills every process started with {@link spawn} and deletes the namespaces. Idempotent. */
  async destroy(): Promise<void> {
    await Promise.all([...this.#procs].map((p) => p.kill('SIGKILL')))
    this.destroySync()
  }

  /** {@link destroy} without waiting for the processes' output (for `process.on('exit')`). */
  destroySync(): void {
    if (this.#destroyed) return
    this.#destroyed = true
    process.off('exit', this.#onExit)
    for (const p of this.#procs) if (p.running) p.child.kill('SIGKILL')
    for (const { ns } of this.#hosts.values()) run('ip', ['netns', 'del', ns])
    run('ip', ['netns', 'del', this.switchNs])
  }
}

/**
 * gilmsg's Prometheus metrics (prom-client), registered only in the registry the caller
 * gives. Counters the library keeps anyway (drops, resends, relay counts, consumer stats)
 * and the outbox, CRL and certificate gauges are read when the registry is scraped
 * (`collect`): the hot path pays nothing for them. Only what has no counter of its own
 * (each counted ACK with its latency, expiries, rejections) is counted from events.
 */
import { X509Certificate } from 'node:crypto'
import { Counter, Gauge, Histogram, type Registry } from 'prom-client'
import { InvalidArgumentError, errorMessage, CertificateError } from '../errors.js'
import type { Bus } from '../bus/bus.js'
import type { CrlStatus } from '../crypto/crl.js'
import type { Signer } from '../crypto/types.js'
import type { OutboxStore } from '../outbox/store.js'
import { DELIVERY_STATES } from '../outbox/store.js'
import type { ReliableConsumer } from '../reliable/consumer.js'
import type { Gilmsg } from '../reliable/gilmsg.js'
import type { ReliablePublisher } from '../reliable/publisher.js'
import type { Relay } from '../transport/relay.js'
import { systemClock, type Clock } from '../util/clock.js'
import type { ReasonCounts } from '../util/counters.js'

/** The prefix of every metric name unless told otherwise. */
export const DEFAULT_METRICS_PREFIX = 'gilmsg_'

/**
 * Buckets of `gilmsg_ack_latency_seconds`: from a millisecond (a local recipient) to an
 * hour (a recipient that was down and caught up through resends).
 */
export const ACK_LATENCY_BUCKETS_SECONDS: readonly number[] = [
  0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600,
]

/** The consumer's refusal counters (see `ReliableConsumer.stats`) reported as `consumer_refused_total{reason}`. */
const CONSUMER_REFUSALS = ['msg_id_too_long', 'no_timestamp', 'stale', 'from_future', 'digest_conflicts'] as const

const PREFIX = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/

export interface GilmsgMetricsOptions {
  /** Where the metrics are registered (a prom-client `Registry`). Nothing goes to prom-client's global registry. */
  readonly registry: Registry
  /** Prepended to every name. Default {@link DEFAULT_METRICS_PREFIX}. */
  readonly prefix?: string
  /** Reads "now" for the CRL and certificate gauges. Default the system clock. */
  readonly clock?: Clock
}

/** What {@link GilmsgMetrics.attachPublisher} reads: a `ReliablePublisher` (or `Gilmsg.publisher`). */
export type PublisherSource = Pick<ReliablePublisher, 'on' | 'resends' | 'resendsTo' | 'guaranteed' | 'ignoredAcks'>
/** What {@link GilmsgMetrics.attachConsumer} reads: a `ReliableConsumer`. */
export type ConsumerSource = Pick<ReliableConsumer, 'stats' | 'acksSent'>
/** What {@link GilmsgMetrics.attachBus} reads: a `Bus`. */
export type BusSource = Pick<Bus, 'drops' | 'published' | 'verifier' | 'signer'>
/** What {@link GilmsgMetrics.attachRelay} reads: a running `Relay`. */
export type RelaySource = Pick<Relay, 'forwarded' | 'dropped' | 'inboundConnects' | 'inboundDisconnects'>
/** What {@link GilmsgMetrics.attachOutbox} queries at scrape time: an `OutboxStore`. */
export type OutboxSource = Pick<OutboxStore, 'counts' | 'pendingByRecipient'>
/** A verifier that knows its CRL (the `X509Verifier` of `createVerifier`). */
export interface CrlSource {
  crlStatus(): CrlStatus | undefined
}

/**
 * gilmsg's metrics in one registry. Each `attach*` starts reporting one object (several of
 * a kind add up) and returns the function that stops it (idempotent). Names and meanings:
 * README "Metrics".
 */
export interface GilmsgMetrics {
  readonly registry: Registry
  /** Counted ACKs by recipient and disposition, ACK latency, expiries, rejections, deliveries (events); resends, guaranteed messages, ignored ACKs (read at scrape). */
  attachPublisher(publisher: PublisherSource): () => void
  /** ACKs sent by disposition, duplicates suppressed, refusals, ACK failures (read at scrape). */
  attachConsumer(consumer: ConsumerSource): () => void
  /** Messages published and dropped by reason; with an X.509 verifier, seconds until its CRL's nextUpdate; with a signer, seconds until its certificate expires. */
  attachBus(bus: BusSource): () => void
  /** Inbound connections and disconnects; forwarded and dropped by reason only when the relay counts them (`js` mode). Read at scrape. */
  attachRelay(relay: RelaySource): () => void
  /** Messages by state and pending messages by recipient: two queries per scrape (see `OutboxStore.pendingByRecipient`). A store that fails (e.g. closed) reports nothing. */
  attachOutbox(outbox: OutboxSource): () => void
  /** Seconds until the CRL's nextUpdate (negative once stale); nothing without a CRL. */
  attachCrl(verifier: CrlSource): () => void
  /** Seconds until the certificate of `signer` expires (negative once expired). Throws `CertificateError` if its certificate cannot be read. */
  attachCertificate(signer: Pick<Signer, 'certificateField'>): () => void
  /** Everything of a `Gilmsg`: its bus, publisher, consumer and outbox (those it has). */
  attachGilmsg(g: Gilmsg): () => void
}

type Labels = Record<string, string>

/** A counter whose value is the sum, at scrape time, of what `read` adds (per label set). */
function lazyCounter(registry: Registry, name: string, help: string, labelNames: readonly string[], read: (add: (labels: Labels, n: number) => void) => void): void {
  new Counter({
    name,
    help,
    labelNames,
    registers: [registry],
    collect() {
      const sums = new Map<string, { labels: Labels; n: number }>()
      read((labels, n) => {
        const key = labelNames.map((l) => labels[l] ?? '').join('\u0000')
        const entry = sums.get(key)
        if (entry === undefined) sums.set(key, { labels, n })
        else entry.n += n
      })
      this.reset()
      for (const { labels, n } of sums.values()) this.inc(labels, n)
    },
  })
}

/** `f`, called once, on the first call. */
function once<T>(f: () => T): () => T {
  let done: { readonly value: T } | undefined
  return () => (done ??= { value: f() }).value
}

/** Calls `f` with each source of `set`, and `add` with what it returns. */
function each<S>(set: ReadonlySet<S>, f: (source: S, add: (labels: Labels, n: number) => void) => void): (add: (labels: Labels, n: number) => void) => void {
  return (add) => {
    for (const s of set) f(s, add)
  }
}

function addReasons(counts: ReasonCounts, label: string, add: (labels: Labels, n: number) => void): void {
  for (const [reason, n] of Object.entries(counts.snapshot())) add({ [label]: reason }, n)
}

/** When a certificate expires (ms since the epoch), from a signer's envelope `certificate` field. */
export function certificateNotAfter(signer: Pick<Signer, 'certificateField'>): number {
  try {
    const pem = Buffer.from(signer.certificateField, 'base64').toString('utf8')
    return Date.parse(new X509Certificate(pem).validTo)
  } catch (e) {
    throw new CertificateError(`cannot read the signing certificate: ${errorMessage(e)}`, { cause: e })
  }
}

/**
 * Creates gilmsg's metrics in `options.registry` (nothing is registered globally), to be
 * served with `registry.metrics()`. Throws `InvalidArgumentError` for a registry that is
 * not a prom-client `Registry` or a prefix that is not a valid metric name start. The
 * metrics of each kind of object are registered when the first one is attached; `attach*`
 * throws prom-client's error if the registry already holds a metric of the same name
 * (create one `GilmsgMetrics` per registry, or give another prefix).
 */
export function createGilmsgMetrics(options: GilmsgMetricsOptions): GilmsgMetrics {
  const registry = options.registry
  if (typeof (registry as Partial<Registry> | undefined)?.registerMetric !== 'function') {
    throw InvalidArgumentError.format('registry', 'a prom-client Registry', registry)
  }
  const prefix = options.prefix ?? DEFAULT_METRICS_PREFIX
  if (typeof prefix !== 'string' || (prefix !== '' && !PREFIX.test(prefix))) {
    throw InvalidArgumentError.format('prefix', 'a metric name prefix ([a-zA-Z_:][a-zA-Z0-9_:]*)', prefix)
  }
  const clock = options.clock ?? systemClock
  const n = (name: string): string => prefix + name

  const publishers = new Set<PublisherSource>()
  const consumers = new Set<ConsumerSource>()
  const buses = new Set<BusSource>()
  const relays = new Set<RelaySource>()
  const outboxes = new Set<OutboxSource>()
  const crls = new Set<CrlSource>()
  const certificates = new Set<{ readonly notAfter: number }>()

  // Each group is registered when the first object of its kind is attached: a relay's
  // /metrics shows the relay's metrics, not a publisher's zeros.
  const publishedGroup = once(() => {
    lazyCounter(registry, n('messages_published_total'), 'Messages published by this process, plain and guaranteed (first sends: not resends nor ACKs)', [], (add) => {
      for (const b of buses) add({}, b.published)
      for (const p of publishers) add({}, p.guaranteed)
    })
  })
  const publisherGroup = once(() => {
    publishedGroup()
    const acks = new Counter({
      name: n('acks_total'),
      help: 'ACKs counted by this publisher (valid, signed by a listed recipient, for a pending message), by recipient and disposition',
      labelNames: ['recipient', 'disposition'],
      registers: [registry],
    })
    const ackLatency = new Histogram({
      name: n('ack_latency_seconds'),
      help: "Time from a guaranteed message's first send to each recipient's counted ACK",
      buckets: [...ACK_LATENCY_BUCKETS_SECONDS],
      registers: [registry],
    })
    const delivered = new Counter({ name: n('messages_delivered_total'), help: 'Guaranteed messages acknowledged by every recipient', registers: [registry] })
    const expired = new Counter({ name: n('messages_expired_total'), help: 'Guaranteed messages whose deadline passed with ACKs missing', registers: [registry] })
    const expiredFor = new Counter({
      name: n('expired_recipients_total'),
      help: 'Recipients whose ACK was missing when a guaranteed message expired, by recipient',
      labelNames: ['recipient'],
      registers: [registry],
    })
    const rejected = new Counter({
      name: n('messages_rejected_total'),
      help: 'Guaranteed messages a recipient rejected, by recipient',
      labelNames: ['recipient'],
      registers: [registry],
    })
    const publisherErrors = new Counter({
      name: n('publisher_errors_total'),
      help: 'Background failures of the publisher (a resend, an outbox write); delivery goes on where it can',
      registers: [registry],
    })
    lazyCounter(registry, n('messages_guaranteed_total'), 'Guaranteed messages committed to the outbox and sent by this process', [], each(publishers, (p, add) => add({}, p.guaranteed)))
    lazyCounter(registry, n('resends_total'), 'Guaranteed messages sent again because an ACK was missing', [], each(publishers, (p, add) => add({}, p.resends)))
    lazyCounter(registry, n('resends_by_recipient_total'), 'Resends, by recipient whose ACK was missing at the time', ['recipient'], each(publishers, (p, add) => addReasons(p.resendsTo, 'recipient', add)))
    lazyCounter(registry, n('acks_ignored_total'), 'ACKs received that did not count, by reason', ['reason'], each(publishers, (p, add) => addReasons(p.ignoredAcks, 'reason', add)))
    return { acks, ackLatency, delivered, expired, expiredFor, rejected, publisherErrors }
  })
  const busGroup = once(() => {
    publishedGroup()
    lazyCounter(registry, n('messages_dropped_total'), 'Received messages dropped before the application saw them, by reason', ['reason'], each(buses, (b, add) => addReasons(b.drops, 'reason', add)))
  })
  const consumerGroup = once(() => {
    lazyCounter(
      registry,
      n('consumer_acks_sent_total'),
      'Messages this consumer acknowledged (ACK committed to the inbox, then sent), by disposition',
      ['disposition'],
      each(consumers, (c, add) => addReasons(c.acksSent, 'disposition', add)),
    )
    lazyCounter(registry, n('consumer_duplicates_total'), 'Copies of messages already handed over (resends), not handed over again', [], each(consumers, (c, add) => add({}, c.stats.get('duplicates_suppressed'))))
    lazyCounter(
      registry,
      n('consumer_refused_total'),
      'Guaranteed messages this consumer refused to acknowledge, by reason',
      ['reason'],
      each(consumers, (c, add) => {
        for (const reason of CONSUMER_REFUSALS) {
          const count = c.stats.get(reason)
          if (count > 0) add({ reason }, count)
        }
      }),
    )
    lazyCounter(
      registry,
      n('consumer_ack_failures_total'),
      'Messages that could not be acknowledged (inbox write or send failed); the resend retries',
      [],
      each(consumers, (c, add) => add({}, c.stats.get('ack_failures'))),
    )
  })
  // Only what the relay has: libzmq's proxy (native mode) counts no message, only connections.
  const relayGroup = once(() => {
    lazyCounter(
      registry,
      n('relay_inbound_connections_total'),
      'Inbound connections the relay accepted (publishers that connected; a reconnect counts again)',
      [],
      each(relays, (r, add) => add({}, r.inboundConnects)),
    )
    lazyCounter(
      registry,
      n('relay_inbound_disconnects_total'),
      'Inbound connections of the relay that ended (a publisher left, or sent a frame over max_message_bytes)',
      [],
      each(relays, (r, add) => add({}, r.inboundDisconnects)),
    )
  })
  const relayMessagesGroup = once(() => {
    lazyCounter(
      registry,
      n('relay_forwarded_total'),
      'Messages the relay forwarded (js mode only)',
      [],
      each(relays, (r, add) => {
        if (r.forwarded !== undefined) add({}, r.forwarded)
      }),
    )
    lazyCounter(
      registry,
      n('relay_dropped_total'),
      'Messages the relay dropped, by reason (js mode only)',
      ['reason'],
      each(relays, (r, add) => {
        for (const [reason, count] of Object.entries(r.dropped ?? {})) add({ reason }, count)
      }),
    )
  })
  const outboxGroup = once(() => {
    new Gauge({
      name: n('outbox_messages'),
      help: 'Messages in the outbox, by state',
      labelNames: ['state'],
      registers: [registry],
      collect() {
        this.reset()
        const totals = sumOver(outboxes, (o) => {
          const counts = o.counts()
          return Object.fromEntries(DELIVERY_STATES.map((state) => [state, counts[state] ?? 0]))
        })
        for (const [state, v] of totals) this.set({ state }, v)
      },
    })
    new Gauge({
      name: n('outbox_pending'),
      help: 'Pending messages in the outbox waiting for this recipient’s ACK, by recipient',
      labelNames: ['recipient'],
      registers: [registry],
      collect() {
        this.reset()
        for (const [recipient, v] of sumOver(outboxes, (o) => o.pendingByRecipient())) this.set({ recipient }, v)
      },
    })
  })
  const crlGroup = once(() => {
    new Gauge({
      name: n('crl_next_update_seconds'),
      help: "Seconds until the CRL's nextUpdate (negative once it is stale; +Inf while no CRL is loaded)",
      registers: [registry],
      collect() {
        this.reset()
        const soonest = Math.min(...[...crls].map((c) => c.crlStatus()?.nextUpdate ?? Infinity))
        this.set(soonest === Infinity ? Infinity : (soonest - clock.now()) / 1000)
      },
    })
  })
  const certificateGroup = once(() => {
    new Gauge({
      name: n('certificate_expiry_seconds'),
      help: "Seconds until this process's signing certificate expires (negative once expired); absent without one",
      registers: [registry],
      collect() {
        this.reset()
        const soonest = Math.min(...[...certificates].map((c) => c.notAfter))
        if (Number.isFinite(soonest)) this.set((soonest - clock.now()) / 1000)
      },
    })
  })

  const adder = <S>(set: Set<S>, source: S, also: (() => void)[] = []): (() => void) => {
    set.add(source)
    return () => {
      set.delete(source)
      for (const f of also.splice(0)) f()
    }
  }

  const metrics: GilmsgMetrics = {
    registry,
    attachPublisher(p) {
      const { acks, ackLatency, delivered, expired, expiredFor, rejected, publisherErrors } = publisherGroup()
      const off = [
        p.on('ack', (a) => {
          acks.inc({ recipient: a.recipient, disposition: a.disposition })
          ackLatency.observe(a.latencyMs / 1000)
        }),
        p.on('delivered', () => delivered.inc()),
        p.on('expired', (e) => {
          expired.inc()
          for (const r of e.missing) expiredFor.inc({ recipient: r })
        }),
        p.on('rejected', (r) => rejected.inc({ recipient: r.recipient })),
        p.on('background:error', () => publisherErrors.inc()),
      ]
      return adder(publishers, p, off)
    },
    attachConsumer: (c) => (consumerGroup(), adder(consumers, c)),
    attachBus(b) {
      busGroup()
      const off: (() => void)[] = []
      const v = b.verifier as Partial<CrlSource> | undefined
      if (typeof v?.crlStatus === 'function') off.push(metrics.attachCrl(v as CrlSource))
      if (b.signer !== undefined) off.push(metrics.attachCertificate(b.signer))
      return adder(buses, b, off)
    },
    attachRelay: (r) => {
      relayGroup()
      if (r.forwarded !== undefined) relayMessagesGroup()
      return adder(relays, r)
    },
    attachOutbox: (o) => (outboxGroup(), adder(outboxes, o)),
    attachCrl: (v) => (crlGroup(), adder(crls, v)),
    attachCertificate: (signer) => {
      const notAfter = certificateNotAfter(signer)
      certificateGroup()
      return adder(certificates, { notAfter })
    },
    attachGilmsg(g) {
      const off = [metrics.attachBus(g.bus)]
      if (g.publisher !== undefined) off.push(metrics.attachPublisher(g.publisher))
      if (g.consumer !== undefined) off.push(metrics.attachConsumer(g.consumer))
      if (g.outbox !== undefined) off.push(metrics.attachOutbox(g.outbox))
      let done = false
      return () => {
        if (done) return
        done = true
        for (const f of off) f()
      }
    },
  }
  return metrics
}

/**
 * Sums per key what `read` gives for each source; a source whose read throws (a store
 * closed under a scrape) is left out of that scrape.
 */
function sumOver<T>(sources: Iterable<T>, read: (source: T) => Readonly<Record<string, number>>): Map<string, number> {
  const totals = new Map<string, number>()
  for (const source of sources) {
    let counts: Readonly<Record<string, number>>
    try {
      counts = read(source)
    } catch {
      continue
    }
    for (const [key, v] of Object.entries(counts)) totals.set(key, (totals.get(key) ?? 0) + v)
  }
  return totals
}

/**
 * gilmsg: guaranteed delivery on a fedmsg-compatible signed ZeroMQ bus.
 * Every public export is named here; tools and tests use `gilmsg/internal`.
 */
export { Gilmsg } from './reliable/gilmsg.js'
export type { GilmsgOptions } from './reliable/gilmsg.js'
export { openGilmsg, storePath } from './reliable/from-config.js'
export type { OpenGilmsgOptions } from './reliable/from-config.js'
export { DEFAULT_ACK_TIMEOUT_MS, DEFAULT_DEADLINE_MS, DEFAULT_RETENTION_MS } from './reliable/publisher.js'
export type { DeliveryReceipt, Enqueued, EnqueueOptions, PublisherEvents, ReliablePublishOptions } from './reliable/publisher.js'
export { ReliableSubscription, DEFAULT_INBOX_RETENTION_MS } from './reliable/consumer.js'
export { CLOCK_SKEW_MARGIN_MS, MAX_DEADLINE_MS, MAX_MESSAGE_AGE_MS, MAX_MSG_ID_LENGTH } from './reliable/protocol.js'
export type { AckMode, ConsumeOptions, Delivery } from './reliable/consumer.js'
export { DEFAULT_BACKOFF } from './reliable/backoff.js'
export type { BackoffPolicy } from './reliable/backoff.js'

export { Bus, Subscription, DEFAULT_MODNAME } from './bus/bus.js'
export type { BusMessage, BusOptions, PublishOptions, SubscribeOptions } from './bus/bus.js'
export { busFromConfig } from './bus/from-config.js'

export { loadConfig, locateConfig, findConfigFiles, inspectConfig, parseConfig, defaultConfig, CONFIG_KEYS } from './config/config.js'
export type { ConfigLocation, ConfigOrigin, ConfigReport, GilmsgConfig, IgnoredKey, LoadConfigOptions } from './config/config.js'

export {
  ErrorCode,
  GilmsgError,
  ConfigError,
  InvalidArgumentError,
  JsonError,
  CertificateError,
  KeyPermissionError,
  SigningError,
  TransportError,
  ClosedError,
  AbortedError,
  AckTimeoutError,
  DeliveryRejectedError,
  CrlRollbackError,
  StoreError,
  OutboxError,
} from './errors.js'
export type { RecipientAck, RecipientRejection, DeliveryRejectedDetails, CrlPosition, StoreKind } from './errors.js'

export { Lossless } from './json/value.js'
export type { JsonValue, JsonNumber, JsonObject } from './json/value.js'

export { CryptoMode, InvalidReason } from './crypto/types.js'
export type { Signer, Verifier, VerifyResult } from './crypto/types.js'
export { describeCrlEvent, DEFAULT_CRL_POLL_MS } from './crypto/crl-watch.js'
export type { CrlEvent } from './crypto/crl-watch.js'
export type { CrlStatus, CrlMark } from './crypto/crl.js'

export { Disposition } from './protocol/ack.js'
export { DeliveryState } from './outbox/store.js'
export type { OutboxStore, OutboxMessage, RecipientStatus, Added, AckRecorded } from './outbox/store.js'
export type { InboxStore, InboxEntry } from './inbox/store.js'
export { SqliteOutboxStore } from './outbox/sqlite.js'
export { MemoryOutboxStore } from './outbox/memory.js'
export { SqliteInboxStore } from './inbox/sqlite.js'
export { MemoryInboxStore } from './inbox/memory.js'

export type { Transport, PubSocket, SubSocket, RawMessage } from './transport/transport.js'
export { ZmqTransport } from './transport/zmq.js'
export type { ZmqTransportOptions } from './transport/zmq.js'
export { startRelay } from './transport/relay.js'
export type { Relay, RelayMode, RelayOptions } from './transport/relay.js'
export type { Clock } from './util/clock.js'
export type { ReasonCounts } from './util/counters.js'

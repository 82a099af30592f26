/**
 * The defaults that more than one layer needs (transport, json, config), defined once:
 * this is the lowest module they may all import. `config/defaults.ts` re-exports them
 * beside the config-only defaults.
 *
 * "No limit" has one representation in gilmsg's API: `Infinity`. Config files (JSON, as
 * fedmsg's, has no Infinity) write it `0`; the config parser converts it
 * (`config/config.ts`, the `limit` kind), and only libzmq's own encoding (0) is produced
 * where the option is applied to a socket (`transport/zmq-options.ts`).
 */

/**
 * Default high-water mark (ZMQ_SNDHWM on publishers, ZMQ_RCVHWM on
 * subscribers): `Infinity`, no limit, as fedmsg's `high_water_mark: 0`.
 * libzmq's own default (1000) silently dropped 31% of a 200k burst. The cost: a
 * subscriber that stops reading (but keeps its connection) makes the publisher
 * queue every message for it in memory until it reads again or disconnects;
 * enable TCP keepalive to notice dead peers. Set a limit to bound memory,
 * accepting drops (or blocking, with `noDrop`).
 */
export const DEFAULT_HIGH_WATER_MARK = Infinity

/** Default ZMQ_LINGER: 1000 ms, as fedmsg's `zmq_linger`. */
export const DEFAULT_LINGER_MS = 1000

/**
 * Default ZMQ_RECONNECT_IVL: 100 ms (libzmq's default). A subscriber started
 * before its publisher retries this soon, then backs off.
 */
export const DEFAULT_RECONNECT_IVL_MS = 100

/**
 * Default ZMQ_RECONNECT_IVL_MAX: 1000 ms. The back-off doubles from
 * {@link DEFAULT_RECONNECT_IVL_MS} up to this, so a subscriber whose publisher
 * starts late connects within about a second (the "slow joiner" window). A
 * retry per second to a dead endpoint costs nothing measurable.
 */
export const DEFAULT_RECONNECT_IVL_MAX_MS = 1000

/**
 * Default largest message (topic + body bytes) a subscriber accepts: 1 MiB.
 * fedmsg envelopes are a few KiB (the base64 certificate is most of it); the
 * limit bounds what one peer can make a subscriber hold per message. A frame
 * over it is refused by libzmq before it is received (ZMQ_MAXMSGSIZE; the
 * connection is closed, `frame_too_large`); two frames within it but over it
 * together are received, then dropped with reason `too_large`.
 */
export const DEFAULT_MAX_MESSAGE_BYTES = 1024 * 1024

/** Default maximum nesting of JSON arrays and objects a receiver accepts (a top-level array is depth 1): 64. */
export const DEFAULT_MAX_JSON_DEPTH = 64

/**
 * Default SQLite page cache of each outbox and inbox connection (`PRAGMA cache_size`): 2 MiB,
 * about SQLite's own default (better-sqlite3 builds it with 16 MiB). The pages touched per
 * message (the right-hand ends of the indexes, msg_ids being time-ordered, and the rows just
 * written) fit in far less; measured: 16 to 2 MiB took 9 MB off the peak RSS of a publisher
 * holding 100,000 pending messages, with no loss of speed on a 200,000-row outbox.
 */
export const DEFAULT_SQLITE_CACHE_SIZE_KIB = 2048

/**
 * How a relay forwards: `native`, libzmq's own proxy (XSUB -> XPUB on a thread of its own,
 * no JavaScript per message) or `js`, a JavaScript loop that also checks and counts every
 * message. Default `native`: the cheaper one (bench/cases/relay.ts).
 */
export const RELAY_MODES = ['native', 'js'] as const
export type RelayMode = (typeof RELAY_MODES)[number]
/** Default relay mode: `native`. */
export const DEFAULT_RELAY_MODE: RelayMode = 'native'

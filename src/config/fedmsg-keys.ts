/**
 * Keys of fedmsg's configuration that belong to parts of fedmsg gilmsg does not have (the
 * IRC bot, the moksha hub, the gateway, STOMP, replay, logging...). A file holding them, such
 * as the output of `fedmsg-config` on a stock install, is accepted: they are listed as ignored,
 * with what fedmsg uses them for, by `gilmsg config --check`.
 */

const STOMP = "fedmsg's STOMP transport (gilmsg speaks ZeroMQ only)"
const IRC = 'fedmsg-irc, the IRC bot'
const TWEET = 'fedmsg-tweet, the Twitter/identi.ca bot'

/** fedmsg key -> what fedmsg uses it for. */
export const FEDMSG_ONLY_KEYS: Readonly<Record<string, string>> = {
  io_threads: "size of the ZeroMQ context's I/O thread pool",
  timeout: 'seconds fedmsg commands wait in a blocking ZeroMQ call',
  print_config: 'debug switch of fedmsg commands: print the configuration and exit',
  post_init_sleep: 'seconds fedmsg sleeps after creating its socket so that early messages are not dropped (gilmsg waits for subscribers instead)',
  topic_prefix_re: "fedmsg's loader derives it from topic_prefix, for fedmsg.meta and consumers to strip the prefix",
  zmq_enabled: 'moksha hub: ZeroMQ (true) rather than STOMP or AMQP; gilmsg always uses ZeroMQ and refuses false',
  zmq_strict: "moksha hub: whether subscriptions must match topics exactly (false allows '*')",
  persistent_store: 'fedmsg.replay: the store a replay endpoint serves missed messages from',
  replay_endpoints: 'fedmsg.replay: the address per endpoint to ask for missed messages (gilmsg resends from its outbox instead)',
  srv_endpoints: 'domains whose DNS SRV records fedmsg adds to endpoints (gilmsg does not look them up: list the addresses in endpoints)',
  status_directory: 'where fedmsg-hub consumers record the last message seen, to fetch the backlog from datagrepper',
  datagrepper_url: 'the datagrepper service fedmsg-hub consumers fetch their backlog from',
  logging: 'Python logging.config.dictConfig of fedmsg processes (gilmsg writes its diagnostics on stderr)',
  irc: `${IRC}: networks, channels and filters`,
  irc_color_lookup: `${IRC}: colour per modname`,
  irc_default_color: `${IRC}: colour of modnames not in irc_color_lookup`,
  irc_method: `${IRC}: "msg" or "notice"`,
  stomp_uri: STOMP,
  stomp_heartbeat: STOMP,
  stomp_user: STOMP,
  stomp_pass: STOMP,
  stomp_ssl_crt: STOMP,
  stomp_ssl_key: STOMP,
  stomp_queue: STOMP,
  tweet_endpoints: TWEET,
  tweet_intermessage_pause: TWEET,
  tweet_hibernate_duration: TWEET,
  bitly_settings: `${TWEET}: the URL shortener`,
}

/** Prefixes of fedmsg's dotted keys -> what fedmsg uses them for. */
export const FEDMSG_ONLY_PREFIXES: Readonly<Record<string, string>> = {
  'fedmsg.consumers.': 'fedmsg-hub consumers, such as the port and high-water mark of fedmsg-gateway',
  'moksha.': 'the moksha hub under fedmsg-hub (monitoring socket, thread pool)',
}

/** What fedmsg uses `key` for, when it is a fedmsg key gilmsg ignores; undefined otherwise. */
export function fedmsgOnlyPurpose(key: string): string | undefined {
  if (Object.hasOwn(FEDMSG_ONLY_KEYS, key)) return FEDMSG_ONLY_KEYS[key]
  for (const [prefix, purpose] of Object.entries(FEDMSG_ONLY_PREFIXES)) if (key.startsWith(prefix)) return purpose
  return undefined
}

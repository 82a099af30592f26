/**
 * Defaults of every config key, as named constants (fedmsg's values where fedmsg has the key).
 * Those the transport and the JSON parser share are defined once in `util/defaults.ts` and
 * re-exported here, in the API's representation (`Infinity` = no limit; a config file writes 0).
 */

export {
  DEFAULT_HIGH_WATER_MARK,
  DEFAULT_LINGER_MS,
  DEFAULT_RECONNECT_IVL_MS,
  DEFAULT_RECONNECT_IVL_MAX_MS,
  DEFAULT_MAX_MESSAGE_BYTES,
  DEFAULT_MAX_JSON_DEPTH,
  DEFAULT_SQLITE_CACHE_SIZE_KIB,
  DEFAULT_RELAY_MODE,
} from '../util/defaults.js'

export const DEFAULT_TOPIC_PREFIX = 'org.fedoraproject'
export const DEFAULT_ENVIRONMENT = 'dev'
export const DEFAULT_CERT_PREFIX = 'gilmsg'
export const DEFAULT_SSLDIR = '/etc/pki/fedmsg'
export const DEFAULT_CRYPTO_BACKEND = 'x509'
export const DEFAULT_CRYPTO_VALIDATE_BACKENDS = ['x509', 'x509_sha256'] as const
/** Resends per second a publisher makes while no ACK comes back (each ACK pays for one more); `Infinity`: no limit. */
export const DEFAULT_RESEND_RATE = 200
/** Where gilmsg looks for `*.json` config files when neither `--config` nor `$GILMSG_CONFIG` is given (then `./gilmsg.json`). */
export const DEFAULT_SYSTEM_CONFIG_DIR = '/etc/gilmsg.d'
/** The config file read from the current directory when neither `--config` nor `$GILMSG_CONFIG` is given. */
export const IMPLICIT_CONFIG_FILE = 'gilmsg.json'
/**
 * TCP keepalive on every socket, as fedmsg's defaults (`zmq_tcp_keepalive: 1`, 3 probes, 60 s
 * idle, 5 s apart): a peer that vanished without a FIN (host down, NAT timeout) is noticed in
 * about 75 s instead of never, so its queue is dropped and the connection re-made.
 */
export const DEFAULT_TCP_KEEPALIVE = true
export const DEFAULT_TCP_KEEPALIVE_CNT = 3
export const DEFAULT_TCP_KEEPALIVE_IDLE_SEC = 60
export const DEFAULT_TCP_KEEPALIVE_INTVL_SEC = 5
/** Seconds before a CA certificate fetched from an http(s) `ca_cert_location` is fetched again: 0, never (fedmsg's default). */
export const DEFAULT_CA_CERT_CACHE_EXPIRY_SEC = 0
/** Seconds before a CRL fetched from an http(s) `crl_location` is fetched again: 3600 (fedmsg's default). */
export const DEFAULT_CRL_CACHE_EXPIRY_SEC = 3600
/** `gilmsg consume --exec`: exit codes of CMD that reject the message (`--reject-codes`): 65, EX_DATAERR of sysexits.h. */
export const DEFAULT_EXEC_REJECT_CODES: readonly number[] = [65]
/** `gilmsg consume --exec`: attempts at a message before it is rejected (`--max-attempts`). */
export const DEFAULT_EXEC_MAX_ATTEMPTS = 5
/** `gilmsg consume --exec`: runs of CMD at once (`--concurrency`); 1 runs them in order. */
export const DEFAULT_EXEC_CONCURRENCY = 1
/** `gilmsg consume --exec`: seconds CMD may run (`--timeout`); 0, no limit. */
export const DEFAULT_EXEC_TIMEOUT_SEC = 0
/** `gilmsg consume --exec`: seconds between SIGTERM and SIGKILL after a timeout, and given to a running CMD at shutdown (`--grace`). */
export const DEFAULT_EXEC_GRACE_SEC = 5

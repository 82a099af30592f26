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
} from '../util/defaults.js'

export const DEFAULT_TOPIC_PREFIX = 'org.fedoraproject'
export const DEFAULT_ENVIRONMENT = 'dev'
export const DEFAULT_CERT_PREFIX = 'gilmsg'
export const DEFAULT_SSLDIR = '/etc/pki/fedmsg'
export const DEFAULT_CRYPTO_BACKEND = 'x509'
export const DEFAULT_CRYPTO_VALIDATE_BACKENDS = ['x509', 'x509_sha256'] as const
/** Resends per second a publisher makes while no ACK comes back (each ACK pays for one more); `Infinity`: no limit. */
export const DEFAULT_RESEND_RATE = 200
/** Seconds before a CA fetched from a URL is fetched again; 0: never once cached (fedmsg's value). */
export const DEFAULT_CA_CERT_CACHE_EXPIRY = 0
/** Seconds between fetches of a CRL from a URL (fedmsg's value). */
export const DEFAULT_CRL_CACHE_EXPIRY = 3600

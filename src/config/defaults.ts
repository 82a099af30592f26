/** Defaults of every config key, as named constants (fedmsg's values where fedmsg has the key). */

export const DEFAULT_TOPIC_PREFIX = 'org.fedoraproject'
export const DEFAULT_ENVIRONMENT = 'dev'
export const DEFAULT_CERT_PREFIX = 'gilmsg'
export const DEFAULT_SSLDIR = '/etc/pki/fedmsg'
/** 0 = unlimited: a burst is queued in memory instead of silently dropped (libzmq's 1000 dropped 31% of a 200k burst). */
export const DEFAULT_HIGH_WATER_MARK = 0
export const DEFAULT_ZMQ_LINGER_MS = 1000
export const DEFAULT_ZMQ_RECONNECT_IVL_MS = 100
export const DEFAULT_ZMQ_RECONNECT_IVL_MAX_MS = 1000
export const DEFAULT_MAX_MESSAGE_BYTES = 1024 * 1024
export const DEFAULT_MAX_JSON_DEPTH = 64
export const DEFAULT_CRYPTO_BACKEND = 'x509'
export const DEFAULT_CRYPTO_VALIDATE_BACKENDS = ['x509', 'x509_sha256'] as const
/** Resends per second a publisher makes while no ACK comes back (each ACK pays for one more). */
export const DEFAULT_RESEND_RATE = 200

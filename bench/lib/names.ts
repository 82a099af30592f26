/**
 * The bench's bus names, in a module that imports nothing: a worker that needs them does not load
 * the certificate tooling of `setup.ts` (about 19 MB of RSS in a process whose memory is measured).
 */
export const TOPIC_PREFIX = 'org.bench'
export const ENVIRONMENT = 'b'
/** Application messages use this modname, so {@link APP_PREFIX} selects them and not the ACKs. */
export const APP_MODNAME = 'app'
export const APP_PREFIX = `${TOPIC_PREFIX}.${ENVIRONMENT}.${APP_MODNAME}.`

/**
 * Internals for tools, tests and benchmarks: the building blocks behind the
 * public API. No stability promise beyond the package version.
 */
export { parseJson, DEFAULT_MAX_DEPTH } from './json/parse.js'
export { canonicalize, canonicalBytes, pythonFloatRepr, compareCodePoints } from './json/canonical.js'
export { fromPlain, toPlain, stringifyPlain } from './json/plain.js'
export { buildEnvelope, sealEnvelope, openEnvelope, contentDigest, newMsgId } from './envelope/envelope.js'
export type { SealedMessage, OpenedMessage, OpenResult } from './envelope/envelope.js'
export { fullTopic, environmentPrefix } from './envelope/topic.js'
export { createSigner, loadSigner } from './crypto/signer.js'
export { createVerifier, verifySignatureWithCert } from './crypto/verifier.js'
export { fileCrlCache } from './crypto/crl-cache.js'
export { initCa, issueCert, revokeCert, renewCrl, createTestPki } from './crypto/certs.js'
export { wrapBase64, unwrapBase64, certificateField } from './crypto/pem.js'
export { ReliablePublisher } from './reliable/publisher.js'
export { ReliableConsumer } from './reliable/consumer.js'
export { mustAck, parseAck, ackBody, GILMSG_VERSION } from './reliable/protocol.js'
export { backoffDelay } from './reliable/backoff.js'
export { MemoryHub, MemoryTransport } from './transport/memory.js'
export { MemoryOutboxData } from './outbox/memory.js'
export { MemoryInboxData } from './inbox/memory.js'
export { systemClock } from './util/clock.js'
export { signerFromConfig, verifierFromConfig, transportFromConfig } from './bus/from-config.js'

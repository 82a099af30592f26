import { describeCrlEvent, type CrlEvent } from '../crypto/crl-watch.js'

/**
 * The CRL options of a CLI command: what the CRL watcher reports goes to stderr as
 * `<command>: CRL ...` lines, and SIGHUP reloads the CRL at once. `announce` also
 * prints the CRL in use at start (long-running commands); stale CRLs and refused
 * CRLs are always printed.
 */
export function cliCrlOptions(command: string, announce: boolean): { onCrlEvent: (event: CrlEvent) => void; crlReloadSignal: NodeJS.Signals } {
  return {
    onCrlEvent: (event) => {
      if (event.type === 'crl:loaded' && event.initial && !announce) return
      process.stderr.write(`${command}: ${describeCrlEvent(event)}\n`)
    },
    crlReloadSignal: 'SIGHUP',
  }
}

#!/usr/bin/env node
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { ExitCode } from './exit-codes.js'
import { reportError } from './report.js'

const COMMANDS: Record<string, { summary: string; load: () => Promise<{ run(argv: string[]): Promise<number> }> }> = {
  demo: { summary: 'run the embedded demo on loopback (no config needed)', load: () => import('./demo.js') },
  tail: { summary: 'print (and acknowledge) messages from the bus', load: () => import('./tail.js') },
  publish: { summary: 'publish and wait until the named recipients acknowledged', load: () => import('./publish.js') },
  logger: { summary: 'publish text or JSON messages, like fedmsg-logger', load: () => import('./logger.js') },
  enqueue: { summary: 'hand a guaranteed message over to the outbox and exit once it is durable (prints its msg_id)', load: () => import('./enqueue.js') },
  agent: { summary: 'deliver an outbox: what is pending at start and what enqueue adds (one per outbox)', load: () => import('./agent.js') },
  consume: { summary: 'run a command for each guaranteed message to this CN; ACK after it succeeded (--exec CMD)', load: () => import('./consume.js') },
  relay: { summary: 'forward relay_inbound to endpoints.relay_outbound', load: () => import('./relay.js') },
  outbox: { summary: 'list, show, retry, purge guaranteed messages; wait for one\'s outcome', load: () => import('./outbox.js') },
  config: { summary: 'print the effective configuration, like fedmsg-config (--query, --json, --check)', load: () => import('./config-command.js') },
  check: { summary: 'check certificates, CRL, endpoints, relay and stores (--roundtrip: the whole path)', load: () => import('./check.js') },
  certs: { summary: 'create a CA, issue and revoke certificates, re-issue the CRL', load: () => import('./certs.js') },
  bench: { summary: 'measure gilmsg against baselines (--quick, --only, --out)', load: () => import('./bench.js') },
}

const USAGE = `Usage: gilmsg <command> [options]
       gilmsg --version   (or -V) print the version

Commands:
${Object.entries(COMMANDS)
  .map(([name, c]) => `  ${name.padEnd(8)} ${c.summary}`)
  .join('\n')}

Run "gilmsg <command> --help" for a command's options.
Exit codes: 0 ok, 1 failure, 2 usage or configuration error, 3 ACK timeout (publish, outbox wait),
4 rejected by a recipient (publish, outbox wait),
130 publish interrupted (the message stays pending in the outbox); a second SIGINT/SIGTERM during a
shutdown exits at once with 130/143.`

/** This file is dist/src/cli/main.js: package.json is three levels up, in the installed package as in the repository. */
const PACKAGE_JSON = new URL('../../../package.json', import.meta.url)

function version(): string {
  const pkg = JSON.parse(readFileSync(PACKAGE_JSON, 'utf8')) as { name?: unknown; version?: unknown }
  if (pkg.name !== 'gilmsg' || typeof pkg.version !== 'string') {
    throw new Error(`expected gilmsg's package.json at ${fileURLToPath(PACKAGE_JSON)}, got name ${JSON.stringify(pkg.name)}, version ${JSON.stringify(pkg.version)}`)
  }
  return pkg.version
}

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(USAGE + '\n')
    return name === undefined ? ExitCode.Usage : ExitCode.Ok
  }
  if (name === '--version' || name === '-V') {
    process.stdout.write(version() + '\n')
    return ExitCode.Ok
  }
  const command = COMMANDS[name]
  if (command === undefined) {
    process.stderr.write(`gilmsg: unknown command "${name}"\n\n${USAGE}\n`)
    return ExitCode.Usage
  }
  const mod = await command.load()
  return mod.run(rest)
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code
  },
  (err: unknown) => {
    process.exitCode = reportError(err)
  },
)

import { loadConfig, type GilmsgConfig } from '../config/config.js'

/** The common flags every command takes that touch the config. */
export interface CommonFlags {
  readonly config?: string | undefined
  readonly name?: string | undefined
  readonly certname?: string | undefined
}

/** Loads the config the way every command does: `--config`, `$GILMSG_CONFIG`, `./gilmsg.json`; `--name`/`--certname` override. */
export function cliConfig(flags: CommonFlags, overrides: Record<string, unknown> = {}): GilmsgConfig {
  return loadConfig({
    file: flags.config,
    overrides: {
      ...(flags.name !== undefined ? { name: flags.name } : {}),
      ...(flags.certname !== undefined ? { certname: flags.certname } : {}),
      ...overrides,
    },
  })
}

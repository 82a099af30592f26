import { loadConfig, locateConfig, type ConfigOrigin, type GilmsgConfig, type LoadConfigOptions } from '../config/config.js'

/** The common flags every command takes that touch the config. */
export interface CommonFlags {
  readonly config?: string | undefined
  readonly name?: string | undefined
  readonly certname?: string | undefined
  /** Say on stderr which config file was loaded and how it was found. */
  readonly verbose?: boolean | undefined
}

const ORIGINS: Record<ConfigOrigin, string> = {
  option: 'given with --config',
  env: 'named by $GILMSG_CONFIG',
  cwd: 'found in the current directory',
}

/**
 * Loads the config the way every command does: `--config`, `$GILMSG_CONFIG`, `./gilmsg.json`
 * (refused when others could have written it, see `loadConfig`); `--name`/`--certname`
 * override. With `verbose`, prints which file was loaded on stderr.
 */
export function cliConfig(flags: CommonFlags, overrides: Record<string, unknown> = {}): GilmsgConfig {
  const options: LoadConfigOptions = {
    file: flags.config,
    overrides: {
      ...(flags.name !== undefined ? { name: flags.name } : {}),
      ...(flags.certname !== undefined ? { certname: flags.certname } : {}),
      ...overrides,
    },
  }
  const config = loadConfig(options)
  if (flags.verbose === true) {
    const found = locateConfig(options)
    process.stderr.write(
      found === undefined
        ? 'gilmsg: no config file (no --config, no $GILMSG_CONFIG, no ./gilmsg.json): using the defaults\n'
        : `gilmsg: config ${found.path} (${ORIGINS[found.origin]})\n`,
    )
  }
  return config
}

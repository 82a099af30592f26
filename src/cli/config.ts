import { findConfigFiles, loadConfig, type ConfigOrigin, type GilmsgConfig, type LoadConfigOptions } from '../config/config.js'

/** The common flags every command takes that touch the config. */
export interface CommonFlags {
  readonly config?: string | undefined
  readonly name?: string | undefined
  readonly certname?: string | undefined
  /** Say on stderr which config file was loaded and how it was found. */
  readonly verbose?: boolean | undefined
}

/** How each origin is said to a user. */
export const ORIGINS: Record<ConfigOrigin, string> = {
  option: 'given with --config',
  env: 'named by $GILMSG_CONFIG',
  cwd: 'found in the current directory',
  system: 'found in the system config directory',
}

/** The options every command passes to `loadConfig`. */
export function configOptions(flags: CommonFlags, overrides: Record<string, unknown> = {}): LoadConfigOptions {
  return {
    file: flags.config,
    overrides: {
      ...(flags.name !== undefined ? { name: flags.name } : {}),
      ...(flags.certname !== undefined ? { certname: flags.certname } : {}),
      ...overrides,
    },
  }
}

/**
 * Loads the config the way every command does: `--config FILE|DIR`, else `$GILMSG_CONFIG`, else
 * `/etc/gilmsg.d/*.json` then `./gilmsg.json` (refused when others could have written them, see
 * `loadConfig`); `--name`/`--certname` override. With `verbose`, prints on stderr which files
 * were loaded and how they were found.
 */
export function cliConfig(flags: CommonFlags, overrides: Record<string, unknown> = {}): GilmsgConfig {
  const options = configOptions(flags, overrides)
  const config = loadConfig(options)
  if (flags.verbose === true) {
    const files = findConfigFiles(options)
    process.stderr.write(
      files.length === 0
        ? 'gilmsg: no config file (no --config, no $GILMSG_CONFIG, no /etc/gilmsg.d/*.json, no ./gilmsg.json): using the defaults\n'
        : files.map((f) => `gilmsg: config ${f.path} (${ORIGINS[f.origin]})\n`).join(''),
    )
  }
  return config
}

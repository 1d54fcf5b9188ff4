// Where configuration.toml is looked for (load.ts has the order). Apart from load.ts so that code
// that must not load the schema (zod) can name the files, e.g. to see whether one changed.
export const systemConfigPath = "/etc/kata-ts/configuration.toml";
export const installedConfigPath = "/usr/share/defaults/kata-ts/configuration.toml";

/**
 * The files that may hold the configuration, in the order load.ts reads them: those named
 * explicitly (a missing one is an error there) and then the optional system locations.
 */
export function configFileCandidates(search: { configPath?: string; env?: NodeJS.ProcessEnv; systemPath?: string; installedPath?: string }): { explicit: Array<[string, string]>; optional: string[] } {
  const env = search.env ?? process.env;
  const explicit = ([
    [search.configPath, "runtime option ConfigPath"],
    [env.KATA_TS_CONFIG, "KATA_TS_CONFIG"],
  ] as Array<[string | undefined, string]>).filter((e): e is [string, string] => e[0] !== undefined && e[0] !== "");
  return { explicit, optional: [search.systemPath ?? systemConfigPath, search.installedPath ?? installedConfigPath] };
}

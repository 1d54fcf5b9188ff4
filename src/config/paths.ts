// Where configuration.toml is looked for (load.ts has the order). Apart from load.ts so that code
// that must not load the schema (zod) can name the files, e.g. to see whether one changed.
export const systemConfigPath = "/etc/kata-ts/configuration.toml";
export const installedConfigPath = "/usr/share/defaults/kata-ts/configuration.toml";

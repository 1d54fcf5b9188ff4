// kata-ts configuration (configuration.toml): schema, parsing and lookup.
export { configSchema, defaultConfig, type KataConfig, type QemuConfig, type AgentConfig, type RuntimeConfig } from "./schema.js";
export { parseConfig } from "./parse.js";
export { loadConfig, systemConfigPath, installedConfigPath, type ConfigSearch, type LoadedConfig } from "./load.js";

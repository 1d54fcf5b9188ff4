// kata-ts configuration (configuration.toml): schema, parsing and lookup.
export {
  configSchema,
  defaultConfig,
  hypervisorNames,
  selectedVmmConfig,
  type KataConfig,
  type QemuConfig,
  type CloudHypervisorConfig,
  type FirecrackerConfig,
  type VmmSectionConfig,
  type HypervisorName,
  type AgentConfig,
  type RuntimeConfig,
  type FactoryConfig,
} from "./schema.js";
export { parseConfig } from "./parse.js";
export { loadConfig, systemConfigPath, installedConfigPath, type ConfigSearch, type LoadedConfig } from "./load.js";

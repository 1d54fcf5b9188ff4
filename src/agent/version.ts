// The agent's version, baked into the bundle by esbuild's `define` (src/guest/agent-bundle.ts).
declare const __KATA_TS_AGENT_VERSION__: string | undefined;

export const AGENT_VERSION: string = typeof __KATA_TS_AGENT_VERSION__ === "string" ? __KATA_TS_AGENT_VERSION__ : "dev";

import { parseArgs } from "node:util";
import { loadConfig } from "../../config/index.js";
import { missingRequired, probeHost } from "../../host/capabilities.js";

export async function run(argv: string[]): Promise<number> {
  const { values } = parseArgs({ args: argv, options: { json: { type: "boolean", default: false } } });
  const { config } = await loadConfig();
  const caps = await probeHost({ cloudHypervisor: config.hypervisor["cloud-hypervisor"].path, firecracker: config.hypervisor.firecracker.path });
  const missing = missingRequired(caps);
  if (values.json) {
    process.stdout.write(`${JSON.stringify({ ok: missing.length === 0, capabilities: caps }, null, 2)}\n`);
  } else {
    const w = Math.max(...caps.map((c) => c.name.length));
    for (const c of caps) {
      const mark = c.required ? "" : " (optional)";
      process.stdout.write(`${c.name.padEnd(w)}  ${c.status.padEnd(10)}  ${c.detail}${mark}\n`);
    }
  }
  if (missing.length > 0) {
    process.stderr.write(`kata-ts check: missing must-haves: ${missing.map((c) => c.name).join(", ")} (run: kata-ts setup)\n`);
    return 1;
  }
  return 0;
}

// A CNI conf dir for the network e2e test: the harness's bridge + host-local network with one more
// plugin chained last, `ktsprobe`, which passes ADD results through and, on DEL (chained plugins
// are deleted in reverse, so it runs first), records which links and qdiscs the pod netns still
// holds. That is exactly what CNI DEL finds: kata-ts must have taken its tap and tc qdisc away.
import { chmod, mkdir, readFile, rm, symlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { bridgeConflist } from "../harness/containerd-config.js";

export interface SeenAtDel {
  links: string[];
  qdiscs: string[];
  /** `iptables -S` of the nat and filter tables: only rules (-A lines), policies dropped. */
  iptables: string[];
}

export interface CniProbe {
  confDir: string;
  binDir: string;
  networkName: string;
  /** One JSON line per CNI DEL. */
  logPath: string;
  /** What the netns held at each CNI DEL, by sandbox (container) id. */
  seenAtDel(): Promise<Map<string, SeenAtDel>>;
  /** host-local keeps per-network state outside the harness dir. */
  cleanup(): Promise<void>;
}

const PLUGIN = (node: string): string => `#!${node}
// ktsprobe: a pass-through CNI plugin that records the pod netns at DEL.
const fs = require("fs");
const { execFileSync } = require("child_process");
const conf = JSON.parse(fs.readFileSync(0, "utf8") || "{}");
const cmd = process.env.CNI_COMMAND;
if (cmd === "VERSION") {
  process.stdout.write(JSON.stringify({ cniVersion: "1.0.0", supportedVersions: ["0.4.0", "1.0.0"] }));
} else if (cmd === "ADD") {
  process.stdout.write(JSON.stringify(conf.prevResult || { cniVersion: conf.cniVersion }));
} else if (cmd === "DEL" && process.env.CNI_NETNS) {
  const inNs = (args) => {
    try { return JSON.parse(execFileSync("nsenter", ["--net=" + process.env.CNI_NETNS, "--", ...args], { encoding: "utf8" }) || "[]"); } catch { return []; }
  };
  const links = inNs(["ip", "-j", "link", "show"]).map((l) => l.ifname);
  const qdiscs = inNs(["tc", "-j", "qdisc", "show"]).map((q) => q.dev + ":" + q.kind);
  const rules = ["nat", "filter"].flatMap((t) => {
    try { return execFileSync("nsenter", ["--net=" + process.env.CNI_NETNS, "--", "iptables", "-w", "10", "-t", t, "-S"], { encoding: "utf8" }).split("\\n"); } catch (e) { return ["iptables failed: " + e.message]; }
  }).filter((l) => !l.startsWith("-P") && !l.startsWith("-N") && l !== "");
  fs.appendFileSync(conf.logPath, JSON.stringify({ id: process.env.CNI_CONTAINERID, links, qdiscs, iptables: rules }) + "\\n");
}
`;

export async function makeCniProbe(dir: string, subnet: string): Promise<CniProbe> {
  const confDir = join(dir, "cni-conf");
  const binDir = join(dir, "cni-bin");
  const logPath = join(dir, "cni-del.jsonl");
  const networkName = `ktsn-${Date.now().toString(36)}`;
  await mkdir(confDir, { recursive: true });
  await mkdir(binDir, { recursive: true });
  for (const p of ["bridge", "host-local", "loopback"]) await symlink(join("/usr/lib/cni", p), join(binDir, p));
  await writeFile(join(binDir, "ktsprobe"), PLUGIN(process.execPath));
  await chmod(join(binDir, "ktsprobe"), 0o755);
  const conf = JSON.parse(bridgeConflist(networkName, "ktsh0", subnet)) as { plugins: unknown[] };
  conf.plugins.push({ type: "ktsprobe", logPath });
  await writeFile(join(confDir, "10-ktsn.conflist"), `${JSON.stringify(conf, null, 2)}\n`);
  return {
    confDir,
    binDir,
    networkName,
    logPath,
    async seenAtDel() {
      const text = await readFile(logPath, "utf8").catch(() => "");
      const out = new Map<string, SeenAtDel>();
      for (const line of text.split("\n").filter((l) => l !== "")) {
        const r = JSON.parse(line) as SeenAtDel & { id: string };
        out.set(r.id, { links: r.links, qdiscs: r.qdiscs, iptables: r.iptables });
      }
      return out;
    },
    cleanup: () => rm(join("/var/lib/cni/networks", networkName), { recursive: true, force: true }),
  };
}

// The agent's UpdateInterface/UpdateRoutes code against the real kernel and iproute2, in a netns
// of the test's own (what the guest does to its NIC at adoption, one `ip -batch` each): the NIC is
// found by its old MAC in sysfs, renamed, re-addressed with the new MAC, MTU and addresses, and
// the routes replaced; what the functions return is what `ip` shows afterwards.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { readdir } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { run } from "../../src/util/exec.js";

const ns = `kts-agentnet-${randomBytes(3).toString("hex")}`;
const oldMac = "02:aa:bb:cc:dd:01";
const newMac = "02:aa:bb:cc:dd:02";
const interfaceJs = fileURLToPath(new URL("../../src/agent/network/interface.js", import.meta.url));
const routesJs = fileURLToPath(new URL("../../src/agent/network/routes.js", import.meta.url));

/** Runs `script` (an async function body, given `iface` and `routes` modules) in the netns; its return value as JSON. */
async function inNs(script: string): Promise<unknown> {
  const code = `const iface = await import(${JSON.stringify(interfaceJs)}); const routes = await import(${JSON.stringify(routesJs)});
    let res; try { res = { value: await (async () => { ${script} })() }; } catch (e) { res = { error: e.message }; }
    process.stdout.write(JSON.stringify(res));`;
  const out = await run("ip", ["netns", "exec", ns, process.execPath, "--input-type=module", "-e", code], { timeoutMs: 30_000 });
  const res = JSON.parse(out.stdout) as { value?: unknown; error?: string };
  if (res.error !== undefined) throw new Error(res.error);
  return res.value;
}

before(async () => {
  await run("ip", ["netns", "add", ns], { timeoutMs: 10_000 });
  await run("ip", ["-n", ns, "link", "add", "pool0", "address", oldMac, "type", "veth", "peer", "name", "peer0"], { timeoutMs: 10_000 });
  await run("ip", ["-n", ns, "link", "set", "peer0", "up"], { timeoutMs: 10_000 });
});

after(async () => {
  await run("ip", ["netns", "del", ns], { timeoutMs: 10_000, allowNonZero: true });
  assert.equal((await readdir("/var/run/netns").catch(() => [] as string[])).includes(ns), false, "the test's netns is gone");
});

void test("UpdateInterface finds the NIC by its pool MAC and gives it the pod's name, MAC, MTU and addresses in one batch; UpdateRoutes replaces the routes", { timeout: 60_000 }, async () => {
  const got = (await inNs(`return iface.configureInterface({ name: "eth0", mac: "${newMac}", currentMac: "${oldMac}", mtu: 1400, addresses: [{ family: 4, address: "10.77.0.5", prefixLength: 24 }, { family: 4, address: "169.254.99.2", prefixLength: 32 }] });`)) as { name: string; mac: string; mtu: number; addresses: unknown[] };
  assert.deepEqual(got, { name: "eth0", mac: newMac, mtu: 1400, addresses: [{ family: 4, address: "10.77.0.5", prefixLength: 24 }, { family: 4, address: "169.254.99.2", prefixLength: 32 }] });
  const shown = JSON.parse((await run("ip", ["-n", ns, "-j", "addr", "show", "dev", "eth0"])).stdout) as { address: string; mtu: number; flags: string[] }[];
  assert.equal(shown[0]?.address, newMac, "the kernel has the new MAC");
  assert.equal(shown[0]?.mtu, 1400);
  assert.ok(shown[0]?.flags.includes("UP"), "the NIC is up");

  const routes = (await inNs(`return routes.replaceRoutes([
    { dest: "", gateway: "10.77.0.1", device: "eth0", source: "", scope: 0, family: 4 },
    { dest: "10.77.0.0/24", gateway: "", device: "eth0", source: "10.77.0.5", scope: 253, family: 4 },
  ]);`)) as { dest: string; gateway: string; device: string }[];
  assert.ok(routes.some((r) => r.dest === "" && r.gateway === "10.77.0.1" && r.device === "eth0"), `default route read back: ${JSON.stringify(routes)}`);
  const table = (await run("ip", ["-n", ns, "route", "show"])).stdout;
  assert.match(table, /^default via 10\.77\.0\.1 dev eth0/m);

  // A MAC nobody has: a clear error naming the MAC and the links seen.
  await assert.rejects(inNs(`return iface.findLinkByMac("02:00:00:00:00:99");`), /no guest NIC has MAC 02:00:00:00:00:99 \(guest links: .*eth0=02:aa:bb:cc:dd:02/);
  // A failing line stops the batch and fails the call (a route through a device that does not exist).
  await assert.rejects(inNs(`return routes.replaceRoutes([{ dest: "", gateway: "10.9.9.1", device: "nosuch0", source: "", scope: 0, family: 4 }]);`));
});

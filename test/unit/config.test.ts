import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { defaultConfig, loadConfig, parseConfig, selectedVmmConfig } from "../../src/config/index.js";
import { isKataError } from "../../src/util/errors.js";

const repoRoot = join(import.meta.dirname, "..", "..", "..");

void test("config: empty file gives every default", () => {
  const cfg = parseConfig("", "empty.toml");
  assert.deepEqual(cfg, defaultConfig());
  assert.equal(cfg.hypervisor.qemu.default_vcpus, 1);
  assert.equal(cfg.hypervisor.qemu.default_memory, 512);
  assert.equal(cfg.hypervisor.qemu.accel, "auto");
  assert.equal(cfg.agent.dial_timeout, 120);
  assert.equal(cfg.runtime.debug, false);
});

void test("config: the shipped example states exactly the defaults", async () => {
  const text = await readFile(join(repoRoot, "config", "configuration.toml.example"), "utf8");
  assert.deepEqual(parseConfig(text, "configuration.toml.example"), defaultConfig());
});

void test("config: values override defaults table by table", () => {
  const cfg = parseConfig(
    '[hypervisor.qemu]\ndefault_vcpus = 2\naccel = "tcg"\nkernel_params = ["quiet"]\n[agent]\ndial_timeout = 5.5\n',
    "x.toml",
  );
  assert.equal(cfg.hypervisor.qemu.default_vcpus, 2);
  assert.equal(cfg.hypervisor.qemu.accel, "tcg");
  assert.deepEqual(cfg.hypervisor.qemu.kernel_params, ["quiet"]);
  assert.equal(cfg.hypervisor.qemu.default_memory, 512);
  assert.equal(cfg.agent.dial_timeout, 5.5);
  assert.equal(cfg.agent.request_timeout, 30);
});

function rejects(text: string, ...needles: string[]): void {
  assert.throws(
    () => parseConfig(text, "/etc/kata-ts/configuration.toml"),
    (err: unknown) => {
      assert.ok(isKataError(err, "INVALID_ARGUMENT"), String(err));
      for (const n of ["/etc/kata-ts/configuration.toml", ...needles]) assert.ok(err.message.includes(n), `${err.message} lacks ${n}`);
      return true;
    },
  );
}

void test("config: unknown keys are rejected with their full name", () => {
  rejects("[hypervisor.qemu]\ndefault_vcpu = 2\n", "hypervisor.qemu.default_vcpu", "unknown key");
  rejects("[agnet]\n", "agnet", "unknown key");
});

void test("config: wrong types and values name the key", () => {
  rejects('[hypervisor.qemu]\ndefault_vcpus = "two"\n', "hypervisor.qemu.default_vcpus");
  rejects("[hypervisor.qemu]\ndefault_vcpus = 1.5\n", "hypervisor.qemu.default_vcpus");
  rejects('[hypervisor.qemu]\naccel = "hvf"\n', "hypervisor.qemu.accel");
  rejects("[hypervisor.qemu]\ndefault_memory = 16\n", "hypervisor.qemu.default_memory");
});

void test("config: [runtime] hypervisor picks the VMM, whose own section supplies the guest and sizing keys", () => {
  const cfg = parseConfig(
    '[runtime]\nhypervisor = "cloud-hypervisor"\n[hypervisor.cloud-hypervisor]\ndefault_vcpus = 4\nimage_device = "pmem"\n[hypervisor.firecracker]\npath = "/opt/fc/firecracker"\n',
    "c.toml",
  );
  assert.equal(cfg.runtime.hypervisor, "cloud-hypervisor");
  assert.equal(selectedVmmConfig(cfg).default_vcpus, 4);
  assert.equal(cfg.hypervisor["cloud-hypervisor"].image_device, "pmem");
  assert.equal(cfg.hypervisor.firecracker.path, "/opt/fc/firecracker");
  assert.deepEqual(selectedVmmConfig(defaultConfig()), defaultConfig().hypervisor.qemu, "QEMU by default");
  assert.equal(defaultConfig().runtime.hypervisor, "qemu");
  rejects('[runtime]\nhypervisor = "kvmtool"\n', "runtime.hypervisor");
  rejects("[hypervisor.firecracker]\ndefault_vcpus = 33\n", "hypervisor.firecracker.default_vcpus");
  rejects("[hypervisor.firecracker]\naccel = \"tcg\"\n", "hypervisor.firecracker.accel", "unknown key");
  rejects('[hypervisor.cloud-hypervisor]\nimage_device = "nvme"\n', "hypervisor.cloud-hypervisor.image_device");
});

void test("config: TOML syntax errors name the file and line", () => {
  rejects("[hypervisor.qemu]\npath = \n", "line 2");
});

void test("config: lookup order is ConfigPath, KATA_TS_CONFIG, system, installed, defaults", async () => {
  const dir = await mkdtemp(join(tmpdir(), "kata-ts-config-"));
  try {
    const file = async (name: string, vcpus: number): Promise<string> => {
      const path = join(dir, name);
      await writeFile(path, `[hypervisor.qemu]\ndefault_vcpus = ${vcpus}\n`);
      return path;
    };
    const opt = await file("opt.toml", 2);
    const envFile = await file("env.toml", 3);
    const system = await file("system.toml", 4);
    const installed = await file("installed.toml", 5);
    const missing = join(dir, "missing.toml");
    const vcpus = async (s: Parameters<typeof loadConfig>[0]): Promise<[number, string]> => {
      const loaded = await loadConfig(s);
      return [loaded.config.hypervisor.qemu.default_vcpus, loaded.source];
    };
    const env = { KATA_TS_CONFIG: envFile };
    assert.deepEqual(await vcpus({ configPath: opt, env, systemPath: system, installedPath: installed }), [2, opt]);
    assert.deepEqual(await vcpus({ configPath: "", env, systemPath: system, installedPath: installed }), [3, envFile]);
    assert.deepEqual(await vcpus({ env: {}, systemPath: system, installedPath: installed }), [4, system]);
    assert.deepEqual(await vcpus({ env: {}, systemPath: missing, installedPath: installed }), [5, installed]);
    assert.deepEqual(await vcpus({ env: {}, systemPath: missing, installedPath: missing }), [1, "built-in defaults"]);
    await assert.rejects(loadConfig({ configPath: missing, env: {} }), (err: unknown) => {
      assert.ok(isKataError(err, "NOT_FOUND"));
      assert.ok(err.message.includes(missing) && err.message.includes("ConfigPath"));
      return true;
    });
    await assert.rejects(loadConfig({ env: { KATA_TS_CONFIG: missing } }), (err: unknown) => isKataError(err, "NOT_FOUND"));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

void test("config: the VM pool is on by default, one VM of one shape; KATA_TS_POOL=off turns it off whatever the file says", async () => {
  const cfg = defaultConfig();
  assert.equal(cfg.factory.enable_pool, true);
  assert.equal(cfg.factory.pool_size, 1);
  assert.equal(cfg.factory.max_shapes, 1);
  const dir = await mkdtemp(join(tmpdir(), "kts-config-pool-"));
  try {
    const file = join(dir, "configuration.toml");
    await writeFile(file, "[factory]\nenable_pool = true\npool_size = 2\n");
    assert.equal((await loadConfig({ configPath: file, env: {} })).config.factory.enable_pool, true);
    const off = await loadConfig({ configPath: file, env: { KATA_TS_POOL: "off" } });
    assert.equal(off.config.factory.enable_pool, false);
    assert.equal(off.config.factory.pool_size, 2, "only enable_pool is overridden");
    const none = join(dir, "none");
    const defaults = await loadConfig({ env: { KATA_TS_POOL: "off" }, systemPath: none, installedPath: none });
    assert.equal(defaults.source, "built-in defaults");
    assert.equal(defaults.config.factory.enable_pool, false);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

void test("config: [hypervisor.qemu] image_device = \"pmem\" needs machine = \"q35\"; the error names both keys and why", () => {
  const q35 = parseConfig('[hypervisor.qemu]\nmachine = "q35"\nimage_device = "pmem"\n', "c.toml");
  assert.equal(q35.hypervisor.qemu.machine, "q35");
  assert.equal(q35.hypervisor.qemu.image_device, "pmem");
  assert.throws(
    () => parseConfig('[hypervisor.qemu]\nmachine = "microvm"\nimage_device = "pmem"\n', "c.toml"),
    (err: unknown) => isKataError(err, "INVALID_ARGUMENT") && /c\.toml: hypervisor\.qemu\.image_device: .*machine = "q35".*microvm never maps/.test((err as Error).message),
  );
  assert.throws(() => parseConfig('[hypervisor.qemu]\nmachine = "pc"\n', "c.toml"), (err: unknown) => isKataError(err, "INVALID_ARGUMENT") && /hypervisor\.qemu\.machine/.test((err as Error).message));
});

void test("config: q35 with the image on pmem by default; machine = \"microvm\" alone gets the image as a disk", () => {
  const d = defaultConfig().hypervisor.qemu;
  assert.deepEqual([d.machine, d.image_device], ["q35", "pmem"]);
  const micro = parseConfig('[hypervisor.qemu]\nmachine = "microvm"\n', "c.toml").hypervisor.qemu;
  assert.deepEqual([micro.machine, micro.image_device], ["microvm", "disk"]);
});

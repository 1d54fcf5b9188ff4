// A stand-in Cloud Hypervisor: serves the REST API on --api-socket path=..., checks every request
// against the published OpenAPI schemas (ch-spec.ts), and answers as cloud-hypervisor does: 204 on
// success, a text error body otherwise, 404/405 for requests in the wrong VM state.
import http from "node:http";
import { z } from "zod";
import { chEndpoints, VmConfig, type ChVmConfigSpec } from "./ch-spec.js";
import { appendTo, consoleLines, crashSoon, firstMissing, guestDelayMs, stdoutConsole, type Fault } from "./common.js";
import { StandinGuest } from "./guest.js";
import { answer, readRequest } from "./http.js";
import type { StandinLog } from "./log.js";

export const chVersion = "v38.0";

type VmState = "None" | "Created" | "Running" | "Shutdown";

export function parseChArgs(argv: string[]): string {
  const i = argv.indexOf("--api-socket");
  const value = i >= 0 ? argv[i + 1] : undefined;
  if (value === undefined) throw new Error("usage: cloud-hypervisor --api-socket path=<socket>");
  return value.startsWith("path=") ? value.slice("path=".length) : value;
}

export function chServer(log: StandinLog, fault: Fault): http.Server {
  let state: VmState = "None";
  let config: ChVmConfigSpec | undefined;
  let guest: StandinGuest | undefined;
  const violation = (what: string): void => log.write({ violation: what });

  return http.createServer((req, res) => {
    void (async () => {
      const r = await readRequest(req);
      log.write({ request: { method: r.method, path: r.path, ...(r.body === undefined ? {} : { body: r.body }) } });
      const endpoint = chEndpoints[r.path];
      if (endpoint === undefined) {
        violation(`${r.method} ${r.path}: no such endpoint in the OpenAPI document`);
        return answer(res, 404, "", "text/plain");
      }
      if (r.method !== endpoint.method) {
        violation(`${r.method} ${r.path}: the spec has ${endpoint.method} for it`);
        return answer(res, 405, "", "text/plain");
      }
      if (r.problem !== undefined) {
        violation(`${r.method} ${r.path}: ${r.problem}`);
        return answer(res, 400, r.problem, "text/plain");
      }
      if (endpoint.body === undefined && r.body !== undefined) violation(`${r.method} ${r.path}: the spec has no request body for it`);
      if (endpoint.body !== undefined) {
        const parsed = endpoint.body.safeParse(r.body);
        if (!parsed.success) {
          const why = z.prettifyError(parsed.error);
          violation(`${r.method} ${r.path}: body does not match the spec: ${why}`);
          return answer(res, 400, `Error from API: invalid request body: ${why}`, "text/plain");
        }
      }
      switch (r.path) {
        case "/api/v1/vmm.ping":
          return answer(res, 200, { build_version: "stand-in", version: chVersion, pid: process.pid, features: [] });
        case "/api/v1/vm.info":
          if (config === undefined) return answer(res, 404, "");
          return answer(res, 200, { config, state });
        case "/api/v1/vm.create": {
          if (state !== "None") return answer(res, 400, "Error from API: The VM is already created", "text/plain");
          if (fault === "api-error") return answer(res, 400, "Error from API: The VM could not be created: Error parsing --disk: Invalid image type (stand-in fault)", "text/plain");
          const cfg = VmConfig.parse(r.body);
          const missing = firstMissing([cfg.payload.kernel, cfg.payload.initramfs, ...(cfg.disks ?? []).map((d) => d.path), ...(cfg.pmem ?? []).map((p) => p.file)]);
          if (missing !== undefined) return answer(res, 500, `Error from API: The VM could not be created: Cannot open ${missing}: No such file or directory (os error 2)`, "text/plain");
          if (cfg.vsock !== undefined) guest = await StandinGuest.listen(cfg.vsock.socket, violation);
          if (guest !== undefined) guest.hangUpAfterOk = fault === "agent-hangup";
          config = cfg;
          state = "Created";
          return answer(res, 204);
        }
        case "/api/v1/vm.boot": {
          if (state === "None") return answer(res, 404, "Error from API: The VM is not created", "text/plain");
          if (state !== "Created") return answer(res, 405, "Error from API: The VM is already booted", "text/plain");
          state = "Running";
          answer(res, 204);
          if (fault === "crash-on-boot") return crashSoon();
          const serial = config?.serial;
          setTimeout(() => {
            if (state !== "Running") return;
            // As cloud-hypervisor does: serial File appends to the file, Tty writes to its stdout.
            if (serial?.mode === "File" && serial.file !== undefined) consoleLines(appendTo(serial.file));
            const printed = serial?.mode === "Tty" ? stdoutConsole(fault) : Promise.resolve();
            void printed.then(() => {
              if (fault !== "silent-guest" && state === "Running") guest?.agentUp(config?.payload.cmdline ?? "");
            });
          }, guestDelayMs);
          return;
        }
        case "/api/v1/vm.shutdown":
          if (state === "None") return answer(res, 404, "");
          if (state !== "Running") return answer(res, 405, "");
          state = "Shutdown";
          await guest?.close();
          guest = undefined;
          return answer(res, 204);
        case "/api/v1/vm.delete":
          await guest?.close();
          guest = undefined;
          config = undefined;
          state = "None";
          return answer(res, 204);
        case "/api/v1/vmm.shutdown":
          await guest?.close();
          res.on("finish", () => setImmediate(() => process.exit(0)));
          return answer(res, 204);
      }
    })().catch((err: unknown) => {
      process.stderr.write(`stand-in: ${String(err)}\n`);
      answer(res, 500, String(err), "text/plain");
    });
  });
}

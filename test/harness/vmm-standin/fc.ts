// A stand-in Firecracker: serves the REST API on --api-sock, checks every request against the
// published swagger schemas (fc-spec.ts), and answers as firecracker does: 204 on success, 400 with
// { fault_message } otherwise; pre-boot requests after InstanceStart are refused. The guest serial
// console goes to stdout, as Firecracker's does.
import http from "node:http";
import { z } from "zod";
import { BootSource, fcEndpoints, Vsock } from "./fc-spec.js";
import { crashSoon, stdoutConsole, firstMissing, guestDelayMs, type Fault } from "./common.js";
import { StandinGuest } from "./guest.js";
import { answer, readRequest } from "./http.js";
import type { StandinLog } from "./log.js";

export const fcVersion = "1.7.0";

export function parseFcArgs(argv: string[]): { apiSocket: string; id: string } {
  const i = argv.indexOf("--api-sock");
  const apiSocket = i >= 0 ? argv[i + 1] : undefined;
  if (apiSocket === undefined) throw new Error("usage: firecracker --api-sock <socket> [--id <id>]");
  const j = argv.indexOf("--id");
  return { apiSocket, id: (j >= 0 ? argv[j + 1] : undefined) ?? "anonymous-instance" };
}

const fault400 = (res: http.ServerResponse, message: string): void => answer(res, 400, { fault_message: message });

export function fcServer(log: StandinLog, fault: Fault, id: string): http.Server {
  let started = false;
  let bootSource: z.output<typeof BootSource> | undefined;
  let vsock: z.output<typeof Vsock> | undefined;
  const drives = new Map<string, { path_on_host?: string | undefined }>();
  let guest: StandinGuest | undefined;
  const violation = (what: string): void => log.write({ violation: what });

  return http.createServer((req, res) => {
    void (async () => {
      const r = await readRequest(req);
      log.write({ request: { method: r.method, path: r.path, ...(r.body === undefined ? {} : { body: r.body }) } });
      const endpoint = fcEndpoints.find((e) => e.pattern.test(r.path));
      if (endpoint === undefined) {
        violation(`${r.method} ${r.path}: no such path in the swagger document`);
        return fault400(res, `Invalid request path: ${r.path}`);
      }
      if (r.method !== endpoint.method) {
        violation(`${r.method} ${r.path}: kata-ts uses only ${endpoint.method} on it`);
        return fault400(res, `Invalid request method: ${r.method}`);
      }
      if (r.problem !== undefined) {
        violation(`${r.method} ${r.path}: ${r.problem}`);
        return fault400(res, r.problem);
      }
      let body: Record<string, unknown> = {};
      if (endpoint.body !== undefined) {
        const parsed = endpoint.body.safeParse(r.body);
        if (!parsed.success) {
          const why = z.prettifyError(parsed.error);
          violation(`${r.method} ${r.path}: body does not match the spec: ${why}`);
          return fault400(res, `An error occurred when deserializing the json body of a request: ${why}`);
        }
        body = parsed.data as Record<string, unknown>;
        const pathId = endpoint.pattern.exec(r.path)?.[1];
        if (endpoint.idField !== undefined && pathId !== body[endpoint.idField]) {
          violation(`${r.method} ${r.path}: the path id ${pathId ?? ""} differs from the body's ${endpoint.idField}`);
          return fault400(res, "The id from the path does not match the id from the body!");
        }
      }
      if (r.path === "/") {
        return answer(res, 200, { app_name: "Firecracker", id, state: started ? "Running" : "Not started", vmm_version: fcVersion });
      }
      if (started && r.path !== "/actions") return fault400(res, "The requested operation is not supported after starting the microVM.");
      if (fault === "api-error" && r.path === "/machine-config") return fault400(res, "The memory size (MiB) is either 0, or not a multiple of the configured page size. (stand-in fault)");
      if (r.path === "/boot-source") bootSource = BootSource.parse(body);
      if (r.path.startsWith("/drives/")) drives.set(String(body.drive_id), { path_on_host: body.path_on_host as string | undefined });
      if (r.path === "/vsock") vsock = Vsock.parse(body);
      if (r.path !== "/actions") return answer(res, 204);
      if (body.action_type !== "InstanceStart") return answer(res, 204);
      if (started) return fault400(res, "The requested operation is not supported after starting the microVM.");
      if (bootSource === undefined) return fault400(res, "Cannot start microvm without kernel configuration.");
      const missing = firstMissing([bootSource.kernel_image_path, bootSource.initrd_path, ...[...drives.values()].map((d) => d.path_on_host)]);
      if (missing !== undefined) return fault400(res, `Start microvm error: Cannot open ${missing}: No such file or directory (os error 2)`);
      if (vsock !== undefined) guest = await StandinGuest.listen(vsock.uds_path, violation);
      started = true;
      answer(res, 204);
      if (fault === "crash-on-boot") return crashSoon();
      setTimeout(() => {
        void stdoutConsole(fault).then(() => {
          if (fault !== "silent-guest") guest?.agentUp(bootSource?.boot_args ?? "");
        });
      }, guestDelayMs);
    })().catch((err: unknown) => {
      process.stderr.write(`stand-in: ${String(err)}\n`);
      answer(res, 500, { fault_message: String(err) });
    });
  });
}

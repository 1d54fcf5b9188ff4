// A stand-in Firecracker: serves the REST API on --api-sock, checks every request against the
// published swagger schemas (fc-spec.ts), and answers as firecracker does: 204 on success, 400 with
// { fault_message } otherwise. Pre-boot requests (PUT of anything but /actions) are refused after
// InstanceStart; PATCH /drives/{id} is post-boot only, for a drive configured before boot, and
// its path_on_host must open. The guest serial console goes to stdout, as Firecracker's does.
// The guest is emulated (guest.ts: the agent's Health service on the hybrid vsock), or with
// STANDIN_GUEST=qemu the real guest under QEMU (qemu-guest.ts).
import http from "node:http";
import { dirname, join } from "node:path";
import { z } from "zod";
import { BootSource, fcEndpoints, MachineConfiguration, Vsock, type FcMethod } from "./fc-spec.js";
import { crashSoon, stdoutConsole, firstMissing, guestDelayMs, type Fault } from "./common.js";
import { StandinGuest } from "./guest.js";
import { answer, readRequest } from "./http.js";
import type { StandinLog } from "./log.js";
import { QemuGuest } from "./qemu-guest.js";

export const fcVersion = "1.7.0";

export function parseFcArgs(argv: string[]): { apiSocket: string; id: string } {
  const i = argv.indexOf("--api-sock");
  const apiSocket = i >= 0 ? argv[i + 1] : undefined;
  if (apiSocket === undefined) throw new Error("usage: firecracker --api-sock <socket> [--id <id>]");
  const j = argv.indexOf("--id");
  return { apiSocket, id: (j >= 0 ? argv[j + 1] : undefined) ?? "anonymous-instance" };
}

const fault400 = (res: http.ServerResponse, message: string): void => answer(res, 400, { fault_message: message });

interface StandinDrive {
  path_on_host?: string | undefined;
  is_read_only?: boolean | undefined;
  is_root_device: boolean;
}

export function fcServer(log: StandinLog, fault: Fault, id: string, apiSocket: string): http.Server {
  let started = false;
  let bootSource: z.output<typeof BootSource> | undefined;
  let machine: z.output<typeof MachineConfiguration> | undefined;
  let vsock: z.output<typeof Vsock> | undefined;
  /** In the order configured, as Firecracker attaches them (a root device first). */
  const drives = new Map<string, StandinDrive>();
  let guest: StandinGuest | undefined;
  let realGuest: QemuGuest | undefined;
  const violation = (what: string): void => log.write({ violation: what });
  // A real guest's QEMU is in the stand-in's process group: the driver's SIGTERM/SIGKILL of the group ends it too.

  return http.createServer((req, res) => {
    void (async () => {
      const r = await readRequest(req);
      log.write({ request: { method: r.method, path: r.path, ...(r.body === undefined ? {} : { body: r.body }) } });
      const endpoint = fcEndpoints.find((e) => e.pattern.test(r.path));
      if (endpoint === undefined) {
        violation(`${r.method} ${r.path}: no such path in the swagger document`);
        return fault400(res, `Invalid request path: ${r.path}`);
      }
      const method = endpoint.methods[r.method as FcMethod];
      if (method === undefined) {
        violation(`${r.method} ${r.path}: kata-ts uses only ${Object.keys(endpoint.methods).join(", ")} on it`);
        return fault400(res, `Invalid request method: ${r.method}`);
      }
      if (r.problem !== undefined) {
        violation(`${r.method} ${r.path}: ${r.problem}`);
        return fault400(res, r.problem);
      }
      let body: Record<string, unknown> = {};
      if (method.body !== undefined) {
        const parsed = method.body.safeParse(r.body);
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
      if (r.method === "PATCH") {
        // Only drives take PATCH here (fc-spec.ts): post-boot, an existing drive, a file that opens.
        if (!started) return fault400(res, "The requested operation is not supported before starting the microVM.");
        const driveId = String(body.drive_id);
        const drive = drives.get(driveId);
        if (drive === undefined) return fault400(res, `Unable to patch the block device: no drive with id ${driveId} was configured before boot (stand-in wording)`);
        const path = body.path_on_host as string | undefined;
        if (path !== undefined) {
          if (firstMissing([path]) !== undefined) return fault400(res, `Unable to patch the block device: cannot open ${path}: No such file or directory (os error 2)`);
          await realGuest?.patchDrive(driveId, path);
          drive.path_on_host = path;
        }
        return answer(res, 204);
      }
      if (started && r.path !== "/actions") return fault400(res, "The requested operation is not supported after starting the microVM.");
      if (fault === "api-error" && r.path === "/machine-config") return fault400(res, "The memory size (MiB) is either 0, or not a multiple of the configured page size. (stand-in fault)");
      if (r.path === "/machine-config") machine = MachineConfiguration.parse(body);
      if (r.path === "/boot-source") bootSource = BootSource.parse(body);
      if (r.path.startsWith("/drives/")) {
        const d = { path_on_host: body.path_on_host as string | undefined, is_read_only: body.is_read_only as boolean | undefined, is_root_device: body.is_root_device === true };
        drives.set(String(body.drive_id), d);
      }
      if (r.path === "/vsock") vsock = Vsock.parse(body);
      if (r.path !== "/actions") return answer(res, 204);
      if (body.action_type !== "InstanceStart") return answer(res, 204);
      if (started) return fault400(res, "The requested operation is not supported after starting the microVM.");
      if (bootSource === undefined) return fault400(res, "Cannot start microvm without kernel configuration.");
      const missing = firstMissing([bootSource.kernel_image_path, bootSource.initrd_path, ...[...drives.values()].map((d) => d.path_on_host)]);
      if (missing !== undefined) return fault400(res, `Start microvm error: Cannot open ${missing}: No such file or directory (os error 2)`);
      if (vsock !== undefined) guest = await StandinGuest.listen(vsock.uds_path, violation);
      if (guest !== undefined) guest.hangUpAfterOk = fault === "agent-hangup";
      if (process.env.STANDIN_GUEST === "qemu") {
        const ordered = [...drives.entries()].sort(([, a], [, b]) => Number(b.is_root_device) - Number(a.is_root_device));
        realGuest = await QemuGuest.start({
          dir: join(dirname(apiSocket), "standin-qemu"),
          kernel: bootSource.kernel_image_path,
          initrd: bootSource.initrd_path,
          bootArgs: bootSource.boot_args ?? "",
          vcpus: machine?.vcpu_count ?? 1,
          memoryMiB: machine?.mem_size_mib ?? 128,
          drives: ordered.map(([driveId, d]) => ({ id: driveId, path: d.path_on_host ?? "", readOnly: d.is_read_only === true })),
        });
        const g = realGuest;
        guest?.forwardTo(() => g.connectAgent());
        g.exited
          .then((code) => {
            // The guest powered off (or QEMU died): Firecracker exits with the VM.
            process.stderr.write(`stand-in: the guest's QEMU exited (${code})\n`);
            process.exit(code === 0 ? 0 : 1);
          })
          .catch(() => undefined);
      }
      started = true;
      answer(res, 204);
      if (fault === "crash-on-boot") return crashSoon();
      if (realGuest !== undefined) return;
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

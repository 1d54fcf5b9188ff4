// `kata-ts demo`: the whole idea in one command. A private containerd (in a network namespace the
// demo creates and removes) gets the kata-ts handler from the node installer's code; a runc pod
// and a kata-ts pod run side by side through CRI; each prints its kernel next to the host's: the
// runc pod shares the host kernel, the kata-ts pod runs its own in a VM. Everything is removed at
// the end, on failure, and on Ctrl-C.
import { release } from "node:os";
import { connectCri, type CriClient } from "../cri/client.js";
import { startDevContainerd, type DevContainerd } from "../devenv/containerd.js";
import { loadGuestAssets } from "../guest/assets.js";
import { progress, type Progress } from "./progress.js";
import { podKernel, removePod, startPod, type DemoPod } from "./pods.js";

export interface DemoResult {
  hostKernel: string;
  runcKernel: string;
  kataKernel: string;
}

export interface DemoOptions {
  progress?: Progress;
  out?: NodeJS.WritableStream;
  /** Resolves when the user interrupts (Ctrl-C): the demo stops and cleans up. */
  interrupted?: Promise<void>;
}

export class DemoInterrupted extends Error {}

export async function runDemo(opts: DemoOptions = {}): Promise<DemoResult> {
  const p = opts.progress ?? progress();
  const out = opts.out ?? process.stdout;
  let ctd: DevContainerd | undefined;
  let cri: CriClient | undefined;
  const pods: DemoPod[] = [];
  let stopped = false;
  // Every step races the interrupt, so Ctrl-C goes straight to cleanup.
  const guard = <T>(promise: Promise<T>): Promise<T> =>
    opts.interrupted === undefined
      ? promise
      : Promise.race([promise, opts.interrupted.then(() => Promise.reject(new DemoInterrupted("interrupted")))]);
  try {
    const assets = await guard(p.step("checking guest assets", () => loadGuestAssets()));
    ctd = await guard(p.step("starting a private containerd with the kata-ts handler (own network namespace)", () => startDevContainerd()));
    p.info(`    work dir ${ctd.baseDir}, network namespace ${ctd.netns}, containerd log ${ctd.logPath}`);
    const c = connectCri(ctd.address);
    cri = c;
    const runc = await guard(p.step("starting a runc pod (shares the host kernel)", () => startPod(c, ctd!.baseDir, "trusted-runc", "runc")));
    pods.push(runc);
    const kata = await guard(
      p.step(`starting a kata-ts pod (boots a VM with kernel ${assets.kernelRelease}; slow under TCG)`, () =>
        startPod(c, ctd!.baseDir, "untrusted-kata-ts", "kata-ts"),
      ),
    );
    pods.push(kata);
    const result: DemoResult = {
      hostKernel: release(),
      runcKernel: await guard(podKernel(c, runc)),
      kataKernel: await guard(podKernel(c, kata)),
    };
    out.write(
      [
        "",
        "uname -r",
        `  host              ${result.hostKernel}`,
        `  runc pod          ${result.runcKernel}${result.runcKernel === result.hostKernel ? "   (same kernel as the host)" : ""}`,
        `  kata-ts pod       ${result.kataKernel}${result.kataKernel !== result.hostKernel ? "   (its own kernel, in a VM)" : ""}`,
        "",
      ].join("\n"),
    );
    return result;
  } finally {
    if (!stopped) {
      stopped = true;
      await p.step("cleaning up (pods, containerd, network namespace, temp dir)", async () => {
        for (const pod of pods) await removePod(cri!, pod).catch(() => undefined);
        cri?.close();
        await ctd?.stop();
      });
    }
  }
}

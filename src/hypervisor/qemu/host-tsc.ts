// The host TSC frequency, which a TCG guest's TSC runs at (QEMU's TCG rdtsc reads the host
// counter). A TCG guest cannot calibrate its TSC reliably: it has no HPET or ACPI PM timer on
// microvm, and PIT calibration fails or hangs when the host is busy (measured: boots stuck at
// "tsc: Unable to calibrate against PIT" under load). So the VMM tells it: tsc_early_khz=.
import { readFile } from "node:fs/promises";

let memo: Promise<number | undefined> | undefined;

export function hostTscKhz(): Promise<number | undefined> {
  memo ??= (async () => {
    const sysfs = await readFile("/sys/devices/system/cpu/cpu0/tsc_freq_khz", "utf8").catch(() => undefined);
    if (sysfs !== undefined && Number.parseInt(sysfs, 10) > 0) return Number.parseInt(sysfs, 10);
    const cpuinfo = await readFile("/proc/cpuinfo", "utf8").catch(() => "");
    const mhz = /^cpu MHz\s*:\s*([\d.]+)/m.exec(cpuinfo)?.[1];
    return mhz === undefined ? undefined : Math.round(Number.parseFloat(mhz) * 1000);
  })();
  return memo;
}

// Host randomness for a guest booted before its pod (the VM pool): written to /dev/urandom, which
// mixes it into the kernel's input pool without crediting entropy (Linux 6.1). The kernel's CRNG
// takes it in at its next reseed (every uptime/2 s during the first two minutes after boot, every
// 60 s after that); forcing a reseed at once needs the RNDRESEEDCRNG ioctl, which Node cannot issue.
// A pooled VM is booted on its own (never cloned), so its CRNG was seeded independently anyway.
import { open } from "node:fs/promises";
import { KataError } from "../util/errors.js";

export const URANDOM = "/dev/urandom";
const MAX_BYTES = 4096;

export async function mixEntropy(bytes: Uint8Array, path = URANDOM): Promise<void> {
  if (bytes.length > MAX_BYTES) throw new KataError("INVALID_ARGUMENT", `entropy is ${bytes.length} bytes; send at most ${MAX_BYTES}`);
  const fh = await open(path, "w");
  try {
    await fh.write(bytes);
  } finally {
    await fh.close();
  }
}

// TCG's translation cache state from HMP `info jit` over QEMU's QMP socket: how much host code is
// in the buffer and how often it was flushed (a full buffer is thrown away and refilled).
import type { Vm } from "../../src/hypervisor/types.js";

type Qmp = { execute(c: "human-monitor-command", a: { "command-line": string }): Promise<string> };

export interface TcgJitState {
  /** Host code bytes in the buffer now. */
  genCodeBytes: number;
  /** The buffer's usable size in bytes. */
  bufferBytes: number;
  /** Full flushes since QEMU started. */
  flushes: number;
}

/** NaN fields when the VM is not a QEMU VM under TCG (or QMP does not answer). */
export async function tcgJitState(vm: Vm): Promise<TcgJitState> {
  const qmp = (vm as unknown as { qmp?: Qmp }).qmp;
  const text = (await qmp?.execute("human-monitor-command", { "command-line": "info jit" }).catch(() => "")) ?? "";
  const code = /gen code size\s+(\d+)\/(\d+)/.exec(text);
  return {
    genCodeBytes: Number(code?.[1] ?? NaN),
    bufferBytes: Number(code?.[2] ?? NaN),
    flushes: Number(/TB flush count\s+(\d+)/.exec(text)?.[1] ?? NaN),
  };
}

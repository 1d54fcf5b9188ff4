// The agent's checks on files the host copies in with CreateContainer (guest-files.ts): nothing
// may land outside the container's file dir, and what is refused says why.
import { test } from "node:test";
import assert from "node:assert/strict";
import { checkGuestFiles, type GuestFileInput } from "../../src/agent/container/guest-files.js";
import { GUEST_FILES_LIMIT_BYTES, guestBlockRootfsPaths } from "../../src/protocol/contract/guest.js";
import { isKataError } from "../../src/util/errors.js";

const rw = [guestBlockRootfsPaths("c1").rw];
const file = (name: string, extra: Partial<GuestFileInput> = {}): GuestFileInput => ({ name, mode: 0o644, uid: 0, gid: 0, data: new Uint8Array(4), ...extra });
const refused = (files: GuestFileInput[], why: RegExp, targets = rw): void => {
  assert.throws(() => checkGuestFiles("c1", files, targets), (e) => isKataError(e, "INVALID_ARGUMENT") && why.test(e.message), why.source);
};

void test("agent copied-in files: plain names, each once, permission bits only, within the limit, only for a block rootfs", () => {
  checkGuestFiles("c1", [file("0-hosts", { mode: 0o4755 }), file("1-resolv.conf")], rw);
  checkGuestFiles("c1", [], []);
  for (const name of ["../escape", "a/b", "..", ".", "", "/abs", ".hidden"]) refused([file(name)], /copied-in file name .* must match/);
  refused([file("x"), file("x")], /file x is given twice/);
  refused([file("x", { mode: 0o100644 })], /mode 100644 has more than permission bits/);
  refused([file("x", { data: new Uint8Array(GUEST_FILES_LIMIT_BYTES) }), file("y", { data: new Uint8Array(1) })], new RegExp(`${GUEST_FILES_LIMIT_BYTES + 1} bytes .* more than the ${GUEST_FILES_LIMIT_BYTES}-byte limit`));
  refused([file("x")], /only for a container with a block rootfs/, ["/run/kata-ts/shared/containers/c1/rootfs"]);
});

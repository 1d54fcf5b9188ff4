// The containerd kata-ts starts itself hands its shims an environment without the variables that
// only make each shim's Node start-up dearer (src/util/containerd-env.ts).
import { test } from "node:test";
import assert from "node:assert/strict";
import { containerdEnv } from "../../src/util/containerd-env.js";

void test("containerdEnv drops NODE_EXTRA_CA_CERTS and keeps everything else, without changing its input", () => {
  const env = { PATH: "/usr/bin", NODE_EXTRA_CA_CERTS: "/etc/ssl/certs/ca-certificates.crt", KATA_TS_POOL: "off" };
  const out = containerdEnv(env);
  assert.deepEqual(out, { PATH: "/usr/bin", KATA_TS_POOL: "off" });
  assert.equal(env.NODE_EXTRA_CA_CERTS, "/etc/ssl/certs/ca-certificates.crt");
});

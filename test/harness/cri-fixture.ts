// The set-up most CRI tests share: a private containerd (startContainerd), the local test images
// imported into it (no pull) and a CRI client, made in `before` and torn down in `after`, which
// also asserts that nothing of the harness leaked. Call once at a test file's top level.
import { after, before } from "node:test";
import { connectCri, type CriClient } from "../../src/cri/client.js";
import { assertNoLeaks, startContainerd, type PrivateContainerd, type StartContainerdOptions } from "./containerd.js";
import { importTestImages } from "./images.js";

/** Set once the file's `before` hook has run; tests check them (assert.ok) before use. */
export interface CriFixture {
  ctd: PrivateContainerd | undefined;
  cri: CriClient | undefined;
}

export function useCriFixture(opts: StartContainerdOptions = {}): CriFixture {
  const fx: CriFixture = { ctd: undefined, cri: undefined };
  before(async () => {
    fx.ctd = await startContainerd(opts);
    await importTestImages(fx.ctd);
    fx.cri = connectCri(fx.ctd.address);
  });
  after(async () => {
    fx.cri?.close();
    await fx.ctd?.stop();
    if (fx.ctd) await assertNoLeaks(fx.ctd);
  });
  return fx;
}

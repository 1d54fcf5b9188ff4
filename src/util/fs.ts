// Small file-system predicates shared by src/ and the test harness.
import { access } from "node:fs/promises";

/** Whether `path` exists (access F_OK, following symlinks); false on any error. */
export async function pathExists(path: string): Promise<boolean> {
  return access(path).then(
    () => true,
    () => false,
  );
}

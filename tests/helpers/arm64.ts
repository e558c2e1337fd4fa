import { existsSync } from "node:fs";
import { join } from "node:path";
import { REPO, run } from "./root.ts";

export const DDUM_ARM64 = join(REPO, "dist", "ddum-arm64");
/** Debian's arm64 libc6, libgcc-s1 and libstdc++6, unpacked by tests/install-deps.sh. */
export const ARM64_SYSROOT = join(REPO, ".tmp", "arm64-sysroot");

let built = false;

/** dist/ddum-arm64 from the current sources (make build-arm64; the runtime comes from npm once). */
export function buildArm64(): void {
  if (built) return;
  // -o node_modules: build with the installed modules, never reinstall them from here.
  const r = run("make", ["-s", "-C", REPO, "-o", "node_modules", "build-arm64"]);
  if (r.code !== 0 || !existsSync(DDUM_ARM64)) throw new Error(`make build-arm64 failed:\n${r.stdout}${r.stderr}`);
  built = true;
}

export function qemuArgs(args: string[]): string[] {
  if (!existsSync(join(ARM64_SYSROOT, "lib", "ld-linux-aarch64.so.1"))) {
    throw new Error(`no arm64 sysroot at ${ARM64_SYSROOT}: run tests/install-deps.sh as root`);
  }
  return ["qemu-aarch64-static", "-L", ARM64_SYSROOT, DDUM_ARM64, ...args];
}

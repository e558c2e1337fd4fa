import { spawnSync } from "node:child_process";
import { chmodSync, chownSync, cpSync, mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export const REPO = join(import.meta.dir, "..", "..");
export const DEBIAN_ROOT = join(REPO, "examples", "debian12-root");
export const ACCOUNT_FILES = ["passwd", "shadow", "group", "gshadow"] as const;

const made: string[] = [];

/** A temp root holding a stock Debian 12 account database, shadow files 0640 root:shadow. */
export function makeRoot(from = DEBIAN_ROOT): string {
  const dir = mkdtempSync(join(tmpdir(), "ddum-root-"));
  made.push(dir);
  cpSync(from, dir, { recursive: true });
  for (const f of ["shadow", "gshadow"]) {
    const p = join(dir, "etc", f);
    chownSync(p, 0, 42);
    chmodSync(p, 0o640);
  }
  return dir;
}

export function cleanupRoots(): void {
  for (const d of made.splice(0)) rmSync(d, { recursive: true, force: true });
}

export function snapshot(root: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const f of ACCOUNT_FILES) out[f] = readFileSync(join(root, "etc", f), "utf8");
  return out;
}

export function mtimes(root: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const f of ACCOUNT_FILES) out[f] = statSync(join(root, "etc", f)).mtimeMs;
  return out;
}

export function run(cmd: string, args: string[], opts: { input?: string; env?: Record<string, string> } = {}) {
  const r = spawnSync(cmd, args, {
    encoding: "utf8",
    input: opts.input,
    env: { ...process.env, ...opts.env },
  });
  return { code: r.status ?? -1, stdout: r.stdout ?? "", stderr: r.stderr ?? "", signal: r.signal };
}

/** pwck and grpck in read-only mode over a whole root; both must exit 0. */
export function checkAccounts(root: string): { pwck: ReturnType<typeof run>; grpck: ReturnType<typeof run> } {
  return { pwck: run("pwck", ["-qr", "-R", root]), grpck: run("grpck", ["-r", "-R", root]) };
}

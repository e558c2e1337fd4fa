import { spawnSync } from "node:child_process";
import { chmodSync, chownSync, cpSync, mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export const REPO = join(import.meta.dir, "..", "..");
export const DEBIAN_ROOT = join(REPO, "examples", "debian12-root");
export const AL2023_ROOT = join(REPO, "tests", "golden", "al2023");
export const ACCOUNT_FILES = ["passwd", "shadow", "group", "gshadow"] as const;

/** What differs between the stock roots that the end-to-end tests run against. */
export interface Flavour {
  name: "debian12" | "al2023";
  root: string;
  /** Owner group and mode of /etc/shadow and /etc/gshadow. */
  shadowGid: number;
  shadowMode: number;
  /** The local admin group a host lets ddum merge into. */
  admin: { name: string; gid: number };
  /** A local system group and its GID (audio). */
  audioGid: number;
  /** The mode login.defs gives new homes, and the files in /etc/skel. */
  homeMode: number;
  skel: string[];
  /** The example tables' account files after a pass, and its counts that differ between roots. */
  golden: string;
  exampleCounts: { created: number; updated: number; refused: number };
}
export const FLAVOURS: Record<Flavour["name"], Flavour> = {
  debian12: {
    name: "debian12",
    root: DEBIAN_ROOT,
    shadowGid: 42,
    shadowMode: 0o640,
    admin: { name: "sudo", gid: 27 },
    audioGid: 29,
    homeMode: 0o755,
    skel: [".bashrc", ".profile", ".bash_logout"],
    golden: join(REPO, "tests", "golden", "examples"),
    // The example "sudo" record merges into Debian's sudo group (GID 27).
    exampleCounts: { created: 8, updated: 1, refused: 1 },
  },
  // Amazon Linux 2023 (the RHEL family): shadow files 0000 root:root, no shadow group, wheel,
  // ec2-user at UID 1000 inside the managed range, HOME_MODE 0700.
  al2023: {
    name: "al2023",
    root: AL2023_ROOT,
    shadowGid: 0,
    shadowMode: 0o000,
    admin: { name: "wheel", gid: 10 },
    audioGid: 63,
    homeMode: 0o700,
    skel: [".bashrc", ".bash_profile", ".bash_logout"],
    golden: join(REPO, "tests", "golden", "examples-al2023"),
    // No local group has GID 27 here: the example "sudo" record is outside the managed range.
    exampleCounts: { created: 8, updated: 0, refused: 2 },
  },
};
/** The root the end-to-end tests run against: DDUM_TEST_ROOT=al2023 for Amazon Linux 2023. */
export const FLAVOUR: Flavour = (() => {
  const name = process.env.DDUM_TEST_ROOT ?? "debian12";
  const f = FLAVOURS[name as Flavour["name"]];
  if (!f) throw new Error(`DDUM_TEST_ROOT=${name}: expected one of ${Object.keys(FLAVOURS).join(", ")}`);
  return f;
})();

const made: string[] = [];

/** A temp root holding a stock account database (FLAVOUR's unless given), shadow files with their stock mode and owner. */
export function makeRoot(from = FLAVOUR.root): string {
  const flavour = Object.values(FLAVOURS).find((f) => f.root === from) ?? FLAVOURS.debian12;
  const dir = mkdtempSync(join(tmpdir(), "ddum-root-"));
  made.push(dir);
  cpSync(from, dir, { recursive: true });
  for (const f of ["shadow", "gshadow"]) {
    const p = join(dir, "etc", f);
    chownSync(p, 0, flavour.shadowGid);
    chmodSync(p, flavour.shadowMode);
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

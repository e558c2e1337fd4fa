// Home directories: created from /etc/skel when missing, otherwise only checked. A home is the
// user's territory: root never follows a link in it and never changes an existing one.
import { chmodSync, chownSync, cpSync, lchownSync, lstatSync, mkdirSync, readdirSync, realpathSync, rmSync, type Stats } from "node:fs";
import { dirname, join } from "node:path";
import { defsNumber } from "./localdb/logindefs.ts";
import type { Root } from "./paths.ts";
import { syncHomeKeys, syncRootKeys, templatePath } from "./sshkeys.ts";

/** Directories no home may be, or be inside of (for the first group). */
const SYSTEM_TREES = ["/etc", "/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/boot", "/dev", "/proc", "/sys", "/run", "/root"];
const SYSTEM_DIRS = new Set(["/", "/home", "/var", "/tmp", "/opt", "/srv", "/mnt", "/media", "/nonexistent", "/var/tmp", "/var/lib", "/var/log"]);

export function systemDirProblem(home: string): string | null {
  const p = home.replace(/\/+$/, "") || "/";
  if (SYSTEM_DIRS.has(p)) return `${p} is a system directory`;
  for (const t of SYSTEM_TREES) {
    if (p === t) return `${p} is a system directory`;
    if (p.startsWith(`${t}/`)) return `${p} is inside the system directory ${t}`;
  }
  return null;
}

export type HomeState =
  | { ok: true; exists: true; stat: Stats }
  | { ok: true; exists: false }
  | { ok: false; reason: string };

/**
 * Whether ddum may work in this home: the path is not a system directory, every directory above
 * it (below the root prefix) is root's and writable by root only, and the home itself, if it
 * exists, is a real directory (not a link) owned by the user.
 */
export function inspectHome(root: Root, home: string, uid: number): HomeState {
  const sys = systemDirProblem(home);
  if (sys) return { ok: false, reason: `${sys}; refused` };
  const path = root.path(home);
  const parentProblem = checkAncestors(root, dirname(path));
  if (parentProblem) return { ok: false, reason: parentProblem };
  let st: Stats;
  try {
    st = lstatSync(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return { ok: true, exists: false };
    return { ok: false, reason: `cannot inspect ${home}: ${(e as Error).message}` };
  }
  if (st.isSymbolicLink()) return { ok: false, reason: `${home} is a symbolic link; refused (root never follows links in homes)` };
  if (!st.isDirectory()) return { ok: false, reason: `${home} exists and is not a directory; refused` };
  if (st.uid !== uid) return { ok: false, reason: `${home} belongs to UID ${st.uid}, not to the user (UID ${uid}); refused` };
  return { ok: true, exists: true, stat: st };
}

/** Every existing directory from the root prefix down to dir must be root's and not group/other-writable. */
function checkAncestors(root: Root, dir: string): string | null {
  // The nearest existing directory: missing ones will be made by root, mode 0755.
  let real: string;
  let d = dir;
  for (;;) {
    try {
      real = realpathSync(d);
      break;
    } catch {
      const up = dirname(d);
      if (up === d) return `cannot resolve ${dir}`;
      d = up;
    }
  }
  const base = realpathSync(root.dir);
  if (real !== base && !real.startsWith(base === "/" ? "/" : `${base}/`)) {
    return `the directory above the home resolves to ${real}, outside the root ${root.dir}; refused`;
  }
  const parts = real.slice(base.length).split("/").filter(Boolean);
  let cur = base;
  for (const part of ["", ...parts]) {
    cur = part === "" ? cur : join(cur, part);
    if (cur === base) continue;
    const st = lstatSync(cur);
    if (st.uid !== 0 || st.mode & 0o022) {
      return `${cur.slice(base === "/" ? 0 : base.length)} above the home is not owned by root or is writable by others; refused`;
    }
  }
  return null;
}

export function homeMode(defs: Map<string, string>): number {
  const explicit = defsNumber(defs, "HOME_MODE");
  if (explicit !== undefined) return explicit & 0o7777;
  const umask = defsNumber(defs, "UMASK");
  if (umask !== undefined) return 0o777 & ~umask;
  return 0o700;
}

/**
 * Create a home from ROOT/etc/skel. It is built as root's, mode 0700, so nobody can get in while
 * it is being filled; the user gets it (chown, then the final mode) only at the end.
 */
export function createHome(root: Root, home: string, uid: number, gid: number, mode: number): void {
  const path = root.path(home);
  mkdirSync(dirname(path), { recursive: true, mode: 0o755 });
  mkdirSync(path, { mode: 0o700 });
  try {
    const skel = root.etc("skel");
    let entries: string[] = [];
    try {
      entries = readdirSync(skel);
    } catch {
      // no skel: an empty home
    }
    for (const name of entries) {
      cpSync(join(skel, name), join(path, name), { recursive: true, verbatimSymlinks: true, preserveTimestamps: true, errorOnExist: true, force: false });
    }
    const chownTree = (p: string) => {
      for (const name of readdirSync(p)) {
        const child = join(p, name);
        const st = lstatSync(child);
        lchownSync(child, uid, gid);
        if (st.isDirectory()) chownTree(child);
      }
    };
    chownTree(path);
    chownSync(path, uid, gid);
    chmodSync(path, mode);
  } catch (e) {
    rmSync(path, { recursive: true, force: true });
    throw e;
  }
}

export interface HomeUser {
  name: string;
  uid: number;
  gid: number;
  home: string;
  sshKeys: readonly string[];
}

export interface HomesResult {
  homesCreated: string[];
  keysWritten: string[];
  keysRemoved: string[];
  refusals: { name: string; field: string; reason: string }[];
  notices: string[];
}

export interface HomesOptions {
  root: Root;
  createHomes: boolean;
  /** "home", or a %u path template for root-owned key files. */
  keyLocation: string;
  dryRun: boolean;
  loginDefs: Map<string, string>;
}

/** Homes and keys for the managed users; a problem with one user's home never stops the others. */
export function syncHomes(users: HomeUser[], opts: HomesOptions): HomesResult {
  const out: HomesResult = { homesCreated: [], keysWritten: [], keysRemoved: [], refusals: [], notices: [] };
  const mode = homeMode(opts.loginDefs);
  for (const u of users) {
    const state = inspectHome(opts.root, u.home, u.uid);
    let homeReady = false;
    if (!state.ok) {
      out.refusals.push({ name: u.name, field: "Home", reason: state.reason });
    } else if (state.exists) {
      homeReady = true;
    } else if (opts.createHomes) {
      try {
        if (!opts.dryRun) createHome(opts.root, u.home, u.uid, u.gid, mode);
        out.homesCreated.push(u.name);
        homeReady = true;
      } catch (e) {
        out.refusals.push({ name: u.name, field: "Home", reason: `could not create ${u.home}: ${(e as Error).message}` });
      }
    }
    try {
      if (opts.keyLocation === "home") {
        if (!homeReady) {
          if (state.ok && u.sshKeys.length > 0) out.notices.push(`user ${u.name}: ${u.home} does not exist, so its SSH keys were not written`);
          continue;
        }
        // In a dry run a home that would be created does not exist yet: its keys would be written.
        const r = opts.dryRun && state.ok && !state.exists ? (u.sshKeys.length ? "written" : "absent") : syncHomeKeys(opts.root.path(u.home), u.uid, u.gid, u.sshKeys, opts.dryRun);
        if (r === "written") out.keysWritten.push(u.name);
      } else {
        const r = syncRootKeys(templatePath(opts.root, opts.keyLocation, u.name), u.sshKeys, opts.dryRun);
        if (r === "written") out.keysWritten.push(u.name);
        if (r === "removed") out.keysRemoved.push(u.name);
      }
    } catch (e) {
      out.refusals.push({ name: u.name, field: "SSHPublicKeys", reason: (e as Error).message });
    }
  }
  return out;
}

// Home directories: created from /etc/skel when missing, otherwise only checked. A home is the
// user's territory: root never follows a link in it and never changes an existing one.
import {
  chmodSync,
  chownSync,
  closeSync,
  fchownSync,
  lchownSync,
  lstatSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  realpathSync,
  rmSync,
  type Stats,
  statSync,
  symlinkSync,
  writeSync,
  constants as C,
} from "node:fs";
import { dirname, join } from "node:path";
import { defsNumber } from "./localdb/logindefs.ts";
import type { Root } from "./paths.ts";
import { syncFs } from "./fsat.ts";
import { keyFileContent, syncHomeKeys, syncRootKeys, templatePath } from "./sshkeys.ts";

/** Directories no home may be, or be inside of (for the first group). */
const SYSTEM_TREES = ["/etc", "/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/boot", "/dev", "/proc", "/sys", "/run", "/root"];
const SYSTEM_DIRS = new Set(["/", "/home", "/var", "/tmp", "/opt", "/srv", "/mnt", "/media", "/nonexistent", "/var/tmp", "/var/lib", "/var/log"]);

const SYSTEM_TREE_PREFIXES = SYSTEM_TREES.map((t) => `${t}/`);

export function systemDirProblem(home: string): string | null {
  // Called for every user of every pass: no allocation unless the path ends in a slash.
  const p = home.charCodeAt(home.length - 1) === 47 /* / */ ? home.replace(/\/+$/, "") || "/" : home;
  if (SYSTEM_DIRS.has(p)) return `${p} is a system directory`;
  for (let i = 0; i < SYSTEM_TREES.length; i++) {
    const t = SYSTEM_TREES[i]!;
    if (p === t) return `${p} is a system directory`;
    if (p.startsWith(SYSTEM_TREE_PREFIXES[i]!)) return `${p} is inside the system directory ${t}`;
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
export function inspectHome(root: Root, home: string, uid: number, ancestors = new Map<string, string | null>()): HomeState {
  const sys = systemDirProblem(home);
  if (sys) return { ok: false, reason: `${sys}; refused` };
  const path = root.path(home);
  const parent = dirname(path);
  let parentProblem = ancestors.get(parent);
  if (parentProblem === undefined) {
    parentProblem = checkAncestors(root, parent);
    ancestors.set(parent, parentProblem);
  }
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

/**
 * The checks of inspectHome that do not look at the home itself: not a system directory, and
 * every directory above it root's and not writable by others (cached per parent directory).
 */
export function homeMayBeUsed(root: Root, home: string, ancestors: Map<string, string | null>): boolean {
  if (systemDirProblem(home)) return false;
  const parent = dirname(root.path(home));
  let problem = ancestors.get(parent);
  if (problem === undefined) {
    problem = checkAncestors(root, parent);
    ancestors.set(parent, problem);
  }
  return problem === null;
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

interface SkelEntry {
  rel: string;
  kind: "file" | "dir" | "link";
  mode: number;
  data: Buffer | string;
}

/** ROOT/etc/skel, read once per pass. */
export function readSkel(root: Root): SkelEntry[] {
  const out: SkelEntry[] = [];
  const walk = (dir: string, rel: string) => {
    let names: string[];
    try {
      names = readdirSync(dir).sort();
    } catch {
      return; // no skel: empty homes
    }
    for (const name of names) {
      const p = join(dir, name);
      const r = rel ? `${rel}/${name}` : name;
      const st = lstatSync(p);
      if (st.isSymbolicLink()) out.push({ rel: r, kind: "link", mode: 0, data: readlinkSync(p) });
      else if (st.isDirectory()) {
        out.push({ rel: r, kind: "dir", mode: st.mode & 0o7777, data: "" });
        walk(p, r);
      } else if (st.isFile()) out.push({ rel: r, kind: "file", mode: st.mode & 0o7777, data: readFileSync(p) });
    }
  };
  walk(root.etc("skel"), "");
  return out;
}

/**
 * Create a home from the skeleton, with the user's keys already in it. It is built as root's,
 * mode 0700, so nobody can get in while it is being filled (plain paths are safe inside it); the
 * user gets it (chown, then the final mode) only at the end.
 */
export function createHome(path: string, uid: number, gid: number, mode: number, skel: SkelEntry[], keys: string | null, parentsMade?: Set<string>): void {
  const parent = dirname(path);
  if (!parentsMade?.has(parent)) {
    mkdirSync(parent, { recursive: true, mode: 0o755 });
    parentsMade?.add(parent);
  }
  mkdirSync(path, { mode: 0o700 });
  const oldMask = process.umask(0);
  try {
    const file = (p: string, m: number, data: Buffer | string) => {
      const fd = openSync(p, C.O_WRONLY | C.O_CREAT | C.O_EXCL | C.O_NOFOLLOW, m);
      try {
        writeSync(fd, typeof data === "string" ? Buffer.from(data) : data);
        fchownSync(fd, uid, gid);
      } finally {
        closeSync(fd);
      }
    };
    for (const e of skel) {
      const p = join(path, e.rel);
      if (e.kind === "file") file(p, e.mode, e.data);
      else if (e.kind === "dir") {
        mkdirSync(p, { mode: e.mode });
        lchownSync(p, uid, gid);
      } else {
        symlinkSync(e.data as string, p);
        lchownSync(p, uid, gid);
      }
    }
    if (keys !== null) {
      const ssh = join(path, ".ssh");
      if (!skel.some((e) => e.rel === ".ssh")) mkdirSync(ssh, { mode: 0o700 });
      lchownSync(ssh, uid, gid);
      file(join(ssh, "authorized_keys"), 0o600, keys);
    }
    chownSync(path, uid, gid);
    chmodSync(path, mode);
  } catch (e) {
    rmSync(path, { recursive: true, force: true });
    throw e;
  } finally {
    process.umask(oldMask);
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
  /**
   * Users whose key file (root-owned, or in an existing home with everything around it as it
   * should be) was found in place while the scan ran: nothing is opened for them again.
   */
  keysInPlace?: ReadonlySet<string>;
  /** Users whose root-owned key file did not exist while the scan ran: created without another look. */
  keysMissing?: ReadonlySet<string>;
}

/** Homes and keys for the managed users; a problem with one user's home never stops the others. */
export function syncHomes(users: HomeUser[], opts: HomesOptions): HomesResult {
  const out: HomesResult = { homesCreated: [], keysWritten: [], keysRemoved: [], refusals: [], notices: [] };
  const mode = homeMode(opts.loginDefs);
  const inHomes = opts.keyLocation === "home";
  const ancestors = new Map<string, string | null>();
  let skel: SkelEntry[] | null = null;
  const touched = new Set<string>();
  const parentsMade = new Set<string>();
  const rootKeys = (u: HomeUser) => {
    if (opts.keysInPlace?.has(u.name)) return;
    try {
      const path = templatePath(opts.root, opts.keyLocation, u.name);
      const r = syncRootKeys(path, u.sshKeys, opts.dryRun, opts.keysMissing?.has(u.name));
      if (r === "written") out.keysWritten.push(u.name);
      if (r === "removed") out.keysRemoved.push(u.name);
      if (r !== "unchanged" && r !== "absent") touched.add(dirname(path));
    } catch (e) {
      out.refusals.push({ name: u.name, field: "SSHPublicKeys", reason: (e as Error).message });
    }
  };
  // Keys outside homes and no home creation: homes are none of ddum's business in this pass.
  const homesMatter = inHomes || opts.createHomes;
  let writes = 0;
  let collectedAt = 0;
  for (const u of users) {
    // Collect now and then while writing: each file written leaves buffers and strings behind,
    // and at 100,000 new users letting them pile up costs hundreds of megabytes of resident
    // memory. A pass that only checks does not pay for collections it does not need.
    writes = out.homesCreated.length + out.keysWritten.length + out.keysRemoved.length;
    if (writes - collectedAt >= 5000) {
      Bun.gc(false);
      collectedAt = writes;
    }
    if (!homesMatter) {
      rootKeys(u);
      continue;
    }
    if (inHomes && opts.keysInPlace?.has(u.name)) continue; // the home exists, its keys are right
    const state = inspectHome(opts.root, u.home, u.uid, ancestors);
    let homeReady = false;
    if (!state.ok) {
      out.refusals.push({ name: u.name, field: "Home", reason: state.reason });
    } else if (state.exists) {
      homeReady = true;
    } else if (opts.createHomes) {
      const path = opts.root.path(u.home);
      try {
        const keys = inHomes && u.sshKeys.length > 0 ? keyFileContent(u.sshKeys) : null;
        if (!opts.dryRun) {
          skel ??= readSkel(opts.root);
          createHome(path, u.uid, u.gid, mode, skel, keys, parentsMade);
          touched.add(dirname(path));
        }
        out.homesCreated.push(u.name);
        if (keys !== null) out.keysWritten.push(u.name);
      } catch (e) {
        out.refusals.push({ name: u.name, field: "Home", reason: `could not create ${u.home}: ${(e as Error).message}` });
      }
      if (inHomes) continue; // its keys went in with the skeleton
    }
    if (!inHomes) {
      rootKeys(u);
      continue;
    }
    if (!homeReady) {
      if (state.ok && u.sshKeys.length > 0) out.notices.push(`user ${u.name}: ${u.home} does not exist, so its SSH keys were not written`);
      continue;
    }
    try {
      const path = opts.root.path(u.home);
      if (syncHomeKeys(path, u.uid, u.gid, u.sshKeys, opts.dryRun) === "written") {
        out.keysWritten.push(u.name);
        touched.add(path);
      }
    } catch (e) {
      out.refusals.push({ name: u.name, field: "SSHPublicKeys", reason: (e as Error).message });
    }
  }
  // One flush per file system instead of an fsync per file.
  const devices = new Set<number>();
  for (const dir of touched) {
    try {
      const dev = statSync(dir).dev;
      if (devices.has(dev)) continue;
      devices.add(dev);
      syncFs(dir);
    } catch {
      // a directory that vanished has nothing left to flush
    }
  }
  return out;
}

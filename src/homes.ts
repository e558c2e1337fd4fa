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
import { getLabelRoot, labelNewTree } from "./selinux.ts";
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

export interface SkelEntry {
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
export function createHome(path: string, uid: number, gid: number, mode: number, skel: SkelEntry[], keys: string | null, parentsMade?: Set<string>, umaskIsZero = false): void {
  const parent = dirname(path);
  if (!parentsMade?.has(parent)) {
    mkdirSync(parent, { recursive: true, mode: 0o755 });
    parentsMade?.add(parent);
  }
  mkdirSync(path, { mode: 0o700 });
  // The umask is the process's, shared by its threads: a caller creating homes on two threads
  // sets it to 0 once around both, and says so.
  const oldMask = umaskIsZero ? 0 : process.umask(0);
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
    // Still root's and closed to others: the policy's labels go on by path, nothing can move.
    labelNewTree(path);
    chownSync(path, uid, gid);
    chmodSync(path, mode);
  } catch (e) {
    rmSync(path, { recursive: true, force: true });
    throw e;
  } finally {
    if (!umaskIsZero) process.umask(oldMask);
  }
}

/** One home to create: what createHome needs besides the skeleton and the mode. */
export interface HomeJob {
  path: string;
  uid: number;
  gid: number;
  /** The user's keys for ~/.ssh/authorized_keys; null: no key file. */
  keys: readonly string[] | null;
}

/** Create homes one after the other (umask already 0): null for each one made, else why not. */
export function createHomes(jobs: readonly HomeJob[], mode: number, skel: SkelEntry[], parentsMade = new Set<string>()): (string | null)[] {
  return jobs.map((j) => {
    try {
      createHome(j.path, j.uid, j.gid, mode, skel, j.keys === null ? null : keyFileContent(j.keys), parentsMade, true);
      return null;
    } catch (e) {
      return (e as Error).message;
    }
  });
}

/** How many homes the worker made in the last parallel creation (for tests and traces). */
export const parallelHomes = { byWorker: 0 };

/** Below this many new homes a pass creates them on its own thread: a worker costs ~30 ms to start. */
export const PARALLEL_HOMES = 2000;
const BATCH = 250;

/**
 * Create many homes on two threads, this one and a worker, which take batches of 250 from one
 * list until it is empty (file creation is kernel work in each home's own directory and runs in
 * parallel: 1.45x on two cores, measured). At most two batches are on their way to the worker,
 * so neither thread holds more than a few batches of garbage. If the worker cannot start or dies,
 * this thread does the rest, and of the batches the worker held, makes whatever is missing.
 */
export async function createHomesInParallel(jobs: readonly HomeJob[], mode: number, skel: SkelEntry[], workerUrl = new URL("./homes-worker.ts", import.meta.url).href): Promise<(string | null)[]> {
  const out = new Array<string | null>(jobs.length).fill(null);
  let next = 0;
  let byWorker = 0;
  // Two batches on their way, so that the worker has the next one while this thread is busy
  // with its own and cannot answer.
  const held: { from: number; to: number }[] = [];
  let lost: { from: number; to: number }[] = [];
  let worker: Worker | null = null;
  let stopped!: () => void;
  const workerDone = new Promise<void>((resolve) => {
    stopped = resolve;
  });
  const stop = () => {
    worker?.terminate();
    worker = null;
    stopped();
  };
  const feed = (first: boolean) => {
    while (worker && held.length < 2 && next < jobs.length) {
      const batch = { from: next, to: Math.min(jobs.length, next + BATCH) };
      next = batch.to;
      held.push(batch);
      worker.postMessage({ jobs: jobs.slice(batch.from, batch.to), mode, ...(first ? { skel, labelRoot: getLabelRoot() } : {}) });
      first = false;
    }
    if (held.length === 0) stop();
  };
  const fail = () => {
    lost = held.splice(0);
    stop();
  };
  try {
    worker = new Worker(workerUrl);
    worker.onmessage = (e: MessageEvent) => {
      const r = e.data as (string | null)[];
      const h = held.shift()!;
      for (let i = 0; i < r.length; i++) {
        out[h.from + i] = r[i]!;
        if (r[i] === null) byWorker++;
      }
      feed(false);
    };
    worker.onerror = fail;
    worker.addEventListener("close", () => (held.length > 0 ? fail() : stop()));
    feed(true);
  } catch {
    stop();
  }
  const parentsMade = new Set<string>();
  for (let batches = 1; next < jobs.length; batches++) {
    const from = next;
    next = Math.min(jobs.length, next + BATCH);
    const r = createHomes(jobs.slice(from, next), mode, skel, parentsMade);
    for (let i = 0; i < r.length; i++) out[from + i] = r[i]!;
    if (batches % 20 === 0) Bun.gc(false);
    await new Promise((resolve) => setImmediate(resolve)); // let the worker's answer in
  }
  await workerDone;
  for (const missed of lost) {
    for (let i = missed.from; i < missed.to; i++) {
      const j = jobs[i]!;
      try {
        lstatSync(j.path); // made by the worker before it died: never made over
        out[i] = null;
      } catch {
        out[i] = createHomes([j], mode, skel, parentsMade)[0]!;
      }
    }
  }
  parallelHomes.byWorker = byWorker;
  return out;
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
export async function syncHomes(users: HomeUser[], opts: HomesOptions): Promise<HomesResult> {
  const out: HomesResult = { homesCreated: [], keysWritten: [], keysRemoved: [], refusals: [], notices: [] };
  const mode = homeMode(opts.loginDefs);
  const inHomes = opts.keyLocation === "home";
  const ancestors = new Map<string, string | null>();
  const touched = new Set<string>();
  const parentsMade = new Set<string>();
  const toCreate: { user: HomeUser; job: HomeJob }[] = [];
  parallelHomes.byWorker = 0;
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
    // Collect now and then while writing, or while finding homes to make (each look leaves a
    // Stats object and paths behind): at 100,000 new users letting them pile up costs hundreds
    // of megabytes of resident memory. A pass that only checks does not pay for collections.
    writes = out.homesCreated.length + out.keysWritten.length + out.keysRemoved.length + toCreate.length;
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
      // Made after this loop, all together (on two threads when there are many).
      const keys = inHomes && u.sshKeys.length > 0 ? u.sshKeys : null;
      toCreate.push({ user: u, job: { path: opts.root.path(u.home), uid: u.uid, gid: u.gid, keys } });
      if (inHomes) continue; // its keys go in with the skeleton
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
  if (toCreate.length > 0) {
    let outcomes: (string | null)[];
    if (opts.dryRun) outcomes = toCreate.map(() => null);
    else {
      const skel = readSkel(opts.root);
      const jobs = toCreate.map((c) => c.job);
      for (const j of jobs) {
        const parent = dirname(j.path);
        if (!parentsMade.has(parent)) {
          mkdirSync(parent, { recursive: true, mode: 0o755 });
          parentsMade.add(parent);
        }
      }
      const oldMask = process.umask(0);
      try {
        outcomes = jobs.length >= PARALLEL_HOMES ? await createHomesInParallel(jobs, mode, skel) : createHomes(jobs, mode, skel, parentsMade);
      } finally {
        process.umask(oldMask);
      }
    }
    toCreate.forEach(({ user: u, job }, i) => {
      const failed = outcomes[i];
      if (failed) {
        out.refusals.push({ name: u.name, field: "Home", reason: `could not create ${u.home}: ${failed}` });
        return;
      }
      if (!opts.dryRun) touched.add(dirname(job.path));
      out.homesCreated.push(u.name);
      if (job.keys !== null) out.keysWritten.push(u.name);
    });
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

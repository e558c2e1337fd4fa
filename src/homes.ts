// Home directories: created from /etc/skel when missing, otherwise only checked. A home is the
// user's territory: root never follows a link in it and never changes an existing one.
import {
  chmodSync,
  chownSync,
  closeSync,
  fchownSync,
  fstatSync,
  lchownSync,
  lstatSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  type Stats,
  statSync,
  symlinkSync,
  writeSync,
  constants as C,
} from "node:fs";
import { basename, dirname, join } from "node:path";
import { defsNumber } from "./localdb/logindefs.ts";
import type { Root } from "./paths.ts";
import { createHash } from "node:crypto";
import { AT_FDCWD, lstatAt, openAt, openDirNoFollow, syncFs } from "./fsat.ts";
import { readWhole, renameNoReplace, TEMP_MARK } from "./safefile.ts";
import { normalPath, overlaps, PathResolver, within } from "./safepath.ts";
import { getLabelRoot, labelNewTree } from "./selinux.ts";
import { stopSignal } from "./stop.ts";
import { KeyDirRules, keyFileContent, MAX_READ, syncHomeKeys, syncRootKeys } from "./sshkeys.ts";

/** Directories no home may be, or be inside of (for the first group). */
const SYSTEM_TREES = ["/etc", "/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/boot", "/dev", "/proc", "/sys", "/run", "/root"];
const SYSTEM_DIRS = new Set(["/", "/home", "/var", "/tmp", "/opt", "/srv", "/mnt", "/media", "/nonexistent", "/var/tmp", "/var/lib", "/var/log"]);

const SYSTEM_TREE_PREFIXES = SYSTEM_TREES.map((t) => `${t}/`);

export function systemDirProblem(home: string): string | null {
  // Called for every user of every pass: no allocation unless the path is not in normal form.
  const p = normalPath(home);
  if (SYSTEM_DIRS.has(p)) return `${p} is a system directory`;
  for (let i = 0; i < SYSTEM_TREES.length; i++) {
    const t = SYSTEM_TREES[i]!;
    if (p === t) return `${p} is a system directory`;
    if (p.startsWith(SYSTEM_TREE_PREFIXES[i]!)) return `${p} is inside the system directory ${t}`;
  }
  return null;
}

export type HomeState =
  | { ok: true; exists: true; stat: Stats; path: string }
  | { ok: true; exists: false; path: string }
  | { ok: false; reason: string };

/**
 * The directories that are ddum's own (the fixed part of a %u key template, the state directory,
 * the metrics file's directory): no home may be one of them, hold one, or lie inside one.
 */
export function ownDirs(keyLocation: string, stateDir: string, metricsFile: string): string[] {
  const out: string[] = [];
  const kd = keyDirOf(keyLocation);
  if (kd !== null) out.push(kd);
  out.push(normalPath(stateDir));
  if (metricsFile !== "") out.push(dirname(normalPath(metricsFile)));
  return out;
}

/** The directory a %u template's files all lie in: its path up to the first part holding %u. */
export function keyDirOf(template: string): string | null {
  if (template === "home") return null;
  const parts = normalPath(template).split("/");
  const at = parts.findIndex((x) => x.includes("%u"));
  return normalPath(parts.slice(0, at).join("/") || "/");
}

/**
 * Where homes may be, for one pass: every home is judged in its normal spelling and again where
 * its links lead (inside the root), against the system directories and ddum's own; every
 * existing directory above it must be root's and not writable by others. Cached per directory.
 */
export class HomeRules {
  private readonly resolver: PathResolver;
  private readonly own: string[];
  private readonly parents = new Map<string, { problem: string | null; path: string }>();

  constructor(
    private readonly root: Root,
    own: readonly string[] = [],
    /** Every home of this pass (normal form): none is ever made as another home's parent. */
    readonly homes: ReadonlySet<string> = new Set(),
  ) {
    this.resolver = new PathResolver(root, true);
    const plain = new PathResolver(root, false);
    this.own = [...new Set(own.flatMap((d) => [normalPath(d), plain.resolve(d).path]))];
  }

  private placeProblem(home: string, n: string): string | null {
    const sys = systemDirProblem(n);
    if (sys) return n === home ? sys : `${home} is ${n}: ${sys}`;
    for (const d of this.own) {
      if (overlaps(n, d)) return `${home}${n === home ? "" : ` (${n})`} is, holds or lies inside ddum's own directory ${d}`;
    }
    return null;
  }

  /** The home's path on this machine (links resolved) when it may be used; else why not. */
  place(home: string): { problem: string | null; path: string } {
    const n = normalPath(home);
    const base = n.slice(n.lastIndexOf("/") + 1);
    let problem = this.placeProblem(home, n);
    if (!problem && base.startsWith(TEMP_MARK)) problem = `${home}: names starting with ${TEMP_MARK} are ddum's homes under construction`;
    if (problem) return { problem: `${problem}; refused`, path: "" };
    const parentPath = dirname(n);
    let parent = this.parents.get(parentPath);
    if (parent === undefined) {
      parent = this.parent(parentPath);
      this.parents.set(parentPath, parent);
    }
    if (parent.problem) return { problem: `${parent.problem}; refused`, path: "" };
    const resolved = parent.path === "/" ? `/${base}` : `${parent.path}/${base}`;
    if (resolved !== n) {
      problem = this.placeProblem(home, resolved);
      if (problem) return { problem: `${problem}; refused`, path: "" };
    }
    return { problem: null, path: this.root.path(resolved) };
  }

  private parent(dir: string): { problem: string | null; path: string } {
    const r = this.resolver.resolve(dir);
    if (r.problem) return { problem: `${r.problem} (above the home)`, path: r.path };
    if (r.kind !== "dir" && r.kind !== "missing") return { problem: `${dir} above the home is not a directory`, path: r.path };
    if (r.dangling) return { problem: `${dir} above the home leads through a symbolic link to ${r.path}, which does not exist`, path: r.path };
    // Directories ddum would make above the home: never another user's home (it would be root's).
    for (let d = dir, i = 0; i < r.missing && d !== "/"; i++, d = dirname(d)) {
      // (A home in a system directory or ddum's own is never made: it stops no one else.)
      if (this.homes.has(d) && this.placeProblem(d, d) === null) return { problem: `${d}, above the home, is another user's home and is not made by ddum as a parent`, path: r.path };
    }
    return { problem: null, path: r.path };
  }
}

/**
 * Whether ddum may work in this home: the place is allowed (HomeRules), and the home itself, if
 * it exists, is a real directory (not a link) owned by the user.
 */
export function inspectHome(root: Root, home: string, uid: number, rules: HomeRules = new HomeRules(root)): HomeState {
  const place = rules.place(home);
  if (place.problem) return { ok: false, reason: place.problem };
  const path = place.path;
  let st: Stats;
  try {
    st = lstatSync(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return { ok: true, exists: false, path };
    return { ok: false, reason: `cannot inspect ${home}: ${(e as Error).message}` };
  }
  if (st.isSymbolicLink()) return { ok: false, reason: `${home} is a symbolic link; refused (root never follows links in homes)` };
  if (!st.isDirectory()) return { ok: false, reason: `${home} exists and is not a directory; refused` };
  if (st.uid !== uid) return { ok: false, reason: `${home} belongs to UID ${st.uid}, not to the user (UID ${uid}); refused` };
  return { ok: true, exists: true, stat: st, path };
}

/**
 * The checks of inspectHome that do not look at the home itself (see HomeRules): the home's
 * path on this machine, or null when it may not be used.
 */
export function homeMayBeUsed(home: string, rules: HomeRules): string | null {
  const p = rules.place(home);
  return p.problem ? null : p.path;
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
 * Create a home from the skeleton, with the user's keys already in it. It is built under a
 * temporary name (TEMP_MARK, which no home may use) in its parent, as root's, mode 0700, so
 * nobody can get in while it is being filled (plain paths are safe inside it); it gets its owner
 * and mode, and only then is renamed into place, never over anything. A pass stopped or killed
 * half way leaves only the temporary directory, which the next pass removes and builds again.
 */
export function createHome(path: string, uid: number, gid: number, mode: number, skel: SkelEntry[], keys: string | null, parentsMade?: Set<string>, umaskIsZero = false): void {
  const parent = dirname(path);
  if (!parentsMade?.has(parent)) {
    mkdirSync(parent, { recursive: true, mode: 0o755 });
    parentsMade?.add(parent);
  }
  const name = basename(path);
  const tmpName = `${TEMP_MARK}home~${name}`;
  const tmp = join(parent, tmpName);
  const dirfd = openDirNoFollow(AT_FDCWD, parent);
  try {
    // A temporary home of an earlier pass that was stopped. Root's: half-built, made again. The
    // user's: ddum gives it to the user only once it is complete, just before the rename, so the
    // rename is what is left to do (never removed: the user may have been in it).
    const stale = lstatAt(dirfd, tmpName);
    if (stale) {
      if (stale.isDirectory() && stale.uid === uid && uid !== 0) {
        renameNoReplace(dirfd, tmpName, name);
        return;
      }
      if (!stale.isDirectory() || stale.uid !== 0) throw new Error(`${tmp} is in the way and is not ddum's; remove it`);
      rmSync(tmp, { recursive: true, force: true });
    }
    mkdirSync(tmp, { mode: 0o700 });
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
        const p = join(tmp, e.rel);
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
        const ssh = join(tmp, ".ssh");
        if (!skel.some((e) => e.rel === ".ssh")) mkdirSync(ssh, { mode: 0o700 });
        lchownSync(ssh, uid, gid);
        file(join(ssh, "authorized_keys"), 0o600, keys);
      }
      // Still root's and closed to others: the policy's labels go on by path and nothing can be
      // moved under them (the home's temporary name sits beside its real one, so the policy's
      // rules for the parent's children give the same labels).
      labelNewTree(tmp);
      chownSync(tmp, uid, gid);
      chmodSync(tmp, mode);
      renameNoReplace(dirfd, tmpName, name);
    } catch (e) {
      rmSync(tmp, { recursive: true, force: true });
      throw e;
    } finally {
      if (!umaskIsZero) process.umask(oldMask);
    }
  } finally {
    closeSync(dirfd);
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
    if (stopSignal.requested) return `not made: the pass was stopped by ${stopSignal.requested}`;
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

/**
 * How many writes apart bulk work collects: about twenty collections in all, and none closer than
 * 1,000 writes apart. At 10,000 new users every 1,000 took a first pass's peak from ~125 to
 * ~116 MB; at 100,000 every 1,000 cost ~15 % more CPU for ~20 MB, every 5,000 (what this gives
 * there) does not.
 */
const collectionSpacing = (total: number): number => Math.max(1000, Math.ceil(total / 20));

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
export async function createHomesInParallel(
  jobs: readonly HomeJob[],
  mode: number,
  skel: SkelEntry[],
  workerUrl = new URL("./homes-worker.ts", import.meta.url).href,
  collect?: (full: boolean) => void,
): Promise<(string | null)[]> {
  const out = new Array<string | null>(jobs.length).fill(null);
  let next = 0;
  let byWorker = 0;
  // Each thread collects every `every` of its batches (see collectionSpacing).
  const every = Math.ceil(collectionSpacing(jobs.length) / BATCH);
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
    while (worker && held.length < 2 && next < jobs.length && !stopSignal.requested) {
      const batch = { from: next, to: Math.min(jobs.length, next + BATCH) };
      next = batch.to;
      held.push(batch);
      worker.postMessage({ jobs: jobs.slice(batch.from, batch.to), mode, ...(first ? { skel, labelRoot: getLabelRoot(), collectEvery: collect ? every : 0 } : {}) });
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
    if (batches % every === 0) collect?.(false);
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
  /** Each key file written or removed: the file (as on the host) and the keys that came and went, by fingerprint. */
  keyChanges: KeyChange[];
  refusals: { name: string; field: string; reason: string }[];
  notices: string[];
}

export interface KeyChange {
  name: string;
  file: string;
  added: string[];
  removed: string[];
}

/** OpenSSH's fingerprint of a key line (SHA256:, unpadded base64 of the decoded key data). */
export function keyFingerprint(key: string): string {
  const blob = key.trim().split(/ +/)[1] ?? "";
  return `SHA256:${createHash("sha256").update(Buffer.from(blob, "base64")).digest("base64").replace(/=+$/, "")}`;
}

/** The fingerprints that come and go when a key file holding before is made to hold after. */
export function keyDiff(before: readonly string[], after: readonly string[]): { added: string[]; removed: string[] } {
  const was = new Set(before.map(keyFingerprint));
  const will = new Set(after.map(keyFingerprint));
  return { added: [...will].filter((f) => !was.has(f)), removed: [...was].filter((f) => !will.has(f)) };
}

/** A key file's lines, read through dirfd without following a link; none when it is not a regular file or is over MAX_READ bytes. */
function keyLinesAt(dirfd: number, name: string): string[] {
  let fd: number;
  try {
    fd = openAt(dirfd, name, C.O_RDONLY | C.O_NOFOLLOW | C.O_NONBLOCK);
  } catch {
    return [];
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile() || st.size > MAX_READ) return [];
    // Read to MAX_READ at most, even if the file grows meanwhile (a user's file, in a home).
    const buf = readWhole(fd, st.size, MAX_READ);
    if (buf.length > MAX_READ) return [];
    return buf.toString("utf8").split("\n").filter((l) => l !== "" && !l.startsWith("#"));
  } finally {
    closeSync(fd);
  }
}

/**
 * The keys a key file holds now, read before it is replaced so the report can say which left:
 * every step opened without following a link, at most MAX_READ bytes; anything odd reads as
 * none (the write that follows refuses it with the reason).
 */
function keysNow(dir: string, name: string, inHome: boolean): string[] {
  let fd: number;
  try {
    fd = inHome ? openDirNoFollow(AT_FDCWD, dir) : openAt(AT_FDCWD, dir, C.O_RDONLY | C.O_DIRECTORY);
  } catch {
    return [];
  }
  try {
    if (!inHome) return keyLinesAt(fd, name);
    let ssh: number;
    try {
      ssh = openDirNoFollow(fd, ".ssh");
    } catch {
      return [];
    }
    try {
      return keyLinesAt(ssh, name);
    } finally {
      closeSync(ssh);
    }
  } catch {
    return [];
  } finally {
    closeSync(fd);
  }
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
  /** Where homes and key files may be (the same rules the scan-time check used). */
  homeRules?: HomeRules;
  keyDirRules?: KeyDirRules;
  /** Told when bulk work has left garbage to collect (see perf.ts); nothing by default. */
  collect?: (full: boolean) => void;
}

/**
 * Key directories for a pass: ddum never makes a user's home as one (see KeyDirRules). A home in
 * a system directory, or one that is or holds the template's fixed directory, is never made as
 * a home and must not stop every user's key file.
 */
export function keyRulesFor(root: Root, rules: HomeRules, keyLocation: string): KeyDirRules {
  const kd = keyDirOf(keyLocation);
  return new KeyDirRules(root, (p) => rules.homes.has(p) && systemDirProblem(p) === null && !(kd !== null && within(kd, p)));
}

/** Every home of a pass, in normal form. */
export function homesOf(users: readonly { home: string }[]): Set<string> {
  const out = new Set<string>();
  // A record without Home has no home: it contains nothing.
  for (const u of users) if (u.home !== "") out.add(normalPath(u.home));
  return out;
}

/** Homes and keys for the managed users; a problem with one user's home never stops the others. */
export async function syncHomes(users: HomeUser[], opts: HomesOptions): Promise<HomesResult> {
  const out: HomesResult = { homesCreated: [], keysWritten: [], keysRemoved: [], keyChanges: [], refusals: [], notices: [] };
  const mode = homeMode(opts.loginDefs);
  const inHomes = opts.keyLocation === "home";
  const rules = opts.homeRules ?? new HomeRules(opts.root, [], homesOf(users));
  const keyRules = opts.keyDirRules ?? keyRulesFor(opts.root, rules, opts.keyLocation);
  const touched = new Set<string>();
  const parentsMade = new Set<string>();
  const toCreate: { user: HomeUser; job: HomeJob }[] = [];
  parallelHomes.byWorker = 0;
  const rootKeys = (u: HomeUser) => {
    if (opts.keysInPlace?.has(u.name)) return;
    try {
      const path = keyRules.path(opts.keyLocation, u.name);
      const missing = opts.keysMissing?.has(u.name);
      const before = missing ? [] : keysNow(dirname(path), basename(path), false);
      const r = syncRootKeys(path, u.sshKeys, opts.dryRun, missing);
      if (r === "written") out.keysWritten.push(u.name);
      if (r === "removed") out.keysRemoved.push(u.name);
      if (r === "written" || r === "removed") out.keyChanges.push({ name: u.name, file: opts.keyLocation.replaceAll("%u", u.name), ...keyDiff(before, u.sshKeys) });
      if (r !== "unchanged" && r !== "absent") touched.add(dirname(path));
    } catch (e) {
      out.refusals.push({ name: u.name, field: "SSHPublicKeys", reason: (e as Error).message });
    }
  };
  // Keys outside homes and no home creation: homes are none of ddum's business in this pass.
  const homesMatter = inHomes || opts.createHomes;
  let writes = 0;
  let collectedAt = 0;
  const every = collectionSpacing(users.length);
  for (const u of users) {
    // Collect now and then while writing, or while finding homes to make (each look leaves a
    // Stats object and paths behind): at 100,000 new users letting them pile up costs hundreds
    // of megabytes of resident memory. A pass that only checks does not pay for collections.
    writes = out.homesCreated.length + out.keysWritten.length + out.keysRemoved.length + toCreate.length;
    if (writes - collectedAt >= every) {
      opts.collect?.(false);
      collectedAt = writes;
    }
    if (!homesMatter) {
      rootKeys(u);
      continue;
    }
    // No Home in the record (read as empty): no home is made and no key goes into one.
    if (u.home === "") {
      if (!inHomes) rootKeys(u);
      continue;
    }
    if (inHomes && opts.keysInPlace?.has(u.name)) continue; // the home exists, its keys are right
    if (stopSignal.requested) {
      out.refusals.push({ name: u.name, field: "Home", reason: `not looked at: the pass was stopped by ${stopSignal.requested}` });
      continue;
    }
    const state = inspectHome(opts.root, u.home, u.uid, rules);
    let homeReady = false;
    if (!state.ok) {
      out.refusals.push({ name: u.name, field: "Home", reason: state.reason });
    } else if (state.exists) {
      homeReady = true;
    } else if (opts.createHomes) {
      // Made after this loop, all together (on two threads when there are many).
      const keys = inHomes && u.sshKeys.length > 0 ? u.sshKeys : null;
      toCreate.push({ user: u, job: { path: state.path, uid: u.uid, gid: u.gid, keys } });
      if (inHomes) continue; // its keys go in with the skeleton
    }
    if (!inHomes) {
      rootKeys(u);
      continue;
    }
    if (!homeReady || !state.ok) {
      if (state.ok && u.sshKeys.length > 0) out.notices.push(`user ${u.name}: ${u.home} does not exist, so its SSH keys were not written`);
      continue;
    }
    try {
      const path = state.path;
      const before = keysNow(path, "authorized_keys", true);
      if (syncHomeKeys(path, u.uid, u.gid, u.sshKeys, opts.dryRun) === "written") {
        out.keysWritten.push(u.name);
        out.keyChanges.push({ name: u.name, file: `${u.home}/.ssh/authorized_keys`, ...keyDiff(before, u.sshKeys) });
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
      // A parent that cannot be made fails its own users' homes, and no one else's.
      const parentFailed = new Map<string, string>();
      const jobs: HomeJob[] = [];
      const jobAt: number[] = [];
      toCreate.forEach(({ job: j }, i) => {
        const parent = dirname(j.path);
        if (!parentsMade.has(parent) && !parentFailed.has(parent)) {
          try {
            mkdirSync(parent, { recursive: true, mode: 0o755 });
            parentsMade.add(parent);
          } catch (e) {
            parentFailed.set(parent, `cannot make ${parent}: ${(e as Error).message}`);
          }
        }
        if (!parentFailed.has(parent)) {
          jobs.push(j);
          jobAt.push(i);
        }
      });
      const oldMask = process.umask(0);
      let made: (string | null)[];
      try {
        made = jobs.length >= PARALLEL_HOMES ? await createHomesInParallel(jobs, mode, skel, undefined, opts.collect) : createHomes(jobs, mode, skel, parentsMade);
      } finally {
        process.umask(oldMask);
      }
      outcomes = toCreate.map(({ job: j }) => parentFailed.get(dirname(j.path)) ?? null);
      jobAt.forEach((i, k) => {
        outcomes[i] = made[k]!;
      });
    }
    toCreate.forEach(({ user: u, job }, i) => {
      const failed = outcomes[i];
      if (failed) {
        out.refusals.push({ name: u.name, field: "Home", reason: `could not create ${u.home}: ${failed}` });
        return;
      }
      if (!opts.dryRun) touched.add(dirname(job.path));
      out.homesCreated.push(u.name);
      if (job.keys !== null) {
        out.keysWritten.push(u.name);
        out.keyChanges.push({ name: u.name, file: `${u.home}/.ssh/authorized_keys`, ...keyDiff([], job.keys) });
      }
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

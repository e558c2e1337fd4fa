// SSH keys: exactly the table's keys, in the user's home (~/.ssh/authorized_keys, written through
// no-follow directory descriptors) or in root-owned files outside homes (a %u path template).
import { constants as C, closeSync, fchmodSync, fchownSync, fstatSync, readFileSync, rmSync, writeSync } from "node:fs";
import { basename, dirname } from "node:path";
import {
  AT_FDCWD,
  closeFast,
  EEXIST,
  ELOOP,
  ENOENT,
  ENOTDIR,
  errnoName,
  fstatFast,
  lstatAt,
  mkdirAt,
  openAt,
  openAtFast,
  openDirNoFollow,
  readExactly,
  readIfSize,
  SIG,
  SIG_WORDS,
  SysError,
  statSignature,
} from "./fsat.ts";
import { KeyLedger } from "./keyledger.ts";
import type { Root } from "./paths.ts";
import { readWhole, writeFileAt, writeFileSafely } from "./safefile.ts";
import { labelNewFile } from "./selinux.ts";
import { normalPath, PathResolver } from "./safepath.ts";

export const KEY_HEADER = "# Managed by ddum from the Users table: local edits are overwritten on the next pass.";

export function keyFileContent(keys: readonly string[]): string {
  // Built for every user of every pass: no intermediate array.
  let out = `${KEY_HEADER}\n`;
  for (let i = 0; i < keys.length; i++) out += `${keys[i]}\n`;
  return out;
}

export type KeyOutcome = "unchanged" | "written" | "removed" | "absent";

export class KeyRefusal extends Error {}

/** Open name in dirfd without following a link; a link, a missing entry or anything else is reported by errno. */
function tryOpen(dirfd: number, name: string, flags: number): number | SysError {
  try {
    return openAt(dirfd, name, flags | C.O_NOFOLLOW);
  } catch (e) {
    if (e instanceof SysError) return e;
    throw e;
  }
}

const DIR_FLAGS = C.O_RDONLY | C.O_DIRECTORY;

/**
 * ~/.ssh/authorized_keys. Every step is relative to a descriptor opened with O_NOFOLLOW and
 * checked with fstat, so a link the user planted is refused, never followed; the file is replaced
 * by rename, so a hard link is never written through (one is refused anyway). No fsync per file:
 * the caller flushes the file system once (syncFs) after the whole batch.
 */
export function syncHomeKeys(homePath: string, uid: number, gid: number, keys: readonly string[], dryRun: boolean): KeyOutcome {
  const home = tryOpen(AT_FDCWD, homePath, DIR_FLAGS);
  if (home instanceof SysError) throw new KeyRefusal(`cannot open the home without following links: ${home.message}`);
  try {
    if (fstatSync(home).uid !== uid) throw new KeyRefusal("the home is not owned by the user");
    let ssh = tryOpen(home, ".ssh", DIR_FLAGS);
    if (ssh instanceof SysError) {
      // With O_DIRECTORY, Linux reports a link as ENOTDIR: look at the entry itself to say which.
      if (ssh.errno === ELOOP || (ssh.errno === ENOTDIR && lstatAt(home, ".ssh")?.isSymbolicLink())) {
        throw new KeyRefusal("~/.ssh is a symbolic link; refused (root never follows links in homes)");
      }
      if (ssh.errno === ENOTDIR) throw new KeyRefusal("~/.ssh is not a directory; refused");
      if (ssh.errno !== ENOENT) throw new KeyRefusal(`cannot open ~/.ssh: ${ssh.message}`);
      if (keys.length === 0) return "absent";
      if (dryRun) return "written";
      mkdirAt(home, ".ssh", 0o700);
      ssh = tryOpen(home, ".ssh", DIR_FLAGS);
      if (ssh instanceof SysError) throw new KeyRefusal(`cannot open ~/.ssh: ${ssh.message}`);
      try {
        labelNewFile(ssh, `${homePath}/.ssh`, C.S_IFDIR | 0o700);
      } catch (e) {
        closeSync(ssh);
        throw e;
      }
    }
    try {
      const st = fstatSync(ssh);
      if (st.uid !== uid && st.uid !== 0) throw new KeyRefusal(`~/.ssh belongs to UID ${st.uid}, not to the user; refused`);
      if (!dryRun) {
        if (st.uid !== uid || st.gid !== gid) fchownSync(ssh, uid, gid);
        if ((st.mode & 0o7777) !== 0o700) fchmodSync(ssh, 0o700);
      }
      return writeKeyFileAt(ssh, uid, gid, keys, dryRun, `${homePath}/.ssh/authorized_keys`);
    } finally {
      closeSync(ssh);
    }
  } finally {
    closeSync(home);
  }
}

/**
 * Whether ~/.ssh/authorized_keys already is what syncHomeKeys would make it, with nothing to fix
 * on the way: the home the user's, ~/.ssh the user's with mode 0700, the file a single-link
 * regular file of the user's, mode 0600, holding exactly the keys (or no ~/.ssh when there are
 * none). Read-only, through no-follow descriptors and bun:ffi, so a pass can ask it for every
 * user while its scan is running; any doubt is a "no", which sends the user through
 * syncHomeKeys after the plan.
 */
export function homeKeysInPlace(homePath: string, uid: number, gid: number, keys: readonly string[], ledger?: KeyLedger): boolean {
  let key = 0n;
  if (ledger) {
    key = homeKeysLedgerKey(homePath, uid, gid, keys);
    if (homeKeysConfirmed(homePath, uid, gid, KeyLedger.words(key), ledger)) return true;
  }
  const want = keyFileContent(keys);
  const started = ledger ? ledger.now() : 0;
  const home = openAtFast(AT_FDCWD, homePath, DIR_FLAGS | C.O_NOFOLLOW);
  if (home < 0) return false;
  try {
    const hs = fstatFast(home);
    if (!hs?.isDir || hs.uid !== uid) return false;
    const ssh = openAtFast(home, ".ssh", DIR_FLAGS | C.O_NOFOLLOW);
    if (ssh < 0) return ssh === -ENOENT && keys.length === 0;
    try {
      const ss = fstatFast(ssh);
      if (!ss?.isDir || ss.uid !== uid || ss.gid !== gid || (ss.mode & 0o7777) !== 0o700) return false;
      const fd = openAtFast(ssh, "authorized_keys", C.O_RDONLY | C.O_NOFOLLOW | C.O_NONBLOCK);
      if (fd < 0) return false;
      try {
        const fs = fstatFast(fd, ledger ? SCRATCH_SIG : undefined);
        if (!fs?.isFile || fs.nlink !== 1 || fs.uid !== uid || (fs.mode & 0o7777) !== 0o600 || fs.size !== Buffer.byteLength(want)) return false;
        if (readExactly(fd, fs.size) !== want) return false;
        ledger?.record(key, SCRATCH_SIG, started);
        return true;
      } finally {
        closeFast(fd);
      }
    } finally {
      closeFast(ssh);
    }
  } finally {
    closeFast(home);
  }
}

/** The key-file ledger's key for a home's authorized_keys (what homeKeysInPlace checks). */
export function homeKeysLedgerKey(homePath: string, uid: number, gid: number, keys: readonly string[]): bigint {
  return KeyLedger.key("home", homePath, `${uid}:${gid}`, KEY_HEADER, keys);
}

/**
 * homeKeysInPlace's first step alone: the home and ~/.ssh as they must be, and the key file with
 * the signature the ledger recorded under key (see homeKeysLedgerKey) when it was read and found
 * holding exactly what it must. No means: look in full.
 */
export function homeKeysConfirmed(homePath: string, uid: number, gid: number, key: readonly [number, number], ledger: KeyLedger): boolean {
  return ledger.confirmsWords(key[0], key[1], `${homePath}/.ssh/authorized_keys`, () => homeDirsInPlace(homePath, uid, gid));
}

/** The key-file ledger's key for a root-owned key file (what rootKeysPrecheck checks). */
export function rootKeysLedgerKey(path: string, keys: readonly string[]): bigint {
  return KeyLedger.key("root", path, "0:0", KEY_HEADER, keys);
}

const S_IFMT = 0o170000;
const S_IFDIR = 0o040000;
const SCRATCH_SIG = new Uint32Array(SIG_WORDS);

/** The home and its ~/.ssh as homeKeysInPlace wants them, from two statx calls that follow no link. */
function homeDirsInPlace(homePath: string, uid: number, gid: number): boolean {
  const sig = SCRATCH_SIG;
  if (statSignature(homePath, sig) !== 0 || (sig[SIG.mode]! & S_IFMT) !== S_IFDIR || sig[SIG.uid] !== uid) return false;
  if (statSignature(`${homePath}/.ssh`, sig) !== 0 || (sig[SIG.mode]! & S_IFMT) !== S_IFDIR) return false;
  return sig[SIG.uid] === uid && sig[SIG.gid] === gid && (sig[SIG.mode]! & 0o7777) === 0o700;
}

function writeKeyFileAt(ssh: number, uid: number, gid: number, keys: readonly string[], dryRun: boolean, path: string): KeyOutcome {
  const name = "authorized_keys";
  const want = keyFileContent(keys);
  const fd = tryOpen(ssh, name, C.O_RDONLY | C.O_NONBLOCK);
  if (fd instanceof SysError) {
    if (fd.errno === ELOOP) throw new KeyRefusal("~/.ssh/authorized_keys is a symbolic link; refused");
    if (fd.errno !== ENOENT) throw new KeyRefusal(`cannot open ~/.ssh/authorized_keys: ${fd.message}`);
  } else {
    try {
      const st = fstatSync(fd);
      if (!st.isFile()) throw new KeyRefusal("~/.ssh/authorized_keys is not a regular file; refused");
      if (st.nlink > 1) throw new KeyRefusal(`~/.ssh/authorized_keys has ${st.nlink} hard links; refused`);
      if (st.uid === uid && (st.mode & 0o7777) === 0o600 && st.size === Buffer.byteLength(want) && readFileSync(fd, "utf8") === want) {
        return "unchanged";
      }
    } finally {
      closeSync(fd);
    }
  }
  if (dryRun) return "written";
  // A fresh temp name (O_EXCL, no link followed) in the opened ~/.ssh, renamed over the old file.
  writeFileAt(ssh, name, want, { mode: 0o600, uid, gid, label: (fd) => labelNewFile(fd, path, C.S_IFREG | 0o600) });
  return "written";
}

function writeAll(fd: number, text: string): void {
  const buf = Buffer.from(text, "utf8");
  let off = 0;
  while (off < buf.length) off += writeSync(fd, buf, off, buf.length - off);
}

/**
 * How a root-owned key file compares with what it should hold (want null: no file at all):
 * "same", "missing" or "differs". A link or a path that cannot be opened is a KeyRefusal.
 */
export function rootKeyFileState(path: string, want: string | null, sig?: Uint32Array): "same" | "missing" | "differs" {
  const f = readIfSize(path, want === null ? -1 : Buffer.byteLength(want), sig);
  if (typeof f === "number") {
    if (f === ENOENT) return "missing";
    throw new KeyRefusal(`cannot open ${path}: ${f === ELOOP ? "ELOOP (a symbolic link; refused)" : errnoName(f)}`);
  }
  // Right owner, mode and content: only a file of the right size was read at all.
  return want !== null && f.isFile && f.uid === 0 && (f.mode & 0o7777) === 0o644 && f.text === want ? "same" : "differs";
}

/** Whether a user's root-owned key file already is what a pass would make it (no refusal either). */
export function rootKeysInPlace(path: string, keys: readonly string[], ledger?: KeyLedger): boolean {
  return rootKeysPrecheck(path, keys, ledger) === "in place";
}

/**
 * The scan-time look at a root-owned key file: "in place" (nothing to do), "missing" (to be
 * created: the file did not exist and keys are wanted), or "other" (to be looked at again, in
 * full, when the pass applies).
 */
export function rootKeysPrecheck(path: string, keys: readonly string[], ledger?: KeyLedger): "in place" | "missing" | "other" {
  let key = 0n;
  if (ledger && keys.length > 0) {
    key = rootKeysLedgerKey(path, keys);
    if (ledger.confirms(key, path)) return "in place";
  }
  const want = keys.length === 0 ? null : keyFileContent(keys);
  const started = ledger ? ledger.now() : 0;
  try {
    const state = rootKeyFileState(path, want, ledger ? SCRATCH_SIG : undefined);
    if (want === null) return state === "missing" ? "in place" : "other";
    if (state === "missing") return "missing";
    if (state !== "same") return "other";
    ledger?.record(key, SCRATCH_SIG, started);
    return "in place";
  } catch {
    return "other";
  }
}

/**
 * A key file that does not exist yet is written in place (O_CREAT|O_EXCL, no temp file, no
 * rename): half the system calls of a replacement, which is what a first pass of 100,000 users
 * is made of. sshd reading it meanwhile sees a prefix of it: the header and some of the table's
 * keys, at worst a cut last line it cannot parse (keys carry no options), never a key the table
 * does not hold. False (nothing written) when the directory is missing or the name appeared.
 */
function createRootKeyFile(path: string, want: string): boolean {
  let out: number;
  try {
    out = openAt(AT_FDCWD, path, C.O_WRONLY | C.O_CREAT | C.O_EXCL | C.O_NOFOLLOW, 0o644);
  } catch (e) {
    if (e instanceof SysError && (e.errno === ENOENT || e.errno === EEXIST)) return false;
    throw e;
  }
  try {
    fchownSync(out, 0, 0);
    // The mode given to open passed through the umask, which another thread's home creation or
    // a library may have changed since it was last read: always set it.
    fchmodSync(out, 0o644);
    labelNewFile(out, path, C.S_IFREG | 0o644);
    writeAll(out, want);
  } catch (e) {
    closeSync(out);
    rmSync(path, { force: true });
    throw e;
  }
  closeSync(out);
  return true;
}

/** Root-owned key files outside homes (directory 0755 root, files 0644 root); no file when no keys. */
export function syncRootKeys(path: string, keys: readonly string[], dryRun: boolean, seenMissing = false): KeyOutcome {
  const want = keys.length === 0 ? null : keyFileContent(keys);
  // Found missing while the scan ran: create it outright. O_EXCL makes that safe if it has
  // appeared since (nothing is written, and the file is then looked at as usual).
  if (seenMissing && want !== null) {
    if (dryRun) return "written";
    if (createRootKeyFile(path, want)) return "written";
  }
  const state = rootKeyFileState(path, want);
  if (want === null) {
    if (state === "missing") return "absent";
    if (!dryRun) rmSync(path, { force: true });
    return "removed";
  }
  if (state === "same") return "unchanged";
  if (dryRun) return "written";
  if (state === "missing" && createRootKeyFile(path, want)) return "written";
  // A random temporary name (no account name can produce one), O_EXCL|O_NOFOLLOW, renamed over.
  writeFileSafely(path, want, { mode: 0o644, uid: 0, gid: 0, makeDir: 0o755, label: (fd) => labelNewFile(fd, path, C.S_IFREG | 0o644) });
  return "written";
}

/** The key file path for a user under a %u template. */
export function templatePath(root: Root, template: string, name: string): string {
  return root.path(template.replaceAll("%u", name));
}

/** The most ddum reads of any file a user controls (authorized_keys in a home) or serves to sshd. */
export const MAX_READ = 1024 * 1024;

function keyLines(text: string): string[] {
  return text.split("\n").filter((l) => l !== "" && !l.startsWith("#"));
}

/**
 * Where root-owned key files may be: in directories that only root can write (every existing
 * directory on the way root's and not writable by others, links resolved inside the root), and
 * never where a home is or would be: ddum does not make a user's home, or anything in it, for a
 * key file. Cached per directory.
 */
export class KeyDirRules {
  private readonly resolver: PathResolver;
  private readonly dirs = new Map<string, { problem: string | null; path: string }>();

  constructor(
    private readonly root: Root,
    /** Whether a path (normal form) is a user's home that ddum could make (see keyRulesFor). */
    private readonly isHome: (p: string) => boolean = () => false,
  ) {
    this.resolver = new PathResolver(root, true);
  }

  /** The key file's path on this machine; throws a KeyRefusal saying why it may not be used. */
  path(template: string, name: string): string {
    const file = normalPath(template.replaceAll("%u", name));
    const dir = dirname(file);
    let d = this.dirs.get(dir);
    if (d === undefined) {
      d = this.judge(dir);
      this.dirs.set(dir, d);
    }
    if (d.problem) throw new KeyRefusal(`key directory ${dir}: ${d.problem}; refused (root-owned key files are kept only in directories that only root can write, outside homes)`);
    return this.root.path(d.path === "/" ? `/${basename(file)}` : `${d.path}/${basename(file)}`);
  }

  /** path, or null when it may not be used. */
  pathOrNull(template: string, name: string): string | null {
    try {
      return this.path(template, name);
    } catch {
      return null;
    }
  }

  private judge(dir: string): { problem: string | null; path: string } {
    const r = this.resolver.resolve(dir);
    if (r.problem) return { problem: r.problem, path: r.path };
    if (r.kind !== "dir" && r.kind !== "missing") return { problem: `${r.path} is not a directory`, path: r.path };
    if (r.dangling) return { problem: `it leads through a symbolic link to ${r.path}, which does not exist`, path: r.path };
    // The directories ddum would make for the file: never a user's home (it would be root's, and
    // the user's home refused from then on). An existing one is root's already (checked above).
    for (const p of [dir, r.path]) {
      for (let a = p, i = 0; i < r.missing && a !== "/"; i++, a = dirname(a)) {
        if (this.isHome(a)) return { problem: `it would make ${a}, the home of a user, as root's`, path: r.path };
      }
    }
    return { problem: null, path: r.path };
  }
}

/**
 * The root-owned key file a %u template names, as sshd should trust it: a regular file of root's,
 * writable by root only, in a directory only root can write, opened without following a link,
 * at most MAX_READ bytes. Null when there is none; a KeyRefusal for anything else.
 */
export function readRootKeyFile(root: Root, template: string, name: string): string[] | null {
  const path = new KeyDirRules(root).path(template, name);
  let fd: number;
  try {
    fd = openAt(AT_FDCWD, path, C.O_RDONLY | C.O_NOFOLLOW | C.O_NONBLOCK);
  } catch (e) {
    if (e instanceof SysError && e.errno === ENOENT) return null;
    throw new KeyRefusal(`cannot open ${path}: ${e instanceof SysError && e.errno === ELOOP ? "a symbolic link; refused" : (e as Error).message}`);
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) throw new KeyRefusal(`${path} is not a regular file; refused`);
    if (st.uid !== 0 || (st.mode & 0o022) !== 0) throw new KeyRefusal(`${path} is not owned by root or is writable by others; refused`);
    if (st.size > MAX_READ) throw new KeyRefusal(`${path} is larger than ${MAX_READ} bytes; refused`);
    const buf = readWhole(fd, st.size, MAX_READ);
    if (buf.length > MAX_READ) throw new KeyRefusal(`${path} is larger than ${MAX_READ} bytes; refused`);
    return keyLines(buf.toString("utf8"));
  } finally {
    closeSync(fd);
  }
}

/** A passwd entry's home, read line by line without parsing the whole file. */
function homeOf(root: Root, name: string): { uid: number; home: string } | null {
  const text = readFileSync(root.etc("passwd"), "utf8");
  const prefix = `${name}:`;
  let at = text.startsWith(prefix) ? 0 : text.indexOf(`\n${prefix}`);
  if (at === -1) return null;
  if (at > 0) at++;
  const end = text.indexOf("\n", at);
  const f = text.slice(at, end === -1 ? undefined : end).split(":");
  return f.length === 7 ? { uid: Number(f[2]), home: f[5]! } : null;
}

/**
 * The keys sshd should accept for a user, from local files only: the root-owned file under a %u
 * template, or ~/.ssh/authorized_keys read through no-follow descriptors.
 */
export function authorizedKeys(root: Root, location: string, name: string): string[] {
  if (location !== "home") return readRootKeyFile(root, location, name) ?? [];
  const pw = homeOf(root, name);
  // No home (an empty field) or a relative one: no key file in any home.
  if (!pw?.home.startsWith("/")) return [];
  let home: number;
  try {
    home = openDirNoFollow(AT_FDCWD, root.path(pw.home));
  } catch {
    return [];
  }
  let text: string;
  try {
    const ssh = openDirNoFollow(home, ".ssh");
    try {
      const fd = openAt(ssh, "authorized_keys", C.O_RDONLY | C.O_NOFOLLOW | C.O_NONBLOCK);
      try {
        const st = fstatSync(fd);
        if (!st.isFile() || st.uid !== pw.uid) return [];
        // A user's file: read only up to the limit (a sparse 1 GiB file costs nothing to make).
        if (st.size > MAX_READ) throw new KeyRefusal(`${pw.home}/.ssh/authorized_keys is larger than ${MAX_READ} bytes; refused`);
        const buf = readWhole(fd, st.size, MAX_READ);
        if (buf.length > MAX_READ) throw new KeyRefusal(`${pw.home}/.ssh/authorized_keys is larger than ${MAX_READ} bytes; refused`);
        text = buf.toString("utf8");
      } finally {
        closeSync(fd);
      }
    } finally {
      closeSync(ssh);
    }
  } catch (e) {
    if (e instanceof KeyRefusal) throw e;
    return [];
  } finally {
    closeSync(home);
  }
  return keyLines(text);
}

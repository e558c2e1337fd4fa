// Every file ddum writes outside the account files (state, status, metrics, caches, root-owned key
// files, the pidfile, log files) goes through here. A directory that someone other than root can
// write (a node_exporter textfile directory, say) may hold a link planted at any name ddum could
// predict, so nothing is ever opened there by a predictable name with O_CREAT alone: a new file is
// made with O_CREAT|O_EXCL|O_NOFOLLOW under a random name, relative to a descriptor of its
// directory, then renamed over the final name (rename replaces a link, it never follows one).
import { randomBytes } from "node:crypto";
import { constants as C, closeSync, fchmodSync, fchownSync, fstatSync, fsyncSync, lstatSync, mkdirSync, readdirSync, readSync, unlinkSync, writeSync } from "node:fs";
import { basename, dirname } from "node:path";
import { AT_FDCWD, EEXIST, ELOOP, ENOENT, lstatAt, openAt, renameAt, SysError, unlinkAt } from "./fsat.ts";
import { errno, libc } from "./localdb/libc.ts";

/** Temp names carry '~', which no account name holds, so a %u template can never produce one. */
export const TEMP_MARK = ".ddum~";

export function tempName(name: string): string {
  return `${TEMP_MARK}${name}~${randomBytes(8).toString("hex")}`;
}

/**
 * Remove the temporary files a killed process left for the given names in dir (they are never
 * renamed into place): regular files of root's under TEMP_MARK + name + "~", older than a
 * minute (a live writer's are seconds old). Nothing else is touched, no link followed.
 */
export function removeStaleTempsFor(dir: string, names: readonly string[], now = Date.now()): string[] {
  const removed: string[] = [];
  let entries: string[];
  try {
    entries = readdirSync(dir);
  } catch {
    return removed;
  }
  const prefixes = names.map((n) => `${TEMP_MARK}${n}~`);
  for (const e of entries) {
    if (!e.startsWith(TEMP_MARK) || !prefixes.some((p) => e.startsWith(p))) continue;
    const st = lstatSync(`${dir}/${e}`, { throwIfNoEntry: false });
    if (!st?.isFile() || st.uid !== 0 || now - st.mtimeMs < 60_000) continue;
    try {
      unlinkSync(`${dir}/${e}`);
      removed.push(e);
    } catch {
      // gone meanwhile, or not ours to remove: left
    }
  }
  return removed;
}

export interface WriteOptions {
  mode: number;
  uid?: number;
  gid?: number;
  /** Keep the previous file as NAME- (a copy, written the same way). */
  backup?: boolean;
  /** Make the directory (and its parents) with this mode when it is missing. */
  makeDir?: number;
  /** fsync the file before the rename (state); caches and metrics need not. */
  sync?: boolean;
  /** Called with the new file's descriptor before anything is written (an SELinux label). */
  label?: (fd: number) => void;
}

function writeAllFd(fd: number, data: Uint8Array): void {
  let off = 0;
  while (off < data.length) off += writeSync(fd, data, off, data.length - off);
}

/** Create a new file in dirfd under a random name; returns the name. The caller renames it. */
function createTemp(dirfd: number, name: string, data: Uint8Array, o: WriteOptions): string {
  for (let tries = 0; ; tries++) {
    const tmp = tempName(name);
    let fd: number;
    try {
      fd = openAt(dirfd, tmp, C.O_WRONLY | C.O_CREAT | C.O_EXCL | C.O_NOFOLLOW, 0o600);
    } catch (e) {
      if (e instanceof SysError && e.errno === EEXIST && tries < 8) continue;
      throw e;
    }
    try {
      if (o.uid !== undefined) fchownSync(fd, o.uid, o.gid ?? o.uid);
      fchmodSync(fd, o.mode);
      o.label?.(fd);
      writeAllFd(fd, data);
      if (o.sync) fsyncSync(fd);
    } catch (e) {
      closeSync(fd);
      unlinkAt(dirfd, tmp);
      throw e;
    }
    closeSync(fd);
    return tmp;
  }
}

/** Open a directory (the admin's path: links in it are the admin's) for writing files in it. */
export function openDir(dir: string, makeDir?: number): number {
  try {
    return openAt(AT_FDCWD, dir, C.O_RDONLY | C.O_DIRECTORY);
  } catch (e) {
    if (!(e instanceof SysError) || e.errno !== ENOENT || makeDir === undefined) throw e;
    mkdirSync(dir, { recursive: true, mode: makeDir });
    return openAt(AT_FDCWD, dir, C.O_RDONLY | C.O_DIRECTORY);
  }
}

/** Replace name in an open directory with data: random temp name, O_EXCL|O_NOFOLLOW, rename. */
export function writeFileAt(dirfd: number, name: string, data: string | Uint8Array, o: WriteOptions): void {
  const bytes = typeof data === "string" ? Buffer.from(data, "utf8") : data;
  const tmp = createTemp(dirfd, name, bytes, o);
  try {
    if (o.backup) {
      const old = readFileAt(dirfd, name, Number.MAX_SAFE_INTEGER);
      if (old !== null) renameAt(dirfd, createTemp(dirfd, `${name}-`, old, o), `${name}-`);
    }
    renameAt(dirfd, tmp, name);
  } catch (e) {
    unlinkAt(dirfd, tmp);
    throw e;
  }
}

/** writeFileAt by path. */
export function writeFileSafely(path: string, data: string | Uint8Array, o: WriteOptions): void {
  const dirfd = openDir(dirname(path), o.makeDir);
  try {
    writeFileAt(dirfd, basename(path), data, o);
  } finally {
    closeSync(dirfd);
  }
}

/** A regular file's bytes, opened without following a link; null when absent, a link or not a regular file. */
export function readFileAt(dirfd: number, name: string, limit: number): Buffer | null {
  let fd: number;
  try {
    fd = openAt(dirfd, name, C.O_RDONLY | C.O_NOFOLLOW | C.O_NONBLOCK);
  } catch (e) {
    if (e instanceof SysError && (e.errno === ENOENT || e.errno === ELOOP)) return null;
    throw e;
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile() || st.size > limit) return null;
    return readWhole(fd, st.size);
  } finally {
    closeSync(fd);
  }
}

/**
 * All of an open file, which fstat said holds size bytes (it may have grown: read to its end, or
 * to limit + 1 bytes, so that a caller can tell a file over its limit).
 */
export function readWhole(fd: number, size: number, limit = Number.MAX_SAFE_INTEGER): Buffer {
  let buf = Buffer.alloc(Math.max(Math.min(size, limit + 1), 1));
  let got = 0;
  for (;;) {
    if (got > limit) break;
    if (got === buf.length) {
      const bigger = Buffer.alloc(buf.length * 2);
      buf.copy(bigger);
      buf = bigger;
    }
    const n = readSync(fd, buf, got, buf.length - got, null);
    if (n <= 0) break;
    got += n;
  }
  return buf.subarray(0, got);
}

/**
 * A file opened for appending (a log) or for a lock (the pidfile): created if missing with mode,
 * never through a link at its last component, and only if it is a single-link regular file, so
 * a link or a hard link to /etc/shadow is refused, never written.
 */
export function openRegular(path: string, flags: number, mode: number, allowDevice = false): number {
  const fd = openAt(AT_FDCWD, path, flags | C.O_CREAT | C.O_NOFOLLOW | C.O_NONBLOCK, mode);
  let st: ReturnType<typeof fstatSync>;
  try {
    st = fstatSync(fd);
  } catch (e) {
    closeSync(fd);
    throw e;
  }
  if (allowDevice && st.isCharacterDevice()) return fd;
  if (!st.isFile() || st.nlink !== 1) {
    closeSync(fd);
    throw new Error(`${path} is not a regular file with a single link; refused`);
  }
  return fd;
}

/** Append text to a log file opened by openRegular (mode 0600 when it is created; /dev/null will do). */
export function appendSafely(path: string, text: string): void {
  const fd = openRegular(path, C.O_WRONLY | C.O_APPEND, 0o600, true);
  try {
    writeAllFd(fd, Buffer.from(text, "utf8"));
  } finally {
    closeSync(fd);
  }
}

// renameat2(RENAME_NOREPLACE): a finished home moves into place only where nothing is.
const RENAME_NOREPLACE = 1;

export function renameNoReplace(dirfd: number, from: string, to: string): void {
  const c = (s: string) => Buffer.from(`${s}\0`, "utf8");
  if (libc().renameat2(dirfd, c(from), dirfd, c(to), RENAME_NOREPLACE) === 0) return;
  const e = errno();
  // A file system without RENAME_NOREPLACE (EINVAL): look, then rename (the directory is root's).
  if (e !== EINVAL) throw new SysError("rename", `${from} -> ${to}`, e);
  if (lstatAt(dirfd, to) !== null) throw new SysError("rename", `${from} -> ${to}`, EEXIST);
  renameAt(dirfd, from, to);
}
const EINVAL = 22;

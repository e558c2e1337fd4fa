// Directory-relative file operations (openat, mkdirat, renameat, unlinkat) through bun:ffi.
// Inside a directory a user controls, root must never resolve a path twice: every step here is
// relative to a directory descriptor that was opened with O_NOFOLLOW and checked.
import { ptr } from "bun:ffi";
import { constants as C, closeSync, fstatSync, readSync, type Stats } from "node:fs";
import { errno, libc, O_CLOEXEC } from "./localdb/libc.ts";

const cstr = (s: string) => Buffer.from(`${s}\0`, "utf8");

export class SysError extends Error {
  constructor(
    readonly op: string,
    readonly path: string,
    readonly errno: number,
  ) {
    super(`${op} ${path}: ${ERRNO_NAMES[errno] ?? `errno ${errno}`}`);
  }
  get code(): string {
    return ERRNO_NAMES[this.errno] ?? String(this.errno);
  }
}

export const ENOENT = 2;
export const EEXIST = 17;
export const ENOTDIR = 20;
export const ELOOP = 40;
const ERRNO_NAMES: Record<number, string> = {
  1: "EPERM",
  2: "ENOENT",
  13: "EACCES",
  17: "EEXIST",
  20: "ENOTDIR",
  21: "EISDIR",
  28: "ENOSPC",
  30: "EROFS",
  36: "ENAMETOOLONG",
  40: "ELOOP",
};

export const O_PATH = 0o10000000;
export const AT_FDCWD = -100;

/** openat(2); throws SysError. Always O_CLOEXEC. */
export function openAt(dirfd: number, name: string, flags: number, mode = 0): number {
  const fd = libc().openat(dirfd, cstr(name), flags | O_CLOEXEC, mode);
  if (fd < 0) throw new SysError("open", name, errno());
  return fd;
}

/** Open a directory without following a link at its last component. */
export function openDirNoFollow(dirfd: number, name: string): number {
  return openAt(dirfd, name, C.O_RDONLY | C.O_DIRECTORY | C.O_NOFOLLOW);
}

/** lstat relative to a directory: the entry itself, never what a link points to; null if absent. */
export function lstatAt(dirfd: number, name: string): Stats | null {
  let fd: number;
  try {
    fd = openAt(dirfd, name, O_PATH | C.O_NOFOLLOW);
  } catch (e) {
    if (e instanceof SysError && e.errno === ENOENT) return null;
    throw e;
  }
  try {
    return fstatSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** mkdirat(2); returns false when it already exists. */
export function mkdirAt(dirfd: number, name: string, mode: number): boolean {
  if (libc().mkdirat(dirfd, cstr(name), mode) === 0) return true;
  const e = errno();
  if (e === EEXIST) return false;
  throw new SysError("mkdir", name, e);
}

export function renameAt(dirfd: number, from: string, to: string): void {
  if (libc().renameat(dirfd, cstr(from), dirfd, cstr(to)) !== 0) throw new SysError("rename", `${from} -> ${to}`, errno());
}

export function unlinkAt(dirfd: number, name: string): boolean {
  if (libc().unlinkat(dirfd, cstr(name), 0) === 0) return true;
  const e = errno();
  if (e === ENOENT) return false;
  throw new SysError("unlink", name, e);
}

/**
 * Flush one file system (the one holding path) in a single call: how a pass makes its many small
 * key and home files durable without an fsync per file.
 */
export function syncFs(path: string): void {
  const fd = openAt(AT_FDCWD, path, C.O_RDONLY | C.O_DIRECTORY);
  try {
    if (libc().syncfs(fd) !== 0) throw new SysError("syncfs", path, errno());
  } finally {
    closeSync(fd);
  }
}


// ---- reading many small files fast ---------------------------------------------------------

const SCRATCH = 65536;
// Reused buffers. Their addresses are taken at each call (ptr() or the buffer itself as the
// argument), never kept: the engine may move a small typed array's storage when it collects.
let scratch: { path: Buffer; statx: Buffer; data: Buffer; empty: Buffer } | undefined;
function buffers() {
  scratch ??= { path: Buffer.alloc(4097), statx: Buffer.alloc(256), data: Buffer.alloc(SCRATCH), empty: Buffer.alloc(1) };
  return scratch;
}

export interface SmallFile {
  isFile: boolean;
  uid: number;
  mode: number;
  size: number;
  nlink: number;
  /** The content (UTF-8) when the file is a regular file of exactly the size asked for; else null. */
  text: string | null;
}

const AT_EMPTY_PATH = 0x1000;
const STATX_BASIC_STATS = 0x7ff;

/**
 * Open path without following a link at its last component, fstat it, and read it only when it
 * is a regular file of exactly `size` bytes (what it must hold to be unchanged): four system
 * calls through bun:ffi into reused buffers, a third of what the same steps cost through node:fs.
 * Returns the errno when it cannot be opened (ENOENT: absent, ELOOP: a link).
 */
export function readIfSize(path: string, size: number, sig?: Uint32Array): SmallFile | number {
  const b = buffers();
  const n = b.path.write(path, 0, 4096, "utf8");
  if (n >= 4096) return 36; // ENAMETOOLONG
  b.path[n] = 0;
  const c = libc();
  const fd = c.open(b.path, C.O_RDONLY | C.O_NOFOLLOW | C.O_NONBLOCK | O_CLOEXEC, 0);
  if (fd < 0) return errno();
  try {
    if (c.statx(fd, b.empty, AT_EMPTY_PATH, STATX_BASIC_STATS, b.statx) !== 0) return errno();
    const st = b.statx;
    if (sig) copySignature(st, sig);
    const mode = st.readUInt16LE(28);
    const out: SmallFile = {
      isFile: (mode & 0o170000) === 0o100000,
      nlink: st.readUInt32LE(16),
      uid: st.readUInt32LE(20),
      mode,
      size: st.readUInt32LE(40) + st.readUInt32LE(44) * 4294967296,
      text: null,
    };
    if (out.isFile && out.size === size && size <= SCRATCH) {
      let got = 0;
      while (got < size) {
        const r = Number(c.read(fd, ptr(b.data) + got, size - got));
        if (r <= 0) break;
        got += r;
      }
      if (got === size) out.text = b.data.toString("utf8", 0, size);
    } else if (out.isFile && out.size === size) {
      // Larger than the scratch buffer: compared whole all the same, never rewritten for its size.
      const big = Buffer.alloc(size);
      let got = 0;
      while (got < size) {
        const r = readSync(fd, big, got, size - got, null);
        if (r <= 0) break;
        got += r;
      }
      if (got === size) out.text = big.toString("utf8");
    }
    return out;
  } finally {
    c.close(fd);
  }
}

export function errnoName(e: number): string {
  return ERRNO_NAMES[e] ?? `errno ${e}`;
}

/** openat(2) through the reused path buffer: the descriptor, or -errno. Always O_CLOEXEC. */
export function openAtFast(dirfd: number, name: string, flags: number): number {
  const b = buffers();
  const n = b.path.write(name, 0, 4096, "utf8");
  if (n >= 4096) return -36;
  b.path[n] = 0;
  const fd = libc().openat(dirfd, b.path, flags | O_CLOEXEC, 0);
  return fd < 0 ? -errno() : fd;
}

export interface FastStat {
  isFile: boolean;
  isDir: boolean;
  uid: number;
  gid: number;
  mode: number;
  size: number;
  nlink: number;
}

/** statx(2) of an open descriptor; null when it fails. With sig, its signature is copied there too. */
export function fstatFast(fd: number, sig?: Uint32Array): FastStat | null {
  const b = buffers();
  if (libc().statx(fd, b.empty, AT_EMPTY_PATH, STATX_BASIC_STATS, b.statx) !== 0) return null;
  const st = b.statx;
  if (sig) copySignature(st, sig);
  const mode = st.readUInt16LE(28);
  return {
    isFile: (mode & 0o170000) === 0o100000,
    isDir: (mode & 0o170000) === 0o040000,
    nlink: st.readUInt32LE(16),
    uid: st.readUInt32LE(20),
    gid: st.readUInt32LE(24),
    mode,
    size: st.readUInt32LE(40) + st.readUInt32LE(44) * 4294967296,
  };
}

/** Exactly size bytes of an open descriptor as UTF-8, or null when it holds fewer. */
export function readExactly(fd: number, size: number): string | null {
  const b = buffers();
  if (size > SCRATCH) return null;
  let got = 0;
  while (got < size) {
    const r = Number(libc().read(fd, ptr(b.data) + got, size - got));
    if (r <= 0) return null;
    got += r;
  }
  return b.data.toString("utf8", 0, size);
}

export function closeFast(fd: number): void {
  libc().close(fd);
}

// ---- file signatures ---------------------------------------------------------------------------

/**
 * What identifies one state of a file without reading it, as 32-bit words of its statx: links,
 * owner, group, mode, inode, size, change time (s and ns), modification time (ns) and device.
 * Every write, chmod, chown, link or rename of the file moves its change time, which nobody but
 * the kernel sets.
 */
export const SIG_WORDS = 14;
/** Offsets (bytes) in struct statx of the signature's words, in order. */
const SIG_OFFSETS = [16, 20, 24, 28, 32, 36, 40, 44, 96, 100, 104, 120, 136, 140];
const SIG_CTIME_SEC = 8;
const SIG_CTIME_NSEC = 10;
/** Signature words of a file (see SIG_WORDS) for readers that test its type and ownership. */
export const SIG = { nlink: 0, uid: 1, gid: 2, mode: 3 } as const;

/** The same offsets, in 32-bit words. */
const SIG_WORD_AT = SIG_OFFSETS.map((o) => o / 4);
let statxWords: Uint32Array | undefined;

function copySignature(st: Buffer, out: Uint32Array): void {
  // A view of the statx buffer as words (host byte order, little-endian on x86_64 and aarch64).
  if (statxWords?.buffer !== st.buffer || statxWords.byteOffset !== st.byteOffset) statxWords = new Uint32Array(st.buffer, st.byteOffset, st.length / 4);
  const w = statxWords;
  for (let i = 0; i < SIG_WORDS; i++) out[i] = w[SIG_WORD_AT[i]!]!;
  out[3]! &= 0xffff; // stx_mode is 16 bits, followed by padding
}

/** The change time of a signature, in milliseconds since the epoch. */
export function signatureCtimeMs(sig: Uint32Array): number {
  return (sig[SIG_CTIME_SEC]! + sig[SIG_CTIME_SEC + 1]! * 4294967296) * 1000 + sig[SIG_CTIME_NSEC]! / 1e6;
}

const AT_SYMLINK_NOFOLLOW = 0x100;

/**
 * statx(2) of a path, not following a link at its last component, into sig: 0, or the errno.
 * One system call, where opening and reading the file takes four.
 */
export function statSignature(path: string, sig: Uint32Array): number {
  return statSignatureAt(AT_FDCWD, path, sig);
}

/**
 * The buffer statSignatureFilled takes its name from: a caller writes a name (or path) of at most
 * 4095 bytes into it, then a NUL.
 */
export function statxName(): Buffer {
  return buffers().path;
}

/** statSignatureAt of the NUL-terminated name in statxName(). */
export function statSignatureFilled(dirfd: number, sig: Uint32Array): number {
  const b = buffers();
  if (libc().statx(dirfd, b.path, AT_SYMLINK_NOFOLLOW, STATX_BASIC_STATS, b.statx) !== 0) return errno();
  copySignature(b.statx, sig);
  return 0;
}

/** statSignature of a name relative to a directory descriptor (AT_FDCWD: a path). */
export function statSignatureAt(dirfd: number, name: string, sig: Uint32Array): number {
  const b = buffers();
  const n = b.path.write(name, 0, 4096, "utf8");
  if (n >= 4096) return 36;
  b.path[n] = 0;
  if (libc().statx(dirfd, b.path, AT_SYMLINK_NOFOLLOW, STATX_BASIC_STATS, b.statx) !== 0) return errno();
  copySignature(b.statx, sig);
  return 0;
}

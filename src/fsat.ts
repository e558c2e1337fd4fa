// Directory-relative file operations (openat, mkdirat, renameat, unlinkat) through bun:ffi.
// Inside a directory a user controls, root must never resolve a path twice: every step here is
// relative to a directory descriptor that was opened with O_NOFOLLOW and checked.
import { dlopen, FFIType } from "bun:ffi";
import { closeSync, fstatSync, constants as C, type Stats } from "node:fs";
import { errno, O_CLOEXEC } from "./localdb/libc.ts";

type Lib = ReturnType<typeof open>;
let lib: Lib | undefined;
function open() {
  return dlopen("libc.so.6", {
    openat: { args: [FFIType.i32, FFIType.cstring, FFIType.i32, FFIType.u32], returns: FFIType.i32 },
    mkdirat: { args: [FFIType.i32, FFIType.cstring, FFIType.u32], returns: FFIType.i32 },
    renameat: { args: [FFIType.i32, FFIType.cstring, FFIType.i32, FFIType.cstring], returns: FFIType.i32 },
    unlinkat: { args: [FFIType.i32, FFIType.cstring, FFIType.i32], returns: FFIType.i32 },
    syncfs: { args: [FFIType.i32], returns: FFIType.i32 },
  });
}
function libc(): Lib["symbols"] {
  lib ??= open();
  return lib.symbols;
}

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


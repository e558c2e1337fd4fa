// The libc calls Node's fs does not offer, through bun:ffi: the one place libc is loaded. Loaded on first use only, so
// commands that never lock (authorized-keys, --help) do not pay for dlopen.
import { dlopen, FFIType, ptr, read } from "bun:ffi";

type Lib = ReturnType<typeof open>;
let lib: Lib | undefined;

/** Every libc function ddum calls, in one table: libc is opened once, here, for all of them. */
function open() {
  return dlopen("libc.so.6", {
    fcntl: { args: [FFIType.i32, FFIType.i32, FFIType.ptr], returns: FFIType.i32 },
    __errno_location: { args: [], returns: FFIType.ptr },
    // Directory-relative file operations (fsat.ts).
    openat: { args: [FFIType.i32, FFIType.cstring, FFIType.i32, FFIType.u32], returns: FFIType.i32 },
    mkdirat: { args: [FFIType.i32, FFIType.cstring, FFIType.u32], returns: FFIType.i32 },
    renameat: { args: [FFIType.i32, FFIType.cstring, FFIType.i32, FFIType.cstring], returns: FFIType.i32 },
    unlinkat: { args: [FFIType.i32, FFIType.cstring, FFIType.i32], returns: FFIType.i32 },
    syncfs: { args: [FFIType.i32], returns: FFIType.i32 },
    open: { args: [FFIType.ptr, FFIType.i32, FFIType.u32], returns: FFIType.i32 },
    statx: { args: [FFIType.i32, FFIType.ptr, FFIType.i32, FFIType.u32, FFIType.ptr], returns: FFIType.i32 },
    read: { args: [FFIType.i32, FFIType.ptr, FFIType.u64], returns: FFIType.i64 },
    close: { args: [FFIType.i32], returns: FFIType.i32 },
    // SELinux labels as extended attributes (selinux.ts).
    lgetxattr: { args: [FFIType.ptr, FFIType.ptr, FFIType.ptr, FFIType.u64], returns: FFIType.i64 },
    fgetxattr: { args: [FFIType.i32, FFIType.ptr, FFIType.ptr, FFIType.u64], returns: FFIType.i64 },
    fsetxattr: { args: [FFIType.i32, FFIType.ptr, FFIType.ptr, FFIType.u64, FFIType.i32], returns: FFIType.i32 },
    // The pass's engine settings (heapsize.ts).
    execve: { args: [FFIType.ptr, FFIType.ptr, FFIType.ptr], returns: FFIType.i32 },
    // renameat2(RENAME_NOREPLACE) (safefile.ts).
    renameat2: { args: [FFIType.i32, FFIType.cstring, FFIType.i32, FFIType.cstring, FFIType.u32], returns: FFIType.i32 },
  });
}

export function libc(): Lib["symbols"] {
  lib ??= open();
  return lib.symbols;
}

export function errno(): number {
  const p = libc().__errno_location();
  return p === null ? 0 : read.i32(p, 0);
}

/** Linux O_CLOEXEC (x86_64 and aarch64); not in the typings of fs.constants. */
export const O_CLOEXEC = 0o2000000;
const F_SETLK = 6;
const F_WRLCK = 1;
export const EAGAIN = 11;
export const EACCES = 13;

/**
 * Try once to take a whole-file write lock on fd, the lock glibc's lckpwdf() takes on
 * /etc/.pwd.lock (struct flock on Linux x86_64 and aarch64: short type, short whence, off_t
 * start, off_t len, pid_t pid). Returns 0 on success or the errno.
 */
export function tryWriteLock(fd: number): number {
  const buf = new ArrayBuffer(32);
  const view = new DataView(buf);
  view.setInt16(0, F_WRLCK, true);
  view.setInt16(2, 0, true); // SEEK_SET
  view.setBigInt64(8, 0n, true);
  view.setBigInt64(16, 0n, true);
  const rc = libc().fcntl(fd, F_SETLK, ptr(new Uint8Array(buf)));
  return rc === 0 ? 0 : errno();
}

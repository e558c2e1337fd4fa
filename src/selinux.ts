// SELinux labels (the security.selinux extended attribute) of the files ddum writes.
//
// A file created in /etc gets the directory's label (etc_t), not the one the policy gives the
// path it is renamed to (shadow_t): without this, every replaced /etc/shadow would be readable by
// any confined daemon allowed to read /etc. So an account file's temp file carries the label of
// the file it replaces (a plain xattr copy: no libselinux needed); a file with no label to copy,
// and the homes and key files ddum makes, get the policy's label for their path, as shadow-utils
// and useradd do, where SELinux is enabled (libselinux through bun:ffi, else restorecon). Where
// SELinux is not enabled, nothing is looked up and nothing changes.
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { CString, dlopen, FFIType, ptr, read } from "bun:ffi";
import { errno, libc } from "./localdb/libc.ts";

const NAME = Buffer.from("security.selinux\0");
const ENOENT = 2;
const ENODATA = 61;
const ENOTSUP = 95;
const cstr = (s: string) => Buffer.from(`${s}\0`, "utf8");

const xattr = libc;

function openSelinux() {
  return dlopen("libselinux.so.1", {
    is_selinux_enabled: { args: [], returns: FFIType.i32 },
    selabel_open: { args: [FFIType.u32, FFIType.ptr, FFIType.u32], returns: FFIType.ptr },
    selabel_lookup_raw: { args: [FFIType.ptr, FFIType.ptr, FFIType.ptr, FFIType.i32], returns: FFIType.i32 },
    freecon: { args: [FFIType.ptr], returns: FFIType.void },
    selinux_restorecon: { args: [FFIType.ptr, FFIType.u32], returns: FFIType.i32 },
    selinux_restorecon_set_alt_rootpath: { args: [FFIType.ptr], returns: FFIType.i32 },
    selinux_restorecon_set_sehandle: { args: [FFIType.ptr], returns: FFIType.void },
  });
}

interface Policy {
  lib: ReturnType<typeof openSelinux>["symbols"] | null;
  handle: ReturnType<ReturnType<typeof openSelinux>["symbols"]["selabel_open"]> | null;
  restorecon: string | null;
}
let policy: Policy | null | undefined;
let labelRoot = "/";

/** The root prefix (--root DIR) under which paths are looked up in the policy as paths from "/". */
export function setLabelRoot(dir: string): void {
  labelRoot = dir;
}
export function getLabelRoot(): string {
  return labelRoot;
}

/** Whether SELinux is enabled on this host, with a policy ddum can ask (libselinux or restorecon). */
export function selinuxEnabled(): boolean {
  return loadPolicy() !== null;
}

function loadPolicy(): Policy | null {
  if (policy !== undefined) return policy;
  policy = null;
  // The kernel says whether SELinux is on: selinuxfs mounted. Nothing is loaded otherwise.
  if (!existsSync("/sys/fs/selinux/enforce")) return policy;
  let lib: Policy["lib"] = null;
  try {
    lib = openSelinux().symbols;
  } catch {
    // no libselinux: restorecon, if installed, still knows the policy
  }
  if (lib && lib.is_selinux_enabled() !== 1) return policy;
  const restorecon = ["/usr/sbin/restorecon", "/sbin/restorecon"].find((p) => existsSync(p)) ?? null;
  const handle = lib ? lib.selabel_open(0, null, 0) : null;
  if (!handle && !restorecon) return policy;
  policy = { lib, handle, restorecon };
  return policy;
}

/**
 * For tests: a policy read from a file_contexts file (libselinux's SELABEL_OPT_PATH), used as if
 * SELinux were enabled; null goes back to the host's own.
 */
export function useFileContexts(specFile: string | null): void {
  policy = undefined;
  if (specFile === null) return;
  const lib = openSelinux().symbols;
  const path = cstr(specFile);
  // struct selinux_opt { int type; const char *value; }, SELABEL_OPT_PATH = 3.
  const opt = new BigUint64Array(2);
  new DataView(opt.buffer).setInt32(0, 3, true);
  opt[1] = BigInt(ptr(path));
  const handle = lib.selabel_open(0, ptr(opt), 1);
  if (!handle) throw new Error(`libselinux could not read ${specFile}`);
  lib.selinux_restorecon_set_sehandle(handle);
  policy = { lib, handle, restorecon: null };
}

/** The label stored on a file (no link followed), or null when it has none or the file system keeps none. */
export function fileLabel(path: string): string | null {
  const p = cstr(path);
  let e = 0;
  // Size, then value; if it changed in between (ERANGE, or gone), ask again.
  for (let tries = 0; tries < 3; tries++) {
    const size = Number(xattr().lgetxattr(p, NAME, null, 0));
    if (size < 0) {
      e = errno();
      if (e === ENODATA || e === ENOTSUP || e === ENOENT) return null;
      break;
    }
    const buf = Buffer.alloc(size + 1);
    const n = Number(xattr().lgetxattr(p, NAME, buf, buf.length));
    if (n >= 0) return labelText(buf.subarray(0, n));
    e = errno();
  }
  throw new Error(`reading the SELinux label of ${path}: errno ${e}`);
}

/** The label on an open file, or null. */
export function fdLabel(fd: number): string | null {
  const buf = Buffer.alloc(4096);
  const n = Number(xattr().fgetxattr(fd, NAME, buf, buf.length));
  return n < 0 ? null : labelText(buf.subarray(0, n));
}

// Labels are kept as their bytes: the kernel's end in a NUL, setfattr's do not; a copy is exact.
const labelText = (b: Buffer) => b.toString("latin1");
const shown = (label: string) => label.replace(/\0$/, "");

/** Put a label (its exact bytes) on an open file; returns 0 or the errno. */
export function setFdLabel(fd: number, label: string): number {
  const v = Buffer.from(label, "latin1");
  return xattr().fsetxattr(fd, NAME, v, v.length, 0) === 0 ? 0 : errno();
}

/** The policy's label for a path (as seen from the managed root) and file type, or null. */
export function policyLabel(path: string, mode: number): string | null {
  const p = loadPolicy();
  if (!p?.lib || !p.handle) return null;
  const out = new BigUint64Array(1);
  if (p.lib.selabel_lookup_raw(p.handle, ptr(out), cstr(inRoot(path)), mode) !== 0) return null;
  const con = read.ptr(ptr(out), 0);
  if (!con) return null;
  // As libselinux's setfilecon stores it: with the NUL.
  const label = `${new CString(con as never).toString()}\0`;
  p.lib.freecon(con as never);
  return label;
}

function inRoot(path: string): string {
  if (labelRoot === "/" || !path.startsWith(`${labelRoot}/`)) return path;
  return path.slice(labelRoot.length);
}

/**
 * The label a replaced account file's temp file must carry: the replaced file's own, else (a new
 * file, or one never labelled) the policy's for the path where SELinux is enabled; null: none.
 */
export function replacementLabel(path: string, mode: number): string | null {
  return fileLabel(path) ?? policyLabel(path, mode);
}

/**
 * Label a temp file that will be renamed to `path`, before anything is written into it. A label
 * that cannot be set fails the write only where SELinux is enabled (there the file would
 * otherwise be readable under the directory's label); elsewhere it is a plain attribute that
 * nothing enforces, and a file system without xattrs or a missing privilege changes nothing.
 */
export function labelReplacement(fd: number, label: string | null, path: string): void {
  if (label === null) return;
  const e = setFdLabel(fd, label);
  if (e !== 0 && selinuxEnabled()) throw new Error(`setting the SELinux label ${shown(label)} for ${path}: errno ${e}`);
}

/** Give a file ddum just created (open as fd, to be known as `path`) the policy's label; a no-op without SELinux. */
export function labelNewFile(fd: number, path: string, mode: number): void {
  if (!selinuxEnabled()) return;
  const label = policyLabel(path, mode);
  if (label === null) return;
  const e = setFdLabel(fd, label);
  if (e !== 0) throw new Error(`setting the SELinux label ${shown(label)} on ${path}: errno ${e}`);
}

/**
 * Give a directory tree ddum just built (a home, still root's and closed to others) the policy's
 * labels: libselinux's selinux_restorecon, else restorecon -R. A no-op without SELinux.
 */
export function labelNewTree(path: string): void {
  const p = loadPolicy();
  if (!p) return;
  if (p.lib) {
    // Process-wide in libselinux: set for every call ("/" is no prefix).
    p.lib.selinux_restorecon_set_alt_rootpath(cstr(labelRoot));
    // RECURSE (0x8): the whole tree, no link followed; SKIP_DIGEST (0x8000): no security.sehash
    // attribute left on the home.
    if (p.lib.selinux_restorecon(cstr(path), 0x8 | 0x8000) !== 0) throw new Error(`restoring the SELinux labels of ${path}: errno ${errno()}`);
    return;
  }
  if (p.restorecon && labelRoot === "/") {
    const r = spawnSync(p.restorecon, ["-R", path], { encoding: "utf8" });
    if (r.status !== 0) throw new Error(`restorecon -R ${path} failed: ${(r.stderr ?? "").trim()}`);
  }
}

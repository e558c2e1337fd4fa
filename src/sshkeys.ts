// SSH keys: exactly the table's keys, in the user's home (~/.ssh/authorized_keys, written through
// no-follow directory descriptors) or in root-owned files outside homes (a %u path template).
import { closeSync, fchmodSync, fchownSync, fstatSync, fsyncSync, mkdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync, writeSync, constants as C } from "node:fs";
import { dirname } from "node:path";
import { ENOENT, lstatAt, mkdirAt, openAt, openDirNoFollow, renameAt, SysError, unlinkAt, AT_FDCWD } from "./fsat.ts";
import type { Root } from "./paths.ts";

export const KEY_HEADER = "# Managed by ddum from the Users table: local edits are overwritten on the next pass.";

export function keyFileContent(keys: readonly string[]): string {
  return `${[KEY_HEADER, ...keys].join("\n")}\n`;
}

export type KeyOutcome = "unchanged" | "written" | "removed" | "absent";

export class KeyRefusal extends Error {}

/**
 * ~/.ssh/authorized_keys. The home must already be checked (a directory owned by uid). Every
 * step is relative to a descriptor opened with O_NOFOLLOW; the file is replaced by rename, so a
 * link planted by the user is refused, and a hard link is never written through.
 */
export function syncHomeKeys(homePath: string, uid: number, gid: number, keys: readonly string[], dryRun: boolean): KeyOutcome {
  let home: number;
  try {
    home = openDirNoFollow(AT_FDCWD, homePath);
  } catch (e) {
    throw new KeyRefusal(`cannot open the home without following links: ${(e as Error).message}`);
  }
  try {
    if (fstatSync(home).uid !== uid) throw new KeyRefusal("the home is not owned by the user");
    const sshSt = lstatAt(home, ".ssh");
    if (sshSt === null) {
      if (keys.length === 0) return "absent";
      if (dryRun) return "written";
      mkdirAt(home, ".ssh", 0o700);
    } else if (sshSt.isSymbolicLink()) {
      throw new KeyRefusal("~/.ssh is a symbolic link; refused (root never follows links in homes)");
    } else if (!sshSt.isDirectory()) {
      throw new KeyRefusal("~/.ssh is not a directory; refused");
    } else if (sshSt.uid !== uid && sshSt.uid !== 0) {
      throw new KeyRefusal(`~/.ssh belongs to UID ${sshSt.uid}, not to the user; refused`);
    }
    let ssh: number;
    try {
      ssh = openDirNoFollow(home, ".ssh");
    } catch (e) {
      throw new KeyRefusal(`cannot open ~/.ssh without following links: ${(e as Error).message}`);
    }
    try {
      const st = fstatSync(ssh);
      if (st.uid !== uid || st.gid !== gid) {
        if (st.uid !== uid && st.uid !== 0) throw new KeyRefusal("~/.ssh changed owner while being opened; refused");
        if (!dryRun) fchownSync(ssh, uid, gid);
      }
      if ((st.mode & 0o7777) !== 0o700 && !dryRun) fchmodSync(ssh, 0o700);
      return writeKeyFileAt(ssh, uid, gid, keys, dryRun);
    } finally {
      closeSync(ssh);
    }
  } finally {
    closeSync(home);
  }
}

function writeKeyFileAt(ssh: number, uid: number, gid: number, keys: readonly string[], dryRun: boolean): KeyOutcome {
  const name = "authorized_keys";
  const st = lstatAt(ssh, name);
  const want = keyFileContent(keys);
  if (st) {
    if (st.isSymbolicLink()) throw new KeyRefusal("~/.ssh/authorized_keys is a symbolic link; refused");
    if (!st.isFile()) throw new KeyRefusal("~/.ssh/authorized_keys is not a regular file; refused");
    if (st.nlink > 1) throw new KeyRefusal(`~/.ssh/authorized_keys has ${st.nlink} hard links; refused`);
    const fd = openAt(ssh, name, C.O_RDONLY | C.O_NOFOLLOW | C.O_NONBLOCK);
    let have: string;
    try {
      have = readFileSync(fd, "utf8");
    } finally {
      closeSync(fd);
    }
    if (have === want && st.uid === uid && (st.mode & 0o7777) === 0o600) return "unchanged";
  }
  if (dryRun) return "written";
  const tmp = ".authorized_keys.ddum-new";
  unlinkAt(ssh, tmp);
  const fd = openAt(ssh, tmp, C.O_WRONLY | C.O_CREAT | C.O_EXCL | C.O_NOFOLLOW, 0o600);
  try {
    fchownSync(fd, uid, gid);
    fchmodSync(fd, 0o600);
    const buf = Buffer.from(want, "utf8");
    let off = 0;
    while (off < buf.length) off += writeSync(fd, buf, off, buf.length - off);
    fsyncSync(fd);
  } catch (e) {
    closeSync(fd);
    unlinkAt(ssh, tmp);
    throw e;
  }
  closeSync(fd);
  renameAt(ssh, tmp, name);
  return "written";
}

/** Root-owned key files outside homes (directory 0755 root, files 0644 root); no file when no keys. */
export function syncRootKeys(path: string, keys: readonly string[], dryRun: boolean): KeyOutcome {
  let have: string | null = null;
  try {
    have = readFileSync(path, "utf8");
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "ENOENT") throw e;
  }
  if (keys.length === 0) {
    if (have === null) return "absent";
    if (!dryRun) rmSync(path, { force: true });
    return "removed";
  }
  const want = keyFileContent(keys);
  if (have === want) {
    const st = statSync(path);
    if (st.uid === 0 && (st.mode & 0o7777) === 0o644) return "unchanged";
  }
  if (dryRun) return "written";
  mkdirSync(dirname(path), { recursive: true, mode: 0o755 });
  const tmp = `${path}.ddum-new`;
  writeFileSync(tmp, want, { mode: 0o644 });
  const fd = openAt(AT_FDCWD, tmp, C.O_RDONLY | C.O_NOFOLLOW);
  try {
    fchownSync(fd, 0, 0);
    fchmodSync(fd, 0o644);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, path);
  return "written";
}

/** The key file path for a user under a %u template. */
export function templatePath(root: Root, template: string, name: string): string {
  return root.path(template.replaceAll("%u", name));
}

/** Read the keys of a user from a key file (header and blank lines dropped). */
export function readKeyFile(path: string): string[] | null {
  try {
    return readFileSync(path, "utf8")
      .split("\n")
      .filter((l) => l !== "" && !l.startsWith("#"));
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return null;
    throw e;
  }
}

export { ENOENT, SysError };

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
  if (location !== "home") return readKeyFile(templatePath(root, location, name)) ?? [];
  const pw = homeOf(root, name);
  if (!pw) return [];
  let home: number;
  try {
    home = openDirNoFollow(AT_FDCWD, root.path(pw.home));
  } catch {
    return [];
  }
  try {
    const ssh = openDirNoFollow(home, ".ssh");
    try {
      const fd = openAt(ssh, "authorized_keys", C.O_RDONLY | C.O_NOFOLLOW | C.O_NONBLOCK);
      try {
        const st = fstatSync(fd);
        if (!st.isFile() || st.uid !== pw.uid) return [];
        return readFileSync(fd, "utf8")
          .split("\n")
          .filter((l) => l !== "" && !l.startsWith("#"));
      } finally {
        closeSync(fd);
      }
    } finally {
      closeSync(ssh);
    }
  } catch {
    return [];
  } finally {
    closeSync(home);
  }
}

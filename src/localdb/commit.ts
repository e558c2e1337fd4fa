import {
  readdirSync,
  closeSync,
  fchmodSync,
  fchownSync,
  fsyncSync,
  linkSync,
  lstatSync,
  openSync,
  readFileSync,
  renameSync,
  unlinkSync,
  writeSync,
  constants as C,
  type Stats,
} from "node:fs";
import { basename, dirname } from "node:path";
import { DdumError } from "../errors.ts";
import { labelReplacement, replacementLabel } from "../selinux.ts";
import { O_CLOEXEC } from "./libc.ts";
import { processAlive } from "./lock.ts";

export interface FileWrite {
  path: string;
  /**
   * The new content, made when the file's turn comes (so the four files are never all in memory
   * at once); null when it turns out the same as the previous content, and nothing is written.
   */
  render: () => string | null;
  /** Previous content, for the FILE- backup; null when the file did not exist. */
  previous: string | null;
  /** Mode and owner for a file that does not exist yet. */
  defaults: { mode: number; uid: number; gid: number };
}

function writeFileFd(path: string, data: string, mode: number, uid: number, gid: number, label: string | null = null): void {
  const fd = openSync(path, C.O_WRONLY | C.O_CREAT | C.O_EXCL | O_CLOEXEC | C.O_NOFOLLOW, 0o600);
  try {
    // Owner first, then mode: fchown may clear set-id bits, and the file is 0600 until both are set.
    fchownSync(fd, uid, gid);
    fchmodSync(fd, mode);
    // The SELinux label before the content: the hashes are never in a file labelled like /etc.
    labelReplacement(fd, label, path);
    const buf = Buffer.from(data, "utf8");
    let off = 0;
    while (off < buf.length) off += writeSync(fd, buf, off, buf.length - off);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

function fsyncDir(dir: string): void {
  const fd = openSync(dir, C.O_RDONLY | C.O_DIRECTORY | O_CLOEXEC);
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

function statTarget(path: string): Stats | null {
  try {
    const st = lstatSync(path);
    if (!st.isFile()) throw new DdumError(`${path} is not a regular file (a link or special file); refusing to replace it`);
    return st;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return null;
    throw e;
  }
}

/**
 * Replace several files as one change, the way shadow-utils and systemd-sysusers do: write every
 * new file to a temp file beside it (the original's mode and owner, fsynced), then make the
 * FILE- backups (a hard link to the original, else a copy), then rename the temps over the
 * originals and fsync the directories. If anything
 * fails before the first rename, every temp is removed and every original is untouched.
 * collect: told when a large file's text has just become garbage (see perf.ts).
 */
export function commitFiles(writes: FileWrite[], collect: (full: boolean) => void = () => {}): string[] {
  if (writes.length === 0) return [];
  const tag = `${process.pid}.${Date.now().toString(36)}`;
  const temps: string[] = [];
  const plans: { path: string; tmp: string; backupTmp: string | null; backup: string }[] = [];
  try {
    for (const w of writes) {
      const st = statTarget(w.path);
      const mode = st ? st.mode & 0o7777 : w.defaults.mode;
      const uid = st ? st.uid : w.defaults.uid;
      const gid = st ? st.gid : w.defaults.gid;
      const dir = dirname(w.path);
      const tmp = `${dir}/.${basename(w.path)}.ddum-${tag}`;
      const content = w.render();
      if (content === null) continue;
      const label = replacementLabel(w.path, C.S_IFREG | mode);
      temps.push(tmp);
      writeFileFd(tmp, content, mode, uid, gid, label);
      // Serializing a file leaves its pieces behind (several times its size); collect them before
      // the next one (a young-generation collection: milliseconds).
      collect(false);
      let backupTmp: string | null = null;
      if (w.previous !== null) {
        backupTmp = `${dir}/.${basename(w.path)}-.ddum-${tag}`;
        temps.push(backupTmp);
        // The original is replaced by rename, never written: a second name for its inode is the
        // backup, with no copy and nothing more to fsync (a 100,000-user shadow file is 13 MB).
        // Where hard links are not possible, a copy.
        try {
          if (!st) throw new Error("no original");
          linkSync(w.path, backupTmp);
        } catch {
          writeFileFd(backupTmp, w.previous, mode, uid, gid, label);
        }
      }
      plans.push({ path: w.path, tmp, backupTmp, backup: `${w.path}-` });
    }
    for (const p of plans) if (p.backupTmp) renameSync(p.backupTmp, p.backup);
  } catch (e) {
    for (const t of temps) {
      try {
        unlinkSync(t);
      } catch {
        // never created, or already renamed into place
      }
    }
    const err = e as NodeJS.ErrnoException;
    throw new DdumError(`writing the account files failed, nothing was changed: ${err.message}`);
  }
  const done: string[] = [];
  try {
    for (const p of plans) {
      renameSync(p.tmp, p.path);
      done.push(p.path);
    }
  } catch (e) {
    for (const p of plans) {
      if (!done.includes(p.path)) {
        try {
          unlinkSync(p.tmp);
        } catch {
          // not there
        }
      }
    }
    throw new DdumError(
      `replacing the account files failed after ${done.length} of ${plans.length} were replaced ` +
        `(${done.join(", ") || "none"}); the others are unchanged, backups are in FILE-: ${(e as Error).message}`,
    );
  }
  for (const dir of new Set(plans.map((p) => dirname(p.path)))) fsyncDir(dir);
  return plans.map((p) => p.path);
}

function holdsOnly(path: string, text: string): boolean {
  try {
    const st = lstatSync(path);
    return st.isFile() && st.size <= 32 && readFileSync(path, "latin1").trim() === text;
  } catch {
    return false;
  }
}

/**
 * Temp files a killed ddum left beside the account files (".passwd.ddum-PID.TIME", and the lock
 * protocol's "passwd.PID" of a dead process). Only called
 * with the account locks held, when no other ddum can be committing.
 */
export function removeStaleTemps(dir: string, names: readonly string[]): string[] {
  const removed: string[] = [];
  const prefixes = names.flatMap((n) => [`.${n}.ddum-`, `.${n}-.ddum-`]);
  // FILE.PID: the link-lock temp of the lock protocol (ddum's or shadow-utils'), left behind when
  // its process died; a live process may still be trying its lock with one, so only the dead's.
  const lockTemp = new RegExp(`^(?:${names.map((n) => n.replace(/[^a-z]/g, "")).join("|")})\\.([1-9][0-9]{0,9})$`);
  for (const entry of readdirSync(dir)) {
    const pid = lockTemp.exec(entry)?.[1];
    if (pid !== undefined) {
      // Only a file holding just that PID: "passwd.2024", an admin's copy, is left alone.
      if (pid === String(process.pid) || processAlive(Number(pid)) || !holdsOnly(`${dir}/${entry}`, pid)) continue;
    } else if (!prefixes.some((p) => entry.startsWith(p))) continue;
    try {
      unlinkSync(`${dir}/${entry}`);
      removed.push(entry);
    } catch {
      // gone already
    }
  }
  return removed;
}

import { closeSync, fstatSync, linkSync, lstatSync, openSync, readSync, unlinkSync, writeSync, constants as C } from "node:fs";
import { LockError } from "../errors.ts";
import type { Root } from "../paths.ts";
import { EACCES, EAGAIN, O_CLOEXEC, tryWriteLock } from "./libc.ts";

export const LOCKED_FILES = ["passwd", "shadow", "group", "gshadow"] as const;

/**
 * The pause between two tries of a lock: resolves after ms, or at once with the signal's name
 * when SIGTERM or SIGINT arrives meanwhile (systemd stop, Ctrl-C), so a wait ends when asked.
 * Only while it waits does it listen, so a process that does not wait keeps the default action.
 */
function pause(ms: number): Promise<string | null> {
  return new Promise((resolve) => {
    const done = (sig: string | null) => {
      clearTimeout(timer);
      process.off("SIGTERM", term);
      process.off("SIGINT", int);
      resolve(sig);
    };
    const term = () => done("SIGTERM");
    const int = () => done("SIGINT");
    const timer = setTimeout(() => done(null), ms);
    process.on("SIGTERM", term);
    process.on("SIGINT", int);
  });
}

const TRY_EVERY_MS = 100;

/** Wait before the next try; throws once the deadline is past or a stop signal came. */
async function waitOrGiveUp(deadline: number, timeoutMs: number, blocker: () => string): Promise<void> {
  if (Date.now() >= deadline) {
    throw new LockError(`timed out after ${Math.round(timeoutMs / 1000)}s waiting for ${blocker()}; nothing was changed`);
  }
  const sig = await pause(Math.max(1, Math.min(TRY_EVERY_MS, deadline - Date.now())));
  if (sig) throw new LockError(`${sig} received while waiting for ${blocker()}; nothing was changed`);
}

function kindOf(path: string): string {
  try {
    const st = lstatSync(path);
    return st.isDirectory() ? "a directory" : st.isSymbolicLink() ? "a symbolic link" : st.isFile() ? "a file" : "a special file";
  } catch {
    return "gone";
  }
}

export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}

export interface Locks {
  release(): void;
}

/**
 * Take the locks shadow-utils takes before it edits the account files:
 * 1. the lckpwdf() lock, a whole-file fcntl write lock on ROOT/etc/.pwd.lock (the same lock glibc
 *    takes; done here with fcntl so that a root other than / gets the same kind of lock and the
 *    wait is ours to bound instead of glibc's SIGALRM);
 * 2. for each file, FILE.lock by the link protocol: write our PID to FILE.PID, link() it to
 *    FILE.lock, and treat a FILE.lock whose PID is dead as stale.
 * Waits up to timeoutMs in total, then fails naming the lock and who holds it.
 */
/**
 * A whole-file fcntl write lock on path (created 0600 if missing), polled until timeoutMs.
 * Returns the descriptor; closing it releases the lock.
 */
export async function fcntlLock(path: string, timeoutMs: number, holderHint: string): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    let fd: number;
    try {
      // No link is followed and nothing but a regular file is locked: a FIFO or a directory
      // there would otherwise hang the open or fail it forever.
      fd = openSync(path, C.O_WRONLY | C.O_CREAT | C.O_NOFOLLOW | C.O_NONBLOCK | O_CLOEXEC, 0o600);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code !== "EISDIR" && code !== "ELOOP" && code !== "ENXIO") throw new LockError(`cannot open ${path}: ${(e as Error).message}`);
      await waitOrGiveUp(deadline, timeoutMs, () => `${path}, which is ${kindOf(path)}, not a lock file: remove it`);
      continue;
    }
    if (!fstatSync(fd).isFile()) {
      closeSync(fd);
      await waitOrGiveUp(deadline, timeoutMs, () => `${path}, which is ${kindOf(path)}, not a lock file: remove it`);
      continue;
    }
    for (;;) {
      const err = tryWriteLock(fd);
      if (err === 0) return fd;
      if (err !== EAGAIN && err !== EACCES) {
        closeSync(fd);
        throw new LockError(`cannot lock ${path}: errno ${err}`);
      }
      try {
        await waitOrGiveUp(deadline, timeoutMs, () => `${path}: ${holderHint}`);
      } catch (e) {
        closeSync(fd);
        throw e;
      }
    }
  }
}

/**
 * Take the locks shadow-utils takes before it edits the account files:
 * 1. the lckpwdf() lock, a whole-file fcntl write lock on ROOT/etc/.pwd.lock (the same lock glibc
 *    takes; done here with fcntl so that a root other than / gets the same kind of lock and the
 *    wait is ours to bound instead of glibc's SIGALRM);
 * 2. for each file, FILE.lock by the link protocol: write our PID to FILE.PID, link() it to
 *    FILE.lock, and treat a FILE.lock whose PID is dead as stale.
 * Waits up to timeoutMs in total, then fails naming the lock and who holds it.
 */
export async function lockAccountFiles(root: Root, timeoutMs: number): Promise<Locks> {
  const deadline = Date.now() + timeoutMs;
  const fd = await fcntlLock(
    root.etc(".pwd.lock"),
    timeoutMs,
    "another program (useradd, passwd, vipw, another ddum) holds the password file lock",
  );
  const taken: string[] = [];
  const release = () => {
    for (const lock of taken.splice(0).reverse()) {
      try {
        unlinkSync(lock);
      } catch {
        // already gone: nothing to release
      }
    }
    try {
      closeSync(fd);
    } catch {
      // closing releases the fcntl lock; a second release is harmless
    }
  };
  try {
    for (const name of LOCKED_FILES) {
      taken.push(await linkLock(root.etc(name), deadline, timeoutMs));
    }
  } catch (e) {
    release();
    throw e;
  }
  return { release };
}

async function linkLock(file: string, deadline: number, timeoutMs: number): Promise<string> {
  const lock = `${file}.lock`;
  const tmp = `${file}.${process.pid}`;
  for (;;) {
    // FILE.PID is this process's own name (no other live process has the PID): one left by a
    // failed try, or by a dead process that had the PID, is removed first.
    try {
      unlinkSync(tmp);
    } catch {
      // not there
    }
    let tmpMade = false;
    try {
      const fd = openSync(tmp, C.O_WRONLY | C.O_CREAT | C.O_EXCL | C.O_NOFOLLOW | O_CLOEXEC, 0o600);
      tmpMade = true;
      try {
        writeSync(fd, String(process.pid));
      } finally {
        closeSync(fd);
      }
      linkSync(tmp, lock);
      return lock;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EEXIST") {
        throw new LockError(`cannot create ${lock}: ${(e as Error).message}`);
      }
    } finally {
      // On every path, a full disk included: a temp left here would block every later try.
      try {
        unlinkSync(tmp);
      } catch {
        // never created
      }
    }
    if (!tmpMade) {
      // FILE.PID itself is in the way (a directory, something unlink cannot remove): it is not
      // the lock, and trying again at once would spin; wait for it like any other blocker.
      await waitOrGiveUp(deadline, timeoutMs, () => `${tmp}, which is ${kindOf(tmp)} in the way of the lock: remove it`);
      continue;
    }
    const holder = readLockHolder(lock);
    if (holder === "gone") {
      // Vanished between link and read: try again, but never past the deadline or a signal.
      await waitOrGiveUp(deadline, timeoutMs, () => `${lock}, which keeps appearing and vanishing`);
      continue;
    }
    if (holder === "not a file") {
      await waitOrGiveUp(deadline, timeoutMs, () => `${lock}, which is ${kindOf(lock)}, not a lock file: remove it`);
      continue;
    }
    const pid = Number(holder);
    if (!Number.isInteger(pid) || pid <= 0 || !processAlive(pid)) {
      // Stale: the holder died without cleaning up (shadow-utils treats it the same way).
      try {
        if (readLockHolder(lock) === holder) {
          unlinkSync(lock);
          continue;
        }
      } catch {
        // cannot be removed: wait for it like any other holder
      }
      await waitOrGiveUp(deadline, timeoutMs, () => `${lock}, a stale lock (PID ${printablePid(holder)}) that cannot be removed`);
      continue;
    }
    if (pid === process.pid) throw new LockError(`${lock} is already held by this process`);
    await waitOrGiveUp(deadline, timeoutMs, () => `${lock}, held by PID ${pid}`);
  }
}

/** The PID text in a lock file, "gone" when there is none, "not a file" when it is not a regular file. */
function readLockHolder(lock: string): string {
  let fd: number;
  try {
    fd = openSync(lock, C.O_RDONLY | C.O_NOFOLLOW | C.O_NONBLOCK | O_CLOEXEC);
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "ENOENT" ? "gone" : "not a file";
  }
  try {
    if (!fstatSync(fd).isFile()) return "not a file";
    const buf = Buffer.alloc(32);
    const n = readSync(fd, buf, 0, buf.length, 0);
    return buf.toString("latin1", 0, n).trim();
  } finally {
    closeSync(fd);
  }
}

const printablePid = (s: string) => JSON.stringify(s.slice(0, 20));

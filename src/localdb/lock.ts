import { closeSync, linkSync, openSync, readFileSync, unlinkSync, writeSync, constants as C } from "node:fs";
import { LockError } from "../errors.ts";
import type { Root } from "../paths.ts";
import { EACCES, EAGAIN, O_CLOEXEC, tryWriteLock } from "./libc.ts";

export const LOCKED_FILES = ["passwd", "shadow", "group", "gshadow"] as const;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function processAlive(pid: number): boolean {
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
  let fd: number;
  try {
    fd = openSync(path, C.O_WRONLY | C.O_CREAT | O_CLOEXEC, 0o600);
  } catch (e) {
    throw new LockError(`cannot open ${path}: ${(e as Error).message}`);
  }
  for (;;) {
    const err = tryWriteLock(fd);
    if (err === 0) return fd;
    if (err !== EAGAIN && err !== EACCES) {
      closeSync(fd);
      throw new LockError(`cannot lock ${path}: errno ${err}`);
    }
    if (Date.now() >= deadline) {
      closeSync(fd);
      throw new LockError(`timed out after ${Math.round(timeoutMs / 1000)}s waiting for ${path}: ${holderHint}; nothing was changed`);
    }
    await sleep(100);
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
    const fd = openSync(tmp, C.O_WRONLY | C.O_CREAT | C.O_EXCL | O_CLOEXEC, 0o600);
    try {
      writeSync(fd, String(process.pid));
    } finally {
      closeSync(fd);
    }
    try {
      linkSync(tmp, lock);
      return lock;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EEXIST") {
        throw new LockError(`cannot create ${lock}: ${(e as Error).message}`);
      }
    } finally {
      unlinkSync(tmp);
    }
    let holder = "";
    try {
      holder = readFileSync(lock, "utf8").trim();
    } catch {
      continue; // vanished between link and read: try again at once
    }
    const pid = Number(holder);
    if (!Number.isInteger(pid) || pid <= 0 || !processAlive(pid)) {
      // Stale: the holder died without cleaning up (shadow-utils treats it the same way).
      try {
        if (readFileSync(lock, "utf8").trim() === holder) unlinkSync(lock);
      } catch {
        // someone else removed it first
      }
      continue;
    }
    if (pid === process.pid) throw new LockError(`${lock} is already held by this process`);
    if (Date.now() >= deadline) {
      throw new LockError(
        `timed out after ${Math.round(timeoutMs / 1000)}s waiting for ${lock}, held by PID ${pid}; nothing was changed`,
      );
    }
    await sleep(100);
  }
}

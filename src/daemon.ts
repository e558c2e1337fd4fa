// `ddum daemon`: the same pass in a loop, with jitter, that survives outages and stops cleanly.
import { closeSync, ftruncateSync, readFileSync, unlinkSync, writeSync, constants as C } from "node:fs";
import { DdumError } from "./errors.ts";
import { EACCES, EAGAIN, tryWriteLock } from "./localdb/libc.ts";
import type { Logger } from "./log.ts";
import { openRegular } from "./safefile.ts";

export const DEFAULT_PIDFILE = "/var/run/dynamodb-user-manager.pid";

export interface Schedule {
  period: number;
  jitter: number;
}

/** Everything the loop needs from the outside, so tests can drive it with a fake clock. */
export interface LoopDeps {
  /** One pass; resolves true on success. Must not throw (failures are results). */
  pass(): Promise<boolean>;
  schedule(): Schedule;
  random(): number;
  /** Wait ms, or less if woken. */
  sleep(ms: number, wake: AbortSignal): Promise<void>;
  /** Re-read the configuration; throws when the new one is bad. */
  reload(): void;
  log: Logger;
}

/** Seconds to wait after a pass: the period plus a random 0..jitter. */
export function nextDelay(s: Schedule, random: number): number {
  return s.period + random * s.jitter;
}

export class Loop {
  private stopping = false;
  private reloadWanted = false;
  private waker = new AbortController();
  passes = 0;

  constructor(private readonly deps: LoopDeps) {}

  /** SIGTERM/SIGINT: finish the pass in progress (if any), then return from run(). */
  stop(): void {
    this.stopping = true;
    this.waker.abort();
  }

  /** SIGHUP: reload the configuration and run a pass now. */
  hangup(): void {
    this.reloadWanted = true;
    this.waker.abort();
  }

  async run(): Promise<void> {
    const { deps } = this;
    while (!this.stopping) {
      if (this.reloadWanted) {
        this.reloadWanted = false;
        try {
          deps.reload();
          deps.log.info("configuration reloaded");
        } catch (e) {
          deps.log.error(`configuration not reloaded, keeping the previous one: ${(e as Error).message}`);
        }
      }
      await deps.pass();
      this.passes++;
      if (this.stopping) break;
      if (this.reloadWanted) continue;
      const delay = nextDelay(deps.schedule(), deps.random());
      deps.log.debug(`next pass in ${Math.round(delay)} s`);
      this.waker = new AbortController();
      await deps.sleep(delay * 1000, this.waker.signal);
    }
  }
}

/** A sleep that a signal can cut short. */
export function realSleep(ms: number, wake: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (wake.aborted) return resolve();
    const t = setTimeout(resolve, ms);
    wake.addEventListener(
      "abort",
      () => {
        clearTimeout(t);
        resolve();
      },
      { once: true },
    );
  });
}

/**
 * A locked pidfile: the fcntl lock is held for the daemon's life, so a second daemon is refused
 * while a pidfile left by a dead one (no lock) is simply taken over.
 */
export class PidFile {
  private constructor(
    readonly path: string,
    private fd: number | null,
  ) {}

  static acquire(path: string): PidFile {
    let fd: number;
    try {
      // No-follow, a single-link regular file only: a pidfile path that is a link (or a hard link)
      // to /etc/shadow must never be truncated to a PID.
      fd = openRegular(path, C.O_RDWR, 0o644);
    } catch (e) {
      throw new DdumError(`cannot open pidfile ${path}: ${(e as Error).message}`);
    }
    const err = tryWriteLock(fd);
    if (err !== 0) {
      closeSync(fd);
      if (err !== EAGAIN && err !== EACCES) throw new DdumError(`cannot lock pidfile ${path}: errno ${err}`);
      let holder = "";
      try {
        holder = readFileSync(path, "utf8").trim();
      } catch {
        // unreadable: say so without the PID
      }
      throw new DdumError(`another ddum daemon${holder ? ` (PID ${holder})` : ""} is running with pidfile ${path}; not starting`);
    }
    ftruncateSync(fd, 0);
    writeSync(fd, `${process.pid}\n`, 0);
    return new PidFile(path, fd);
  }

  release(): void {
    if (this.fd === null) return;
    try {
      unlinkSync(this.path);
    } catch {
      // already gone
    }
    closeSync(this.fd);
    this.fd = null;
  }
}

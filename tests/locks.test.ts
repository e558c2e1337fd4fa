// A lock path that is not a lock file: every wait is bounded, sleeps, ends on SIGTERM, and gives
// back every lock it took. Run against the compiled binary and a real root.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { DDUM, ddum, writeConfig } from "./helpers/ddum.ts";
import { type Dynamo, startDynalite, userItem } from "./helpers/dynalite.ts";
import { cleanupRoots, makeRoot, snapshot } from "./helpers/root.ts";

let d: Dynamo;
beforeAll(async () => {
  d = await startDynalite();
  await d.createTables();
  await d.put("Users", [userItem("alice", 2001)]);
});
afterAll(async () => {
  await d.close();
  cleanupRoots();
});

const LOCKS = [".pwd.lock", "passwd.lock", "shadow.lock", "group.lock", "gshadow.lock"];

/** Whether a process other than this one could take the lckpwdf() lock of root (flock via fcntl). */
function pwdLockFree(root: string): boolean {
  // A child process, so that this process's own fcntl locks do not count.
  const r = Bun.spawnSync([
    "python3",
    "-c",
    "import fcntl,os,sys\nfd=os.open(sys.argv[1],os.O_WRONLY)\ntry:\n fcntl.lockf(fd,fcntl.LOCK_EX|fcntl.LOCK_NB)\nexcept OSError:\n sys.exit(1)",
    join(root, "etc", ".pwd.lock"),
  ]);
  return r.exitCode === 0;
}

/** The lock files a pass leaves behind in ROOT/etc (there must be none), besides an obstacle. */
function leftovers(root: string, obstacle: string): string[] {
  return readdirSync(join(root, "etc")).filter((n) => n !== obstacle && (/\.lock$/.test(n) && n !== ".pwd.lock" ? true : /^(passwd|shadow|group|gshadow)\.\d+$/.test(n)));
}

/** Polls for the condition itself; the test's own timeout bounds the wait. */
async function waitFor(cond: () => boolean): Promise<void> {
  while (!cond()) await new Promise((r) => setTimeout(r, 20));
}

describe("a lock path that is not a lock file", () => {
  // FILE.PID, the link protocol's own temp name, taken by a directory (unlink cannot remove it):
  // planted for the PIDs the next process may get, in each file's place.
  for (const file of ["passwd", "shadow", "group", "gshadow"]) {
    test(`${file}.PID as a directory: bounded by lock_timeout, asleep, named, every lock given back`, async () => {
      const root = makeRoot();
      const before = snapshot(root);
      const last = Number(readFileSync("/proc/sys/kernel/ns_last_pid", "utf8"));
      for (let p = last + 1; p < last + 300; p++) mkdirSync(join(root, "etc", `${file}.${p}`));
      const cfg = writeConfig(d, { lock_timeout: 2, state_dir: "/var/lib/ddum" });
      const proc = Bun.spawn([DDUM, "sync", "--root", root, "-c", cfg], { stdout: "pipe", stderr: "pipe" });
      const t0 = performance.now();
      const [, stderr, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
      const wall = performance.now() - t0;
      const cpu = proc.resourceUsage()!.cpuTime;
      expect(code).toBe(1);
      expect(stderr).toContain(`${join(root, "etc", `${file}.${proc.pid}`)}, which is a directory in the way of the lock`);
      expect(wall).toBeGreaterThanOrEqual(2000);
      expect(Number(cpu.user + cpu.system) / 1000).toBeLessThan(1500);
      expect(snapshot(root)).toEqual(before);
      expect(readdirSync(join(root, "etc")).filter((n) => n.endsWith(".lock") && n !== ".pwd.lock")).toEqual([]);
      expect(pwdLockFree(root)).toBe(true);
    });
  }

  for (const lock of LOCKS) {
    for (const kind of ["directory", "dangling symlink"] as const) {
      test(`${lock} as a ${kind}: the pass gives up after lock_timeout, mostly asleep, naming it and releasing the others`, async () => {
        const root = makeRoot();
        const path = join(root, "etc", lock);
        rmSync(path, { force: true });
        if (kind === "directory") mkdirSync(path);
        else symlinkSync(join(root, "nowhere", "x"), path);
        const before = snapshot(root);
        const cfg = writeConfig(d, { lock_timeout: 2, state_dir: "/var/lib/ddum" });
        const proc = Bun.spawn([DDUM, "sync", "--root", root, "-c", cfg], { stdout: "pipe", stderr: "pipe" });
        const t0 = performance.now();
        const [, stderr, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
        const wall = performance.now() - t0;
        const cpu = proc.resourceUsage()!.cpuTime;
        expect(code).toBe(1);
        expect(stderr).toContain(`waiting for ${path}`);
        expect(stderr).toContain(kind === "directory" ? "a directory" : "a symbolic link");
        // Bounded by lock_timeout (2 s) and asleep between tries: a spinning wait burns its 2 s.
        expect(wall).toBeGreaterThanOrEqual(2000);
        expect(Number(cpu.user + cpu.system) / 1000).toBeLessThan(1500);
        expect(snapshot(root)).toEqual(before);
        expect(leftovers(root, lock)).toEqual([]);
        if (lock !== ".pwd.lock") expect(pwdLockFree(root)).toBe(true);
        // The obstacle itself is left as it was.
        expect(kind === "directory" ? existsSync(path) : readdirSync(join(root, "etc")).includes(lock)).toBe(true);
      });
    }
  }

  test("a FIFO at .pwd.lock does not hang the open: bounded like the rest", async () => {
    const root = makeRoot();
    const path = join(root, "etc", ".pwd.lock");
    rmSync(path, { force: true });
    expect(Bun.spawnSync(["mkfifo", path]).exitCode).toBe(0);
    const cfg = writeConfig(d, { lock_timeout: 1 });
    const r = await ddum(["sync", "--root", root, "-c", cfg]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`waiting for ${path}, which is a special file`);
  });

  test("a lock file that is a link to another file is never read or removed through the link", async () => {
    const root = makeRoot();
    const target = join(root, "precious");
    writeFileSync(target, "not a pid\n");
    symlinkSync(target, join(root, "etc", "group.lock"));
    const cfg = writeConfig(d, { lock_timeout: 1 });
    const r = await ddum(["sync", "--root", root, "-c", cfg]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("group.lock, which is a symbolic link");
    expect(readFileSync(target, "utf8")).toBe("not a pid\n");
    expect(leftovers(root, "group.lock")).toEqual([]);
  });

  for (const mode of ["sync", "daemon"] as const) {
    test(`SIGTERM while ${mode} waits for a blocked lock ends the wait at once and releases every lock`, async () => {
      const root = makeRoot();
      mkdirSync(join(root, "etc", "gshadow.lock"));
      const before = snapshot(root);
      const cfg = writeConfig(d, { lock_timeout: 3600 });
      const args = mode === "sync" ? ["sync", "--root", root, "-c", cfg] : ["daemon", "-f", "-p", join(root, "ddum.pid"), "--root", root, "-c", cfg];
      const proc = Bun.spawn([DDUM, ...args], { stdout: "pipe", stderr: "pipe" });
      const stderr = new Response(proc.stderr).text();
      // It holds the three locks before gshadow's: then it is waiting.
      await waitFor(() => existsSync(join(root, "etc", "group.lock")));
      expect(pwdLockFree(root)).toBe(false);
      proc.kill("SIGTERM");
      const code = await proc.exited;
      expect(proc.signalCode).toBeNull();
      expect(mode === "sync" ? code : 0).toBe(mode === "sync" ? 1 : 0);
      expect(await stderr).toContain(`SIGTERM received while waiting for ${join(root, "etc", "gshadow.lock")}`);
      expect(leftovers(root, "gshadow.lock")).toEqual([]);
      expect(pwdLockFree(root)).toBe(true);
      expect(snapshot(root)).toEqual(before);
    });
  }

  test("a live holder of passwd.lock: timed out, named by PID, nothing else held", async () => {
    const root = makeRoot();
    const holder = Bun.spawn(["sleep", "600"]);
    try {
      writeFileSync(join(root, "etc", "passwd.lock"), String(holder.pid));
      const cfg = writeConfig(d, { lock_timeout: 1 });
      const r = await ddum(["sync", "--root", root, "-c", cfg]);
      expect(r.code).toBe(1);
      expect(r.stderr).toContain(`passwd.lock, held by PID ${holder.pid}`);
      expect(leftovers(root, "passwd.lock")).toEqual([]);
      expect(pwdLockFree(root)).toBe(true);
    } finally {
      holder.kill();
    }
  });

  test("FILE.PID temps a dead process left are removed under the locks; a live one's and an admin's copies stay", async () => {
    const root = makeRoot();
    const etc = join(root, "etc");
    const live = Bun.spawn(["sleep", "600"]);
    try {
      // A PID that is not running: the highest pid_max allows, above any live one here.
      const dead = 4194303;
      writeFileSync(join(etc, `passwd.${dead}`), String(dead));
      writeFileSync(join(etc, `gshadow.${dead}`), `${dead}\n`);
      writeFileSync(join(etc, `shadow.${live.pid}`), String(live.pid));
      writeFileSync(join(etc, "group.2024"), readFileSync(join(etc, "group"), "utf8"));
      writeFileSync(join(etc, "passwd.1234567"), "1");
      const r = await ddum(["sync", "--root", root, "-c", writeConfig(d)]);
      expect(r.code).toBe(0);
      const left = readdirSync(etc);
      expect(left).not.toContain(`passwd.${dead}`);
      expect(left).not.toContain(`gshadow.${dead}`);
      expect(left).toContain(`shadow.${live.pid}`);
      expect(left).toContain("group.2024");
      expect(left).toContain("passwd.1234567");
    } finally {
      live.kill();
    }
  });
});

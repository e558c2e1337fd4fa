import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { normalizeArgv } from "../src/cli.ts";
import { Loop, type LoopDeps, nextDelay } from "../src/daemon.ts";
import { makeLogger } from "../src/log.ts";
import { metricsText, type State, withPassRecord, writeState } from "../src/state.ts";
import { DDUM, ddum, writeConfig } from "./helpers/ddum.ts";
import { type Dynamo, startDynalite, userItem } from "./helpers/dynalite.ts";
import { checkAccounts, cleanupRoots, makeRoot } from "./helpers/root.ts";

const quiet = makeLogger({ level: "error", file: "/dev/null" });

/** A loop driven by a fake clock: sleep records the delay and returns at once. */
function fakeLoop(opts: { results?: boolean[]; random?: number[]; maxPasses: number; onPass?: (n: number, loop: Loop) => void; reload?: () => void }) {
  const delays: number[] = [];
  const events: string[] = [];
  let n = 0;
  let r = 0;
  const deps: LoopDeps = {
    log: quiet,
    schedule: () => ({ period: 3600, jitter: 600 }),
    random: () => opts.random?.[r++ % opts.random.length] ?? 0,
    sleep: async (ms) => {
      delays.push(ms);
    },
    reload: () => {
      events.push("reload");
      opts.reload?.();
    },
    pass: async () => {
      const i = n++;
      events.push(`pass${i}`);
      opts.onPass?.(i, loop);
      if (n >= opts.maxPasses) loop.stop();
      return opts.results?.[i] ?? true;
    },
  };
  const loop = new Loop(deps);
  return { loop, delays, events };
}

describe("the loop, with an injected clock", () => {
  test("first pass at once, then period plus 0..jitter", async () => {
    const { loop, delays, events } = fakeLoop({ random: [0, 1, 0.5], maxPasses: 4 });
    await loop.run();
    expect(events).toEqual(["pass0", "pass1", "pass2", "pass3"]);
    expect(delays).toEqual([3600_000, 4200_000, 3900_000]);
  });

  test("delay bounds", () => {
    for (const x of [0, 0.25, 0.999999]) {
      const d = nextDelay({ period: 60, jitter: 30 }, x);
      expect(d).toBeGreaterThanOrEqual(60);
      expect(d).toBeLessThan(90);
    }
  });

  test("a failed pass is followed by the next one at the next period; the loop never dies of it", async () => {
    const { loop, delays, events } = fakeLoop({ results: [false, false, true], maxPasses: 3 });
    await loop.run();
    expect(events).toEqual(["pass0", "pass1", "pass2"]);
    expect(delays.length).toBe(2);
  });

  test("stop during a pass lets it finish and runs no other", async () => {
    const { loop, events } = fakeLoop({ maxPasses: 99, onPass: (i, l) => i === 1 && l.stop() });
    await loop.run();
    expect(events).toEqual(["pass0", "pass1"]);
  });

  test("hangup reloads and runs a pass without waiting; a bad reload keeps going", async () => {
    let bad = true;
    const { loop, delays, events } = fakeLoop({
      maxPasses: 3,
      onPass: (i, l) => i < 2 && l.hangup(),
      reload: () => {
        if (bad) {
          bad = false;
          throw new Error("bad config");
        }
      },
    });
    await loop.run();
    expect(events).toEqual(["pass0", "reload", "pass1", "reload", "pass2"]);
    expect(delays).toEqual([]);
  });
});

describe("status and metrics", () => {
  const rec = (result: "ok" | "failed", endAgoS: number) => {
    const end = new Date(Date.now() - endAgoS * 1000).toISOString();
    return { start: end, end, result, counts: result === "ok" ? { created: 1, updated: 2, unchanged: 3, refused: 0, rejected: 1 } : null, error: result === "failed" ? "scan of table Users failed" : null, durationMs: 1234 };
  };
  const base: State = { version: 1, ownership: { users: [], groups: [], members: {}, admins: {} } };

  test.each([
    ["never ran", null, 2, /CRITICAL: ddum has never completed a pass/],
    ["ok just now", rec("ok", 10), 0, /OK: last pass ok/],
    ["failed just now", rec("failed", 10), 1, /WARNING: the last pass failed .*scan of table Users failed/],
    ["ok but too long ago", rec("ok", 2 * 4200 + 10), 2, /CRITICAL: no pass in the last 8400 s/],
  ] as const)("%s", async (_name, last, code, text) => {
    const root = makeRoot();
    if (last) writeState(join(root, "var", "lib", "ddum"), withPassRecord(base, last));
    const cfg = join(mkdtempSync(join(tmpdir(), "ddum-st-")), "c.cfg");
    writeFileSync(cfg, "{}");
    const r = await ddum(["status", "--root", root, "-c", cfg]);
    expect(r.code).toBe(code);
    expect(r.stdout).toMatch(text);
  });

  test("metrics in the Prometheus text format", () => {
    const s = withPassRecord(withPassRecord(base, rec("ok", 100)), rec("failed", 5));
    const text = metricsText(s);
    expect(text).toContain("# TYPE ddum_last_success_timestamp_seconds gauge");
    expect(text).toContain("ddum_last_pass_success 0");
    expect(text).toMatch(/ddum_last_success_timestamp_seconds \d{10}/);
    expect(text.match(/# HELP ddum_last_pass_accounts/g)?.length).toBe(1);
    expect(text).toContain('ddum_last_pass_accounts{result="created"} 0');
  });
});

test("the old daemon's name gives the old command line", () => {
  expect(normalizeArgv("/usr/sbin/dynamodb-user-manager", ["-f", "-c", "x"])).toEqual(["daemon", "-f", "-c", "x"]);
  expect(normalizeArgv("/usr/bin/ddum", ["sync"])).toEqual(["sync"]);
});

// ---- the compiled binary as a process --------------------------------------------------------

let d: Dynamo;
beforeAll(async () => {
  d = await startDynalite();
  await d.createTables();
});
afterAll(async () => {
  await d.close();
  cleanupRoots();
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
async function until(what: string, cond: () => boolean, ms = 15_000) {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    try {
      if (cond()) return;
    } catch {
      // a file the daemon has not written yet: look again
    }
    await sleep(50);
  }
  throw new Error(`timed out waiting for ${what}`);
}
const passwd = (root: string) => readFileSync(join(root, "etc", "passwd"), "utf8");

function startDaemon(args: string[], argv0 = DDUM) {
  const proc = Bun.spawn([argv0, ...args], { stdout: "pipe", stderr: "pipe" });
  let err = "";
  (async () => {
    for await (const chunk of proc.stderr) err += new TextDecoder().decode(chunk);
  })();
  return { proc, stderr: () => err };
}

describe("ddum daemon", () => {
  test("follows the table, passes at once on SIGHUP, refuses a second daemon, stops cleanly on SIGTERM", async () => {
    const root = makeRoot();
    const pidfile = join(root, "ddum.pid");
    const metrics = "/var/lib/node_exporter/ddum.prom";
    const cfg = writeConfig(d, { full_update_period: 1, full_update_jitter: 0, metrics_file: metrics });
    await d.put("Users", [userItem("alice", 2001)]);
    const dm = startDaemon(["daemon", "-f", "-p", pidfile, "--root", root, "-c", cfg]);
    await until("the first pass", () => passwd(root).includes("alice:x:2001"));
    expect(readFileSync(pidfile, "utf8").trim()).toBe(String(dm.proc.pid));

    await d.put("Users", [userItem("alice", 2001, { Shell: { S: "/bin/zsh" } })]);
    await until("the change to follow", () => passwd(root).includes("/home/alice:/bin/zsh"));
    expect(readFileSync(join(root, metrics), "utf8")).toContain("ddum_last_pass_success 1");

    const second = await ddum(["daemon", "-f", "-p", pidfile, "--root", root, "-c", cfg]);
    expect(second.code).toBe(1);
    expect(second.stderr).toContain(`another ddum daemon (PID ${dm.proc.pid}) is running with pidfile ${pidfile}`);

    dm.proc.kill("SIGTERM");
    expect(await dm.proc.exited).toBe(0);
    expect(existsSync(pidfile)).toBe(false);
    expect(dm.stderr()).toContain("daemon stopped");
  });

  test("SIGHUP runs a pass now, even with an hour's period; the old command line works", async () => {
    const root = makeRoot();
    const pidfile = join(root, "ddum.pid");
    const cfg = writeConfig(d, { full_update_period: 3600, full_update_jitter: 0 });
    await d.put("Users", [userItem("bob", 2002)]);
    const dir = mkdtempSync(join(tmpdir(), "ddum-old-"));
    const old = join(dir, "dynamodb-user-manager");
    symlinkSync(DDUM, old);
    // The old daemon has no --root: run it against the real root only inside the system tests.
    const dm = startDaemon(["-f", "-c", cfg, "-p", pidfile, "--root", root], old);
    await until("the first pass", () => passwd(root).includes("bob:x:2002"));
    await d.put("Users", [userItem("bob", 2002, { RealName: { S: "Bob B." } })]);
    await sleep(300);
    expect(passwd(root)).not.toContain("Bob B.");
    dm.proc.kill("SIGHUP");
    await until("the SIGHUP pass", () => passwd(root).includes("Bob B."), 5000);
    dm.proc.kill("SIGTERM");
    expect(await dm.proc.exited).toBe(0);
  });

  test("SIGTERM during a large pass leaves complete files (all of it or none) and a clean exit", async () => {
    const root = makeRoot();
    const pidfile = join(root, "ddum.pid");
    const cfg = writeConfig(d, { full_update_period: 3600, full_update_jitter: 0 });
    await d.put("Users", Array.from({ length: 3000 }, (_, i) => userItem(`bulk${i}`, 10000 + i)));
    const dm = startDaemon(["daemon", "-f", "-p", pidfile, "--root", root, "-c", cfg]);
    // The first pass starts as soon as the daemon says it started: the signal lands inside it.
    await until("the start", () => dm.stderr().includes("daemon started"));
    dm.proc.kill("SIGTERM");
    expect(await dm.proc.exited).toBe(0);
    expect(dm.stderr()).toContain("SIGTERM received: stopping; the pass in progress applies nothing more");
    // The signal lands in the scan (the pass stops before the locks: nothing applied) or after
    // the commit (every account written): never half of them.
    const applied = /pass done: users: \d+ created/.test(dm.stderr());
    if (!applied) expect(dm.stderr()).toContain("stopped by SIGTERM before anything was applied");
    const { pwck, grpck } = checkAccounts(root);
    expect(pwck.code).toBe(0);
    expect(grpck.code).toBe(0);
    expect(passwd(root).split("\n").filter((l) => l.startsWith("bulk")).length).toBe(applied ? 3000 : 0);
  });

  test("a stale pidfile is taken over; an outage fails passes without killing the daemon, and it recovers", async () => {
    const root = makeRoot();
    const pidfile = join(root, "ddum.pid");
    writeFileSync(pidfile, "999999\n");
    const d2 = await startDynalite();
    await d2.createTables();
    await d2.put("Users", [userItem("carol", 2003)]);
    const cfg = writeConfig(d2, { full_update_period: 1, full_update_jitter: 0, request_timeout: 2 });
    const dm = startDaemon(["daemon", "-f", "-p", pidfile, "--root", root, "-c", cfg]);
    await until("the first pass", () => passwd(root).includes("carol:x:2003"));
    const port = d2.port;
    await d2.close();
    const state = join(root, "var", "lib", "ddum", "status.json");
    await until("a failed pass", () => JSON.parse(readFileSync(state, "utf8")).lastPass?.result === "failed");
    expect(dm.proc.exitCode).toBeNull();
    const before = passwd(root);
    const d3 = await startDynalite(port);
    await d3.createTables();
    await d3.put("Users", [userItem("carol", 2003), userItem("dave", 2004)]);
    // The status is recorded just after the files: wait for both.
    await until("recovery", () => passwd(root).includes("dave:x:2004") && JSON.parse(readFileSync(state, "utf8")).lastPass.result === "ok");
    expect(before).toContain("carol:x:2003");
    expect(dm.stderr()).toMatch(/scan of table (Users|Groups) failed/);
    dm.proc.kill("SIGTERM");
    expect(await dm.proc.exited).toBe(0);
    await d3.close();
  });

  test("without -f it detaches, writes its pidfile and logs to the configured file", async () => {
    const root = makeRoot();
    const pidfile = join(root, "ddum.pid");
    const logFile = join(root, "ddum.log");
    mkdirSync(join(root, "var", "log"), { recursive: true });
    await d.put("Users", [userItem("erin", 2005)]);
    const cfg = writeConfig(d, { full_update_period: 3600, logging: { level: "info", format: "json", file: logFile } });
    const r = await ddum(["daemon", "-p", pidfile, "--root", root, "-c", cfg]);
    expect(r.code).toBe(0);
    const pid = Number(readFileSync(pidfile, "utf8"));
    await until("the first pass", () => passwd(root).includes("erin:x:2005"));
    await until("the log line", () => existsSync(logFile) && readFileSync(logFile, "utf8").includes("pass done"));
    const line = JSON.parse(readFileSync(logFile, "utf8").split("\n").find((l) => l.includes("pass done"))!);
    expect(line.level).toBe("info");
    process.kill(pid, "SIGTERM");
    await until("the detached daemon to stop", () => !existsSync(pidfile));
  });
});

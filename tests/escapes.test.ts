// No value reaches a terminal with its control characters: every human-readable report (user and
// group show and list, sync, check, status, the daemon's log) escapes them the same way.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { escapeControls, terminalSafe } from "../src/escape.ts";
import { printable } from "../src/model.ts";
import { ddum, testConfig, writeConfig } from "./helpers/ddum.ts";
import { type Dynamo, groupItem, startDynalite, userItem } from "./helpers/dynalite.ts";
import { cleanupRoots, makeRoot } from "./helpers/root.ts";

const KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl";
const TITLE = "\x1b]0;owned\x07";
const FORGED = "\x1b[2K\rPassword:";
const C1 = "\u009b31m";
/** What a terminal must never receive: any control character but the line feed. */
const RAW = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u2028\u2029]/;

describe("one escape for all", () => {
  test.each([
    ["plain", "Alice Liddell", "Alice Liddell"],
    ["OSC title", `A${TITLE}`, '"A\\u001b]0;owned\\u0007"'],
    ["CR and erase", `x${FORGED}`, '"x\\u001b[2K\\rPassword:"'],
    ["C1 CSI", `y${C1}`, '"y\\u009b31m"'],
    ["line separator", "a\u2028b", '"a\\u2028b"'],
    ["newline", "a\nb", '"a\\nb"'],
  ])("%s", (_, raw, shown) => {
    expect(terminalSafe(raw)).toBe(shown);
    expect(terminalSafe(raw)).not.toMatch(RAW);
    // The same escapes inside a whole line, and in printable's quoted form.
    expect(escapeControls(`line ${raw}`)).toBe(`line ${shown.startsWith('"') ? shown.slice(1, -1) : shown}`);
    if (raw.length <= 64) expect(printable(raw)).toBe(shown.startsWith('"') ? shown : JSON.stringify(raw));
  });
});

let d: Dynamo;
let cfg: string;
beforeAll(async () => {
  d = await startDynalite();
  await d.createTables();
  // Written straight to the table, as a hostile table writer would (no admin command checks).
  await d.put("Users", [
    userItem("evil", 2101, {
      RealName: { S: `Eve${TITLE}` },
      Home: { S: `/home/evil${FORGED}` },
      Shell: { S: `/bin/bash${C1}` },
      SSHPublicKeys: { SS: [`${KEY} me${TITLE}${FORGED}`] },
    }),
    userItem("carol", 2102),
  ]);
  await d.put("Groups", [
    groupItem("crew", 2200, { Members: { SS: ["carol", `x${FORGED}`] }, Administrators: { SS: [`y${TITLE}`] } }),
    { Name: { S: "crew2" }, GID: { S: `2201${TITLE}` } },
  ]);
  cfg = writeConfig(d);
});
afterAll(async () => {
  await d.close();
  cleanupRoots();
});

function clean(out: string): void {
  expect(out).not.toMatch(RAW);
}

describe("the compiled binary's reports", () => {
  test("user show: RealName, Home, Shell and key comments escaped", async () => {
    const r = await ddum(["user", "show", "evil", "-c", cfg]);
    clean(r.stdout + r.stderr);
    expect(r.stdout).toContain('RealName:               "Eve\\u001b]0;owned\\u0007"');
    expect(r.stdout).toContain('"/home/evil\\u001b[2K\\rPassword:"');
    expect(r.stdout).toContain('"/bin/bash\\u009b31m"');
    expect(r.stdout).toContain('"me\\u001b]0;owned\\u0007\\u001b[2K\\rPassword:"');
  });

  test("user list and group list, group show", async () => {
    for (const args of [["user", "list"], ["group", "list"], ["group", "show", "crew"]]) {
      const r = await ddum([...args, "-c", cfg]);
      expect(r.code).toBe(0);
      clean(r.stdout + r.stderr);
    }
    const g2 = await ddum(["group", "show", "crew2", "-c", cfg]);
    clean(g2.stdout + g2.stderr);
    expect(g2.stdout).toContain('GID:            "2201\\u001b]0;owned\\u0007"');
    const g = await ddum(["group", "show", "crew", "-c", cfg]);
    expect(g.stdout).toContain('"x\\u001b[2K\\rPassword:"');
    expect(g.stdout).toContain('"y\\u001b]0;owned\\u0007"');
    const u = await ddum(["user", "list", "-c", cfg]);
    expect(u.stdout).toContain('"Eve\\u001b]0;owned\\u0007"');
  });

  test("sync and check: refusals, rejections and local values that changed", async () => {
    const root = makeRoot();
    expect((await ddum(["sync", "--root", root, "-c", cfg])).code).toBe(3);
    // A local GECOS with an escape in it (chfn, an editor) shows in the change that mends it.
    const passwd = join(root, "etc", "passwd");
    writeFileSync(passwd, readFileSync(passwd, "utf8").replace("carol:x:2102:2102:carol user:", `carol:x:2102:2102:carol${TITLE}:`));
    for (const args of [["sync", "--dry-run"], ["sync"], ["check"]]) {
      const r = await ddum([...args, ...(args[0] === "sync" ? ["--root", root] : []), "-c", cfg]);
      clean(r.stdout + r.stderr);
      expect(r.stdout).toContain("evil");
      if (args[0] === "sync" && args[1] === "--dry-run") expect(r.stdout).toContain('RealName: "carol\\u001b]0;owned\\u0007" → carol user');
    }
  });

  test("status: the recorded error of the last pass", async () => {
    const root = makeRoot();
    const dir = join(root, "var", "lib", "ddum");
    mkdirSync(dir, { recursive: true });
    const rec = { start: new Date().toISOString(), end: new Date().toISOString(), result: "failed", counts: null, error: `boom${TITLE}${FORGED}`, durationMs: 1 };
    writeFileSync(join(dir, "status.json"), JSON.stringify({ lastPass: rec, lastSuccess: null }));
    const r = await ddum(["status", "--root", root, "-c", cfg]);
    expect(r.code).toBe(1);
    clean(r.stdout + r.stderr);
    expect(r.stdout).toContain("boom\\u001b]0;owned\\u0007\\u001b[2K\\rPassword:");
  });

  test("the daemon's log", async () => {
    const root = makeRoot();
    const dir = mkdtempSync(join(tmpdir(), "ddum-cfg-"));
    const logFile = join(dir, "ddum.log");
    const c = join(dir, "ddum.cfg");
    writeFileSync(c, JSON.stringify(testConfig(d, { logging: { file: logFile } })), { mode: 0o600 });
    const pidfile = join(dir, "pid");
    expect((await ddum(["daemon", "-p", pidfile, "--root", root, "-c", c])).code).toBe(0);
    const pid = Number(readFileSync(pidfile, "utf8"));
    const logged = () => (existsSync(logFile) ? readFileSync(logFile, "utf8") : "");
    try {
      while (!logged().includes("pass done")) await new Promise((res) => setTimeout(res, 20));
    } finally {
      process.kill(pid, "SIGTERM");
    }
    while (existsSync(pidfile)) await new Promise((res) => setTimeout(res, 20));
    expect(logged()).toContain("evil");
    clean(logged());
  });
});

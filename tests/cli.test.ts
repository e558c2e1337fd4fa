// What every command says about itself: the version line, where it looks, how much it says.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { ddum, writeConfig } from "./helpers/ddum.ts";
import { type Dynamo, startDynalite, userItem } from "./helpers/dynalite.ts";
import { cleanupRoots, makeRoot } from "./helpers/root.ts";

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

test("-V and --version give version, commit, build date, platform and runtime", async () => {
  for (const flag of ["-V", "--version"]) {
    const r = await ddum([flag]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^ddum \d+\.\d+\.\d+ \(commit [0-9a-f]{7,40}(-modified)?, built \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ, linux (x64|arm64), bun \d+\.\d+\.\d+\)\n$/);
  }
});

test("check, and any command with -v, start by saying where they look; -q leaves only errors", async () => {
  const cfg = writeConfig(d);
  const where = ["info: config: " + cfg, "info: region: us-east-1 (from aws_region in the config)", `info: endpoint: ${d.endpoint}`, "info: tables: users Users, groups Groups"];
  const check = await ddum(["check", "-c", cfg]);
  expect(check.code).toBe(0);
  expect(check.stderr.split("\n").slice(0, 4)).toEqual(where);
  const root = makeRoot();
  const quiet = await ddum(["sync", "--root", root, "-c", cfg]);
  expect(quiet.stderr).toBe("");
  const verbose = await ddum(["sync", "-v", "--root", root, "-c", cfg]);
  expect(verbose.stderr.split("\n").slice(0, 4)).toEqual(where);
  // -q: the first retry's warning is not printed, the failure is.
  const down = writeConfig(d, { endpoint_url: "http://127.0.0.1:9", max_attempts: 2 });
  const loud = await ddum(["sync", "--root", root, "-c", down]);
  expect(loud.stderr).toContain("warning: Scan of table");
  const q = await ddum(["sync", "-q", "--root", root, "-c", down]);
  expect(q.code).toBe(1);
  expect(q.stderr).not.toContain("warning:");
  expect(q.stderr).toMatch(/^error: scan of table (Users|Groups) failed/);
});

const COMMANDS = [
  "sync", "check", "verify", "daemon", "status", "authorized-keys", "tables create", "import",
  "user add", "user set", "user show", "user list", "user disable", "user enable", "user key add", "user key remove", "user passwd",
  "group add", "group set", "group show", "group list", "group member add", "group member remove", "group admin add", "group admin remove",
];

test("each command's help: its description, options, an example of that command, and the exit codes true for it", async () => {
  for (const c of COMMANDS) {
    const r = await ddum([...c.split(" "), "--help"]);
    expect([c, r.code]).toEqual([c, 0]);
    const text = r.stdout;
    const section = (title: string) => text.split(`${title}:\n`)[1]?.split("\n\n")[0] ?? "";
    expect([c, section("Description").trim().length > 10]).toEqual([c, true]);
    expect([c, section("Options").includes("--help")]).toEqual([c, true]);
    expect([c, section("Example").startsWith(`  $ ${c.startsWith("user passwd") ? "echo 'new password' | " : ""}ddum ${c}`)]).toEqual([c, true]);
    const codes = [...section("Exit codes").matchAll(/^ {2}(\d) /gm)].map((m) => m[1]);
    expect([c, codes.slice(0, 3)]).toEqual([c, ["0", "1", "2"]]);
    // Only sync and import apply some records and refuse others; only verify finds drift.
    expect([c, codes.includes("3")]).toEqual([c, ["sync", "check", "import"].includes(c)]);
    expect([c, codes.includes("4")]).toEqual([c, c === "verify"]);
  }
  const check = (await ddum(["check", "--help"])).stdout;
  expect(check).not.toContain("lock busy");
  expect(check).toContain("3  some records would be rejected");
  expect((await ddum(["user", "show", "--help"])).stdout).not.toContain("import");
});

test("the top-level help lists every command once, the options every command takes, and one pointer to more", async () => {
  const r = await ddum(["--help"]);
  // Not one "$ ddum X --help" line per command.
  expect(r.stdout).not.toMatch(/\$ ddum .*--help/);
  expect(r.stdout).toContain("  -c, --config <file>");
  expect(r.stdout).toContain("  --root <dir>");
  expect(r.stdout).toContain("Run ddum COMMAND --help for a command's options, exit codes and an example.");
});

test.each([
  [["snyc"], 'unknown command "snyc" (did you mean "ddum sync"?)'],
  [["verfy"], 'unknown command "verfy" (did you mean "ddum verify"?)'],
  [["sync", "--dryrun"], "unknown option --dryrun (did you mean --dry-run?); see ddum sync --help"],
  [["user", "ad", "bob"], 'unknown action "user ad bob" (did you mean "ddum user add"?)'],
  [["user", "key", "ad", "bob"], 'unknown action "user key ad bob" (did you mean "ddum user key add"?)'],
  [["user", "passwd", "bob", "--stdn"], "unknown option --stdn (did you mean --password-stdin?)"],
  [["frobnicate"], 'unknown command "frobnicate"; see ddum --help'],
])("a typo gets a suggestion: %p", async (args, message) => {
  const r = await ddum(args);
  expect(r.code).toBe(2);
  expect(r.stderr).toContain(message);
});

test("one name per flag: user passwd --password-stdin and user key add --ssh-key, as user add; the old names still work, unlisted", async () => {
  expect((await ddum(["user", "passwd", "--help"])).stdout).toContain("--password-stdin");
  expect((await ddum(["user", "passwd", "--help"])).stdout).not.toMatch(/^ {2}--stdin/m);
  expect((await ddum(["user", "key", "add", "--help"])).stdout).toContain("--ssh-key <file>");
  expect((await ddum(["user", "key", "add", "--help"])).stdout).not.toContain("--file");
  // The old names reach the command (it then fails on the missing config file, not on the flag).
  for (const args of [["user", "passwd", "bob", "--stdin"], ["user", "key", "add", "bob", "--file", "-"]]) {
    const r = await ddum([...args, "-c", "/nonexistent/ddum.cfg"], { stdin: "x\n" });
    expect(r.stderr).toContain("cannot read config file /nonexistent/ddum.cfg");
  }
});

test("counts in words: 1 user, 1 group", async () => {
  await d.put("Groups", [{ Name: { S: "devs" }, GID: { N: "3000" } }]);
  const r = await ddum(["check", "-c", writeConfig(d)]);
  expect(r.stdout).toContain("1 user and 1 group read: 2 valid, 0 rejected, 0 warnings");
});

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

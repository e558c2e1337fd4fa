// What an admin reads: the status of the last pass, the plan and its summary, the JSON forms.
// Every test runs the compiled binary against a real dynalite and a scratch root.
import { afterAll, beforeEach, beforeAll, describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { ddum, writeConfig } from "./helpers/ddum.ts";
import { type Dynamo, startDynalite, userItem } from "./helpers/dynalite.ts";
import { cleanupRoots, makeRoot } from "./helpers/root.ts";

let d: Dynamo;
beforeAll(async () => {
  d = await startDynalite();
});
beforeEach(async () => {
  await d.reset();
  await d.createTables();
});
afterAll(async () => {
  await d.close();
  cleanupRoots();
});

const statusJson = (root: string) => JSON.parse(readFileSync(join(root, "var", "lib", "ddum", "status.json"), "utf8"));

describe("ddum status names the records the last pass rejected or refused", () => {
  test("each one, with its table, field and reason", async () => {
    const root = makeRoot();
    const cfg = writeConfig(d);
    // "daemon" is a local account ddum did not make: refused. A name with a space: rejected.
    await d.put("Users", [userItem("alice", 2001), userItem("daemon", 2500), userItem("bad name", 2002)]);
    const s = await ddum(["sync", "--root", root, "-c", cfg]);
    expect(s.code).toBe(3);
    const r = await ddum(["status", "--root", root, "-c", cfg]);
    expect(r.code).toBe(0);
    const lines = r.stdout.trimEnd().split("\n");
    expect(lines[0]).toMatch(/^OK: last pass partial/);
    expect(lines.slice(1)).toEqual([
      expect.stringMatching(/^ {2}rejected: Users record "bad name": Name: /),
      expect.stringMatching(/^ {2}refused: Users record "?daemon"?: /),
    ]);
    const j = JSON.parse((await ddum(["status", "--json", "--root", root, "-c", cfg])).stdout);
    expect(j.lastPass.problems.map((p: { kind: string }) => p.kind)).toEqual(["rejected", "refused"]);
    expect(j.lastPass.problemsMore).toBe(0);
  });

  test("a pass with hundreds of bad records keeps the first 50 and counts the rest", async () => {
    const root = makeRoot();
    const cfg = writeConfig(d);
    await d.put("Users", Array.from({ length: 230 }, (_, i) => userItem(`bad name${i}`, 3000 + i)));
    expect((await ddum(["sync", "--root", root, "-c", cfg])).code).toBe(3);
    const st = statusJson(root);
    expect(st.lastPass.problems.length).toBe(50);
    expect(st.lastPass.problemsMore).toBe(180);
    const r = await ddum(["status", "--root", root, "-c", cfg]);
    expect(r.stdout.split("\n").filter((l) => l.startsWith("  rejected: Users record")).length).toBe(50);
    expect(r.stdout).toContain("  and 180 more (ddum sync --dry-run lists them all)\n");
  });

  test("a clean pass lists none", async () => {
    const root = makeRoot();
    const cfg = writeConfig(d);
    await d.put("Users", [userItem("alice", 2001)]);
    expect((await ddum(["sync", "--root", root, "-c", cfg])).code).toBe(0);
    const r = await ddum(["status", "--root", root, "-c", cfg]);
    expect(r.stdout.trimEnd().split("\n").length).toBe(1);
    expect(statusJson(root).lastPass.problems).toEqual([]);
  });

  test("a name with escape codes from the table reaches the terminal escaped", async () => {
    const root = makeRoot();
    const cfg = writeConfig(d);
    await d.put("Users", [userItem("ev\u001b]0;pwned\u0007e", 2001)]);
    expect((await ddum(["sync", "--root", root, "-c", cfg])).code).toBe(3);
    const r = await ddum(["status", "--root", root, "-c", cfg]);
    expect(r.stdout).toContain("  rejected: Users record");
    expect(r.stdout).not.toMatch(/[\u0000-\u0009\u000b-\u001f\u007f]/);
  });
});

// The page memo: a page of users a pass found valid and in place throughout is taken as such by
// a later pass that receives the same bytes under the same files, ownership, policy and build.
// The oracle: the same passes against a twin root whose memo is deleted before every pass. Each
// step changes one thing (a record, a local line, ownership, the policy, a conflicting ID, a bad
// record) and both roots must end byte for byte alike, with the same report.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { chmodSync, cpSync, existsSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { MEMO_FILE, memoEnvironment, PageMemo } from "../src/pagememo.ts";
import type { SyncResult } from "../src/sync.ts";
import { pass } from "./helpers/ddum.ts";
import { type Dynamo, type Item, startDynalite, userItem } from "./helpers/dynalite.ts";
import { cleanupRoots, makeRoot, snapshot } from "./helpers/root.ts";

const N = 600;
const HASH = "$6$Ddumdemo1$ZGQQCYJEEwpwiwHO6nUz6XdvqrCxmGutrcUxL8yObU2p.xua.Rv7PBxzQYQZK9sg81lL/4RYpPbm7EBHzEdr10";
const name = (i: number) => `u${String(i).padStart(4, "0")}`;
const user = (i: number, extra: Item = {}) =>
  userItem(name(i), 20000 + i, { Password: { S: HASH }, LastPasswordChangeDate: { S: "2026-01-15" }, PasswordAgeMaxDays: { N: "365" }, ...extra });
const memoOf = (root: string) => join(root, "var", "lib", "ddum", MEMO_FILE);

let d: Dynamo;
beforeAll(async () => {
  d = await startDynalite();
  await d.createTables();
  await d.put("Users", Array.from({ length: N }, (_, i) => user(i)));
});
afterAll(async () => {
  await d.close();
  cleanupRoots();
});

/** What a pass did and left behind, for comparing the two roots. */
function outcome(root: string, r: SyncResult) {
  const state = join(root, "var", "lib", "ddum", "state.json");
  return {
    files: snapshot(root),
    state: existsSync(state) ? readFileSync(state, "utf8") : null,
    counts: r.counts,
    exitCode: r.exitCode,
    actions: r.plan.actions.map((a) => `${a.kind} ${a.name} ${JSON.stringify(a.changes)}`),
    refusals: r.plan.refusals,
    rejections: r.rejections,
    notices: r.plan.notices,
  };
}

describe("passes with the memo and without it end alike", () => {
  const withMemo = makeRoot();
  const without = makeRoot();
  let config: Record<string, unknown> = { scan_segments: 4 };
  const configure = (next: Record<string, unknown>) => {
    config = next;
  };
  const both = async (what: string) => {
    const a = await pass(d, withMemo, { config, today: 20600 });
    rmSync(memoOf(without), { force: true });
    const b = await pass(d, without, { config, today: 20600 });
    expect([what, outcome(withMemo, a)]).toEqual([what, outcome(without, b)]);
    expect([what, b.memo.known]).toEqual([what, 0]);
    return a;
  };
  const editBoth = (file: string, edit: (text: string) => string) => {
    for (const root of [withMemo, without]) {
      const p = join(root, "etc", file);
      writeFileSync(p, edit(readFileSync(p, "utf8")));
    }
  };
  // One step: a change, the pass after it, and the pass after that (which must know every page
  // the change left valid and in place).
  const steps: [string, () => Promise<void> | void, (r: SyncResult) => void][] = [
    // The first pass made every user, and recorded every page against the files it wrote.
    ["nothing changed", () => {}, (r) => expect(r.memo.known).toBe(r.memo.pages)],
    ["one record's shell", () => d.put("Users", [user(7, { Shell: { S: "/bin/zsh" } })]), (r) => expect(r.memo.known).toBe(r.memo.pages - 1)],
    ["a local passwd line edited by hand", () => editBoth("passwd", (t) => t.replace(`${name(9)}:x:20009:20009:${name(9)} user:`, `${name(9)}:x:20009:20009:Someone Else:`)), (r) => expect(r.memo.known).toBe(0)],
    ["a local shadow line edited by hand", () => editBoth("shadow", (t) => t.replace(`${name(11)}:${HASH}:`, `${name(11)}:!${HASH}:`)), (r) => expect(r.memo.known).toBe(0)],
    ["a new record takes the UID of a known one", () => d.put("Users", [userItem("late", 20000 + 13)]), (r) => expect(r.counts.rejected).toBe(2)],
    ["the conflicting record goes away", () => d.remove("Users", "late"), () => {}],
    ["a record with a bad field", () => d.put("Users", [user(15, { Home: { S: "/home/../etc" } })]), (r) => expect(r.counts.rejected).toBe(1)],
    ["the bad field mended", () => d.put("Users", [user(15)]), () => {}],
    ["a local line for a table user cannot be parsed", () => editBoth("shadow", (t) => t.replace(`${name(17)}:${HASH}:`, `${name(17)}:${HASH}:x:`)), (r) => expect(r.plan.refusals.length).toBe(1)],
    ["one record changed while that line stays unparseable", () => d.put("Users", [user(23, { Shell: { S: "/bin/zsh" } })]), (r) => {
      expect(r.plan.actions.map((a) => `${a.kind} ${a.name}`)).toEqual([`update-user ${name(23)}`]);
      expect(r.plan.refusals.map((x) => x.name)).toEqual([JSON.stringify(name(17))]);
    }],
    ["the unparseable line mended", () => editBoth("shadow", (t) => t.replace(`${name(17)}:${HASH}:x:`, `${name(17)}:${HASH}:`)), () => {}],
    // The primary group is judged against /etc/group: a hand edit there is seen on a known page.
    ["a user's primary GID given by hand to a group ddum does not manage", () => editBoth("group", (t) => t.replace(`${name(25)}:x:20025:`, "intruder:x:20025:")), (r) => {
      expect(r.memo.known).toBe(0);
      expect(r.plan.refusals.map((x) => [x.name, x.field])).toEqual([[JSON.stringify(name(25)), "GID"]]);
    }],
    ["the group line given back", () => editBoth("group", (t) => t.replace("intruder:x:20025:", `${name(25)}:x:20025:`)), () => {}],
    ["the managed UID range shrinks", () => configure({ ...config, uid_max: 20000 + N / 2 }), (r) => expect(r.plan.refusals.length).toBe(N / 2 - 1)],
    ["the managed UID range restored", () => configure({ scan_segments: 4 }), () => {}],
    ["ownership forgotten (state.json gone)", () => {
      for (const root of [withMemo, without]) for (const f of ["state.json", "state.json-"]) rmSync(join(root, "var", "lib", "ddum", f));
    }, (r) => expect(r.plan.refusals.length).toBe(N)],
    ["the users adopted", () => configure({ scan_segments: 4, adopt_users: Array.from({ length: N }, (_, i) => name(i)) }), () => {}],
    ["a record removed, missing users disabled", () => {
      configure({ ...config, missing_users: "disable" });
      return d.remove("Users", name(19));
    }, (r) => expect(r.plan.actions.map((a) => `${a.kind} ${a.name}`)).toEqual([`disable-user ${name(19)}`])],
    ["many records changed at once", () => d.put("Users", Array.from({ length: 40 }, (_, i) => user(100 + i * 7, { RealName: { S: `Changed ${i}` } }))), (r) => expect(r.counts.updated).toBe(40)],
  ];

  test("first pass", async () => {
    const r = await both("first pass");
    expect(r.plan.actions.filter((a) => a.kind === "create-user").length).toBe(N);
    expect(r.memo.pages).toBeGreaterThanOrEqual(4);
  });
  for (const [what, change, check] of steps) {
    test(what, async () => {
      await change();
      const r = await both(what);
      check(r);
      // The pass after it has nothing to do and, unless a record stays refused, knows every
      // page: the change-pass recorded the memo against what it wrote, with the pages whose
      // users it put in place itself.
      const again = await both(`${what}, then again`);
      expect([what, again.plan.actions.length]).toEqual([what, 0]);
      const refused = again.counts.rejected + again.plan.refusals.length > 0;
      if (!refused) expect([what, again.memo.known]).toEqual([what, again.memo.pages]);
    });
  }

  test("a dry run uses the memo and writes none", async () => {
    const before = statSync(memoOf(withMemo)).mtimeMs;
    await d.put("Users", [user(21, { Shell: { S: "/bin/sh" } })]);
    const r = await pass(d, withMemo, { config, today: 20600, dryRun: true });
    expect(r.memo.known).toBe(r.memo.pages - 1);
    expect(r.plan.actions.map((a) => `${a.kind} ${a.name}`)).toEqual([`update-user ${name(21)}`]);
    expect(statSync(memoOf(withMemo)).mtimeMs).toBe(before);
  });
});

describe("the memo file", () => {
  const dir = () => mkdtempSync(join(tmpdir(), "ddum-memo-"));
  const env = memoEnvironment({ config: { a: 1 }, policy: { uidMin: 1000 }, passwd: "root:x:0:0::/root:/bin/sh\n", shadow: null, group: null, owned: ["alice"], ownedGroups: [], rules: "r" });

  test("saved and loaded: pages known under the same environment only, root-only", () => {
    const at = dir();
    const m = PageMemo.empty();
    m.record("page-a");
    m.record("page-b");
    m.save(at, env);
    expect((statSync(join(at, MEMO_FILE)).mode & 0o777).toString(8)).toBe("600");
    const next = PageMemo.load(at);
    expect([next.knows(env, "page-a"), next.knows(env, "page-b"), next.knows(env, "page-c"), next.knows(`${env}x`, "page-a")]).toEqual([true, true, false, false]);
    expect(next.hits).toBe(2);
  });

  test("written only when what it holds changes", () => {
    const at = dir();
    const m = PageMemo.empty();
    m.record("page-a");
    m.save(at, env);
    const file = join(at, MEMO_FILE);
    writeFileSync(file, readFileSync(file, "utf8").replace("\n", " \n")); // marks this copy
    const same = PageMemo.load(at);
    same.record("page-a");
    same.save(at, env);
    expect(readFileSync(file, "utf8").endsWith(" \n")).toBe(true);
    const fewer = PageMemo.load(at);
    fewer.save(at, env);
    expect(JSON.parse(readFileSync(file, "utf8")).pages).toEqual([]);
  });

  test.each([
    ["missing", null],
    ["empty", ""],
    ["not JSON", "{"],
    ["another format", JSON.stringify({ format: "something else", env: "x", pages: ["page-a"] })],
    ["pages not strings", JSON.stringify({ format: "ddum page memo 2", env: "x", pages: [1] })],
    ["the format before the verdicts were cached", JSON.stringify({ format: "ddum page memo 1", env: "x", pages: ["page-a"] })],
  ])("a %s file is an empty memo", (_what, text) => {
    const at = dir();
    if (text !== null) {
      writeFileSync(join(at, MEMO_FILE), text);
      chmodSync(join(at, MEMO_FILE), 0o600);
    }
    const m = PageMemo.load(at);
    expect(m.knows("x", "page-a")).toBe(false);
  });

  test("every input of the environment changes its digest", () => {
    const base = {
      config: { a: 1 },
      policy: { uidMin: 1000 },
      passwd: "p\n",
      shadow: "s\n" as string | null,
      group: "g\n" as string | null,
      owned: ["alice"] as string[],
      ownedGroups: ["staff1"] as string[],
      rules: "rule book",
    };
    const variants = [
      { ...base, config: { a: 2 } },
      { ...base, policy: { uidMin: 1001 } },
      { ...base, passwd: "p\n\n" },
      { ...base, shadow: null },
      { ...base, shadow: "" },
      { ...base, owned: ["alice", "bob"] },
      { ...base, owned: ["alice,bob"] },
      { ...base, passwd: "s\n", shadow: "p\n" },
      { ...base, group: null },
      { ...base, group: "g\n\n" },
      { ...base, ownedGroups: [] },
      { ...base, ownedGroups: ["staff1", "staff2"] },
      { ...base, rules: "rule book, and one more rule" },
    ];
    const digests = new Set([memoEnvironment(base), ...variants.map((v) => memoEnvironment(v))]);
    expect(digests.size).toBe(variants.length + 1);
    expect(memoEnvironment({ ...base })).toBe(memoEnvironment(base));
  });
});

describe("the build the memo is bound to", () => {
  test("run from sources, it is a digest of the sources: one edited byte, another build", () => {
    const src = join(import.meta.dir, "..", "src");
    const copies = [0, 1].map(() => mkdtempSync(join(tmpdir(), "ddum-src-")));
    const ids = copies.map((dir, i) => {
      cpSync(src, join(dir, "src"), { recursive: true });
      symlinkSync(join(src, "..", "node_modules"), join(dir, "node_modules"));
      cpSync(join(src, "..", "package.json"), join(dir, "package.json"));
      if (i === 1) writeFileSync(join(dir, "src", "judge.ts"), `${readFileSync(join(dir, "src", "judge.ts"), "utf8")}\n`);
      const r = Bun.spawnSync([process.execPath, "-e", `import { buildId } from "${join(dir, "src", "pagememo.ts")}"; console.log(buildId());`]);
      expect(r.stderr.toString()).toBe("");
      return r.stdout.toString().trim();
    });
    for (const dir of copies) rmSync(dir, { recursive: true, force: true });
    expect(ids[0]).toStartWith("sources:");
    expect(ids[1]).toStartWith("sources:");
    expect(ids[0]).not.toBe(ids[1]);
  });
});

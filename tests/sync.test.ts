import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { isoDateToDays } from "../src/model.ts";
import { parseConfig } from "../src/config.ts";
import { Root } from "../src/paths.ts";
import { actionJson, formatHuman, humanChunks, jsonChunks, jsonValue, problemJson, roundedTimings, toJson } from "../src/report.ts";
import type { Action } from "../src/plan.ts";
import { runPass, todayDays } from "../src/sync.ts";
import { ddum, pass, testConfig, treeSnapshot, writeConfig } from "./helpers/ddum.ts";
import { type Dynamo, groupItem, type Item, startDynalite, userItem } from "./helpers/dynalite.ts";
import { checkAccounts, cleanupRoots, FLAVOUR, makeRoot, mtimes, REPO, run, snapshot } from "./helpers/root.ts";

const EXAMPLES = JSON.parse(readFileSync(join(REPO, "examples", "tables.json"), "utf8")) as { Users: Item[]; Groups: Item[] };
const GOLDEN = FLAVOUR.golden;
const HASH = "$6$Ddumdemo1$ZGQQCYJEEwpwiwHO6nUz6XdvqrCxmGutrcUxL8yObU2p.xua.Rv7PBxzQYQZK9sg81lL/4RYpPbm7EBHzEdr10";

let d: Dynamo;
beforeAll(async () => {
  d = await startDynalite();
});
afterAll(async () => {
  await d.close();
  cleanupRoots();
});
beforeEach(async () => {
  await d.createTables();
});
afterEach(async () => {
  await d.reset();
});

function expectClean(root: string) {
  const { pwck, grpck } = checkAccounts(root);
  expect(`${pwck.stdout}${pwck.stderr}`).toBe("");
  expect(pwck.code).toBe(0);
  expect(`${grpck.stdout}${grpck.stderr}`).toBe("");
  expect(grpck.code).toBe(0);
}

function line(root: string, file: string, name: string): string | undefined {
  return readFileSync(join(root, "etc", file), "utf8")
    .split("\n")
    .find((l) => l.startsWith(`${name}:`));
}

describe("the example tables", () => {
  test("give the golden files, pass pwck/grpck, and a second pass writes nothing", async () => {
    await d.put("Users", EXAMPLES.Users);
    await d.put("Groups", EXAMPLES.Groups);
    const root = makeRoot();
    const config = { merge_groups: ["sudo"] };
    const r = await pass(d, root, { config });
    expect(r.exitCode).toBe(3);
    expect(r.counts).toMatchObject({ ...FLAVOUR.exampleCounts, unchanged: 0, rejected: 1 });
    for (const f of ["passwd", "shadow", "group", "gshadow"]) {
      if (process.env.UPDATE_GOLDEN) writeFileSync(join(GOLDEN, f), readFileSync(join(root, "etc", f)));
      expect(readFileSync(join(root, "etc", f), "utf8")).toBe(readFileSync(join(GOLDEN, f), "utf8"));
    }
    expectClean(root);
    const before = mtimes(root);
    const again = await pass(d, root, { config });
    expect(again.written).toEqual([]);
    expect(again.counts.created + again.counts.updated).toBe(0);
    expect(mtimes(root)).toEqual(before);
  });
});

describe("ownership and ranges", () => {
  test("hostile records are refused and local entries stay byte for byte", async () => {
    const root = makeRoot();
    expect(run("useradd", ["-R", root, "-u", "2500", "-U", "localbob"]).code).toBe(0);
    const before = snapshot(root);
    await d.put("Users", [
      userItem("root", 2000),
      userItem("toor", 0, { GID: { N: "2001" } }),
      userItem("impostor", 2500),
      userItem("daemon", 2600),
      userItem("localbob", 2700),
      userItem("lowuid", 500),
    ]);
    await d.put("Groups", [groupItem("audio", 5000), groupItem("wheel", 0), groupItem("dupgid", 2500)]);
    const r = await pass(d, root);
    expect(r.exitCode).toBe(3);
    const reasons = Object.fromEntries(r.plan.refusals.map((x) => [x.name, `${x.field}: ${x.reason}`]));
    expect(reasons['"root"']).toMatch(/Name: a local account "root" exists that ddum does not manage/);
    expect(reasons['"toor"']).toMatch(/UID: UID 0/);
    expect(reasons['"impostor"']).toMatch(/UID: 2500 already belongs to the local account "localbob"/);
    expect(reasons['"daemon"']).toMatch(/Name: a local account "daemon"/);
    expect(reasons['"localbob"']).toBeDefined();
    expect(reasons['"lowuid"']).toMatch(/UID: 500 is outside the managed range 1000-60000/);
    expect(reasons['"audio"']).toMatch(/Name: "audio" is a local group that ddum does not manage; .* merge_groups/);
    expect(reasons['"wheel"']).toMatch(/GID: GID 0/);
    expect(reasons['"dupgid"']).toMatch(/GID: 2500 already belongs to the local group "localbob"/);
    expect(r.written).toEqual([]);
    expect(snapshot(root)).toEqual(before);
  });

  test("adopt_users takes over a named local account", async () => {
    const root = makeRoot();
    expect(run("useradd", ["-R", root, "-u", "2500", "-U", "-s", "/bin/sh", "legacy"]).code).toBe(0);
    await d.put("Users", [userItem("legacy", 2500, { Shell: { S: "/bin/bash" } })]);
    const refused = await pass(d, root);
    expect(refused.counts.refused).toBe(1);
    const r = await pass(d, root, { config: { adopt_users: ["legacy"] } });
    expect(r.counts).toMatchObject({ updated: 1, refused: 0 });
    expect(line(root, "passwd", "legacy")).toBe("legacy:x:2500:2500:legacy user:/home/legacy:/bin/bash");
    // Adopted once, owned from then on.
    const again = await pass(d, root);
    expect(again.counts).toMatchObject({ refused: 0, unchanged: 1 });
  });

  test("a local system group with the same name and GID gets merged membership; others' members stay", async () => {
    const root = makeRoot();
    const { name: adm, gid } = FLAVOUR.admin;
    expect(run("useradd", ["-R", root, "-u", "2500", "-U", "-G", adm, "localadmin"]).code).toBe(0);
    // localadmin (and AL2023's ec2-user in wheel) were added by someone else.
    const group = line(root, "group", adm)!;
    const [, pw, , members] = line(root, "gshadow", adm)!.split(":");
    expect(members).toMatch(/(^|,)localadmin$/);
    await d.put("Users", [userItem("alice", 2001), userItem("bob", 2002)]);
    await d.put("Groups", [groupItem(adm, gid, { Members: { SS: ["alice", "bob"] }, Administrators: { SS: ["alice"] } })]);
    await pass(d, root, { config: { merge_groups: [adm] } });
    expect(line(root, "group", adm)).toBe(`${group},alice,bob`);
    // Administrators of a local group are not taken from the table (gpasswd powers).
    expect(line(root, "gshadow", adm)).toBe(`${adm}:${pw}::${members},alice,bob`);
    // bob leaves the table's group; localadmin, added by someone else, stays.
    await d.put("Groups", [groupItem(adm, gid, { Members: { SS: ["alice"] } })]);
    await pass(d, root, { config: { merge_groups: [adm] } });
    expect(line(root, "group", adm)).toBe(`${group},alice`);
    expect(line(root, "gshadow", adm)).toBe(`${adm}:${pw}::${members},alice`);
    expectClean(root);
  });
});

describe("changes", () => {
  test("every field but the IDs is updated in passwd and shadow; no Password means a locked field", async () => {
    const root = makeRoot();
    await d.put("Users", [userItem("alice", 2001)]);
    await pass(d, root);
    expect(line(root, "shadow", "alice")).toBe("alice:!:::::::");
    await d.put("Users", [
      userItem("alice", 2001, {
        RealName: { S: "Alice L." },
        Home: { S: "/srv/alice" },
        Shell: { S: "/bin/zsh" },
        Password: { S: HASH },
        LastPasswordChangeDate: { S: "2024-01-02" },
        PasswordAgeMinDays: { N: "1" },
        PasswordAgeMaxDays: { N: "90" },
        PasswordWarnDays: { N: "7" },
        PasswordDisableDays: { N: "14" },
        AccountExpireDate: { S: "2099-12-31" },
      }),
    ]);
    const r = await pass(d, root);
    expect(r.exitCode).toBe(0);
    expect(line(root, "passwd", "alice")).toBe("alice:x:2001:2001:Alice L.:/srv/alice:/bin/zsh");
    expect(line(root, "shadow", "alice")).toBe(`alice:${HASH}:19724:1:90:7:14:${isoDateToDays("2099-12-31")}:`);
    const fields = r.plan.actions.find((a) => a.name === "alice")!.changes.map((c) => c.field);
    expect(fields).toEqual([
      "RealName",
      "Home",
      "Shell",
      "Password",
      "LastPasswordChangeDate",
      "PasswordAgeMinDays",
      "PasswordAgeMaxDays",
      "PasswordWarnDays",
      "PasswordDisableDays",
      "AccountExpireDate",
    ]);
    expectClean(root);
  });

  test("an expired account keeps its password hash; the expiry alone disables it", async () => {
    const root = makeRoot();
    await d.put("Users", [userItem("carol", 2003, { Password: { S: HASH }, AccountExpireDate: { S: "2020-01-01" } })]);
    await pass(d, root);
    expect(line(root, "shadow", "carol")).toBe(`carol:${HASH}::::::${isoDateToDays("2020-01-01")}:`);
  });

  test("a user whose primary group does not exist gets a user private group", async () => {
    const root = makeRoot();
    await d.put("Users", [userItem("erin", 2010), userItem("frank", 2011, { GID: { N: "3000" } })]);
    await d.put("Groups", [groupItem("staff2", 3000)]);
    await pass(d, root);
    expect(line(root, "group", "erin")).toBe("erin:x:2010:");
    expect(line(root, "group", "frank")).toBeUndefined();
    expectClean(root);
  });

  test("members naming unknown users or accounts ddum does not manage are left out and reported", async () => {
    const root = makeRoot();
    await d.put("Users", [userItem("alice", 2001)]);
    await d.put("Groups", [groupItem("devs", 3000, { Members: { SS: ["alice", "ghost", "daemon"] } })]);
    const r = await pass(d, root);
    expect(line(root, "group", "devs")).toBe("devs:x:3000:alice");
    expect(r.plan.notices).toEqual([
      'Groups record "devs": member "daemon" is a local account ddum does not manage; left out',
      'Groups record "devs": member "ghost" is not a known user; left out',
    ]);
  });

  test("local edits between passes survive", async () => {
    const root = makeRoot();
    await d.put("Users", [userItem("alice", 2001), userItem("bob", 2002)]);
    await d.put("Groups", [groupItem("devs", 3000, { Members: { SS: ["alice"] } })]);
    await pass(d, root);
    // By hand: a new local user, a local user's password, a member added to ddum's group.
    expect(run("useradd", ["-R", root, "-u", "2500", "-U", "localuser"]).code).toBe(0);
    expect(run("usermod", ["-R", root, "-p", HASH, "localuser"]).code).toBe(0);
    expect(run("usermod", ["-R", root, "-a", "-G", "devs", "localuser"]).code).toBe(0);
    const localLines = ["passwd", "shadow"].map((f) => line(root, f, "localuser"));
    // And a table change in the same pass.
    await d.put("Groups", [groupItem("devs", 3000, { Members: { SS: ["alice", "bob"] } })]);
    await pass(d, root);
    expect(["passwd", "shadow"].map((f) => line(root, f, "localuser"))).toEqual(localLines);
    expect(line(root, "shadow", "localuser")).toContain(HASH);
    expect(line(root, "group", "devs")).toBe("devs:x:3000:alice,localuser,bob");
    expectClean(root);
  });
});

describe("the local side is read while the scan runs", () => {
  test("a local change made after that read and before the locks is kept, not overwritten", async () => {
    const root = makeRoot();
    await d.put("Users", [userItem("alice", 2001), userItem("bob", 2002)]);
    await d.put("Groups", [groupItem("devs", 3000, { Members: { SS: ["alice"] } })]);
    const { config } = parseConfig(testConfig(d));
    let pages = 0;
    let added = false;
    const r = await runPass(config, {
      root: new Root(root),
      dryRun: false,
      force: false,
      // The pass reads the files right after the first page; the second page is later than that.
      onProgress: () => {
        if (++pages === 2) added = run("useradd", ["-R", root, "-u", "2500", "-U", "localuser"]).code === 0;
      },
    });
    expect(added).toBe(true);
    expect(r.exitCode).toBe(0);
    for (const f of ["passwd", "shadow", "group", "gshadow"]) expect(line(root, f, "localuser")).toBeDefined();
    expect(line(root, "passwd", "alice")).toBe("alice:x:2001:2001:alice user:/home/alice:/bin/bash");
    expect(line(root, "group", "devs")).toBe("devs:x:3000:alice");
    expectClean(root);
  });
});

describe("reports", () => {
  test("the --json document is written in pieces that make exactly JSON.stringify's document", async () => {
    const root = makeRoot();
    await d.put("Users", Array.from({ length: 1100 }, (_, i) => userItem(`u${i}`, 2000 + i, { RealName: { S: `Ünïcode "quoted" \\ ${i}` } })));
    await d.put("Groups", [groupItem("devs", 3000, { Members: { SS: ["u1", "nobody-here"] } })]);
    const r = await pass(d, root, { dryRun: true });
    expect(r.plan.actions.length).toBeGreaterThan(1000);
    const a = r.plan.actions;
    const reference = `${JSON.stringify(
      {
        version: 1,
        dryRun: r.dryRun,
        actions: a.map((x) => ({
          kind: x.kind,
          name: x.name,
          ...(x.kind === "create-group" ? { privateGroup: x.privateGroup } : {}),
          ...(x.kind === "update-group" ? { localGroup: x.local } : {}),
          changes: x.changes.map((c) => ({ field: c.field, from: jsonValue(c.from), to: jsonValue(c.to) })),
        })),
        homes: r.homes,
        refusals: r.plan.refusals.map(problemJson),
        rejections: r.rejections.map(problemJson),
        warnings: r.warnings.map(problemJson),
        notices: r.plan.notices,
        localIssues: r.localIssues,
        brake: r.plan.brake,
        summary: r.counts,
        written: r.written,
        timings: roundedTimings(r.timings),
        readUnits: r.readUnits,
        detection: r.detection,
        exitCode: r.exitCode,
      },
      null,
      2,
    )}\n`;
    const chunks = [...jsonChunks(r)];
    expect(chunks.length).toBeGreaterThan(3);
    expect(chunks.join("")).toBe(reference);
    const none = { ...r, plan: { ...r.plan, actions: [] } };
    expect(toJson(none)).toBe(`${JSON.stringify({ ...JSON.parse(reference), actions: [] }, null, 2)}\n`);
    const human = [...humanChunks(r)];
    expect(human.length).toBeGreaterThan(2);
    expect(human.join("")).toBe(formatHuman(r));
    expect(human.join("").split("\n").filter((l) => /^\+ (user|group) /.test(l)).length).toBe(a.filter((x) => x.kind.startsWith("create")).length);
  });
});

test.each([
  { kind: "create-user", name: "alice", passwd: [], shadow: [], changes: [{ field: "UID", from: "(none)", to: "2001" }, { field: "Shell", from: "(none)", to: "/bin/bash" }] },
  { kind: "update-user", name: "bob", passwd: [], shadow: [], addShadow: false, changes: [{ field: "RealName", from: 'Ünïcode "q" \\ \u0001', to: "tab\there\nline" }] },
  { kind: "disable-user", name: "carol", shadow: [], changes: [] },
  { kind: "update-user", name: "dave", passwd: [], shadow: [], addShadow: true, changes: [{ field: "RealName", from: "😀 \ud800 \u007f é", to: "\u2028 </script>" }] },
  { kind: "create-group", name: "devs", group: [], gshadow: [], privateGroup: true, changes: [{ field: "GID", from: "(none)", to: "3000" }] },
  { kind: "update-group", name: "ops", group: [], gshadow: null, local: false, changes: [{ field: "Members", from: "a", to: "a,b" }] },
  { kind: "update-group", name: "sudo", group: [], gshadow: null, local: true, changes: [] },
] as Action[])("a report action ($kind, $changes.length changes) is written as JSON.stringify writes it", (a) => {
  const reference = JSON.stringify(
    {
      kind: a.kind,
      name: a.name,
      ...(a.kind === "create-group" ? { privateGroup: a.privateGroup } : {}),
      ...(a.kind === "update-group" ? { localGroup: a.local } : {}),
      // No value is null in JSON (the text report's "(none)").
      changes: a.changes.map((c) => ({ field: c.field, from: c.from === "(none)" ? null : c.from, to: c.to })),
    },
    null,
    2,
  );
  expect(actionJson(a)).toBe(`    ${reference.replaceAll("\n", "\n    ")}`);
});

describe("the state file", () => {
  test("one that is not JSON, or not in the expected form, stops the pass before anything is applied", async () => {
    const root = makeRoot();
    await d.put("Users", [userItem("alice", 2001)]);
    const dir = join(root, "var", "lib", "ddum");
    mkdirSync(dir, { recursive: true });
    const before = snapshot(root);
    writeFileSync(join(dir, "state.json"), "{ not json");
    await expect(pass(d, root)).rejects.toThrow(/state\.json is corrupt/);
    writeFileSync(join(dir, "state.json"), JSON.stringify({ version: 1, ownership: { users: [7], groups: [], members: {}, admins: {} } }));
    await expect(pass(d, root)).rejects.toThrow(/state\.json is not in the expected form: .*string/);
    writeFileSync(join(dir, "state.json"), JSON.stringify({ version: 1, ownership: { users: [], groups: [], members: { devs: "alice" }, admins: {} } }));
    await expect(pass(d, root)).rejects.toThrow(/state\.json is not in the expected form/);
    expect(snapshot(root)).toEqual(before);
  });
});

describe("users that leave the table", () => {
  test("are kept as they are by default", async () => {
    const root = makeRoot();
    await d.put("Users", [userItem("alice", 2001, { Password: { S: HASH } })]);
    await pass(d, root);
    const before = snapshot(root);
    await d.remove("Users", "alice");
    const r = await pass(d, root);
    expect(r.written).toEqual([]);
    expect(snapshot(root)).toEqual(before);
  });

  test("are disabled (expired, password locked) with missing_users = disable", async () => {
    const root = makeRoot();
    const users = Array.from({ length: 20 }, (_, i) => userItem(`u${i}`, 2000 + i, { Password: { S: HASH } }));
    await d.put("Users", users);
    await pass(d, root);
    await d.remove("Users", "u3");
    const r = await pass(d, root, { config: { missing_users: "disable" } });
    expect(r.exitCode).toBe(0);
    expect(line(root, "shadow", "u3")).toBe(`u3:!${HASH}::::::1:`);
    expect(line(root, "passwd", "u3")).toBe("u3:x:2003:2003:u3 user:/home/u3:/bin/bash");
  });

  test("a rejected record is not taken for a missing one", async () => {
    const root = makeRoot();
    await d.put("Users", Array.from({ length: 20 }, (_, i) => userItem(`u${i}`, 2000 + i)));
    await pass(d, root);
    await d.put("Users", [userItem("u3", 2003, { Shell: { S: "bash" } })]);
    const r = await pass(d, root, { config: { missing_users: "disable" } });
    expect(r.exitCode).toBe(3);
    expect(r.plan.actions).toEqual([]);
  });
});

describe("safety brake", () => {
  test("refuses to disable more than max_disable_percent unless forced", async () => {
    const root = makeRoot();
    await d.put("Users", Array.from({ length: 20 }, (_, i) => userItem(`u${i}`, 2000 + i)));
    // Created already expired: does not count.
    await d.put("Users", [userItem("gone", 2100, { AccountExpireDate: { S: "2001-01-01" } })]);
    expect((await pass(d, root)).plan.brake).toBeNull();
    const before = snapshot(root);
    await d.put("Users", [0, 1, 2].map((i) => userItem(`u${i}`, 2000 + i, { AccountExpireDate: { S: "2001-01-01" } })));
    const r = await pass(d, root);
    expect(r.exitCode).toBe(1);
    expect(r.plan.brake).toMatch(/would disable 3 of 20 enabled managed users/);
    expect(snapshot(root)).toEqual(before);
    // Two out of twenty (10%) is allowed.
    const forced = await pass(d, root, { force: true });
    expect(forced.exitCode).toBe(0);
    expect(line(root, "shadow", "u0")).toBe(`u0:!::::::${isoDateToDays("2001-01-01")}:`);
  });
});

describe("the command line", () => {
  test("--dry-run changes no file, no directory and no state", async () => {
    await d.put("Users", EXAMPLES.Users);
    await d.put("Groups", EXAMPLES.Groups);
    const root = makeRoot();
    const cfg = writeConfig(d, { merge_groups: ["sudo"] });
    const before = treeSnapshot(root);
    const r = await ddum(["sync", "--dry-run", "--root", root, "-c", cfg]);
    expect(r.code).toBe(3);
    expect(r.stdout).toMatch(/^\+ user alice: UID /m);
    const c = FLAVOUR.exampleCounts;
    const m = /^dry run, nothing written; a pass would do: users: (\d+) created, (\d+) updated, .*; groups: (\d+) created, (\d+) updated/m.exec(r.stdout);
    expect(m && [Number(m[1]) + Number(m[3]), Number(m[2]) + Number(m[4])]).toEqual([c.created, c.updated]);
    expect(treeSnapshot(root)).toEqual(before);
    expect(existsSync(join(root, "var", "lib", "ddum"))).toBe(false);
  });

  test("--json prints one document, and no password hash is ever printed", async () => {
    await d.put("Users", [userItem("alice", 2001, { Password: { S: HASH } })]);
    const root = makeRoot();
    const cfg = writeConfig(d);
    const first = await ddum(["sync", "--json", "--root", root, "-c", cfg]);
    expect(first.code).toBe(0);
    const doc = JSON.parse(first.stdout);
    expect(doc.summary).toMatchObject({ created: 2, updated: 0, unchanged: 0, refused: 0, rejected: 0, users: { created: 1 }, groups: { created: 1 } });
    expect(doc.actions.map((a: { kind: string; name: string }) => `${a.kind} ${a.name}`)).toEqual(["create-user alice", "create-group alice"]);
    await d.put("Users", [userItem("alice", 2001, { Password: { S: `${HASH.slice(0, -1)}x` } })]);
    const second = await ddum(["sync", "--root", root, "-c", cfg]);
    expect(second.stdout).toContain("password changed");
    for (const out of [first.stdout, first.stderr, second.stdout, second.stderr]) expect(out).not.toContain("Ddumdemo1");
  });

  test("exit codes: 0 clean, 3 rejected, 2 bad config, 1 scan failure with nothing applied", async () => {
    const root = makeRoot();
    const cfg = writeConfig(d);
    await d.put("Users", [userItem("alice", 2001)]);
    expect((await ddum(["sync", "--root", root, "-c", cfg])).code).toBe(0);
    await d.put("Users", [userItem("bad", 2002, { Shell: { S: "sh" } })]);
    const partial = await ddum(["sync", "--root", root, "-c", cfg]);
    expect(partial.code).toBe(3);
    expect(partial.stdout).toContain('rejected: Users record "bad": Shell: must be an absolute path');

    const badCfg = writeConfig(d, { full_update_period: "soon" });
    const bad = await ddum(["sync", "--root", root, "-c", badCfg]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain("full_update_period: expected a whole number");

    const before = snapshot(root);
    const down = writeConfig(d, { endpoint_url: "http://127.0.0.1:9" });
    const failed = await ddum(["sync", "--root", root, "-c", down]);
    expect(failed.code).toBe(1);
    expect(failed.stderr).toMatch(/scan of table (Users|Groups) failed/);
    expect(snapshot(root)).toEqual(before);
  });

  test("check reports rejections and changes nothing", async () => {
    await d.put("Users", [userItem("ok", 2001), userItem("bad", 2002, { UID: { S: "2002" } })]);
    const cfg = writeConfig(d);
    const r = await ddum(["check", "-c", cfg]);
    expect(r.code).toBe(3);
    expect(r.stdout).toContain('rejected: Users record "bad": UID: must be stored as a number (N), found a string (S)');
    expect(r.stdout).toContain("2 users and 0 groups read: 1 valid, 1 rejected");
    await d.remove("Users", "bad");
    expect((await ddum(["check", "-c", cfg])).code).toBe(0);
  });
});

test("today is days since the epoch in UTC", () => {
  expect(todayDays(Date.UTC(2024, 0, 2, 23, 59))).toBe(19724);
});

// The rule book is the one place a refusal is written: a rule added to USER_RULES (and only
// there) refuses a record seen for the first time and a user already in place from an earlier
// pass alike, on a page the page memo knows too, through the scan-time check and the plan's loop.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { EXIT } from "../src/errors.ts";
import { GROUP_RULES, type GroupRule, USER_RULES, type UserRule } from "../src/judge.ts";
import { AccountTable } from "../src/localdb/index.ts";
import { EMPTY_OWNERSHIP, InPlaceUsers, type Policy } from "../src/plan.ts";
import { pass } from "./helpers/ddum.ts";
import { type Dynamo, groupItem, startDynalite, userItem } from "./helpers/dynalite.ts";
import { cleanupRoots, makeRoot } from "./helpers/root.ts";

const THROWAWAY = "refused by a rule that exists only in this test";
const refused = new Set<string>();
const rule: UserRule = ({ u }) => (refused.has(u.name) ? { field: "Name", reason: THROWAWAY } : null);

/** Runs body with the throwaway rule in the rule book, and takes it out again whatever happens. */
async function withRule<T>(names: string[], body: () => Promise<T> | T): Promise<T> {
  for (const n of names) refused.add(n);
  USER_RULES.push(rule);
  try {
    return await body();
  } finally {
    USER_RULES.splice(USER_RULES.indexOf(rule), 1);
    refused.clear();
  }
}

let d: Dynamo;
beforeAll(async () => {
  d = await startDynalite();
  await d.createTables();
  await d.put("Users", Array.from({ length: 50 }, (_, i) => userItem(`user${i}`, 20000 + i)));
});
afterAll(async () => {
  await d.close();
  cleanupRoots();
});

describe("a rule added in one place applies on every path", () => {
  const root = makeRoot();
  const passwd = () => readFileSync(join(root, "etc", "passwd"), "utf8");

  test("a user in place, on a page the memo knows: refused, its lines left as they are", async () => {
    await pass(d, root, { today: 20600 });
    const quiet = await pass(d, root, { today: 20600 });
    expect(quiet.plan.unchanged).toBe(50);
    expect(quiet.memo.known).toBe(quiet.memo.pages);
    const before = passwd();
    for (const dryRun of [true, false]) {
      const r = await withRule(["user7"], () => pass(d, root, { today: 20600, dryRun }));
      // The memo was made under another rule book: it vouches for nothing, the judge decides.
      expect(r.memo.known).toBe(0);
      expect(r.plan.refusals).toEqual([{ table: "Users", name: '"user7"', field: "Name", reason: THROWAWAY }]);
      expect(r.plan.unchanged).toBe(49);
      expect(r.plan.accepted.map((u) => u.name)).not.toContain("user7");
      expect(r.exitCode).toBe(EXIT.partial);
    }
    expect(passwd()).toBe(before);
    // Out of the rule book again: the same user is in place as before.
    const after = await pass(d, root, { today: 20600 });
    expect([after.plan.refusals.length, after.plan.unchanged]).toEqual([0, 50]);
  });

  test("a record seen for the first time: refused, no account made", async () => {
    await d.put("Users", [userItem("newcomer", 20100)]);
    const r = await withRule(["newcomer"], () => pass(d, root, { today: 20600 }));
    expect(r.plan.refusals.map((x) => [x.name, x.reason])).toEqual([['"newcomer"', THROWAWAY]]);
    expect(r.plan.actions).toEqual([]);
    expect(passwd()).not.toContain("newcomer:");
    const later = await pass(d, root, { today: 20600 });
    expect(later.plan.actions.map((a) => `${a.kind} ${a.name}`)).toEqual(["create-user newcomer", "create-group newcomer"]);
  });

  test("the scan-time check holds a user in place only while no rule refuses it", async () => {
    const policy: Policy = { uidMin: 1000, uidMax: 60000, gidMin: 1000, gidMax: 60000, adoptUsers: [], adoptGroups: [], missingUsers: "keep", maxDisablePercent: 100, force: false };
    const u = { name: "zoe", uid: 3000, gid: 3000, realName: "", home: "/home/zoe", shell: "/bin/sh", password: null, lastChange: null, minDays: null, maxDays: null, warnDays: null, inactiveDays: null, expire: null, sshKeys: [] };
    const cur = {
      passwd: new AccountTable("passwd", "/t/passwd", "zoe:x:3000:3000::/home/zoe:/bin/sh\n"),
      shadow: new AccountTable("shadow", "/t/shadow", "zoe:!:::::::\n"),
      group: new AccountTable("group", "/t/group", "zoe:x:3000:\n"),
      gshadow: new AccountTable("gshadow", "/t/gshadow", "zoe:!::\n"),
    };
    const owned = { ...EMPTY_OWNERSHIP, users: ["zoe"], groups: ["zoe"] };
    expect(new InPlaceUsers(cur, owned, policy).check(u)).toBe(true);
    expect(await withRule(["zoe"], () => new InPlaceUsers(cur, owned, policy).check(u))).toBe(false);
    expect(new InPlaceUsers(cur, owned, policy).check(u)).toBe(true);
  });
});

describe("a group rule added in one place applies to new groups and groups in place", () => {
  const root = makeRoot();
  const group = () => readFileSync(join(root, "etc", "group"), "utf8");
  const refusedGroups = new Set<string>();
  const groupRule: GroupRule = ({ g }) => (refusedGroups.has(g.name) ? { field: "Name", reason: THROWAWAY } : null);
  const withGroupRule = async <T>(names: string[], body: () => Promise<T>): Promise<T> => {
    for (const n of names) refusedGroups.add(n);
    GROUP_RULES.push(groupRule);
    try {
      return await body();
    } finally {
      GROUP_RULES.splice(GROUP_RULES.indexOf(groupRule), 1);
      refusedGroups.clear();
    }
  };

  test("a group in place is refused and left as it is; a new one is not made", async () => {
    await d.put("Groups", [groupItem("crew", 30001, { Members: { SS: ["user1", "user2"] } })]);
    await pass(d, root, { today: 20600 });
    expect(group()).toContain("crew:x:30001:user1,user2\n");
    await d.put("Groups", [groupItem("crew", 30001, { Members: { SS: ["user1", "user3"] } }), groupItem("fresh", 30002)]);
    const before = group();
    const r = await withGroupRule(["crew", "fresh"], () => pass(d, root, { today: 20600 }));
    expect(r.plan.refusals.map((x) => [x.table, x.name, x.reason]).sort()).toEqual([
      ["Groups", '"crew"', THROWAWAY],
      ["Groups", '"fresh"', THROWAWAY],
    ]);
    expect(group()).toBe(before);
    const after = await pass(d, root, { today: 20600 });
    expect(after.plan.refusals).toEqual([]);
    expect(group()).toContain("crew:x:30001:user1,user3\n");
    expect(group()).toContain("fresh:x:30002:\n");
  });
});

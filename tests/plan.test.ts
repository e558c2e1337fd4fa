// The planner with and without the users recognised in place during the scan: the same plan, to
// the last refusal and notice, for every kind of user the plan's loop tells apart.
import { describe, expect, test } from "bun:test";
import { AccountTable } from "../src/localdb/index.ts";
import type { User } from "../src/model.ts";
import { type Current, InPlaceUsers, type Ownership, type Plan, type Policy, plan } from "../src/plan.ts";

const HASH = "$6$saltsalt$0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ./0123456789abcdefghij";

function user(name: string, uid: number, extra: Partial<User> = {}): User {
  return {
    name,
    uid,
    gid: uid,
    realName: `${name} example`,
    home: `/home/${name}`,
    shell: "/bin/bash",
    password: HASH,
    lastChange: 19000,
    minDays: null,
    maxDays: 365,
    warnDays: 14,
    inactiveDays: null,
    expire: null,
    sshKeys: [],
    ...extra,
  };
}
const passwdLine = (u: User, shell = u.shell) => `${u.name}:x:${u.uid}:${u.gid}:${u.realName}:${u.home}:${shell}`;
const shadowLine = (u: User, pw = u.password ?? "!") => `${u.name}:${pw}:${u.lastChange ?? ""}:${u.minDays ?? ""}:${u.maxDays ?? ""}:${u.warnDays ?? ""}:${u.inactiveDays ?? ""}:${u.expire ?? ""}:`;

// Each user of the table, and what the local files say about it.
const alice = user("alice", 2001); // in place, ddum's
const bob = user("bob", 2002); // ddum's, another shell locally: update
const carol = user("carol", 2003); // in place, but a local account ddum does not own: refused
const dave = user("dave", 2004); // in place, not owned, listed in adopt_users: adopted
const erin = user("erin", 2005); // in place, but an earlier line holds UID 2005: refused
const frank = user("frank", 2006); // in place, but a second, unparseable shadow line of that name: refused
const gina = user("gina", 70000, { gid: 2007 }); // in place, UID above uid_max: refused
const hank = user("hank", 2008); // not local: created (with its private group)
const ivy = user("ivy", 2009); // ddum's, another password locally: update
const jack = user("jack", 2010, { password: null, expire: 1 }); // in place, locked and expired
const kate = user("kate", 2011, { gid: 0 }); // GID 0: refused
const leo = user("leo", 2012); // in place, ddum's, member of a table group
const mia = user("mia", 2013); // new, takes UID 2013; nina wants the same UID
const nina = user("nina", 2013);
const oscar = user("oscar", 2014); // ddum's, no shadow line at all: update (shadow entry created)

const users = [alice, bob, carol, dave, erin, frank, gina, hank, ivy, jack, kate, leo, mia, nina, oscar];
const passwd = [
  "root:x:0:0:root:/root:/bin/bash",
  "zed:x:2005:2005:zed:/home/zed:/bin/sh",
  passwdLine(alice),
  passwdLine(bob, "/bin/sh"),
  passwdLine(carol),
  passwdLine(dave),
  passwdLine(erin),
  passwdLine(frank),
  passwdLine(gina),
  passwdLine(ivy),
  passwdLine(jack),
  passwdLine(kate),
  passwdLine(leo),
  passwdLine(oscar),
].join("\n");
const shadow = [
  "root:*:19000:0:99999:7:::",
  "zed:*:19000::::::",
  shadowLine(alice),
  shadowLine(bob),
  shadowLine(carol),
  shadowLine(dave),
  shadowLine(erin),
  shadowLine(frank),
  "frank:this line has too few fields",
  shadowLine(gina),
  shadowLine(ivy, "$6$other$hash"),
  shadowLine(jack),
  shadowLine(kate),
  shadowLine(leo),
].join("\n");
const group = ["root:x:0:", "users:x:100:", "alice:x:2001:", "leo:x:2012:", "devs:x:3000:alice"].join("\n");
const gshadow = ["root:*::", "users:*::", "alice:!::", "leo:!::", "devs:!::alice"].join("\n");

const current = (): Current => ({
  passwd: new AccountTable("passwd", "/t/passwd", `${passwd}\n`),
  shadow: new AccountTable("shadow", "/t/shadow", `${shadow}\n`),
  group: new AccountTable("group", "/t/group", `${group}\n`),
  gshadow: new AccountTable("gshadow", "/t/gshadow", `${gshadow}\n`),
});
const prev: Ownership = {
  users: ["alice", "bob", "erin", "frank", "gina", "ivy", "jack", "kate", "leo", "oscar", "gone"],
  groups: ["alice", "leo", "devs"],
  members: { devs: ["alice"] },
  admins: {},
};
const policy = (missingUsers: "keep" | "disable"): Policy => ({
  uidMin: 1000,
  uidMax: 60000,
  gidMin: 1000,
  gidMax: 60000,
  adoptUsers: ["dave"],
  adoptGroups: [],
  missingUsers,
  maxDisablePercent: 100,
  force: false,
});
const desired = (order: User[]) => ({
  users: order,
  groups: [
    { name: "devs", gid: 3000, password: null, administrators: [], members: ["alice", "leo", "hank", "nobody"] },
    { name: "ops", gid: 3001, password: null, administrators: ["leo"], members: ["mia"] },
  ],
  userNames: new Set(order.map((u) => u.name)),
  userTable: "Users",
  groupTable: "Groups",
});

/** Everything a plan says, with the accepted users as a sorted list of names. */
const said = (p: Plan) => ({
  actions: p.actions.map((a) => ({ kind: a.kind, name: a.name, changes: a.changes, lines: "passwd" in a ? [a.passwd, a.shadow] : "group" in a ? [a.group, a.gshadow] : [a.shadow] })),
  refusals: p.refusals,
  notices: p.notices,
  unchanged: p.unchanged,
  brake: p.brake,
  disables: p.disables,
  accepted: p.accepted.map((u) => u.name).sort(),
  ownershipChanged: p.ownershipChanged,
  ownership: p.ownership,
});

describe("users recognised in place during the scan", () => {
  test("are exactly the users the plan's own loop counts unchanged", () => {
    const cur = current();
    const seen = new InPlaceUsers(cur, prev, policy("keep"));
    for (const u of users) seen.check(u);
    expect([...seen.users].map((u) => u.name).sort()).toEqual(["alice", "dave", "jack", "leo"]);
  });

  test.each([
    ["table order, missing users kept", users, "keep"],
    ["reversed, missing users kept", [...users].reverse(), "keep"],
    ["table order, missing users disabled", users, "disable"],
    ["shuffled, missing users disabled", [hank, leo, nina, alice, oscar, mia, ivy, carol, gina, kate, erin, jack, bob, frank, dave], "disable"],
  ] as const)("give the same plan as without them: %s", (_what, order, missing) => {
    const without = plan(desired([...order]), current(), prev, policy(missing), 20000);
    const cur = current();
    const seen = new InPlaceUsers(cur, prev, policy(missing));
    for (const u of order) seen.check(u);
    const withSeen = plan(desired([...order]), cur, prev, policy(missing), 20000, seen);
    expect(said(withSeen)).toEqual(said(without));
    // The case list covers every branch it claims to: creations, updates, refusals, adoption.
    expect(without.unchanged).toBe(4);
    // mia and nina want one new UID: the first in table order gets it, the other is refused.
    const second = order.indexOf(mia) < order.indexOf(nina) ? '"nina"' : '"mia"';
    expect(without.refusals.map((r) => r.name).sort()).toEqual(['"carol"', '"erin"', '"frank"', '"gina"', '"kate"', second].sort());
    expect(without.actions.filter((a) => a.kind === "update-user").map((a) => a.name).sort()).toEqual(["bob", "ivy", "oscar"]);
    expect(without.ownership.users).toContain("dave");
  });

  test("checked against one ownership, they cannot be used with another", () => {
    const cur = current();
    const seen = new InPlaceUsers(cur, prev, policy("keep"));
    expect(() => plan(desired(users), cur, { ...prev }, policy("keep"), 20000, seen)).toThrow();
  });
});

// The planner's group rules, one at a time, with exact answers: what a group record creates, what
// it changes in a group that exists (members, administrators, password, the gshadow copy of the
// members, a missing gshadow line), what it may and may not do in a local group the host consents
// to (merge_groups), which names are left out and said, what ddum remembers as its own additions,
// and what happens when a record leaves the table (members taken back, braked). In-process and
// fast: these are the mutation run's tests for plan.ts's group half.
import { describe, expect, test } from "bun:test";
import { AccountTable } from "../src/localdb/index.ts";
import type { Group, User } from "../src/model.ts";
import { type Current, type Desired, EMPTY_OWNERSHIP, type Ownership, type Plan, type Policy, plan } from "../src/plan.ts";
import { bareUser } from "./helpers/records.ts";

const HASH = "$6$saltsalt$0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ./0123456789abcdefghij";
const GROUP_HASH = "$6$groupsal$0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ./0123456789abcdefghij";
const TODAY = 20000;

const user = (name: string, uid: number): User => bareUser(name, uid, { realName: name, shell: "/bin/bash", password: HASH, lastChange: 19000 });
const alice = user("alice", 2001);
const bob = user("bob", 2002);
const line = (u: User) => `${u.name}:x:${u.uid}:${u.gid}:${u.realName}:${u.home}:${u.shell}`;
const sline = (u: User) => `${u.name}:${u.password}:${u.lastChange}::::::`;

/** The host: alice and bob are ddum's (with their private groups); carl is a local account ddum does not manage. */
function host(groups: string[], gshadows: string[] | null): Current {
  return {
    passwd: new AccountTable("passwd", "/t/passwd", `root:x:0:0:root:/root:/bin/bash\ncarl:x:1500:1500:carl:/home/carl:/bin/sh\n${line(alice)}\n${line(bob)}\n`),
    shadow: new AccountTable("shadow", "/t/shadow", `root:*:19000:::::: \ncarl:*:19000::::::\n${sline(alice)}\n${sline(bob)}\n`.replace(" \n", "\n")),
    group: new AccountTable("group", "/t/group", `${["root:x:0:", "carl:x:1500:", "alice:x:2001:", "bob:x:2002:", ...groups].join("\n")}\n`),
    gshadow: new AccountTable("gshadow", "/t/gshadow", gshadows === null ? null : `${["root:*::", "carl:!::", "alice:!::", "bob:!::", ...gshadows].join("\n")}\n`),
  };
}
const owned = (more: Partial<Ownership> = {}): Ownership => ({ ...EMPTY_OWNERSHIP, users: ["alice", "bob"], groups: ["alice", "bob"], ...more });
const policy = (more: Partial<Policy> = {}): Policy => ({
  uidMin: 1000,
  uidMax: 60000,
  gidMin: 1000,
  gidMax: 60000,
  adoptUsers: [],
  adoptGroups: [],
  missingUsers: "keep",
  maxDisablePercent: 100,
  force: false,
  ...more,
});
const group = (name: string, gid: number, members: string[], administrators: string[] = [], password: string | null = null): Group => ({ name, gid, members, administrators, password });
const desired = (groups: Group[], groupNames?: string[]): Desired => ({
  users: [alice, bob],
  groups,
  userNames: new Set(["alice", "bob"]),
  ...(groupNames ? { groupNames: new Set(groupNames) } : {}),
  userTable: "Users",
  groupTable: "Groups",
});
const groupActions = (p: Plan) => p.actions.filter((a) => a.kind === "create-group" || a.kind === "update-group");

describe("a group record that has no local group", () => {
  test("creates it with the members and administrators ddum manages, says who is left out, remembers what it added", () => {
    const p = plan(desired([group("devs", 3000, ["bob", "alice", "ghost", "carl"], ["alice", "carl"])]), host([], []), owned(), policy(), TODAY);
    expect(groupActions(p)).toEqual([
      {
        kind: "create-group",
        name: "devs",
        group: ["devs", "x", "3000", "bob,alice"],
        gshadow: ["devs", "!", "alice", "bob,alice"],
        privateGroup: false,
        changes: [
          { field: "GID", from: "(none)", to: "3000" },
          { field: "Members", from: "(none)", to: "bob,alice" },
          { field: "Administrators", from: "(none)", to: "alice" },
        ],
      },
    ]);
    expect(p.notices).toEqual([
      'Groups record "devs": member "ghost" is not a known user; left out',
      'Groups record "devs": member "carl" is a local account ddum does not manage; left out',
    ]);
    expect(p.ownership.groups).toContain("devs");
    expect(p.ownership.members).toEqual({ devs: ["bob", "alice"] });
    expect(p.ownership.admins).toEqual({ devs: ["alice"] });
    expect(p.ownershipChanged).toBe(true);
  });

  test("with no members: GID only; the record's password goes to gshadow", () => {
    const p = plan(desired([group("empty", 3001, [], [], GROUP_HASH)]), host([], []), owned(), policy(), TODAY);
    expect(groupActions(p)).toEqual([
      { kind: "create-group", name: "empty", group: ["empty", "x", "3001", ""], gshadow: ["empty", GROUP_HASH, "", ""], privateGroup: false, changes: [{ field: "GID", from: "(none)", to: "3001" }] },
    ]);
    expect(p.notices).toEqual([]);
  });

  test("groups are planned in GID order, whatever the table's order", () => {
    const p = plan(desired([group("zeta", 3003, []), group("beta", 3001, []), group("alpha", 3002, [])]), host([], []), owned(), policy(), TODAY);
    expect(groupActions(p).map((a) => a.name)).toEqual(["beta", "alpha", "zeta"]);
  });
});

describe("a group of ddum's that exists", () => {
  const mine = (more: Partial<Ownership> = {}) => owned({ groups: ["alice", "bob", "devs"], ...more });

  test("members: ddum's own additions follow the record; a name added by hand stays", () => {
    const p = plan(desired([group("devs", 3000, ["bob"])]), host(["devs:x:3000:alice,zed"], ["devs:!::alice,zed"]), mine({ members: { devs: ["alice"] } }), policy(), TODAY);
    expect(groupActions(p)).toEqual([
      {
        kind: "update-group",
        name: "devs",
        group: ["devs", "x", "3000", "zed,bob"],
        gshadow: ["devs", "!", "", "zed,bob"],
        local: false,
        changes: [{ field: "Members", from: "alice,zed", to: "zed,bob" }],
      },
    ]);
    expect(p.ownership.members).toEqual({ devs: ["bob"] });
  });

  test("a member the record lists who was there by hand before ddum is not taken as ddum's", () => {
    const p = plan(desired([group("devs", 3000, ["alice", "bob"])]), host(["devs:x:3000:alice"], ["devs:!::alice"]), mine(), policy(), TODAY);
    expect(groupActions(p)[0]!.changes).toEqual([{ field: "Members", from: "alice", to: "alice,bob" }]);
    expect(p.ownership.members).toEqual({ devs: ["bob"] });
  });

  test("administrators: set from the record, the change said", () => {
    const p = plan(desired([group("devs", 3000, ["alice"], ["bob"])]), host(["devs:x:3000:alice"], ["devs:!::alice"]), mine({ members: { devs: ["alice"] } }), policy(), TODAY);
    expect(groupActions(p)).toEqual([
      { kind: "update-group", name: "devs", group: ["devs", "x", "3000", "alice"], gshadow: ["devs", "!", "bob", "alice"], local: false, changes: [{ field: "Administrators", from: "(none)", to: "bob" }] },
    ]);
    expect(p.ownership.admins).toEqual({ devs: ["bob"] });
  });

  test("administrators removed: to none", () => {
    const p = plan(desired([group("devs", 3000, [], [])]), host(["devs:x:3000:"], ["devs:!:bob:"]), mine({ admins: { devs: ["bob"] } }), policy(), TODAY);
    expect(groupActions(p)[0]!.changes).toEqual([{ field: "Administrators", from: "bob", to: "(none)" }]);
    expect(groupActions(p)[0]!.gshadow).toEqual(["devs", "!", "", ""]);
  });

  test("members removed: to none", () => {
    const p = plan(desired([group("devs", 3000, [])]), host(["devs:x:3000:alice"], ["devs:!::alice"]), mine({ members: { devs: ["alice"] } }), policy(), TODAY);
    expect(groupActions(p)[0]!.changes).toEqual([{ field: "Members", from: "alice", to: "(none)" }]);
  });

  test("the password: changed, both sides hidden", () => {
    const p = plan(desired([group("devs", 3000, [], [], GROUP_HASH)]), host(["devs:x:3000:"], ["devs:!::"]), mine(), policy(), TODAY);
    expect(groupActions(p)).toEqual([
      { kind: "update-group", name: "devs", group: ["devs", "x", "3000", ""], gshadow: ["devs", GROUP_HASH, "", ""], local: false, changes: [{ field: "Password", from: "(hidden)", to: "(hidden)" }] },
    ]);
  });

  test("gshadow's copy of the members out of step with group: mended, said as such", () => {
    const p = plan(desired([group("devs", 3000, ["alice"])]), host(["devs:x:3000:alice"], ["devs:!::bob"]), mine({ members: { devs: ["alice"] } }), policy(), TODAY);
    expect(groupActions(p)[0]!.changes).toEqual([{ field: "gshadow members", from: "bob", to: "alice" }]);
    const empty = plan(desired([group("devs", 3000, [])]), host(["devs:x:3000:"], ["devs:!::bob"]), mine(), policy(), TODAY);
    expect(groupActions(empty)[0]!.changes).toEqual([{ field: "gshadow members", from: "bob", to: "(none)" }]);
    const none = plan(desired([group("devs", 3000, ["alice"])]), host(["devs:x:3000:alice"], ["devs:!::"]), mine({ members: { devs: ["alice"] } }), policy(), TODAY);
    expect(groupActions(none)[0]!.changes).toEqual([{ field: "gshadow members", from: "(none)", to: "alice" }]);
  });

  test("no gshadow line while gshadow exists: made; no gshadow file at all: nothing to make", () => {
    const p = plan(desired([group("devs", 3000, [])]), host(["devs:x:3000:"], []), mine(), policy(), TODAY);
    expect(groupActions(p)).toEqual([
      { kind: "update-group", name: "devs", group: ["devs", "x", "3000", ""], gshadow: ["devs", "!", "", ""], local: false, changes: [{ field: "gshadow entry", from: "(missing)", to: "(created)" }] },
    ]);
    const noFile = plan(desired([group("devs", 3000, [])]), host(["devs:x:3000:"], null), mine(), policy(), TODAY);
    expect(groupActions(noFile)).toEqual([]);
    expect(noFile.unchanged).toBe(p.unchanged + 1);
  });

  test("in step: counted unchanged, no action, ownership object untouched", () => {
    const prev = mine({ members: { devs: ["alice"] }, admins: { devs: ["bob"] } });
    const p = plan(desired([group("devs", 3000, ["alice"], ["bob"])]), host(["devs:x:3000:alice"], ["devs:!:bob:alice"]), prev, policy(), TODAY);
    expect(groupActions(p)).toEqual([]);
    expect(p.ownershipChanged).toBe(false);
    expect(p.ownership.members).toBe(prev.members);
    expect(p.ownership.admins).toBe(prev.admins);
    const before = plan(desired([]), host(["devs:x:3000:alice"], ["devs:!:bob:alice"]), prev, policy(), TODAY).unchanged;
    expect(p.unchanged).toBe(before + 1);
  });
});

describe("a local group the host consents to (merge_groups)", () => {
  test("members are added beside the local ones; administrators and the password stay the host's; only names ddum added are its own", () => {
    const p = plan(
      desired([group("wheel", 10, ["alice", "carl", "ghost"], ["alice"], GROUP_HASH)]),
      host(["wheel:x:10:carl"], ["wheel:*:carl:carl"]),
      owned(),
      policy({ mergeGroups: ["wheel"], gidMin: 1 }),
      TODAY,
    );
    expect(groupActions(p)).toEqual([
      { kind: "update-group", name: "wheel", group: ["wheel", "x", "10", "carl,alice"], gshadow: ["wheel", "*", "carl", "carl,alice"], local: true, changes: [{ field: "Members", from: "carl", to: "carl,alice" }] },
    ]);
    // carl is there already (the host put him there): not said to be left out. ghost is.
    expect(p.notices).toEqual([
      'Groups record "wheel": Administrators of a local group are not taken from the table (gpasswd would let them add any local account); left out',
      'Groups record "wheel": member "ghost" is not a known user; left out',
    ]);
    expect(p.ownership.members).toEqual({ wheel: ["alice"] });
    // None of the administrators are ddum's (it sets none here): recorded as an empty list.
    expect(p.ownership.admins).toEqual({ wheel: [] });
    expect(p.ownership.groups).not.toContain("wheel");
  });

  test("no administrators in the record: nothing said about them", () => {
    const p = plan(desired([group("wheel", 10, ["alice"])]), host(["wheel:x:10:carl"], ["wheel:*:carl:carl"]), owned(), policy({ mergeGroups: ["wheel"], gidMin: 1 }), TODAY);
    expect(p.notices).toEqual([]);
  });

  test("consent withdrawn (no longer in merge_groups): the record is refused, ddum's additions are taken back, and that is not braked", () => {
    const p = plan(
      desired([group("wheel", 10, ["alice"])], ["wheel"]),
      host(["wheel:x:10:carl,alice"], ["wheel:*:carl:carl,alice"]),
      owned({ members: { wheel: ["alice"] } }),
      policy({ mergeGroups: [], gidMin: 1, maxDisablePercent: 0 }),
      TODAY,
    );
    expect(p.refusals.map((r) => [r.name, r.field])).toEqual([['"wheel"', "Name"]]);
    expect(groupActions(p)).toEqual([
      { kind: "update-group", name: "wheel", group: ["wheel", "x", "10", "carl"], gshadow: ["wheel", "*", "carl", "carl"], local: true, changes: [{ field: "Members", from: "carl,alice", to: "carl" }] },
    ]);
    // The host's own decision, not a table that lost records: no brake even at max_disable_percent 0.
    expect(p.brake).toBeNull();
    expect(p.ownership.members).toEqual({});
  });

  test("a local account named only as an administrator is said once, as not ddum's", () => {
    const p = plan(desired([group("devs", 3000, ["carl"], ["carl"])]), host([], []), owned(), policy(), TODAY);
    expect(p.notices).toEqual(['Groups record "devs": member "carl" is a local account ddum does not manage; left out']);
  });
});

describe("a group record that left the table", () => {
  const left = (maxDisablePercent: number, force = false) =>
    plan(
      desired([group("devs", 3000, ["alice"])], ["devs"]),
      host(["devs:x:3000:alice", "old:x:3005:alice,zed"], ["devs:!::alice", "old:!:bob:alice,zed"]),
      owned({ groups: ["alice", "bob", "devs"], members: { devs: ["alice"], old: ["alice"] }, admins: { old: ["bob"] } }),
      policy({ maxDisablePercent, force }),
      TODAY,
    );

  test("ddum takes back the members and administrators it added; the group and the rest stay", () => {
    const p = left(100);
    expect(groupActions(p)).toEqual([
      {
        kind: "update-group",
        name: "old",
        group: ["old", "x", "3005", "zed"],
        gshadow: ["old", "!", "", "zed"],
        local: true,
        changes: [
          { field: "Members", from: "alice,zed", to: "zed" },
          { field: "Administrators", from: "bob", to: "(none)" },
        ],
      },
    ]);
    expect(p.ownership.members).toEqual({ devs: ["alice"] });
    expect(p.ownership.admins).toEqual({ devs: [] });
    expect(p.ownershipChanged).toBe(true);
    expect(p.brake).toBeNull();
  });

  test("braked when more groups left than max_disable_percent allows (at least one may always leave), unless forced", () => {
    const three = (maxDisablePercent: number, force = false) =>
      plan(
        desired([group("devs", 3000, ["alice"])], ["devs"]),
        host(["devs:x:3000:alice", "old:x:3005:alice", "older:x:3006:alice"], ["devs:!::alice", "old:!::alice", "older:!::alice"]),
        owned({ groups: ["alice", "bob", "devs"], members: { devs: ["alice"], old: ["alice"], older: ["alice"] } }),
        policy({ maxDisablePercent, force }),
        TODAY,
      ).brake;
    // Three groups were fed, two left: 67 %.
    expect(three(49)).toContain("safety brake: the records of 2 of the 3 groups ddum added members to have left the Groups table");
    expect(three(49)).toContain("max_disable_percent (49%)");
    expect(three(67)).toBeNull();
    expect(three(49, true)).toBeNull();
    // One of two: within the one group that may always leave, unless the limit is 0.
    expect(left(1)).toMatchObject({ brake: null });
    expect(left(0).brake).toContain("max_disable_percent (0%)");
    expect(left(0, true).brake).toBeNull();
  });

  test("a group whose record is still there is not taken back", () => {
    const p = plan(
      desired([group("devs", 3000, ["alice"])], ["devs", "old"]),
      host(["devs:x:3000:alice", "old:x:3005:alice"], ["devs:!::alice", "old:!::alice"]),
      owned({ groups: ["alice", "bob", "devs"], members: { devs: ["alice"], old: ["alice"] } }),
      policy(),
      TODAY,
    );
    expect(groupActions(p)).toEqual([]);
    expect(p.ownership.members).toEqual({ devs: ["alice"], old: ["alice"] });
  });
});

// The planner's group rules, one at a time, with exact answers: what a group record creates, what
// it changes in a group that exists (members, administrators, password, the gshadow copy of the
// members, a missing gshadow line), what it may and may not do in a local group the host consents
// to (merge_groups), which names are left out and said, what ddum remembers as its own additions,
// and what happens when a record leaves the table (members taken back, braked). In-process and
// fast: these are the mutation run's tests for plan.ts's group half.
import { describe, expect, test } from "bun:test";
import { AccountTable } from "../src/localdb/index.ts";
import type { Group, User } from "../src/model.ts";
import { type Action, type Current, type Desired, EMPTY_OWNERSHIP, type Ownership, type Plan, type Policy, plan } from "../src/plan.ts";
import { bareUser, planPolicy } from "./helpers/records.ts";

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
const policy = planPolicy;
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

describe("a group record that left the table: the details", () => {
  const gone = (groups: string[], gshadows: string[] | null, members: Record<string, string[]>, admins: Record<string, string[]> = {}) =>
    plan(desired([], []), host(groups, gshadows), owned({ groups: ["alice", "bob"], members, admins }), policy(), TODAY);

  test("administrators alone are taken back too; an entry with nothing of ddum's in it is no group ddum fed", () => {
    const p = gone(["ops:x:3001:carl"], ["ops:!:alice,carl:carl"], { ops: [], idle: [] }, { ops: ["alice"], idle: [] });
    expect(groupActions(p)).toEqual([
      { kind: "update-group", name: "ops", group: ["ops", "x", "3001", "carl"], gshadow: ["ops", "!", "carl", "carl"], local: true, changes: [{ field: "Administrators", from: "alice,carl", to: "carl" }] },
    ]);
    expect(p.ownership.members).toEqual({ idle: [] });
    expect(p.ownership.admins).toEqual({ idle: [] });
    // One group fed (ops), one left: within the one that may always leave.
    expect(p.brake).toBeNull();
    // An empty entry on one side only is nothing of ddum's either: not even forgotten.
    const sides: [Record<string, string[]>, Record<string, string[]>][] = [
      [{}, { idle: [] }],
      [{ idle: [] }, {}],
    ];
    for (const [members, admins] of sides) {
      const q = gone([], [], members, admins);
      expect(q.ownershipChanged).toBe(false);
      expect(q.brake).toBeNull();
    }
  });

  test("a group line ddum cannot read is left alone, and what ddum added there stays on its books", () => {
    for (const [groups, gshadows] of [
      [["ops:x:3001:alice:extra"], ["ops:!::alice"]],
      [["ops:x:3001:alice"], ["ops:!::alice:extra"]],
    ] as const) {
      const p = gone([...groups], [...gshadows], { ops: ["alice"] });
      expect(groupActions(p)).toEqual([]);
      expect(p.ownership.members).toEqual({ ops: ["alice"] });
    }
  });

  test("a group that is gone from the host: only forgotten; with no gshadow line: group alone, no administrators", () => {
    const p1 = gone([], [], { ops: ["alice"] });
    expect(groupActions(p1)).toEqual([]);
    expect(p1.ownership.members).toEqual({});
    expect(p1.ownershipChanged).toBe(true);
    const p2 = gone(["ops:x:3001:alice,carl"], [], { ops: ["alice"] }, { ops: ["bob"] });
    expect(groupActions(p2)).toEqual([{ kind: "update-group", name: "ops", group: ["ops", "x", "3001", "carl"], gshadow: null, local: true, changes: [{ field: "Members", from: "alice,carl", to: "carl" }] }]);
  });

  test("gshadow's copy of the members alone carries ddum's addition: mended, said as such; ddum's own group is not local", () => {
    const p = plan(
      desired([], []),
      host(["ops:x:3001:carl"], ["ops:!::alice,carl"]),
      owned({ groups: ["alice", "bob", "ops"], members: { ops: ["alice"] } }),
      policy(),
      TODAY,
    );
    expect(groupActions(p)).toEqual([
      { kind: "update-group", name: "ops", group: ["ops", "x", "3001", "carl"], gshadow: ["ops", "!", "", "carl"], local: false, changes: [{ field: "gshadow members", from: "alice,carl", to: "carl" }] },
    ]);
  });

  test("ddum's additions already gone by hand: nothing to write, only forgotten", () => {
    const p = gone(["ops:x:3001:carl"], ["ops:!::carl"], { ops: ["alice"] });
    expect(groupActions(p)).toEqual([]);
    expect(p.ownership.members).toEqual({});
  });

  test("both brakes at once: the report gives both, one per line", () => {
    const p = plan(
      { ...desired([], []), users: [], userNames: new Set() },
      host(["old:x:3005:alice", "older:x:3006:alice"], ["old:!::alice", "older:!::alice"]),
      owned({ groups: ["alice", "bob"], members: { old: ["alice"], older: ["alice"] } }),
      policy({ missingUsers: "disable", maxDisablePercent: 10 }),
      TODAY,
    );
    const lines = p.brake!.split("\n");
    expect(lines).toHaveLength(2);
    expect(lines[0]).toStartWith("safety brake: this pass would disable 2 of 2 enabled managed users");
    expect(lines[1]).toStartWith("safety brake: the records of 2 of the 2 groups ddum added members to have left the Groups table");
    expect(lines[1]).toEndWith("nothing was applied. Check the tables, then run with --force to apply it.");
  });
});

describe("who may be a member through a record", () => {
  /** A host where dave (owned) has the given UID. */
  const withDave = (uid: number) => {
    const cur = host([], []);
    cur.passwd = new AccountTable("passwd", "/t/passwd", `${cur.passwd.serialize()}dave:x:${uid}:${uid}:dave:/home/dave:/bin/sh\n`);
    return cur;
  };
  const membersOf = (uid: number, more: Partial<Policy> = {}) => {
    const p = plan(desired([group("devs", 3000, ["dave"])]), withDave(uid), owned({ users: ["alice", "bob", "dave"] }), policy({ uidMin: 1000, uidMax: 5000, ...more }), TODAY);
    return { members: (groupActions(p)[0]?.group ?? [])[3], notices: p.notices };
  };

  test("a managed local account inside the UID range, its ends included", () => {
    expect(membersOf(1000).members).toBe("dave");
    expect(membersOf(5000).members).toBe("dave");
    expect(membersOf(3000).notices).toEqual([]);
  });

  test("outside the range, or UID 0, even if ddum's books name it: left out, said", () => {
    for (const uid of [999, 5001, 0]) {
      const r = membersOf(uid, uid === 0 ? { uidMin: 0 } : {});
      expect(r.members).toBe("");
      expect(r.notices).toEqual(['Groups record "devs": member "dave" is a local account ddum does not manage; left out']);
    }
  });

  test("a name on ddum's books that is on neither the host nor the table: not a known user", () => {
    const p = plan(desired([group("devs", 3000, ["ghost"])]), host([], []), owned({ users: ["alice", "bob", "ghost"] }), policy(), TODAY);
    expect(groupActions(p)[0]!.group[3]).toBe("");
    expect(p.notices).toEqual(['Groups record "devs": member "ghost" is not a known user; left out']);
  });

  test("administrators left out are said even when every member is in; in a consented group, a name already there is not", () => {
    const p = plan(desired([group("devs", 3000, ["alice"], ["carl"])]), host([], []), owned(), policy(), TODAY);
    expect(p.notices).toEqual(['Groups record "devs": member "carl" is a local account ddum does not manage; left out']);
    const merged = plan(
      desired([group("wheel", 10, ["alice", "carl"], ["carl"])]),
      host(["wheel:x:10:carl"], ["wheel:!:carl:carl"]),
      owned(),
      policy({ gidMin: 1, adoptGroups: [] }),
      TODAY,
    );
    expect(merged.notices.filter((n) => n.includes("left out") && n.includes('member "carl"'))).toEqual([]);
  });
});

describe("user private groups", () => {
  const amy = bareUser("amy", 2005, { realName: "amy", shell: "/bin/bash", password: HASH, lastChange: 19000 });
  const withAmy = (groups: Group[], cur: Current, groupNames?: string[]) =>
    plan({ ...desired(groups, groupNames), users: [alice, bob, amy], userNames: new Set(["alice", "bob", "amy"]) }, cur, owned(), policy(), TODAY);
  const privates = (p: Plan) => p.actions.filter((a): a is Extract<Action, { kind: "create-group" }> => a.kind === "create-group" && a.privateGroup);

  test("a new user whose GID has no group gets one of its own name: exact lines, its change, owned", () => {
    const p = withAmy([], host([], []));
    const made = privates(p);
    expect(made).toHaveLength(1);
    expect(made[0]).toMatchObject({ kind: "create-group", name: "amy", group: ["amy", "x", "2005", ""], gshadow: ["amy", "!", "", ""], privateGroup: true });
    expect(made[0]!.changes).toEqual([{ field: "GID", from: "(none)", to: "2005" }]);
    expect(p.ownership.groups).toContain("amy");
  });

  test("none when a local group or a group record has that GID", () => {
    expect(privates(withAmy([], host(["staff:x:2005:"], [])))).toEqual([]);
    expect(privates(withAmy([group("team", 2005, [])], host([], [])))).toEqual([]);
  });

  test("two new users sharing a GID with no group: one private group, for the first", () => {
    const ann = bareUser("ann", 2006, { gid: 2005, shell: "/bin/bash", password: HASH, lastChange: 19000 });
    const p = plan({ ...desired([]), users: [alice, bob, amy, ann], userNames: new Set(["alice", "bob", "amy", "ann"]) }, host([], []), owned(), policy(), TODAY);
    expect(privates(p).map((a) => [a.name, a.group[2]])).toEqual([["amy", "2005"]]);
  });

  test("none when the name is taken by any group line (group or gshadow, readable or not) or by a group record; said", () => {
    const note = 'user "amy": no group has GID 2005, and the name is taken by another group line, so none was made';
    for (const [groups, gshadows] of [
      [["amy:x:3100:"], ["amy:!::"]],
      [[], ["amy:!::"]],
      [["amy:x:3100::broken"], []],
      [[], ["amy:!:::broken"]],
    ] as const) {
      const p = withAmy([], host([...groups], [...gshadows]));
      expect(privates(p)).toEqual([]);
      expect(p.notices).toContain(note);
    }
    // A record for a group named amy with amy's GID is her group (not a private one made here).
    const own = withAmy([group("amy", 2005, [])], host([], []));
    expect(privates(own)).toEqual([]);
    expect(own.actions.find((a) => a.name === "amy" && a.kind === "create-group")).toMatchObject({ privateGroup: false });
  });

  test("a group record that names amy's private group with another GID is refused, and amy still gets hers", () => {
    const p = withAmy([group("amy", 4000, [])], host([], []));
    expect(p.refusals.map((r) => [r.table, r.name])).toEqual([["Groups", '"amy"']]);
    expect(privates(p).map((a) => [a.name, a.group[2]])).toEqual([["amy", "2005"]]);
  });

  test("the same for a local user: its GID read from passwd, not from the table", () => {
    const p = plan(desired([group("alice", 4000, [])]), host([], []), owned(), policy(), TODAY);
    expect(p.refusals.map((r) => [r.table, r.name])).toEqual([["Groups", '"alice"']]);
  });

  test("a user being updated whose GID has no group gets one too", () => {
    const cur = host([], []);
    cur.group = new AccountTable("group", "/t/group", "root:x:0:\ncarl:x:1500:\nbob:x:2002:\n");
    cur.gshadow = new AccountTable("gshadow", "/t/gshadow", "root:*::\ncarl:!::\nbob:!::\n");
    const renamed = { ...alice, realName: "Alice A." };
    const p = plan({ ...desired([]), users: [renamed, bob] }, cur, owned(), policy(), TODAY);
    expect(p.actions.map((a) => [a.kind, a.name])).toEqual([
      ["update-user", "alice"],
      ["create-group", "alice"],
    ]);
  });

  test("a GID a group record claims is not given to a private group, even when that record is refused", () => {
    // A gshadow line for "team" with no group line: the record is refused, its GID stays claimed.
    const p = withAmy([group("team", 2005, [])], host([], ["team:!::"]));
    expect(p.refusals.map((r) => r.name)).toEqual(['"team"']);
    expect(privates(p)).toEqual([]);
  });

  test("a user's private group is known by the GID of its local account, not the one its record asks for", () => {
    // alice's record asks for GID 2050; her account keeps 2001, and "alice" 2001 is her group.
    const p = plan({ ...desired([group("alice", 2001, ["alice"])]), users: [{ ...alice, gid: 2050 }, bob] }, host([], []), owned(), policy(), TODAY);
    expect(p.refusals.filter((r) => r.table === "Groups")).toEqual([]);
  });

  test("a user being disabled gets no group made", () => {
    const p = plan({ ...desired([]), users: [alice], userNames: new Set(["alice"]) }, host([], []), owned(), policy({ missingUsers: "disable" }), TODAY);
    expect(p.actions.filter((a) => a.kind === "disable-user").map((a) => a.name)).toEqual(["bob"]);
    expect(privates(p).map((a) => a.name)).toEqual([]);
  });
});

describe("a group record's GID", () => {
  test("the primary GID of a local account ddum does not manage, with no group line: refused", () => {
    const cur = host([], []);
    // carl's group line is gone; GID 1500 is still carl's primary group.
    cur.group = new AccountTable("group", "/t/group", "root:x:0:\nalice:x:2001:\nbob:x:2002:\n");
    const p = plan(desired([group("crew", 1500, [])]), cur, owned(), policy(), TODAY);
    expect(p.refusals.map((r) => [r.name, r.field, r.reason])).toEqual([['"crew"', "GID", '1500 is the primary group of the local account "carl"']]);
    expect(groupActions(p)).toEqual([]);
  });

  test("the primary GID of a user ddum manages: the record may make that group", () => {
    const cur = host([], []);
    cur.group = new AccountTable("group", "/t/group", "root:x:0:\ncarl:x:1500:\nbob:x:2002:\n");
    const p = plan(desired([group("team", 2001, ["alice"])]), cur, owned(), policy(), TODAY);
    expect(p.refusals).toEqual([]);
    expect(groupActions(p).map((a) => [a.kind, a.name, a.group[2]])).toEqual([["create-group", "team", "2001"]]);
  });

  test("two new group records with one GID: the first in name order made, the second refused", () => {
    const p = plan(desired([group("zeta", 3000, []), group("beta", 3000, [])]), host([], []), owned(), policy(), TODAY);
    expect(groupActions(p).map((a) => a.name)).toEqual(["beta"]);
    expect(p.refusals.map((r) => [r.name, r.field])).toEqual([['"zeta"', "GID"]]);
  });

  test("a changed GID of ddum's group: said, from and to", () => {
    const p = plan(desired([group("devs", 3001, [])]), host(["devs:x:3000:"], ["devs:!::"]), owned({ groups: ["alice", "bob", "devs"] }), policy(), TODAY);
    expect(groupActions(p)).toEqual([{ kind: "update-group", name: "devs", group: ["devs", "x", "3001", ""], gshadow: ["devs", "!", "", ""], local: false, changes: [{ field: "GID", from: "3000", to: "3001" }] }]);
  });
});

describe("lists of several names", () => {
  test("are comma-joined in every line and every change: a new group, a changed one, one taken back, a consented one", () => {
    const made = plan(desired([group("devs", 3000, ["alice", "bob"], ["bob", "alice"])]), host([], []), owned(), policy(), TODAY);
    expect(groupActions(made)[0]).toMatchObject({
      group: ["devs", "x", "3000", "alice,bob"],
      gshadow: ["devs", "!", "bob,alice", "alice,bob"],
      changes: [
        { field: "GID", from: "(none)", to: "3000" },
        { field: "Members", from: "(none)", to: "alice,bob" },
        { field: "Administrators", from: "(none)", to: "bob,alice" },
      ],
    });
    const changed = plan(desired([group("devs", 3000, ["alice", "bob"], ["alice", "bob"])]), host(["devs:x:3000:carl"], ["devs:!::carl"]), owned({ groups: ["alice", "bob", "devs"] }), policy(), TODAY);
    expect(groupActions(changed)[0]!.changes).toEqual([
      { field: "Members", from: "carl", to: "carl,alice,bob" },
      { field: "Administrators", from: "(none)", to: "alice,bob" },
    ]);
    const back = plan(
      desired([], []),
      host(["old:x:3005:alice,carl,zed"], ["old:!:bob,carl,zed:alice,carl,zed"]),
      owned({ members: { old: ["alice"] }, admins: { old: ["bob"] } }),
      policy(),
      TODAY,
    );
    expect(groupActions(back)).toEqual([
      {
        kind: "update-group",
        name: "old",
        group: ["old", "x", "3005", "carl,zed"],
        gshadow: ["old", "!", "carl,zed", "carl,zed"],
        local: true,
        changes: [
          { field: "Members", from: "alice,carl,zed", to: "carl,zed" },
          { field: "Administrators", from: "bob,carl,zed", to: "carl,zed" },
        ],
      },
    ]);
    const backGshadowOnly = plan(desired([], []), host(["old:x:3005:carl,zed"], ["old:!::alice,carl,zed"]), owned({ members: { old: ["alice"] } }), policy(), TODAY);
    expect(groupActions(backGshadowOnly)[0]!.changes).toEqual([{ field: "gshadow members", from: "alice,carl,zed", to: "carl,zed" }]);
  });
});

describe("ddum's books of groups and members", () => {
  test("the plan never changes the ownership it was given; other groups' entries are kept when one changes", () => {
    const prev = owned({ groups: ["alice", "bob", "devs", "qa"], members: { devs: ["alice"], qa: ["alice"], ops: ["bob"] }, admins: { ops: ["alice"], qa: ["bob"] } });
    const frozen = JSON.stringify(prev);
    // devs gains bob; qa is in step; ops has left the table and is taken back.
    const p = plan(
      desired([group("devs", 3000, ["alice", "bob"]), group("qa", 3002, ["alice"], ["bob"])], ["devs", "qa"]),
      host(["devs:x:3000:alice", "ops:x:3001:bob", "qa:x:3002:alice"], ["devs:!::alice", "ops:!:alice:bob", "qa:!:bob:alice"]),
      prev,
      policy(),
      TODAY,
    );
    expect(JSON.stringify(prev)).toBe(frozen);
    expect(p.ownership.members).toEqual({ devs: ["alice", "bob"], qa: ["alice"] });
    expect(p.ownership.admins).toEqual({ devs: [], qa: ["bob"] });
    // Only a group taken back: the books given are not touched either.
    const prev2 = owned({ members: { ops: ["bob"] }, admins: { ops: ["alice"] } });
    const frozen2 = JSON.stringify(prev2);
    const p2 = plan(desired([], []), host(["ops:x:3001:bob"], ["ops:!:alice:bob"]), prev2, policy(), TODAY);
    expect(JSON.stringify(prev2)).toBe(frozen2);
    expect(p2.ownership.members).toEqual({});
  });

  test("a change to the books alone (the record drops a member ddum added) is recorded", () => {
    const p = plan(desired([group("devs", 3000, ["alice"], [])]), host(["devs:x:3000:alice,bob"], ["devs:!::alice,bob"]), owned({ groups: ["alice", "bob", "devs"], members: { devs: ["alice", "bob"] }, admins: { devs: [] } }), policy(), TODAY);
    expect(p.ownershipChanged).toBe(true);
    expect(p.ownership.members).toEqual({ devs: ["alice"] });
    expect(groupActions(p)[0]!.changes).toEqual([{ field: "Members", from: "alice,bob", to: "alice" }]);
  });

  test("a change of one member among others, or a longer list, is a change to the books", () => {
    const grow = plan(desired([group("devs", 3000, ["alice", "bob"])]), host(["devs:x:3000:alice"], ["devs:!::alice"]), owned({ groups: ["alice", "bob", "devs"], members: { devs: ["alice"] } }), policy(), TODAY);
    expect(grow.ownership.members).toEqual({ devs: ["alice", "bob"] });
    // ddum had added alice and carl; the record now lists alice and bob: carl goes, bob is ddum's.
    const swap = plan(desired([group("devs", 3000, ["alice", "bob"])]), host(["devs:x:3000:alice,carl"], ["devs:!::alice,carl"]), owned({ groups: ["alice", "bob", "devs"], members: { devs: ["alice", "carl"] } }), policy(), TODAY);
    expect(swap.ownership.members).toEqual({ devs: ["alice", "bob"] });
    expect(groupActions(swap)[0]!.group).toEqual(["devs", "x", "3000", "alice,bob"]);
  });

  test("ownership lists are written sorted; a plan from no ownership at all starts from nothing", () => {
    const zed = bareUser("zed", 2010, { shell: "/bin/bash", password: HASH, lastChange: 19000 });
    const amy = bareUser("amy", 2005, { shell: "/bin/bash", password: HASH, lastChange: 19000 });
    const p = plan({ ...desired([group("zz", 3002, []), group("aa", 3001, [])]), users: [zed, amy], userNames: new Set(["zed", "amy"]) }, host([], []), EMPTY_OWNERSHIP, policy(), TODAY);
    expect(p.ownership.users).toEqual(["amy", "zed"]);
    expect(p.ownership.groups).toEqual(["aa", "amy", "zed", "zz"]);
  });

  test("adopt_groups: a local group with a record becomes ddum's", () => {
    const p = plan(desired([group("ops", 3001, ["alice"])]), host(["ops:x:3001:"], ["ops:!::"]), owned(), policy({ adoptGroups: ["ops"] }), TODAY);
    expect(p.ownership.groups).toContain("ops");
    expect(groupActions(p)).toMatchObject([{ kind: "update-group", name: "ops", local: false }]);
  });
});

describe("more about consented groups and names", () => {
  test("a consented group with no gshadow line gets one, locked, with the members", () => {
    const p = plan(desired([group("wheel", 10, ["alice"])]), host(["wheel:x:10:"], []), owned(), policy({ mergeGroups: ["wheel"] }), TODAY);
    expect(groupActions(p)).toMatchObject([{ kind: "update-group", name: "wheel", group: ["wheel", "x", "10", "alice"], gshadow: ["wheel", "!", "", "alice"] }]);
  });

  test("an administrator named for a consented group who is a local account not already one: said", () => {
    const p = plan(desired([group("wheel", 10, [], ["carl"])]), host(["wheel:x:10:"], ["wheel:!::"]), owned(), policy({ mergeGroups: ["wheel"] }), TODAY);
    expect(p.notices).toContain('Groups record "wheel": member "carl" is a local account ddum does not manage; left out');
  });

  test("a group that had no members gets some: from none", () => {
    const p = plan(desired([group("devs", 3000, ["alice"])]), host(["devs:x:3000:"], ["devs:!::"]), owned({ groups: ["alice", "bob", "devs"] }), policy(), TODAY);
    expect(groupActions(p)[0]!.changes).toEqual([
      { field: "Members", from: "(none)", to: "alice" },
    ]);
  });

  test("the primary GID of a user ddum manages who has left the table: a record may still make that group", () => {
    const cur = host([], []);
    cur.passwd = new AccountTable("passwd", "/t/passwd", `${cur.passwd.serialize()}olga:x:2050:3500:olga:/home/olga:/bin/sh\n`);
    const p = plan(desired([group("crew", 3500, [])]), cur, owned({ users: ["alice", "bob", "olga"] }), policy(), TODAY);
    expect(p.refusals).toEqual([]);
    expect(groupActions(p).map((a) => a.name)).toEqual(["crew"]);
  });
});

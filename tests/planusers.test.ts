// The planner's user rules, one at a time, with exact answers: what a new user record creates
// (its lines and the changes the report lists), the order users are judged in, what happens to a
// managed user whose record has left the table (missing_users "keep" or "disable": the lines, the
// changes, who is skipped), and the safety brake on disabling (who counts as enabled before, how
// many may go, max_disable_percent 0, --force). In-process and fast: these are the mutation run's
// tests for plan.ts's user half (tests/plangroups.test.ts has the group half).
import { describe, expect, test } from "bun:test";
import { AccountTable } from "../src/localdb/index.ts";
import type { User } from "../src/model.ts";
import { type Action, byUid, type Current, type Desired, EMPTY_OWNERSHIP, InPlaceUsers, type Ownership, type Plan, type Policy, plan } from "../src/plan.ts";
import { bareUser, planPolicy } from "./helpers/records.ts";

const HASH = "$6$saltsalt$0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ./0123456789abcdefghij";
const TODAY = 20000;

const user = (name: string, uid: number, over: Partial<User> = {}): User => bareUser(name, uid, { realName: name, shell: "/bin/bash", password: HASH, lastChange: 19000, ...over });
const alice = user("alice", 2001);
const bob = user("bob", 2002);
const dora = user("dora", 2003);
const pline = (u: User) => `${u.name}:x:${u.uid}:${u.gid}:${u.realName}:${u.home}:${u.shell}`;
const sline = (name: string, password = HASH, rest = "19000::::::") => `${name}:${password}:${rest}`;

/** The host: root, carl (a local account ddum does not manage), and whatever lines are given. */
function host(passwd: string[], shadow: string[]): Current {
  return {
    passwd: new AccountTable("passwd", "/t/passwd", `${["root:x:0:0:root:/root:/bin/bash", "carl:x:1500:1500:carl:/home/carl:/bin/sh", ...passwd].join("\n")}\n`),
    shadow: new AccountTable("shadow", "/t/shadow", `${["root:*:19000::::::", "carl:*:19000::::::", ...shadow].join("\n")}\n`),
    group: new AccountTable("group", "/t/group", "root:x:0:\ncarl:x:1500:\n"),
    gshadow: new AccountTable("gshadow", "/t/gshadow", "root:*::\ncarl:!::\n"),
  };
}
/** alice, bob and dora on the host, enabled, ddum's. */
const three = () => host([pline(alice), pline(bob), pline(dora)], [sline("alice"), sline("bob"), sline("dora")]);
const owned = (users: string[]): Ownership => ({ ...EMPTY_OWNERSHIP, users, groups: [] });
const policy = (more: Partial<Policy> = {}): Policy => planPolicy({ missingUsers: "disable", ...more });
const desired = (users: User[], names = users.map((u) => u.name)): Desired => ({ users, groups: [], userNames: new Set(names), userTable: "Users", groupTable: "Groups" });
type UserAction = Extract<Action, { kind: "create-user" | "update-user" | "disable-user" }>;
const userActions = (p: Plan) => p.actions.filter((a): a is UserAction => a.kind.endsWith("-user"));
const disabled = (name: string, password = `!${HASH}`, expire = "1") => ({ kind: "disable-user" as const, name, shadow: [name, password, "19000", "", "", "", "", expire, ""] });

describe("a new user record", () => {
  test("creates its passwd and shadow lines; the report's changes list every field, the password hidden", () => {
    const amy = user("amy", 2005);
    const p = plan(desired([amy]), host([], []), owned([]), policy(), TODAY);
    const [a] = userActions(p);
    expect(a).toMatchObject({
      kind: "create-user",
      name: "amy",
      passwd: ["amy", "x", "2005", "2005", "amy", "/home/amy", "/bin/bash"],
      shadow: ["amy", HASH, "19000", "", "", "", "", "", ""],
    });
    expect(a!.changes).toEqual([
      { field: "UID", from: "(none)", to: "2005" },
      { field: "GID", from: "(none)", to: "2005" },
      { field: "RealName", from: "(none)", to: "amy" },
      { field: "Home", from: "(none)", to: "/home/amy" },
      { field: "Shell", from: "(none)", to: "/bin/bash" },
      { field: "password", from: "(none)", to: "set" },
      { field: "LastPasswordChangeDate", from: "(none)", to: "2022-01-08" },
    ]);
    expect(p.accepted).toEqual([amy]);
    expect(p.unchanged).toBe(0);
    expect(p.disables).toBe(0);
    expect(p.brake).toBeNull();
    expect(p.ownership.users).toEqual(["amy"]);
    expect(p.ownershipChanged).toBe(true);
  });

  test("without a Password: a locked field, said so; ageing fields and the expiry date in the report", () => {
    const p = plan(desired([user("amy", 2005, { password: null, lastChange: null, minDays: 1, maxDays: 90, warnDays: 7, inactiveDays: 3, expire: 30000 })]), host([], []), owned([]), policy(), TODAY);
    const [a] = userActions(p);
    expect(a).toMatchObject({ shadow: ["amy", "!", "", "1", "90", "7", "3", "30000", ""] });
    expect(a!.changes.slice(5)).toEqual([
      { field: "password", from: "(none)", to: "locked (no Password in the record)" },
      { field: "PasswordAgeMinDays", from: "(none)", to: "1" },
      { field: "PasswordAgeMaxDays", from: "(none)", to: "90" },
      { field: "PasswordWarnDays", from: "(none)", to: "7" },
      { field: "PasswordDisableDays", from: "(none)", to: "3" },
      { field: "AccountExpireDate", from: "(none)", to: "2052-02-20" },
    ]);
  });

  test("users are judged and listed in UID order, whatever the table's order", () => {
    const p = plan(desired([user("zed", 2010), user("amy", 2005), user("max", 1999)]), host([], []), owned([]), policy(), TODAY);
    expect(userActions(p).map((a) => a.name)).toEqual(["max", "amy", "zed"]);
    expect(p.accepted.map((u) => u.name)).toEqual(["max", "amy", "zed"]);
  });

  test("a user in place is counted, not acted on; one the rules refuse is neither accepted nor owned", () => {
    const taken = user("taken", 1500); // carl's UID
    const p = plan(desired([alice, taken]), host([pline(alice)], [sline("alice")]), owned(["alice"]), policy(), TODAY);
    expect(userActions(p)).toEqual([]);
    expect(p.unchanged).toBe(1);
    expect(p.accepted).toEqual([alice]);
    // Names in problems are printed quoted (a name could hold anything).
    expect(p.refusals.map((r) => [r.table, r.name, r.field])).toEqual([["Users", '"taken"', "UID"]]);
    expect(p.ownership.users).toEqual(["alice"]);
    // Nothing in ownership changed: the plan hands back the very object it started from.
    expect(p.ownershipChanged).toBe(false);
  });

  test("two records with one UID (never so after decoding, but the plan does not rely on it): the first in UID order is created, the second refused", () => {
    const p = plan(desired([user("twin2", 2005), user("twin1", 2005)]), host([], []), owned([]), policy(), TODAY);
    expect(userActions(p).map((a) => a.name)).toEqual(["twin2"]);
    expect(p.refusals.map((r) => [r.name, r.field])).toEqual([['"twin1"', "UID"]]);
  });

  test("a user created by this plan is a known member of the groups that list it", () => {
    const amy = user("amy", 2005);
    const p = plan({ ...desired([amy]), groups: [{ name: "devs", gid: 3000, members: ["amy"], administrators: [], password: null }] }, host([], []), owned([]), policy(), TODAY);
    expect(p.actions.find((a) => a.name === "devs")).toMatchObject({ kind: "create-group", group: ["devs", "x", "3000", "amy"] });
    expect(p.notices).toEqual([]);
  });
});

describe("users seen in place during the scan (InPlaceUsers)", () => {
  test("are counted and accepted without being judged again; the rest are judged", () => {
    const cur = three();
    const prev = owned(["alice", "bob", "dora"]);
    const seen = new InPlaceUsers(cur, prev, policy(), TODAY);
    expect(seen.check(alice)).toBe(true);
    const changed = user("bob", 2002, { realName: "Bob B." });
    expect(seen.check(changed)).toBe(false);
    const p = plan(desired([alice, changed, dora]), cur, prev, policy(), TODAY, seen);
    expect(p.unchanged).toBe(2);
    expect(p.accepted.map((u) => u.name).sort()).toEqual(["alice", "bob", "dora"]);
    expect(userActions(p).map((a) => [a.kind, a.name])).toEqual([["update-user", "bob"]]);
  });

  test("one in place through adopt_users only is owned by the plan", () => {
    const carl = user("carl", 1500, { realName: "carl", shell: "/bin/sh", password: "*" });
    const prev = owned(["alice"]);
    const cur = host([pline(alice)], [sline("alice")]);
    const seen = new InPlaceUsers(cur, prev, policy({ adoptUsers: ["carl"] }), TODAY);
    expect(seen.check(carl)).toBe(true);
    expect(seen.check(alice)).toBe(true);
    const p = plan(desired([alice, carl]), cur, prev, policy({ adoptUsers: ["carl"] }), TODAY, seen);
    expect(p.actions).toEqual([]);
    expect(p.unchanged).toBe(2);
    expect(p.ownershipChanged).toBe(true);
    expect(p.ownership.users).toEqual(["alice", "carl"]);
  });

  test("checked against another ownership than the plan's: refused outright", () => {
    const cur = three();
    const seen = new InPlaceUsers(cur, owned(["alice"]), policy(), TODAY);
    expect(() => plan(desired([alice]), cur, owned(["alice"]), policy(), TODAY, seen)).toThrow(/another ownership/);
  });
});

describe("byUid", () => {
  test("sorts by UID, keeping the input order of equal UIDs; the input is left as it was", () => {
    const a = bareUser("a", 5);
    const b = bareUser("b", 3);
    const c = bareUser("c", 5);
    const d = bareUser("d", 4_000_000);
    const input = [d, a, b, c];
    expect(byUid(input).map((u) => u.name)).toEqual(["b", "a", "c", "d"]);
    expect(input.map((u) => u.name)).toEqual(["d", "a", "b", "c"]);
    expect(byUid([])).toEqual([]);
  });
});

describe("a managed user whose record has left the table", () => {
  test('missing_users "keep": left exactly as it is', () => {
    const p = plan(desired([alice]), three(), owned(["alice", "bob", "dora"]), policy({ missingUsers: "keep" }), TODAY);
    expect(p.actions).toEqual([]);
    expect(p.disables).toBe(0);
    expect(p.brake).toBeNull();
  });

  test('missing_users "disable": password locked and the account expired, in name order; counted as disables', () => {
    const prev = owned(["dora", "bob", "alice"]);
    const p = plan(desired([alice]), three(), prev, policy(), TODAY);
    const acts = userActions(p);
    expect(acts.map(({ kind, name, shadow }) => ({ kind, name, shadow }))).toEqual([disabled("bob"), disabled("dora")]);
    expect(acts[0]!.changes).toEqual([
      { field: "Password", from: "(hidden)", to: "(hidden)" },
      { field: "AccountExpireDate", from: "(none)", to: "1970-01-02" },
    ]);
    expect(p.disables).toBe(2);
    expect(p.brake).toBeNull();
    // Still ddum's (a record that comes back manages it again): ownership is not touched.
    expect(p.ownershipChanged).toBe(false);
    expect(p.ownership).toBe(prev);
  });

  test("a record that is in the table but was rejected has not left: its user is not disabled", () => {
    const p = plan(desired([alice], ["alice", "bob", "dora"]), three(), owned(["alice", "bob", "dora"]), policy(), TODAY);
    expect(p.actions).toEqual([]);
  });

  test("already locked and expired: nothing to do, and not counted", () => {
    const cur = host([pline(alice), pline(bob)], [sline("alice"), sline("bob", `!${HASH}`, "19000:::::1:")]);
    const p = plan(desired([alice]), cur, owned(["alice", "bob"]), policy(), TODAY);
    expect(p.actions).toEqual([]);
    expect(p.disables).toBe(0);
  });

  test("locked but not expired: only the expiry date is set, and it counts (a locked password still lets keys in)", () => {
    const cur = host([pline(alice), pline(bob)], [sline("alice"), sline("bob", `!${HASH}`)]);
    const p = plan(desired([alice]), cur, owned(["alice", "bob"]), policy(), TODAY);
    const acts = userActions(p);
    expect(acts.map(({ kind, name, shadow }) => ({ kind, name, shadow }))).toEqual([disabled("bob")]);
    expect(acts[0]!.changes).toEqual([{ field: "AccountExpireDate", from: "(none)", to: "1970-01-02" }]);
    expect(p.disables).toBe(1);
  });

  test("an expiry date still to come is brought forward; one already past is kept, and the user was not enabled", () => {
    const later = host([pline(alice), pline(bob)], [sline("alice"), sline("bob", HASH, "19000:::::30000:")]);
    const p1 = plan(desired([alice]), later, owned(["alice", "bob"]), policy(), TODAY);
    expect(userActions(p1).map(({ shadow }) => shadow)).toEqual([["bob", `!${HASH}`, "19000", "", "", "", "", "1", ""]]);
    expect(p1.disables).toBe(1);
    const past = host([pline(alice), pline(bob)], [sline("alice"), sline("bob", HASH, "19000:::::100:")]);
    const p2 = plan(desired([alice]), past, owned(["alice", "bob"]), policy(), TODAY);
    expect(userActions(p2).map(({ shadow }) => shadow)).toEqual([["bob", `!${HASH}`, "19000", "", "", "", "", "100", ""]]);
    expect(userActions(p2)[0]!.changes).toEqual([{ field: "Password", from: "(hidden)", to: "(hidden)" }]);
    expect(p2.disables).toBe(0);
  });

  test("expired by password ageing alone: still gets an expiry date of its own (a local admin could reset the ageing)", () => {
    // Last change on day 19000, at most 30 days: expired by ageing on day 20000, not by date.
    const aged = host([pline(alice), pline(bob)], [sline("alice"), sline("bob", HASH, "19000::30::::")]);
    const p = plan(desired([alice]), aged, owned(["alice", "bob"]), policy(), TODAY);
    expect(userActions(p).map(({ shadow }) => shadow)).toEqual([["bob", `!${HASH}`, "19000", "", "30", "", "", "1", ""]]);
    expect(p.disables).toBe(0);
  });

  test("not on the host (a stray shadow line is not an account), or without a shadow line: nothing to disable", () => {
    const cur = host([pline(alice), pline(bob)], [sline("alice"), sline("gone")]);
    const p = plan(desired([alice]), cur, owned(["alice", "bob", "gone"]), policy(), TODAY);
    expect(p.actions).toEqual([]);
    expect(p.disables).toBe(0);
  });

  test("a local account ddum does not manage is never disabled, in the table or not", () => {
    const p = plan(desired([alice]), three(), owned(["alice"]), policy(), TODAY);
    expect(p.actions).toEqual([]);
  });
});

describe("the safety brake on disabling", () => {
  const brakeText = (n: number, of: number, pct: number) =>
    `safety brake: this pass would disable ${n} of ${of} enabled managed users, more than max_disable_percent (${pct}%) allows; nothing was applied. Check the tables, then run with --force to apply it.`;

  test("more than max_disable_percent of the enabled managed users: braked, with the counts", () => {
    const p = plan(desired([alice]), three(), owned(["alice", "bob", "dora"]), policy({ maxDisablePercent: 50 }), TODAY);
    expect(p.brake).toBe(brakeText(2, 3, 50));
    expect(p.disables).toBe(2);
  });

  test("exactly as many as allowed: not braked (3 users at 50%: one may go)", () => {
    const p = plan(desired([alice, bob]), three(), owned(["alice", "bob", "dora"]), policy({ maxDisablePercent: 50 }), TODAY);
    expect(p.disables).toBe(1);
    expect(p.brake).toBeNull();
  });

  test("at least one may always go, however small the percentage", () => {
    const p = plan(desired([alice, bob]), three(), owned(["alice", "bob", "dora"]), policy({ maxDisablePercent: 10 }), TODAY);
    expect(p.brake).toBeNull();
  });

  test("a percentage that rounds down counts whole users: 2 of 3 at 66% is braked, at 67% not", () => {
    const at = (pct: number) => plan(desired([alice]), three(), owned(["alice", "bob", "dora"]), policy({ maxDisablePercent: pct }), TODAY).brake;
    expect(at(66)).toBe(brakeText(2, 3, 66));
    expect(at(67)).toBeNull();
  });

  test("max_disable_percent 0: not even one", () => {
    const p = plan(desired([alice, bob]), three(), owned(["alice", "bob", "dora"]), policy({ maxDisablePercent: 0 }), TODAY);
    expect(p.brake).toBe(brakeText(1, 3, 0));
  });

  test("--force: applied whatever the count", () => {
    const p = plan(desired([]), three(), owned(["alice", "bob", "dora"]), policy({ maxDisablePercent: 0, force: true }), TODAY);
    expect(p.brake).toBeNull();
    expect(p.disables).toBe(3);
    expect(userActions(p).map((a) => a.name)).toEqual(["alice", "bob", "dora"]);
  });

  test("enabled before counts each managed user once, on the host, not already disabled; one without a shadow line counts", () => {
    // Managed: alice, bob, dora (enabled), erin (expired), frank (no shadow line: enabled),
    // ghost (not on the host), alice again. Enabled before: alice, bob, dora, frank = 4.
    const erin = user("erin", 2004);
    const frank = user("frank", 2006);
    const cur = host([pline(alice), pline(bob), pline(dora), pline(erin), pline(frank)], [sline("alice"), sline("bob"), sline("dora"), sline("erin", HASH, "19000:::::100:")]);
    const p = plan(desired([alice, frank]), cur, owned(["alice", "bob", "dora", "erin", "frank", "ghost", "alice"]), policy({ maxDisablePercent: 25 }), TODAY);
    // bob and dora are disabled (2), erin only locked (not counted): 2 of 4 at 25% (1 allowed).
    expect(p.disables).toBe(2);
    expect(p.brake).toBe(brakeText(2, 4, 25));
  });

  test("a record that disables its own user (an expiry date in the past) counts towards the brake", () => {
    const p = plan(desired([alice, user("bob", 2002, { expire: 100 }), user("dora", 2003, { expire: 100 })]), three(), owned(["alice", "bob", "dora"]), policy({ maxDisablePercent: 50 }), TODAY);
    expect(userActions(p).map((a) => [a.kind, a.name])).toEqual([
      ["update-user", "bob"],
      ["update-user", "dora"],
    ]);
    expect(p.disables).toBe(2);
    expect(p.brake).toBe(brakeText(2, 3, 50));
  });

  test("nothing disabled: no brake even at 0%", () => {
    const p = plan(desired([alice, bob, dora]), three(), owned(["alice", "bob", "dora"]), policy({ maxDisablePercent: 0 }), TODAY);
    expect(p.brake).toBeNull();
    expect(p.unchanged).toBe(3);
  });
});

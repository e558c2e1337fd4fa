// The rule book (src/judge.ts) as plain tables: every user and group rule at its boundaries, on
// small account files made in memory. Each case names the rule it pins; the field and the start
// of the reason are checked, so a rule that moves, weakens or reports the wrong field fails here.
import { describe, expect, test } from "bun:test";
import { BRAKE_HORIZON_DAYS, diffFields, type GroupVerdict, judgeGroup, judgeUser, keysOnlyUsers, type LocalView, orphanGshadow, PASSWD_FIELDS, pamAccepts, rulebook, SHADOW_FIELDS, type UserVerdict } from "../src/judge.ts";
import { AccountTable } from "../src/localdb/index.ts";
import type { Group, User } from "../src/model.ts";
import type { Current, Policy } from "../src/plan.ts";
import { bareUser } from "./helpers/records.ts";

const TODAY = 20600;
const POLICY: Policy = { uidMin: 1000, uidMax: 60000, gidMin: 1000, gidMax: 60000, adoptUsers: [], adoptGroups: [], mergeGroups: [], missingUsers: "keep", maxDisablePercent: 100, force: false };

interface Files {
  passwd?: string;
  shadow?: string;
  group?: string;
  gshadow?: string;
}

function current(f: Files = {}): Current {
  return {
    passwd: new AccountTable("passwd", "/t/passwd", f.passwd ?? "root:x:0:0:root:/root:/bin/sh\n"),
    shadow: new AccountTable("shadow", "/t/shadow", f.shadow ?? "root:*:::::::\n"),
    group: new AccountTable("group", "/t/group", f.group ?? "root:x:0:\nsudo:x:27:\nstaff:x:50:\n"),
    gshadow: new AccountTable("gshadow", "/t/gshadow", f.gshadow ?? "root:*::\nsudo:*::\nstaff:*::\n"),
  };
}

function user(over: Partial<User> = {}): User {
  return bareUser("zoe", 3000, over);
}

/** zoe's lines exactly as the default record makes them, with her private group. */
const ZOE: Files = {
  passwd: "root:x:0:0:root:/root:/bin/sh\nzoe:x:3000:3000::/home/zoe:/bin/sh\n",
  shadow: "root:*:::::::\nzoe:!:::::::\n",
  group: "root:x:0:\nsudo:x:27:\nzoe:x:3000:\n",
  gshadow: "root:*::\nsudo:*::\nzoe:!::\n",
};

function judge(u: User, f: Files = {}, o: { owned?: string[]; ownedGroups?: string[]; policy?: Partial<Policy>; newUids?: Map<number, string> } = {}): UserVerdict {
  const cur = current(f);
  const localUids = cur.passwd.idOwners(2);
  const view: LocalView = {
    cur,
    uidHolder: (id, name) => (localUids.owns(id, name) ? undefined : (localUids.get(id) ?? o.newUids?.get(id))),
    localGids: cur.group.idOwners(2),
  };
  const owned = { users: new Set(o.owned ?? []), groups: new Set(o.ownedGroups ?? []) };
  return judgeUser(u, view, owned, rulebook({ ...POLICY, ...o.policy }), TODAY);
}

const refusal = (v: UserVerdict | GroupVerdict) => (v.kind === "refuse" ? `${v.field}: ${v.reason}` : v.kind);

describe("user rules", () => {
  const cases: [string, User, Files, Parameters<typeof judge>[2], string][] = [
    ["a new user in range", user(), {}, {}, "create"],
    ["UID 0", user({ uid: 0 }), {}, {}, "UID: UID 0 is root's"],
    ["UID one below the range", user({ uid: 999 }), {}, {}, "UID: 999 is outside the managed range 1000-60000"],
    ["UID at the range's bottom", user({ uid: 1000 }), {}, {}, "create"],
    ["UID at the range's top", user({ uid: 60000 }), {}, {}, "create"],
    ["UID one above the range", user({ uid: 60001 }), {}, {}, "UID: 60001 is outside the managed range 1000-60000"],
    ["a range of the policy's own", user({ uid: 1500 }), {}, { policy: { uidMin: 2000, uidMax: 2500 } }, "UID: 1500 is outside the managed range 2000-2500"],
    ["GID 0", user({ gid: 0 }), {}, {}, "GID: GID 0 is root's group"],
    ["GID one below the range", user({ gid: 999 }), {}, {}, "GID: 999 is outside the managed range 1000-60000"],
    ["GID at the range's bottom", user({ gid: 1000 }), {}, {}, "create"],
    ["GID at the range's top", user({ gid: 60000 }), {}, {}, "create"],
    ["GID one above the range", user({ gid: 60001 }), {}, {}, "GID: 60001 is outside the managed range 1000-60000"],
    ["an unparseable passwd line for the name", user(), { passwd: "root:x:0:0:root:/root:/bin/sh\nzoe:x:notanumber:3000::/home/zoe:/bin/sh\n" }, {}, "Name: a local line for this name cannot be parsed"],
    ["an unparseable shadow line for the name", user(), { ...ZOE, shadow: "root:*:::::::\nzoe:!:x:::::::\n" }, { owned: ["zoe"] }, "Name: a local line for this name cannot be parsed"],
    ["a local account ddum does not manage", user(), ZOE, {}, 'Name: a local account "zoe" exists that ddum does not manage'],
    ["the same account listed in adopt_users", user(), ZOE, { policy: { adoptUsers: ["zoe"] } }, "in-place"],
    ["an owned account exactly as the record makes it", user(), ZOE, { owned: ["zoe"] }, "in-place"],
    ["a UID another local account holds", user({ name: "amy" }), ZOE, {}, 'UID: 3000 already belongs to the local account "zoe"'],
    ["a UID this plan gave out before", user({ name: "amy" }), {}, { newUids: new Map([[3000, "bob"]]) }, 'UID: 3000 already belongs to the local account "bob"'],
    ["a shadow line without a passwd line", user(), { shadow: "root:*:::::::\nzoe:!:::::::\n" }, {}, "Name: a shadow entry with this name exists without a passwd entry"],
    ["a primary GID of a local group ddum does not manage", user({ gid: 2000 }), { group: "root:x:0:\nops:x:2000:\n" }, {}, "GID: 2000 is the GID of the local group \"ops\""],
    ["an owned account's record that moves it to a local group's GID", user({ gid: 2000 }), { ...ZOE, group: `${ZOE.group}ops:x:2000:\n` }, { owned: ["zoe"] }, 'GID: 2000 is the GID of the local group "ops"'],
    ["the same group consented in merge_groups", user({ gid: 2000 }), { group: "root:x:0:\nops:x:2000:\n" }, { policy: { mergeGroups: ["ops"] } }, "create"],
    ["the same group consented in adopt_groups", user({ gid: 2000 }), { group: "root:x:0:\nops:x:2000:\n" }, { policy: { adoptGroups: ["ops"] } }, "create"],
    ["the same group owned by ddum", user({ gid: 2000 }), { group: "root:x:0:\nops:x:2000:\n" }, { ownedGroups: ["ops"] }, "create"],
    ["the user's own private group", user(), ZOE, { owned: ["zoe"] }, "in-place"],
    ["a record that changes the UID", user({ uid: 3001 }), ZOE, { owned: ["zoe"] }, "UID: the record changes the UID of the existing account from 3000 to 3001"],
    ["a record that changes the GID", user({ gid: 3001 }), ZOE, { owned: ["zoe"] }, "GID: the record changes the GID of the existing account from 3000 to 3001"],
    ["a record that changes the shell", user({ shell: "/bin/bash" }), ZOE, { owned: ["zoe"] }, "update"],
  ];
  test.each(cases)("%s", (_what, u, files, o, want) => {
    expect(refusal(judge(u, files, o))).toStartWith(want);
  });

  test("an update lists each field that changes, the password only as hidden, dates as dates", () => {
    const v = judge(user({ shell: "/bin/bash", password: "!", expire: TODAY + 30, realName: "Zoe" }), ZOE, { owned: ["zoe"] });
    if (v.kind !== "update") throw new Error(`expected an update, got ${v.kind}`);
    expect(v.changes).toEqual([
      { field: "RealName", from: "(none)", to: "Zoe" },
      { field: "Shell", from: "/bin/sh", to: "/bin/bash" },
      { field: "AccountExpireDate", from: "(none)", to: new Date((TODAY + 30) * 86_400_000).toISOString().slice(0, 10) },
    ]);
    expect(v.passwd).toEqual(["zoe", "x", "3000", "3000", "Zoe", "/home/zoe", "/bin/bash"]);
    expect(v.shadow).toEqual(["zoe", "!", "", "", "", "", "", String(TODAY + 30), ""]);
    expect(v.addShadow).toBe(false);
    const pw = judge(user({ password: "$6$abc$def" }), ZOE, { owned: ["zoe"] });
    expect(pw.kind === "update" && pw.changes).toEqual([{ field: "Password", from: "(hidden)", to: "(hidden)" }]);
  });

  test.each([
    ["empty (no password at all)", ""],
    ["a hash (shadow bypassed)", "$6$salt$hash"],
    ["a star", "*"],
  ])("passwd's password field %s is put back to x, its old value hidden", (_what, field) => {
    const files = { ...ZOE, passwd: `root:x:0:0:root:/root:/bin/sh\nzoe:${field}:3000:3000::/home/zoe:/bin/sh\n` };
    const v = judge(user(), files, { owned: ["zoe"] });
    if (v.kind !== "update") throw new Error(`expected an update, got ${v.kind}`);
    expect(v.changes).toEqual([{ field: "password field of passwd", from: "(hidden)", to: "x" }]);
    expect(v.passwd[1]).toBe("x");
  });

  test("a missing shadow line is created, and said so", () => {
    const v = judge(user(), { ...ZOE, shadow: "root:*:::::::\n" }, { owned: ["zoe"] });
    if (v.kind !== "update") throw new Error(`expected an update, got ${v.kind}`);
    expect([v.addShadow, v.changes]).toEqual([true, [{ field: "shadow entry", from: "(missing)", to: "(created)" }]]);
    // The new line's reserved field is empty: nothing of another line's is carried over.
    expect(v.shadow).toEqual(["zoe", "!", "", "", "", "", "", "", ""]);
  });

  test("the shadow line's reserved field is kept, and is no change", () => {
    expect(judge(user(), { ...ZOE, shadow: "root:*:::::::\nzoe:!:::::::kept\n" }, { owned: ["zoe"] }).kind).toBe("in-place");
    const v = judge(user({ shell: "/bin/bash" }), { ...ZOE, shadow: "root:*:::::::\nzoe:!:::::::kept\n" }, { owned: ["zoe"] });
    expect(v.kind === "update" && v.shadow[8]).toBe("kept");
  });

  test("adopted in place says so; owned in place does not", () => {
    expect(judge(user(), ZOE, { policy: { adoptUsers: ["zoe"] } })).toEqual({ kind: "in-place", adopt: true });
    expect(judge(user(), ZOE, { owned: ["zoe"] })).toEqual({ kind: "in-place", adopt: false });
  });

  test.each([
    ["expires today", TODAY, true],
    ["expires tomorrow", TODAY + 1, true],
    [`expires in ${BRAKE_HORIZON_DAYS} days (the brake's horizon)`, TODAY + BRAKE_HORIZON_DAYS, true],
    [`expires in ${BRAKE_HORIZON_DAYS + 1} days`, TODAY + BRAKE_HORIZON_DAYS + 1, false],
  ])("an update that %s counts as a disable: %p", (_what, expire, disables) => {
    const v = judge(user({ expire }), ZOE, { owned: ["zoe"] });
    expect(v.kind === "update" && v.disables).toBe(disables);
  });

  test("an account that would lock itself out within the horizon, locked out now by the record, is a disable", () => {
    const soon = { ...ZOE, shadow: `root:*:::::::\nzoe:!::::::${TODAY + 3}:\n` };
    const v = judge(user({ expire: TODAY - 1 }), soon, { owned: ["zoe"] });
    expect(v.kind === "update" && v.disables).toBe(true);
  });

  test("an update of an account already locked out is no disable", () => {
    const locked = { ...ZOE, shadow: `root:*:::::::\nzoe:!::::::${TODAY - 1}:\n` };
    const v = judge(user({ expire: TODAY - 5 }), locked, { owned: ["zoe"] });
    expect(v.kind === "update" && v.disables).toBe(false);
  });

  test("the first rule that applies is the one told", () => {
    // Out of range and UID 0 and a local account ddum does not manage: UID 0 is told.
    expect(refusal(judge(user({ uid: 0, gid: 0 }), ZOE))).toStartWith("UID: UID 0");
    expect(refusal(judge(user({ uid: 99999, gid: 0 }), ZOE))).toStartWith("UID: 99999 is outside");
  });
});

describe("pamAccepts, as pam_unix's account check reads the shadow fields", () => {
  const line = (s: string) => s.split(":");
  test.each([
    ["no shadow entry", undefined, true],
    ["no dates at all", "zoe:!:::::::", true],
    ["expires tomorrow", `zoe:!::::::${TODAY + 1}:`, true],
    ["expires today", `zoe:!::::::${TODAY}:`, false],
    ["expired yesterday", `zoe:!::::::${TODAY - 1}:`, false],
    ["expiry day 0", "zoe:!::::::0:", false],
    ["last change day 0 (must change first)", "zoe:!:0::::::", false],
    ["changed in the future", `zoe:!:${TODAY + 3}::1:::`, true],
    ["changed today, max 0", `zoe:!:${TODAY}::0:::`, true],
    ["changed yesterday, max 0", `zoe:!:${TODAY - 1}::0:::`, false],
    ["changed 365 days ago, max 365", `zoe:!:${TODAY - 365}::365:::`, true],
    ["changed 366 days ago, max 365", `zoe:!:${TODAY - 366}::365:::`, false],
    ["changed long ago, no max", `zoe:!:${TODAY - 9999}::::::`, true],
    // pam_unix: a change in the future is success before the maximum is looked at; otherwise any
    // maximum but -1 counts, a negative one too.
    ["changed in the future, max -5", `zoe:!:${TODAY + 3}::-5:::`, true],
    ["changed today, max -2", `zoe:!:${TODAY}::-2:::`, false],
  ])("%s: %p", (_what, text, ok) => {
    expect(pamAccepts(text === undefined ? undefined : line(text), TODAY)).toBe(ok);
  });
});

describe("group rules", () => {
  const group = (over: Partial<Group> = {}): Group => ({ name: "crew", gid: 4000, password: null, administrators: [], members: [], ...over });
  const judgeG = (
    g: Group,
    o: { files?: Files; owned?: string[]; policy?: Partial<Policy>; privateGid?: number; gidHolders?: Record<number, string>; primary?: Record<number, string> } = {},
  ): GroupVerdict => {
    const cur = current(o.files);
    const localGids = cur.group.idOwners(2);
    return judgeGroup(
      g,
      cur,
      { users: new Set(), groups: new Set(o.owned ?? []) },
      rulebook({ ...POLICY, ...o.policy }),
      o.privateGid,
      (id) => localGids.get(id) ?? o.gidHolders?.[id],
      (gid) => o.primary?.[gid],
    );
  };
  const PRIVILEGED = ["root", "wheel", "sudo", "admin", "adm", "staff", "docker", "lxd", "libvirt", "kvm", "disk", "shadow", "systemd-journal", "sys"];

  test.each(PRIVILEGED)("a new group named %s is refused unless the host consents in merge_groups", (name) => {
    const files = { group: "", gshadow: "" };
    const g = group({ name });
    expect(refusal(judgeG(g, { files }))).toStartWith(`Name: a group named ${JSON.stringify(name)} grants privileges on many systems`);
    expect(judgeG(g, { files, policy: { mergeGroups: [name] } }).kind).toBe("accept");
  });

  test("a name that grants nothing is made", () => {
    expect(judgeG(group({ name: "developers" })).kind).toBe("accept");
  });

  const cases: [string, Group, Parameters<typeof judgeG>[1], string][] = [
    ["GID 0", group({ gid: 0 }), {}, "GID: GID 0 is root's group"],
    ["an unparseable group line for the name", group(), { files: { group: "root:x:0:\ncrew:x:zz:\n" } }, "Name: a local line for this name cannot be parsed"],
    ["an unparseable gshadow line for the name", group(), { files: { group: "root:x:0:\ncrew:x:4000:\n", gshadow: "root:*::\ncrew:!::::\n" }, owned: ["crew"] }, "Name: a local line for this name cannot be parsed"],
    ["a user's private group with another GID", group(), { privateGid: 3000 }, 'GID: a group named after the user "crew" is that user\'s private group, with the user\'s GID 3000'],
    ["the user's private group with the user's GID", group({ gid: 3000 }), { privateGid: 3000 }, "accept"],
    ["a local group ddum does not manage", group({ name: "sudo", gid: 27 }), {}, 'Name: "sudo" is a local group that ddum does not manage'],
    ["the same consented, with its own GID", group({ name: "sudo", gid: 27 }), { policy: { mergeGroups: ["sudo"] } }, "accept"],
    ["the same consented, with another GID", group({ name: "sudo", gid: 28 }), { policy: { mergeGroups: ["sudo"] } }, 'GID: the local group "sudo" has GID 27, the record 28'],
    ["a GID one below the range", group({ gid: 999 }), {}, "GID: 999 is outside the managed range 1000-60000"],
    ["a GID at the range's bottom", group({ gid: 1000 }), {}, "accept"],
    ["a GID at the range's top", group({ gid: 60000 }), {}, "accept"],
    ["a GID one above the range", group({ gid: 60001 }), {}, "GID: 60001 is outside the managed range 1000-60000"],
    ["a GID another local group holds", group({ gid: 50 }), { policy: { gidMin: 10 } }, 'GID: 50 already belongs to the local group "staff"'],
    ["a GID this plan gave out before", group(), { gidHolders: { 4000: "team" } }, 'GID: 4000 already belongs to the local group "team"'],
    ["a GID that is a local account's primary group", group(), { primary: { 4000: "svc" } }, 'GID: 4000 is the primary group of the local account "svc"'],
    ["a GID that is the primary group of a user of the same name", group(), { primary: { 4000: "crew" } }, "accept"],
    ["a group ddum owns, in place", group(), { files: { group: "root:x:0:\ncrew:x:4000:\n", gshadow: "root:*::\ncrew:!::\n" }, owned: ["crew"] }, "accept"],
    ["a local group listed in adopt_groups", group(), { files: { group: "root:x:0:\ncrew:x:4000:\n", gshadow: "root:*::\ncrew:!::\n" }, policy: { adoptGroups: ["crew"] } }, "accept"],
    // The primary-group rule asks only about a GID no group line holds, and not for a consented group.
    ["a group of ddum's holding its GID, which is also a local account's primary GID", group(), { files: { group: "root:x:0:\ncrew:x:4000:\n", gshadow: "root:*::\ncrew:!::\n" }, owned: ["crew"], primary: { 4000: "svc" } }, "accept"],
    ["a consented local group whose GID is a local account's primary GID", group({ name: "sudo", gid: 27 }), { policy: { mergeGroups: ["sudo"] }, primary: { 27: "svc" } }, "accept"],
  ];
  test.each(cases)("%s", (_what, g, o, want) => {
    expect(refusal(judgeG(g, o))).toStartWith(want);
  });

  test("verdicts say what the plan needs: withdrawn consent, a private group's name, merge or owned", () => {
    const withdrawn = judgeG(group({ name: "sudo", gid: 27 }));
    expect(withdrawn.kind === "refuse" && [withdrawn.withdrawn, withdrawn.notPrivate]).toEqual([true, undefined]);
    const notPrivate = judgeG(group(), { privateGid: 3000 });
    expect(notPrivate.kind === "refuse" && [notPrivate.withdrawn, notPrivate.notPrivate]).toEqual([undefined, true]);
    const merged = judgeG(group({ name: "sudo", gid: 27 }), { policy: { mergeGroups: ["sudo"] } });
    expect(merged.kind === "accept" && [merged.merge, merged.owned]).toEqual([true, false]);
    const adopted = judgeG(group(), { files: { group: "root:x:0:\ncrew:x:4000:\n", gshadow: "root:*::\ncrew:!::\n" }, policy: { adoptGroups: ["crew"] } });
    expect(adopted.kind === "accept" && [adopted.merge, adopted.owned]).toEqual([false, true]);
    const fresh = judgeG(group());
    expect(fresh.kind === "accept" && [fresh.merge, fresh.owned, fresh.local]).toEqual([false, false, undefined]);
    // adopt_groups takes over a local group; a new group listed there is not owned before it is made.
    const listed = judgeG(group(), { policy: { adoptGroups: ["crew"] } });
    expect(listed.kind === "accept" && [listed.merge, listed.owned]).toEqual([false, false]);
  });
});

describe("a new group's gshadow line", () => {
  const g: Group = { name: "crew", gid: 4000, password: null, administrators: [], members: [] };
  test("a gshadow entry without a group entry is refused, naming the field", () => {
    const cur = current({ group: "root:x:0:\n", gshadow: "root:*::\ncrew:!::\n" });
    expect(orphanGshadow(g, cur, undefined)).toEqual({ field: "Name", reason: "a gshadow entry with this name exists without a group entry; fix it by hand first" });
  });
  test("with its group entry, or with no gshadow entry, nothing to refuse", () => {
    const both = current({ group: "root:x:0:\ncrew:x:4000:\n", gshadow: "root:*::\ncrew:!::\n" });
    expect(orphanGshadow(g, both, both.group.get("crew"))).toBeNull();
    expect(orphanGshadow(g, current({ group: "root:x:0:\n", gshadow: "root:*::\n" }), undefined)).toBeNull();
  });
});

describe("the accounts a refused record's keys still apply to", () => {
  const line = (name: string, uid: string, gid: string, home: string) => `${name}:x:${uid}:${gid}::${home}:/bin/sh`;
  const cases: [string, string, boolean, { uid: number; gid: number; home: string } | null][] = [
    ["an owned account in range", line("zoe", "3000", "3000", "/home/zoe"), true, { uid: 3000, gid: 3000, home: "/home/zoe" }],
    ["not owned", line("zoe", "3000", "3000", "/home/zoe"), false, null],
    ["the UID at the range's bottom", line("zoe", "1000", "3000", "/home/zoe"), true, { uid: 1000, gid: 3000, home: "/home/zoe" }],
    ["the UID at the range's top", line("zoe", "60000", "3000", "/home/zoe"), true, { uid: 60000, gid: 3000, home: "/home/zoe" }],
    ["the UID one below the range", line("zoe", "999", "3000", "/home/zoe"), true, null],
    ["the UID one above the range", line("zoe", "60001", "3000", "/home/zoe"), true, null],
    ["UID 0", line("zoe", "0", "3000", "/home/zoe"), true, null],
    ["no home (the keys' own rules decide)", line("zoe", "3000", "3000", ""), true, { uid: 3000, gid: 3000, home: "" }],
    ["a relative home", line("zoe", "3000", "3000", "home/zoe"), true, null],
    ["a GID that is not a number", line("zoe", "3000", "30x0", "/home/zoe"), true, null],
  ];
  test.each(cases)("%s", (_what, pw, owned, want) => {
    const cur = current({ passwd: `root:x:0:0:root:/root:/bin/sh\n${pw}\n` });
    const out = keysOnlyUsers([{ name: "zoe", keys: ["ssh-ed25519 AAAA zoe"] }], cur, { users: owned ? ["zoe"] : [] }, { ...POLICY, uidMin: 1000, uidMax: 60000 });
    expect(out).toEqual(want ? [{ name: "zoe", ...want, sshKeys: ["ssh-ed25519 AAAA zoe"] }] : []);
  });
  test("UID 0 never, even where the managed range starts at 0", () => {
    const cur = current({ passwd: "root:x:0:0:root:/root:/bin/sh\nzoe:x:0:3000::/home/zoe:/bin/sh\n" });
    expect(keysOnlyUsers([{ name: "zoe", keys: ["k"] }], cur, { users: ["zoe"] }, { ...POLICY, uidMin: 0 })).toEqual([]);
  });
  test("no passwd line, an unparsed one, or nobody asked: nobody", () => {
    const k = [{ name: "zoe", keys: ["k"] }];
    expect(keysOnlyUsers(k, current(), { users: ["zoe"] }, POLICY)).toEqual([]);
    expect(keysOnlyUsers(k, current({ passwd: "root:x:0:0:root:/root:/bin/sh\nzoe:x:3x00:3000::/home/zoe:/bin/sh\n" }), { users: ["zoe"] }, POLICY)).toEqual([]);
    expect(keysOnlyUsers([], current(), { users: ["zoe"] }, POLICY)).toEqual([]);
  });
});

describe("the changes an update lists", () => {
  test("every passwd field by its attribute's name, empty as (none), the first (the name) never", () => {
    const from = ["zoe", "x", "3000", "3000", "", "/home/zoe", "/bin/sh"];
    const to = ["amy", "x", "3001", "3002", "Zoe", "/srv/zoe", ""];
    expect(diffFields(PASSWD_FIELDS, from, to, new Set())).toEqual([
      { field: "UID", from: "3000", to: "3001" },
      { field: "GID", from: "3000", to: "3002" },
      { field: "RealName", from: "(none)", to: "Zoe" },
      { field: "Home", from: "/home/zoe", to: "/srv/zoe" },
      { field: "Shell", from: "/bin/sh", to: "(none)" },
    ]);
  });
  test("every shadow field by its attribute's name, dates as dates, secrets hidden, the reserved field never", () => {
    const from = ["zoe", "$6$a", "20000", "", "90", "7", "", "", ""];
    const to = ["zoe", "$6$b", "20001", "1", "91", "8", "30", "20600", "reserved"];
    expect(diffFields(SHADOW_FIELDS, from, to, new Set([1]))).toEqual([
      { field: "Password", from: "(hidden)", to: "(hidden)" },
      { field: "LastPasswordChangeDate", from: "2024-10-04", to: "2024-10-05" },
      { field: "PasswordAgeMinDays", from: "(none)", to: "1" },
      { field: "PasswordAgeMaxDays", from: "90", to: "91" },
      { field: "PasswordWarnDays", from: "7", to: "8" },
      { field: "PasswordDisableDays", from: "(none)", to: "30" },
      { field: "AccountExpireDate", from: "(none)", to: "2026-05-27" },
    ]);
  });
  test("a new account's lines: every field from (none)", () => {
    expect(diffFields(PASSWD_FIELDS, undefined, ["zoe", "x", "3000", "3000", "", "/home/zoe", "/bin/sh"], new Set())).toEqual([
      { field: "UID", from: "(none)", to: "3000" },
      { field: "GID", from: "(none)", to: "3000" },
      { field: "Home", from: "(none)", to: "/home/zoe" },
      { field: "Shell", from: "(none)", to: "/bin/sh" },
    ]);
  });
  test("a date field that is not a day number is shown as it is", () => {
    expect(diffFields(SHADOW_FIELDS, ["zoe", "!", "12x", "", "", "", "", "", ""], ["zoe", "!", "x12", "", "", "", "", "", ""], new Set([1]))).toEqual([{ field: "LastPasswordChangeDate", from: "12x", to: "x12" }]);
  });
});

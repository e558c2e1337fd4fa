// What a table writer may and may not do to a host: consented local groups only (merge_groups),
// members that are ddum's own users, private groups that stay the user's, no renumbering of an
// account, group records that leave the table, and a safety brake that sees what PAM sees.
// Each rule for a record seen the first time, and for an account or group already in place.
import type { AttributeValue } from "@aws-sdk/client-dynamodb";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, test } from "bun:test";
import { readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { daysToIsoDate, type Rejection } from "../src/model.ts";
import { BRAKE_HORIZON_DAYS, pamAccepts } from "../src/plan.ts";
import { todayDays } from "../src/sync.ts";
import { ddum, pass, writeConfig } from "./helpers/ddum.ts";
import { type Dynamo, groupItem, startDynalite, userItem } from "./helpers/dynalite.ts";
import { PAM_CASES, pamCaseFields } from "./helpers/pam-cases.ts";
import { checkAccounts, cleanupRoots, makeRoot as stockRoot, run, snapshot } from "./helpers/root.ts";

/**
 * The run's stock root, with Debian's local groups sudo (27) and shadow (42) as the distribution
 * made them where the root has none (AL2023 has wheel, no sudo, no shadow group): the rules below
 * are about local groups a host may consent to, whichever those are.
 */
function makeRoot(): string {
  const root = stockRoot();
  for (const [name, gid] of [["sudo", 27], ["shadow", 42]] as const) {
    const group = join(root, "etc", "group");
    if (readFileSync(group, "utf8").split("\n").some((l) => l.startsWith(`${name}:`))) continue;
    expect(run("groupadd", ["-R", root, "-g", String(gid), name]).code).toBe(0);
    const gshadow = join(root, "etc", "gshadow");
    writeFileSync(gshadow, readFileSync(gshadow, "utf8").replace(new RegExp(`^${name}:!::$`, "m"), `${name}:*::`));
  }
  return root;
}

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

interface JsonReport {
  refusals: Rejection[];
  notices: string[];
  brake: string | null;
  summary: { created: number; updated: number; unchanged: number; refused: number; rejected: number };
}

/** One pass of the compiled binary over root; the --json report. */
async function sync(root: string, config: Record<string, unknown> = {}): Promise<JsonReport & { code: number; stderr: string }> {
  const r = await ddum(["sync", "--json", "--root", root, "-c", writeConfig(d, config)]);
  return { ...(JSON.parse(r.stdout) as JsonReport), code: r.code, stderr: r.stderr };
}

const line = (root: string, file: string, name: string) =>
  readFileSync(join(root, "etc", file), "utf8")
    .split("\n")
    .find((l) => l.startsWith(`${name}:`));

const reasonFor = (r: JsonReport, name: string) =>
  r.refusals
    .filter((x) => x.name === name)
    .map((x) => `${x.field}: ${x.reason}`)
    .join("; ");

function expectClean(root: string) {
  const { pwck, grpck } = checkAccounts(root);
  expect(`${pwck.stdout}${pwck.stderr}${grpck.stdout}${grpck.stderr}`).toBe("");
  expect([pwck.code, grpck.code]).toEqual([0, 0]);
}

const state = (root: string) => JSON.parse(readFileSync(join(root, "var", "lib", "ddum", "state.json"), "utf8")).ownership;

describe("merge_groups: local groups take members only with the host's consent", () => {
  test("records for local groups (sudo, shadow, disk) are refused by default, naming merge_groups", async () => {
    const root = makeRoot();
    await d.put("Users", [userItem("alice", 2001)]);
    await d.put("Groups", [
      groupItem("sudo", 27, { Members: { SS: ["alice"] }, Administrators: { SS: ["alice"] } }),
      groupItem("shadow", 42, { Members: { SS: ["alice"] } }),
      groupItem("disk", 6, { Members: { SS: ["alice"] } }),
    ]);
    const before = snapshot(root);
    const r = await sync(root);
    expect(r.code).toBe(3);
    for (const g of ["sudo", "shadow", "disk"]) {
      expect(reasonFor(r, g)).toBe(`Name: "${g}" is a local group that ddum does not manage; a record may add members to it only if the host lists it in merge_groups`);
      expect(line(root, "group", g)).toBe(before.group!.split("\n").find((l) => l.startsWith(`${g}:`)));
      expect(line(root, "gshadow", g)).toBe(before.gshadow!.split("\n").find((l) => l.startsWith(`${g}:`)));
    }
    expect(line(root, "passwd", "alice")).toBeDefined();
    expectClean(root);
  });

  test("a group listed in merge_groups gets the members; the others stay refused", async () => {
    const root = makeRoot();
    await d.put("Users", [userItem("alice", 2001)]);
    await d.put("Groups", [groupItem("sudo", 27, { Members: { SS: ["alice"] } }), groupItem("shadow", 42, { Members: { SS: ["alice"] } })]);
    const r = await sync(root, { merge_groups: ["sudo"] });
    expect(line(root, "group", "sudo")).toBe("sudo:x:27:alice");
    expect(line(root, "group", "shadow")).toBe("shadow:x:42:");
    expect(reasonFor(r, "shadow")).toContain("merge_groups");
    expect(reasonFor(r, "sudo")).toBe("");
  });

  test("consent withdrawn: the record is refused and what ddum added there is taken back", async () => {
    const root = makeRoot();
    expect(run("useradd", ["-R", root, "-u", "2500", "-U", "-G", "sudo", "localadmin"]).code).toBe(0);
    await d.put("Users", [userItem("alice", 2001)]);
    await d.put("Groups", [groupItem("sudo", 27, { Members: { SS: ["alice"] }, Administrators: { SS: ["alice"] } })]);
    await sync(root, { merge_groups: ["sudo"] });
    expect(line(root, "group", "sudo")).toBe("sudo:x:27:localadmin,alice");
    const r = await sync(root);
    expect(reasonFor(r, "sudo")).toContain("merge_groups");
    expect(line(root, "group", "sudo")).toBe("sudo:x:27:localadmin");
    expect(line(root, "gshadow", "sudo")).toBe("sudo:*::localadmin");
    expect(state(root).members.sudo).toBeUndefined();
    expectClean(root);
    // Given again, it comes back.
    await sync(root, { merge_groups: ["sudo"] });
    expect(line(root, "group", "sudo")).toBe("sudo:x:27:localadmin,alice");
  });
});

describe("a user's primary GID must be ddum's group or a consented one", () => {
  test("a record whose GID is a local group made by groupadd is refused, and accepted once consented", async () => {
    const root = makeRoot();
    expect(run("groupadd", ["-R", root, "-g", "2500", "localadmins"]).code).toBe(0);
    await d.put("Users", [userItem("eve", 2001, { GID: { N: "2500" } })]);
    const before = snapshot(root);
    const r = await sync(root);
    expect(reasonFor(r, "eve")).toBe(
      'GID: 2500 is the GID of the local group "localadmins", which ddum does not manage; a user may have it as primary group only if the host lists it in merge_groups',
    );
    expect(snapshot(root)).toEqual(before);
    const ok = await sync(root, { merge_groups: ["localadmins"] });
    expect(ok.refusals).toEqual([]);
    expect(line(root, "passwd", "eve")).toBe("eve:x:2001:2500:eve user:/home/eve:/bin/bash");
  });

  test("a user already in place is refused once its primary GID is no longer consented (in-place check)", async () => {
    const root = makeRoot();
    expect(run("groupadd", ["-R", root, "-g", "2500", "localadmins"]).code).toBe(0);
    await d.put("Users", [userItem("eve", 2001, { GID: { N: "2500" } })]);
    await sync(root, { merge_groups: ["localadmins"] });
    const again = await sync(root, { merge_groups: ["localadmins"] });
    expect(again.summary).toMatchObject({ unchanged: 1, refused: 0 });
    const r = await sync(root);
    expect(r.summary).toMatchObject({ unchanged: 0, refused: 1 });
    expect(reasonFor(r, "eve")).toContain('the local group "localadmins", which ddum does not manage');
  });

  test("a local group taking over the GID of a user in place is seen though the memo knew the page", async () => {
    const root = makeRoot();
    await d.put("Users", [userItem("eve", 2001, { GID: { N: "3000" } })]);
    await pass(d, root);
    const known = await pass(d, root);
    expect(known.counts).toMatchObject({ users: { unchanged: 1 }, groups: { unchanged: 1 }, refused: 0 });
    // By hand: the user private group ddum made for GID 3000 becomes a local admin group.
    for (const f of ["group", "gshadow"]) {
      const p = join(root, "etc", f);
      writeFileSync(p, readFileSync(p, "utf8").replace(/^eve:/m, "admins:"));
    }
    expect(known.memo.known).toBe(1);
    for (const memo of [true, false]) {
      if (!memo) rmSync(join(root, "var", "lib", "ddum", "scan-pages.memo"), { force: true });
      const r = await pass(d, root);
      // /etc/group is part of what the memo's verdicts were made under: edited, it vouches for nothing.
      expect(r.memo.known).toBe(0);
      expect(r.counts).toMatchObject({ unchanged: 0, refused: 1 });
      expect(r.plan.refusals.map((x) => x.reason).join()).toContain('3000 is the GID of the local group "admins"');
    }
  });

  test("a user's own private group made by useradd comes with adopt_users", async () => {
    const root = makeRoot();
    expect(run("useradd", ["-R", root, "-u", "2500", "-U", "legacy"]).code).toBe(0);
    await d.put("Users", [userItem("legacy", 2500)]);
    const r = await sync(root, { adopt_users: ["legacy"] });
    expect(r.refusals).toEqual([]);
    expect((await sync(root, { adopt_users: ["legacy"] })).summary).toMatchObject({ unchanged: 1, refused: 0 });
  });

  // The range check, and not the consent, is what keeps sudo (27), shadow (42) and adm (4) out.
  const SYSTEM = [
    ["sudo", 27],
    ["shadow", 42],
    ["adm", 4],
  ] as const;
  test.each(SYSTEM)("a primary GID of %s (%d) is refused though the group is consented: first seen", async (group, gid) => {
    const root = makeRoot();
    await d.put("Users", [userItem("eve", 2001, { GID: { N: String(gid) } })]);
    const before = snapshot(root);
    const r = await sync(root, { merge_groups: [group] });
    expect(reasonFor(r, "eve")).toBe(`GID: ${gid} is outside the managed range 1000-60000`);
    expect(snapshot(root)).toEqual(before);
  });

  test.each(SYSTEM)("a primary GID of %s (%d) is refused though the group is consented: already in place", async (group, gid) => {
    const root = makeRoot();
    await d.put("Users", [userItem("eve", 2001, { GID: { N: String(gid) } })]);
    // Made under a wider range; then the host narrows it again.
    await sync(root, { merge_groups: [group], gid_min: 1 });
    expect(line(root, "passwd", "eve")).toBe(`eve:x:2001:${gid}:eve user:/home/eve:/bin/bash`);
    const r = await sync(root, { merge_groups: [group] });
    expect(r.summary).toMatchObject({ unchanged: 0, refused: 1 });
    expect(reasonFor(r, "eve")).toBe(`GID: ${gid} is outside the managed range 1000-60000`);
  });
});

describe("group records list only users ddum manages", () => {
  test("root and system accounts are left out of ddum's groups and of consented local groups", async () => {
    const root = makeRoot();
    expect(run("useradd", ["-R", root, "-u", "2500", "-U", "-G", "sudo", "localadmin"]).code).toBe(0);
    await d.put("Users", [userItem("alice", 2001)]);
    await d.put("Groups", [
      groupItem("devs", 3000, { Members: { SS: ["alice", "root", "mail", "nobody"] }, Administrators: { SS: ["daemon"] } }),
      groupItem("sudo", 27, { Members: { SS: ["alice", "localadmin", "root"] } }),
    ]);
    const r = await sync(root, { merge_groups: ["sudo"] });
    expect(line(root, "group", "devs")).toBe("devs:x:3000:alice");
    expect(line(root, "gshadow", "devs")).toBe("devs:!::alice");
    expect(line(root, "group", "sudo")).toBe("sudo:x:27:localadmin,alice");
    expect(r.notices.sort()).toEqual(
      [
        'Groups record "devs": member "daemon" is a local account ddum does not manage; left out',
        'Groups record "devs": member "nobody" is a local account ddum does not manage; left out',
        'Groups record "devs": member "root" is a local account ddum does not manage; left out',
        'Groups record "devs": member "mail" is a local account ddum does not manage; left out',
        'Groups record "sudo": member "root" is a local account ddum does not manage; left out',
      ].sort(),
    );
    // localadmin was there before: ddum did not add it and never takes it away.
    expect(state(root).members.sudo).toEqual(["alice"]);
    expectClean(root);
  });

  test("a system account ddum put in a group earlier is taken out", async () => {
    const root = makeRoot();
    await d.put("Users", [userItem("alice", 2001)]);
    await d.put("Groups", [groupItem("devs", 3000, { Members: { SS: ["alice"] }, Administrators: { SS: ["alice"] } })]);
    await sync(root);
    // As an older ddum left it: root added to devs as member and administrator.
    const st = JSON.parse(readFileSync(join(root, "var", "lib", "ddum", "state.json"), "utf8"));
    st.ownership.members.devs = ["alice", "root"];
    st.ownership.admins.devs = ["alice", "root"];
    writeFileSync(join(root, "var", "lib", "ddum", "state.json"), JSON.stringify(st));
    for (const [f, from, to] of [
      ["group", "devs:x:3000:alice", "devs:x:3000:alice,root"],
      ["gshadow", "devs:!:alice:alice", "devs:!:alice,root:alice,root"],
    ] as const) {
      const p = join(root, "etc", f);
      writeFileSync(p, readFileSync(p, "utf8").replace(from, to));
    }
    await d.put("Groups", [groupItem("devs", 3000, { Members: { SS: ["alice", "root"] }, Administrators: { SS: ["alice", "root"] } })]);
    const r = await sync(root);
    expect(line(root, "group", "devs")).toBe("devs:x:3000:alice");
    expect(line(root, "gshadow", "devs")).toBe("devs:!:alice:alice");
    expect(r.notices).toContain('Groups record "devs": member "root" is a local account ddum does not manage; left out');
  });
});

test("an account of ddum's renumbered by hand into the system range is not put in groups", async () => {
  const root = makeRoot();
  await d.put("Users", [userItem("alice", 2001), userItem("bob", 2002)]);
  await d.put("Groups", [groupItem("devs", 3000, { Members: { SS: ["alice", "bob"] } })]);
  await sync(root);
  expect(line(root, "group", "devs")).toBe("devs:x:3000:alice,bob");
  const p = join(root, "etc", "passwd");
  writeFileSync(p, readFileSync(p, "utf8").replace("alice:x:2001:", "alice:x:5:"));
  const r = await sync(root);
  expect(reasonFor(r, "alice")).toContain("changes the UID of the existing account from 5 to 2001");
  expect(line(root, "group", "devs")).toBe("devs:x:3000:bob");
});

// passwd's password field is "x" for every account ddum makes; anything else there bypasses
// shadow (empty: no password at all, with pam_unix's nullok). A hand edit of it is drift that the
// next pass repairs, on the full path (first pass after the edit) and with the caches warm.
test("passwd's password field of an account of ddum's, emptied or given a hash by hand, is put back to x", async () => {
  const root = makeRoot();
  await d.put("Users", [userItem("alice", 2001)]);
  expect((await sync(root)).code).toBe(0);
  await sync(root); // the caches (page memo, key ledger) now know alice in place
  const p = join(root, "etc", "passwd");
  for (const field of ["", "$6$salt$hash", "*"]) {
    writeFileSync(p, readFileSync(p, "utf8").replace(/^alice:[^:]*:/m, `alice:${field}:`));
    const r = await sync(root);
    expect([r.code, r.summary.updated]).toEqual([0, 1]);
    expect(line(root, "passwd", "alice")).toStartWith("alice:x:2001:");
    expectClean(root);
  }
});

describe("a group record that leaves the table", () => {
  test("an emptied Groups table is braked: taking back every membership needs --force", async () => {
    const root = makeRoot();
    await d.put("Users", [userItem("alice", 2001), userItem("bob", 2002)]);
    const groups = Array.from({ length: 10 }, (_, i) => groupItem(`team${i}`, 3000 + i, { Members: { SS: ["alice", "bob"] } }));
    await d.put("Groups", [...groups, groupItem("sudo", 27, { Members: { SS: ["alice"] } })]);
    await sync(root, { merge_groups: ["sudo"] });
    const before = snapshot(root);
    expect(line(root, "group", "sudo")).toBe("sudo:x:27:alice");
    // One group of eleven leaving is exactly what max_disable_percent (10%, at least one) allows.
    await d.remove("Groups", "team0");
    const one = await sync(root, { merge_groups: ["sudo"] });
    expect([one.code, one.brake]).toEqual([0, null]);
    expect(line(root, "group", "team0")).toBe("team0:x:3000:");
    // Every other record gone (an emptied table): two of ten is already more than 10%.
    for (const g of [...groups.slice(1), groupItem("sudo", 27)]) await d.remove("Groups", g.Name!.S!);
    const mid = snapshot(root);
    const all = await sync(root, { merge_groups: ["sudo"] });
    expect(all.code).toBe(1);
    expect(all.brake).toContain("safety brake: the records of 10 of the 10 groups ddum added members to have left the Groups table");
    expect(snapshot(root)).toEqual(mid);
    expect(line(root, "group", "sudo")).toBe("sudo:x:27:alice");
    const forced = await ddum(["sync", "--force", "--root", root, "-c", writeConfig(d, { merge_groups: ["sudo"] })]);
    expect(forced.code).toBe(0);
    expect(line(root, "group", "sudo")).toBe("sudo:x:27:");
    expect(line(root, "group", "team5")).toBe("team5:x:3005:");
    expect(before).not.toEqual(snapshot(root));
    expectClean(root);
  });

  test("ddum's own group is kept, emptied of the members and administrators ddum added", async () => {
    const root = makeRoot();
    await d.put("Users", [userItem("alice", 2001), userItem("bob", 2002)]);
    await d.put("Groups", [groupItem("devs", 3000, { Members: { SS: ["alice", "bob"] }, Administrators: { SS: ["alice"] } })]);
    await sync(root);
    expect(run("useradd", ["-R", root, "-u", "2500", "-U", "-G", "devs", "localuser"]).code).toBe(0);
    await d.remove("Groups", "devs");
    const r = await sync(root);
    expect(r.code).toBe(0);
    expect(line(root, "group", "devs")).toBe("devs:x:3000:localuser");
    expect(line(root, "gshadow", "devs")).toBe("devs:!::localuser");
    const own = state(root);
    expect(own.groups).toContain("devs");
    expect(own.members.devs).toBeUndefined();
    expect(own.admins.devs).toBeUndefined();
    expectClean(root);
    expect((await sync(root)).summary).toMatchObject({ created: 0, updated: 0 });
  });

  test("a consented local group gives back what ddum added; others' members stay", async () => {
    const root = makeRoot();
    expect(run("useradd", ["-R", root, "-u", "2500", "-U", "-G", "sudo", "localadmin"]).code).toBe(0);
    await d.put("Users", [userItem("alice", 2001)]);
    await d.put("Groups", [groupItem("sudo", 27, { Members: { SS: ["alice"] }, Administrators: { SS: ["alice"] } })]);
    const r = await sync(root, { merge_groups: ["sudo"] });
    // No administrators from the table in a local group: gpasswd would let them add any account.
    expect(line(root, "gshadow", "sudo")).toBe("sudo:*::localadmin,alice");
    expect(r.notices).toContain('Groups record "sudo": Administrators of a local group are not taken from the table (gpasswd would let them add any local account); left out');
    await d.remove("Groups", "sudo");
    await sync(root, { merge_groups: ["sudo"] });
    expect(line(root, "group", "sudo")).toBe("sudo:x:27:localadmin");
    expect(line(root, "gshadow", "sudo")).toBe("sudo:*::localadmin");
    expectClean(root);
  });

  test("a membership an admin made by hand stays when the record that also lists it leaves", async () => {
    const root = makeRoot();
    await d.put("Users", [userItem("alice", 2001), userItem("bob", 2002)]);
    await sync(root, { merge_groups: ["sudo"] });
    expect(run("usermod", ["-R", root, "-aG", "sudo", "alice"]).code).toBe(0);
    await d.put("Groups", [groupItem("sudo", 27, { Members: { SS: ["alice", "bob"] } })]);
    await sync(root, { merge_groups: ["sudo"] });
    expect(line(root, "group", "sudo")).toBe("sudo:x:27:alice,bob");
    expect(state(root).members.sudo).toEqual(["bob"]);
    await d.remove("Groups", "sudo");
    await sync(root, { merge_groups: ["sudo"] });
    expect(line(root, "group", "sudo")).toBe("sudo:x:27:alice");
    expectClean(root);
  });

  test("a record may not give a local account's primary GID to a group, nor create a privileged group", async () => {
    const root = makeRoot();
    // A local service account whose primary group has no group line (as some tools leave it).
    writeFileSync(join(root, "etc", "passwd"), `${readFileSync(join(root, "etc", "passwd"), "utf8")}svc:x:1100:1100::/srv/svc:/usr/sbin/nologin\n`);
    writeFileSync(join(root, "etc", "shadow"), `${readFileSync(join(root, "etc", "shadow"), "utf8")}svc:!:::::::\n`);
    await d.put("Users", [userItem("alice", 2001)]);
    await d.put("Groups", [
      groupItem("svcgrp", 1100, { Members: { SS: ["alice"] } }),
      groupItem("admin", 3100, { Members: { SS: ["alice"] } }),
      groupItem("docker", 3101, { Members: { SS: ["alice"] } }),
    ]);
    const r = await sync(root);
    expect(reasonFor(r, "svcgrp")).toBe('GID: 1100 is the primary group of the local account "svc"');
    for (const g of ["admin", "docker"]) {
      expect(reasonFor(r, g)).toContain(`Name: a group named "${g}" grants privileges on many systems`);
      expect(line(root, "group", g)).toBeUndefined();
    }
    // The host's consent makes it: a host that wants a table-fed docker group says so.
    await sync(root, { merge_groups: ["docker"] });
    expect(line(root, "group", "docker")).toBe("docker:x:3101:alice");
  });

  test("a stray gshadow line with a new user's name costs that user's private group only", async () => {
    const root = makeRoot();
    writeFileSync(join(root, "etc", "gshadow"), `${readFileSync(join(root, "etc", "gshadow"), "utf8")}alice:!::\n`);
    await d.put("Users", [userItem("alice", 2001), userItem("bob", 2002)]);
    const r = await sync(root);
    expect(r.code).toBe(0);
    expect(line(root, "passwd", "bob")).toBe("bob:x:2002:2002:bob user:/home/bob:/bin/bash");
    expect(line(root, "group", "bob")).toBe("bob:x:2002:");
    expect(line(root, "passwd", "alice")).toBe("alice:x:2001:2001:alice user:/home/alice:/bin/bash");
    expect(r.notices).toContain(`user "alice": no group has GID 2001, and the name is taken by another group line, so none was made`);
  });

  test("a record still in the table but rejected has not left it: its members stay", async () => {
    const root = makeRoot();
    await d.put("Users", [userItem("alice", 2001)]);
    await d.put("Groups", [groupItem("devs", 3000, { Members: { SS: ["alice"] } })]);
    await sync(root);
    await d.put("Groups", [{ Name: { S: "devs" }, GID: { S: "3000" }, Members: { SS: ["alice"] } }]);
    const r = await sync(root);
    expect(r.summary.rejected).toBe(1);
    expect(line(root, "group", "devs")).toBe("devs:x:3000:alice");
    expect(state(root).members.devs).toEqual(["alice"]);
  });
});

describe("a user's private group belongs to the user", () => {
  test("first seen: a record with the user's name and another GID is refused; the private group is made", async () => {
    const root = makeRoot();
    await d.put("Users", [userItem("alice", 2001)]);
    await d.put("Groups", [groupItem("alice", 5000, { Members: { SS: ["alice"] } })]);
    const r = await sync(root);
    expect(reasonFor(r, "alice")).toBe(`GID: a group named after the user "alice" is that user's private group, with the user's GID 2001; the record's 5000 is refused`);
    expect(line(root, "group", "alice")).toBe("alice:x:2001:");
    expectClean(root);
  });

  test("in place: a record cannot renumber a private group made earlier", async () => {
    const root = makeRoot();
    await d.put("Users", [userItem("alice", 2001)]);
    await sync(root);
    await d.put("Groups", [groupItem("alice", 5000)]);
    const r = await sync(root);
    expect(reasonFor(r, "alice")).toContain("private group");
    expect(line(root, "group", "alice")).toBe("alice:x:2001:");
    expectClean(root);
    // A local user's name too (daemon's group keeps GID 1).
    await d.put("Groups", [groupItem("daemon", 5001)]);
    const daemonGid = line(root, "passwd", "daemon")!.split(":")[3];
    expect(reasonFor(await sync(root), "daemon")).toContain(`the user "daemon" is that user's private group, with the user's GID ${daemonGid};`);
  });

  test("a refused user's name is still its own: a group record with another GID is refused too", async () => {
    const root = makeRoot();
    expect(run("useradd", ["-R", root, "-u", "2500", "-U", "localbob"]).code).toBe(0);
    await d.put("Users", [userItem("bob", 2500, { GID: { N: "2600" } })]);
    await d.put("Groups", [groupItem("bob", 5000)]);
    const r = await sync(root);
    expect(reasonFor(r, "bob")).toContain('UID: 2500 already belongs to the local account "localbob"');
    expect(reasonFor(r, "bob")).toContain("GID: a group named after the user \"bob\" is that user's private group, with the user's GID 2600");
    expect(line(root, "group", "bob")).toBeUndefined();
  });

  test("a record with the user's own GID is the private group's record", async () => {
    const root = makeRoot();
    await d.put("Users", [userItem("alice", 2001), userItem("bob", 2002)]);
    await d.put("Groups", [groupItem("alice", 2001, { Members: { SS: ["bob"] } })]);
    const r = await sync(root);
    expect(r.refusals).toEqual([]);
    expect(line(root, "group", "alice")).toBe("alice:x:2001:bob");
    expectClean(root);
  });
});

describe("an account's UID and GID are never renumbered by a pass", () => {
  test("a record that changes the UID or the GID is refused; the old UID is not given to a new user", async () => {
    const root = makeRoot();
    await d.put("Users", [userItem("alice", 2001)]);
    await sync(root);
    const before = snapshot(root);
    await d.put("Users", [userItem("alice", 2005), userItem("mallory", 2001)]);
    const r = await sync(root);
    expect(reasonFor(r, "alice")).toBe(
      "UID: the record changes the UID of the existing account from 2001 to 2005; ddum does not renumber an account (its files would keep the old ID); renumber it on the host by hand (usermod), or give the record its old UID back",
    );
    expect(reasonFor(r, "mallory")).toBe('UID: 2001 already belongs to the local account "alice"');
    expect(snapshot(root)).toEqual(before);
    await d.remove("Users", "mallory");
    await d.put("Users", [userItem("alice", 2001, { GID: { N: "2009" } })]);
    const g = await sync(root);
    expect(reasonFor(g, "alice")).toContain("GID: the record changes the GID of the existing account from 2001 to 2009");
    expect(snapshot(root)).toEqual(before);
  });

  test("the admin commands retire a UID or GID left behind and never give it out again", async () => {
    // Automatic IDs from the range's bottom here (auto_id_min has its own tests).
    const cfg = writeConfig(d, { uid_min: 1000, uid_max: 60000, gid_min: 1000, gid_max: 60000, auto_id_min: 1000 });
    expect((await ddum(["user", "add", "alice", "-c", cfg])).code).toBe(0);
    const moved = await ddum(["user", "set", "alice", "--uid", "1005", "-c", cfg]);
    expect(moved.code).toBe(0);
    expect(moved.stderr).toContain("UID 1000 of alice is retired");
    const bob = await ddum(["user", "add", "bob", "-c", cfg]);
    expect(bob.stdout).toContain("UID 1001, GID 1001");
    const carol = await ddum(["user", "add", "carol", "--uid", "1000", "-c", cfg]);
    expect(carol.code).toBe(1);
    expect(carol.stderr).toContain('UID 1000 is retired for "alice"');
    // alice may have hers back (hosts that refused the renumbering then agree again).
    expect((await ddum(["user", "set", "alice", "--uid", "1000", "-c", cfg])).code).toBe(0);
    const regrouped = await ddum(["user", "set", "alice", "--gid", "1001", "-c", cfg]);
    expect(regrouped.code).toBe(0);
    expect(regrouped.stderr).toContain("hosts where alice exists refuse to change its primary GID");
    expect((await ddum(["group", "add", "devs", "-c", cfg])).stdout).toContain("GID 1002");
    expect((await ddum(["group", "set", "devs", "--gid", "4000", "-c", cfg])).code).toBe(0);
    expect((await ddum(["group", "add", "ops", "-c", cfg])).stdout).toContain("GID 1003");
  });
});

describe("the safety brake counts what PAM would refuse", () => {
  test.each(PAM_CASES)("pamAccepts: %s", (_what, fields, accepted) => {
    for (const T of [20000, todayDays()]) {
      const shadow = pamCaseFields("u", fields(T));
      expect(shadow.length).toBe(9);
      expect(pamAccepts(shadow, T)).toBe(accepted);
    }
  });

  const today = todayDays();
  const twenty = (extra: (i: number) => Record<string, AttributeValue>) =>
    Array.from({ length: 20 }, (_, i) => userItem(`u${i}`, 3000 + i, extra(i)));

  test("exactly 10% disabled passes; one more stops the pass", async () => {
    const root = makeRoot();
    await d.put("Users", twenty(() => ({})));
    await sync(root);
    await d.put("Users", twenty((i) => (i < 2 ? { AccountExpireDate: { S: "1970-01-01" } } : {}) as Record<string, AttributeValue>));
    const two = await sync(root);
    expect(two.brake).toBeNull();
    expect(two.summary.updated).toBe(2);
    await d.put("Users", twenty((i) => (i < 5 ? { AccountExpireDate: { S: "1970-01-01" } } : {}) as Record<string, AttributeValue>));
    const before = snapshot(root);
    // 18 still enabled: 10% allows one, three more would be disabled.
    const three = await sync(root);
    expect(three.code).toBe(1);
    expect(three.brake).toContain("would disable 3 of 18 enabled managed users");
    expect(snapshot(root)).toEqual(before);
  });

  test("an expiry date of today disables, and so does one within the brake's horizon; one past it does not", async () => {
    const root = makeRoot();
    await d.put("Users", twenty(() => ({})));
    await sync(root);
    const expiring = (day: number) => twenty((i) => (i < 3 ? { AccountExpireDate: { S: daysToIsoDate(day) } } : {}) as Record<string, AttributeValue>);
    // Every expiry dated tomorrow would lock them out before anyone noticed: counted now.
    for (const day of [today, today + 1, today + BRAKE_HORIZON_DAYS]) {
      await d.put("Users", expiring(day));
      expect([day - today, (await sync(root)).brake]).toEqual([day - today, expect.stringContaining("would disable 3 of 20")]);
    }
    await d.put("Users", expiring(today + BRAKE_HORIZON_DAYS + 1));
    expect((await sync(root)).brake).toBeNull();
  });

  test("missing_users: disable sets the expiry also on an account refused by password ageing alone", async () => {
    const root = makeRoot();
    const aged = { LastPasswordChangeDate: { S: "1970-01-02" }, PasswordAgeMaxDays: { N: "0" }, PasswordDisableDays: { N: "0" } };
    await d.put("Users", [...twenty(() => ({})), userItem("old", 4000, aged)]);
    await sync(root);
    await d.remove("Users", "old");
    const r = await sync(root, { missing_users: "disable" });
    expect(r.brake).toBeNull();
    // Not counted (PAM refused it already), but expired by date: a local chage cannot revive it.
    expect(line(root, "shadow", "old")).toBe("old:!:1::0::0:1:");
  });

  test("expired password ageing locks everyone out: the brake stops it", async () => {
    const root = makeRoot();
    await d.put("Users", twenty(() => ({})));
    await sync(root);
    const before = snapshot(root);
    await d.put(
      "Users",
      twenty(() => ({ LastPasswordChangeDate: { S: "1970-01-02" }, PasswordAgeMaxDays: { N: "0" }, PasswordDisableDays: { N: "0" } })),
    );
    const r = await sync(root);
    expect(r.brake).toContain("would disable 20 of 20");
    expect(snapshot(root)).toEqual(before);
  });
});

import { afterAll, beforeAll, expect, test } from "bun:test";
import { appendFileSync, mkdirSync, mkdtempSync, readFileSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type AttributeValue, DescribeTableCommand, ScanCommand } from "@aws-sdk/client-dynamodb";
import { DDUM, ddum, writeConfig } from "./helpers/ddum.ts";
import { type Dynamo, startDynalite, userItem } from "./helpers/dynalite.ts";
import { KEY_ALICE, KEY_BOB, KEY_CAROL_RSA } from "./helpers/keys.ts";
import { checkAccounts, cleanupRoots, makeRoot, run } from "./helpers/root.ts";

// "Today" as ddum reckons it (UTC days). A test that reads back a date ddum set accepts every
// day from its start to the check, so it holds across midnight.
const dayNow = () => Math.floor(Date.now() / 86_400_000);
const daysBetween = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => String(from + i));

let d: Dynamo;
beforeAll(async () => {
  d = await startDynalite();
});
afterAll(async () => {
  await d.close();
  cleanupRoots();
});

test("tables create makes both tables with the Name key, and is idempotent", async () => {
  const cfg = writeConfig(d, { user_table_name: "People", group_table_name: "Teams" });
  const first = await ddum(["tables", "create", "-c", cfg]);
  // It says where it creates them, and nothing else on stderr.
  expect(first.stderr).toBe(`info: config: ${cfg}\ninfo: region: us-east-1 (from aws_region in the config)\ninfo: endpoint: ${d.endpoint}\ninfo: tables: users People, groups Teams\n`);
  expect(first.code).toBe(0);
  // and the account they are in, read from their ARNs.
  expect(first.stdout).toMatch(
    /^created table People \(on-demand\); it is active\ncreated table Teams \(on-demand\); it is active\ncreated item #version in table People \(Version 0\): every change to the tables raises it\naccount: \d{12} \(from the tables' ARNs\)\n$/,
  );
  for (const t of ["People", "Teams"]) {
    const desc = (await d.client.send(new DescribeTableCommand({ TableName: t }))).Table!;
    expect(desc.TableStatus).toBe("ACTIVE");
    expect(desc.KeySchema).toEqual([{ AttributeName: "Name", KeyType: "HASH" }]);
    expect(desc.AttributeDefinitions).toEqual([{ AttributeName: "Name", AttributeType: "S" }]);
  }
  const again = await ddum(["tables", "create", "-c", cfg]);
  expect(again.code).toBe(0);
  expect(again.stdout).toMatch(
    /^table People already exists; left as it is\ntable Teams already exists; left as it is\nitem #version in table People already exists \(Version 0\); left as it is\naccount: \d{12} \(from the tables' ARNs\)\n$/,
  );
});

test("tables create --billing provisioned; a bad billing mode or action is a usage error", async () => {
  const cfg = writeConfig(d, { user_table_name: "Users2", group_table_name: "Groups2" });
  const r = await ddum(["tables", "create", "--billing", "provisioned", "-c", cfg]);
  expect(r.stderr).not.toMatch(/warning|error/);
  expect(r.code).toBe(0);
  const desc = (await d.client.send(new DescribeTableCommand({ TableName: "Users2" }))).Table!;
  expect(desc.ProvisionedThroughput?.ReadCapacityUnits).toBe(5);
  expect((await ddum(["tables", "create", "--billing", "free", "-c", cfg])).code).toBe(2);
  const bad = await ddum(["tables", "drop", "-c", cfg]);
  expect(bad.code).toBe(2);
  expect(bad.stderr).toContain('unknown action "tables drop"');
});

// ---- user and group commands, import ------------------------------------------------------------

let tableNo = 0;
/** Fresh tables and a config file naming them; automatic IDs from the range's bottom (auto_id_min has its own tests). */
async function fresh(extra: Record<string, unknown> = {}) {
  tableNo++;
  const users = `AdmUsers${tableNo}`;
  const groups = `AdmGroups${tableNo}`;
  await d.createTables(users, groups);
  return { users, groups, cfg: writeConfig(d, { user_table_name: users, group_table_name: groups, uid_min: 1000, uid_max: 60000, gid_min: 1000, gid_max: 60000, auto_id_min: 1000, ...extra }) };
}

async function items(table: string): Promise<Record<string, Record<string, unknown>>> {
  const out: Record<string, Record<string, unknown>> = {};
  let start: Record<string, AttributeValue> | undefined;
  do {
    const r = await d.client.send(new ScanCommand({ TableName: table, ConsistentRead: true, ExclusiveStartKey: start }));
    for (const i of r.Items ?? []) out[i.Name!.S!] = Object.fromEntries(Object.entries(i).map(([k, v]) => [k, Object.values(v)[0]]));
    start = r.LastEvaluatedKey;
  } while (start);
  return out;
}

/** crypt(3) of the system's libcrypt through perl, which ddum's own code plays no part in. */
function systemCrypt(phrase: string, setting: string): string {
  return run("perl", ["-e", "print crypt($ARGV[0], $ARGV[1])", phrase, setting]).stdout;
}

test("user add: defaults, first free UID from uid_min, a user private GID, and a reservation item per ID", async () => {
  const t = await fresh();
  const a = await ddum(["user", "add", "alice", "--real-name", "Alice Liddell", "-c", t.cfg]);
  expect(a.stderr).toBe("");
  expect(a.stdout).toBe(`added user alice to table ${t.users}: UID 1000, GID 1000 (user private group)\n`);
  expect(a.code).toBe(0);
  const b = await ddum(["user", "add", "bob", "--gid", "1000", "--shell", "/bin/zsh", "--home", "/srv/bob", "--expire", "2030-01-31", "--real-name", "007", "-c", t.cfg]);
  expect(b.stdout).toBe(`added user bob to table ${t.users}: UID 1001, GID 1000\n`);
  const u = await items(t.users);
  expect(u.alice).toEqual({ Name: "alice", UID: "1000", GID: "1000", RealName: "Alice Liddell", Home: "/home/alice", Shell: "/bin/bash" });
  expect(u.bob).toEqual({ Name: "bob", UID: "1001", GID: "1000", RealName: "007", Home: "/srv/bob", Shell: "/bin/zsh", AccountExpireDate: "2030-01-31" });
  expect(u["#uid:1000"]!.Owner).toBe("alice");
  expect(u["#uid:1001"]!.Owner).toBe("bob");
  expect((await items(t.groups))["#gid:1000"]!.Owner).toBe("alice");
  // The name and an explicit UID are taken once only.
  const again = await ddum(["user", "add", "alice", "-c", t.cfg]);
  expect(again.code).toBe(1);
  expect(again.stderr).toContain(`user "alice" already exists in table ${t.users}`);
  const taken = await ddum(["user", "add", "carol", "--uid", "1001", "-c", t.cfg]);
  expect(taken.code).toBe(1);
  expect(taken.stderr).toContain(`UID 1001 is already used by "bob" in table ${t.users}`);
  // The private GID of alice is not handed out as carol's UID/GID pair: carol gets 1002.
  expect((await ddum(["user", "add", "carol", "-c", t.cfg])).stdout).toContain("UID 1002, GID 1002");
});

test("two, then eight, concurrent user add --uid auto get different UIDs", async () => {
  const t = await fresh();
  const two = await Promise.all(["u1", "u2"].map((n) => ddum(["user", "add", n, "--uid", "auto", "-c", t.cfg])));
  for (const r of two) expect(r.code).toBe(0);
  const eight = await Promise.all(Array.from({ length: 8 }, (_, i) => ddum(["user", "add", `v${i}`, "-c", t.cfg])));
  for (const r of eight) expect(r.code).toBe(0);
  const users = Object.values(await items(t.users)).filter((i) => !String(i.Name).startsWith("#"));
  expect(users.length).toBe(10);
  const uids = users.map((u) => u.UID);
  expect(new Set(uids).size).toBe(10);
  expect(uids.map(Number).sort((a, b) => a - b)).toEqual(Array.from({ length: 10 }, (_, i) => 1000 + i));
  // And concurrent group add --gid auto as well.
  const g = await Promise.all(["g1", "g2", "g3"].map((n) => ddum(["group", "add", n, "-c", t.cfg])));
  for (const r of g) expect(r.code).toBe(0);
  const gids = Object.values(await items(t.groups)).filter((i) => !String(i.Name).startsWith("#")).map((i) => Number(i.GID));
  expect(new Set(gids).size).toBe(3);
  for (const gid of gids) expect(gid).toBeGreaterThanOrEqual(1010); // 1000-1009 are the users' private GIDs
});

test("an invalid record is refused before anything is written, naming table, record and field", async () => {
  const t = await fresh();
  const before = { u: await items(t.users), g: await items(t.groups) };
  const cases: [string[], string[]][] = [
    [["--shell", "nologin"], ["Shell: must be an absolute path"]],
    [["--real-name", "Eve: admin"], ["RealName: must not contain ':'"]],
    [["--real-name", "two\nlines"], ["RealName: must not contain ':', newline"]],
    [["--uid", "0"], ["UID: 0 is outside the managed range 1000-60000"]],
    [["--gid", "27"], ["GID: 27 is outside the managed range 1000-60000"]],
    [["--home", "/home/../etc"], ["Home: must not contain '..' segments"]],
    [["--shell", "bash", "--home", "rel"], ["Shell: must be an absolute path", "Home: must be an absolute path"]],
    [["--expire", "2026-02-30"], ["--expire: expected a date in YYYY-MM-DD form"]],
  ];
  for (const [args, reasons] of cases) {
    const r = await ddum(["user", "add", "eve", ...args, "-c", t.cfg]);
    expect(r.code).toBe(2);
    for (const reason of reasons) expect(r.stderr).toContain(reason);
    if (!args.includes("--expire")) expect(r.stderr).toContain(`${t.users} record "eve": `);
  }
  const bad = await ddum(["user", "add", "root:x", "-c", t.cfg]);
  expect(bad.code).toBe(2);
  expect(bad.stderr).toContain('record "root:x": Name: may hold only');
  expect(await items(t.users)).toEqual(before.u);
  expect(await items(t.groups)).toEqual(before.g);
});

test("user set changes only what is given, checks the whole record, and can move the UID", async () => {
  const t = await fresh();
  await ddum(["user", "add", "alice", "--real-name", "Alice", "-c", t.cfg]);
  const r = await ddum(["user", "set", "alice", "--shell", "/bin/zsh", "--max-days", "90", "-c", t.cfg]);
  expect(r.stdout).toBe("user alice: changed PasswordAgeMaxDays, Shell\n");
  expect((await items(t.users)).alice).toEqual({ Name: "alice", UID: "1000", GID: "1000", RealName: "Alice", Home: "/home/alice", Shell: "/bin/zsh", PasswordAgeMaxDays: "90" });
  const refused = await ddum(["user", "set", "alice", "--shell", "zsh", "-c", t.cfg]);
  expect(refused.code).toBe(2);
  expect(refused.stderr).toContain(`change to user "alice" refused, nothing was written:\n  ${t.users} record "alice": Shell: must be an absolute path`);
  expect((await items(t.users)).alice!.Shell).toBe("/bin/zsh");
  expect((await ddum(["user", "set", "alice", "--max-days", "none", "-c", t.cfg])).stdout).toBe("user alice: changed PasswordAgeMaxDays\n");
  expect((await ddum(["user", "set", "alice", "--shell", "/bin/zsh", "-c", t.cfg])).stdout).toBe("user alice: nothing to change\n");
  // A new UID: reserved first, the old reservations kept and marked retired, the private GID follows.
  await ddum(["user", "add", "bob", "-c", t.cfg]);
  const moved = await ddum(["user", "set", "alice", "--uid", "2000", "-c", t.cfg]);
  expect(moved.stdout).toBe("user alice: changed GID, UID\n");
  const u = await items(t.users);
  expect([u.alice!.UID, u.alice!.GID]).toEqual(["2000", "2000"]);
  expect(u["#uid:2000"]!.Owner).toBe("alice");
  expect(u["#uid:1000"]!.Owner).toBe("alice");
  expect(u["#uid:1000"]!.Retired).toBeDefined();
  expect((await ddum(["user", "set", "bob", "--uid", "2000", "-c", t.cfg])).code).toBe(1);
  const missing = await ddum(["user", "set", "nobody-here", "--shell", "/bin/sh", "-c", t.cfg]);
  expect(missing.code).toBe(1);
  expect(missing.stderr).toContain(`no user "nobody-here" in table ${t.users}`);
});

test("concurrent updates of one record all land (conditional writes retry)", async () => {
  const t = await fresh();
  await ddum(["user", "add", "alice", "-c", t.cfg]);
  // Eight writers at once: each round of the race lets one through, so the last needs eight tries.
  const keys = Array.from({ length: 8 }, (_, i) => {
    const dir = mkdtempSync(join(tmpdir(), "ddum-key-"));
    run("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", `k${i}`, "-f", join(dir, "k")]);
    return readFileSync(join(dir, "k.pub"), "utf8").trim();
  });
  const rs = await Promise.all(keys.map((k) => ddum(["user", "key", "add", "alice", k, "-c", t.cfg])));
  for (const r of rs) expect(r.code).toBe(0);
  expect(((await items(t.users)).alice!.SSHPublicKeys as string[]).sort()).toEqual([...keys].sort());
});

test("user key add and remove (by key, by data, by SHA256 fingerprint); a sync revokes the removed key", async () => {
  const t = await fresh({ ssh_key_location: "/etc/ssh/keys/%u" });
  const keyFile = join(mkdtempSync(join(tmpdir(), "ddum-kf-")), "keys.pub");
  writeFileSync(keyFile, `# alice's keys\n${KEY_BOB.replace("bob@desk", "alice@desk")}\n\n`);
  expect((await ddum(["user", "add", "alice", "--ssh-key", keyFile, "-c", t.cfg])).code).toBe(0);
  expect((await ddum(["user", "key", "add", "alice", `${KEY_ALICE}  `, KEY_CAROL_RSA, "-c", t.cfg])).stdout).toBe("user alice: changed SSHPublicKeys\n");
  const bad = await ddum(["user", "key", "add", "alice", `command="/bin/sh" ${KEY_ALICE}`, "-c", t.cfg]);
  expect(bad.code).toBe(2);
  expect(bad.stderr).toContain("SSH key must start with a known key type");
  const root = makeRoot();
  const keyPath = join(root, "etc/ssh/keys/alice");
  expect((await ddum(["sync", "--root", root, "-c", t.cfg])).code).toBe(0);
  expect(readFileSync(keyPath, "utf8").split("\n").filter((l) => l.startsWith("ssh-")).length).toBe(3);
  const fp = run("ssh-keygen", ["-lf", "/dev/stdin"], { input: `${KEY_ALICE}\n` }).stdout.split(" ")[1]!;
  expect(fp).toMatch(/^SHA256:/);
  const show = await ddum(["user", "show", "alice", "-c", t.cfg]);
  expect(show.stdout).toContain(`ssh-ed25519 ${fp} alice@laptop`);
  expect((await ddum(["user", "key", "remove", "alice", fp, KEY_CAROL_RSA.split(" ")[1]!, "-c", t.cfg])).code).toBe(0);
  const none = await ddum(["user", "key", "remove", "alice", fp, "-c", t.cfg]);
  expect(none.code).toBe(1);
  expect(none.stderr).toContain("user alice has no key matching");
  expect((await ddum(["sync", "--root", root, "-c", t.cfg])).code).toBe(0);
  const left = readFileSync(keyPath, "utf8");
  expect(left).not.toContain(KEY_ALICE.split(" ")[1]!);
  expect(left).not.toContain(KEY_CAROL_RSA.split(" ")[1]!);
  expect(left).toContain("alice@desk");
  // Keys on stdin ("-"), for user add --ssh-key and user key add --file.
  expect((await ddum(["user", "add", "bob", "--ssh-key", "-", "-c", t.cfg], { stdin: `${KEY_BOB}\n` })).code).toBe(0);
  expect((await items(t.users)).bob!.SSHPublicKeys).toEqual([KEY_BOB]);
  expect((await ddum(["user", "key", "add", "bob", "--file", "-", "-c", t.cfg], { stdin: `${KEY_ALICE}\n` })).code).toBe(0);
  expect(((await items(t.users)).bob!.SSHPublicKeys as string[]).sort()).toEqual([KEY_ALICE, KEY_BOB].sort());
  const both = await ddum(["user", "add", "cy", "--password-stdin", "--ssh-key", "-", "-c", t.cfg], { stdin: "x\n" });
  expect(both.code).toBe(2);
  expect(both.stderr).toContain("cannot both read stdin");
});

test("user passwd: hashed with the system's libcrypt (yescrypt, or sha512), verified after a sync; the plaintext goes nowhere", async () => {
  const t = await fresh();
  expect((await ddum(["user", "add", "alice", "-c", t.cfg])).code).toBe(0);
  const firstDay = dayNow(); // the change date is the admin's day, which may turn during the test
  const phrase = "Tr0ub4dor & 3, with spaces";
  const r = await ddum(["user", "passwd", "alice", "-c", t.cfg], { stdin: `${phrase}\nignored second line\n` });
  expect(r.stderr).toBe("");
  expect(r.stdout).toBe("user alice: changed LastPasswordChangeDate, Password\n");
  const stored = (await items(t.users)).alice!;
  expect(stored.Password).toMatch(/^\$y\$j9T\$/);
  expect(JSON.stringify(await items(t.users))).not.toContain(phrase);
  const root = makeRoot();
  const synced = await ddum(["sync", "--root", root, "-c", t.cfg]);
  expect(synced.code).toBe(0);
  expect(synced.stdout + synced.stderr).not.toContain(String(stored.Password));
  const line = readFileSync(join(root, "etc/shadow"), "utf8").split("\n").find((l) => l.startsWith("alice:"))!;
  const hash = line.split(":")[1]!;
  expect(daysBetween(firstDay, dayNow())).toContain(line.split(":")[2]!);
  expect(systemCrypt(phrase, hash)).toBe(hash);
  expect(systemCrypt("Tr0ub4dor & 3", hash)).not.toBe(hash);
  // SHA-512 on request; show never prints the hash.
  expect((await ddum(["user", "passwd", "alice", "--hash", "sha512", "--stdin", "-c", t.cfg], { stdin: "other pass\n" })).code).toBe(0);
  const h6 = String((await items(t.users)).alice!.Password);
  expect(h6).toMatch(/^\$6\$/);
  expect(systemCrypt("other pass", h6)).toBe(h6);
  const show = await ddum(["user", "show", "alice", "-c", t.cfg]);
  expect(show.stdout).toContain("sha512crypt hash");
  expect(show.stdout).not.toContain(h6);
  // An empty line is refused; user add --password-stdin hashes the same way.
  expect((await ddum(["user", "passwd", "alice", "-c", t.cfg], { stdin: "\n" })).code).toBe(2);
  expect((await ddum(["user", "add", "bob", "--password-stdin", "-c", t.cfg], { stdin: "bobs pass\n" })).code).toBe(0);
  const hb = String((await items(t.users)).bob!.Password);
  expect(systemCrypt("bobs pass", hb)).toBe(hb);
});

test("user disable (today or --on DATE) and enable; a sync sets and clears the shadow expiry", async () => {
  const t = await fresh();
  await ddum(["user", "add", "alice", "-c", t.cfg]);
  const root = makeRoot();
  const expiry = () => readFileSync(join(root, "etc/shadow"), "utf8").split("\n").find((l) => l.startsWith("alice:"))!.split(":")[7];
  const firstDay = dayNow();
  const off = await ddum(["user", "disable", "alice", "-c", t.cfg]);
  expect(off.stdout).toBe("user alice: changed AccountExpireDate\nuser alice is disabled on every host at its next pass\n");
  expect((await ddum(["sync", "--root", root, "-c", t.cfg])).code).toBe(0);
  expect(daysBetween(firstDay, dayNow())).toContain(expiry()!);
  const later = await ddum(["user", "disable", "alice", "--on", "2031-03-01", "-c", t.cfg]);
  expect(later.stdout).toContain("user alice will be disabled on 2031-03-01");
  expect((await items(t.users)).alice!.AccountExpireDate).toBe("2031-03-01");
  expect((await ddum(["user", "enable", "alice", "-c", t.cfg])).code).toBe(0);
  expect((await items(t.users)).alice!.AccountExpireDate).toBeUndefined();
  expect((await ddum(["sync", "--root", root, "-c", t.cfg])).code).toBe(0);
  expect(expiry()).toBe("");
  expect((await ddum(["user", "disable", "alice", "--on", "yesterday", "-c", t.cfg])).code).toBe(2);
  expect((await ddum(["user", "disable", "ghost", "-c", t.cfg])).code).toBe(1);
});

test("user show and list (text and JSON) report refused records, and skip reservation items", async () => {
  const t = await fresh();
  await ddum(["user", "add", "alice", "--real-name", "Alice", "-c", t.cfg]);
  await d.put(t.users, [userItem("mallory", 1500, { Shell: { S: "sh" } })]);
  const list = await ddum(["user", "list", "-c", t.cfg]);
  expect(list.stdout).toBe(
    "NAME     UID   GID   KEYS  STATE            REALNAME\n" +
      "alice    1000  1000  0     enabled          Alice\n" +
      "mallory  1500  1500  0     rejected: Shell  mallory user\n",
  );
  const json = JSON.parse((await ddum(["user", "list", "--json", "-c", t.cfg])).stdout);
  expect(json.version).toBe(1);
  expect(json.users.map((r: { name: string }) => r.name)).toEqual(["alice", "mallory"]);
  const show = await ddum(["user", "show", "mallory", "-c", t.cfg]);
  expect(show.stdout).toContain(`Valid: NO, every host refuses it:\n  ${t.users} record "mallory": Shell: must be an absolute path`);
  const sj = JSON.parse((await ddum(["user", "show", "alice", "--json", "-c", t.cfg])).stdout);
  expect(sj).toEqual({ version: 1, record: { Name: "alice", UID: "1000", GID: "1000", RealName: "Alice", Home: "/home/alice", Shell: "/bin/bash" }, valid: true, problems: [] });
  expect((await ddum(["user", "show", "#uid:1000", "-c", t.cfg])).code).toBe(1);
  // The reservations are invisible to check and to a pass.
  const check = await ddum(["check", "-c", t.cfg]);
  expect(check.stdout).toContain("2 users and 0 groups read: 1 valid, 1 rejected");
});

test("group add, set, show, list, member and admin add/remove", async () => {
  const t = await fresh();
  await ddum(["user", "add", "alice", "-c", t.cfg]);
  await ddum(["user", "add", "bob", "-c", t.cfg]);
  const add = await ddum(["group", "add", "devs", "--member", "alice", "--admin", "alice", "-c", t.cfg]);
  expect(add.stdout).toBe(`added group devs to table ${t.groups}: GID 1002\n`);
  expect((await ddum(["group", "add", "devs", "-c", t.cfg])).code).toBe(1);
  const clash = await ddum(["group", "add", "ops", "--gid", "1001", "-c", t.cfg]);
  expect(clash.code).toBe(1);
  expect(clash.stderr).toContain(`GID 1001 is already used by user "bob" as primary GID (table ${t.users})`);
  expect((await ddum(["group", "add", "ops", "--gid", "5000", "-c", t.cfg])).code).toBe(0);
  expect((await ddum(["group", "add", "Bad:Name", "-c", t.cfg])).code).toBe(2);
  const m = await ddum(["group", "member", "add", "devs", "bob", "zed", "-c", t.cfg]);
  expect(m.code).toBe(0);
  expect(m.stderr).toContain(`not in table ${t.users} (hosts add them only where they exist locally): zed`);
  expect((await ddum(["group", "member", "remove", "devs", "alice", "-c", t.cfg])).code).toBe(0);
  expect((await ddum(["group", "admin", "add", "devs", "bob", "-c", t.cfg])).code).toBe(0);
  expect((await ddum(["group", "admin", "remove", "devs", "alice", "-c", t.cfg])).code).toBe(0);
  expect((await items(t.groups)).devs).toEqual({ Name: "devs", GID: "1002", Members: ["bob", "zed"], Administrators: ["bob"] });
  expect((await ddum(["group", "member", "add", "devs", "bad,name", "-c", t.cfg])).code).toBe(2);
  const set = await ddum(["group", "set", "devs", "--gid", "6000", "--member", "alice", "-c", t.cfg]);
  expect(set.stdout).toBe("group devs: changed GID, Members\n");
  const g = await items(t.groups);
  expect(g.devs).toEqual({ Name: "devs", GID: "6000", Members: ["alice"], Administrators: ["bob"] });
  expect(g["#gid:6000"]!.Owner).toBe("devs");
  expect(g["#gid:1002"]!.Owner).toBe("devs");
  expect(g["#gid:1002"]!.Retired).toBeDefined();
  expect((await ddum(["group", "set", "devs", "--member", "", "-c", t.cfg])).code).toBe(0);
  expect((await items(t.groups)).devs!.Members).toBeUndefined();
  const show = await ddum(["group", "show", "devs", "-c", t.cfg]);
  expect(show.stdout).toBe("Name:           devs\nGID:            6000\nAdministrators: bob\nMembers:        \nValid: yes\n");
  const list = await ddum(["group", "list", "-c", t.cfg]);
  expect(list.stdout).toBe("NAME  GID   STATE  MEMBERS\ndevs  6000  valid  \nops   5000  valid  \n");
  // A pass puts the group on the host.
  const root = makeRoot();
  await ddum(["group", "member", "add", "devs", "alice", "bob", "-c", t.cfg]);
  expect((await ddum(["sync", "--root", root, "-c", t.cfg])).code).toBe(0);
  expect(readFileSync(join(root, "etc/group"), "utf8")).toContain("\ndevs:x:6000:alice,bob\n");
  expect(readFileSync(join(root, "etc/gshadow"), "utf8")).toContain("\ndevs:!:bob:alice,bob\n");
});

test("import --from-local, then sync into a fresh root, reproduces the users byte for byte", async () => {
  const t = await fresh();
  const src = makeRoot();
  const P = ["-P", src];
  mkdirSync(join(src, "home"), { recursive: true });
  const sh = (cmd: string, args: string[]) => {
    const r = run(cmd, args);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
  };
  sh("useradd", [...P, "-m", "-s", "/bin/bash", "-c", "Ann Smith,,,", "-K", "PASS_MAX_DAYS=90", "-K", "PASS_WARN_AGE=14", "ann"]);
  sh("useradd", [...P, "-m", "-K", "UID_MIN=1200", "ben"]);
  sh("useradd", [...P, "-K", "UID_MIN=1300", "-s", "/usr/sbin/nologin", "cat"]);
  sh("groupadd", [...P, "devs"]);
  sh("usermod", [...P, "-aG", "devs", "ann"]);
  sh("usermod", [...P, "-aG", "devs", "ben"]);
  sh("gpasswd", ["-Q", src, "-A", "ann", "devs"]);
  const hash = systemCrypt("ann's password", "$6$importtest$");
  sh("usermod", [...P, "-p", hash, "-e", "2031-05-01", "-f", "7", "ann"]);
  const ssh = join(src, "home/ann/.ssh");
  mkdirSync(ssh);
  writeFileSync(join(ssh, "authorized_keys"), `${KEY_ALICE}\n${KEY_BOB}\n`);
  run("chown", ["-R", "1000:1000", ssh]);
  // A key file that is a symlink to root's is not followed.
  const benSsh = join(src, "home/ben/.ssh");
  mkdirSync(benSsh);
  symlinkSync("/etc/shadow", join(benSsh, "authorized_keys"));
  run("chown", ["-h", "-R", "1200:1200", benSsh]);

  const dry = await ddum(["import", "--from-local", "--root", src, "--dry-run", "-c", t.cfg]);
  expect(dry.code).toBe(0);
  expect(dry.stdout).toContain("would import 3 users into");
  expect(dry.stdout).toContain("(dry run: nothing was written)");
  expect(Object.keys(await items(t.users))).toEqual([]);

  const imp = await ddum(["import", "--from-local", "--root", src, "-c", t.cfg]);
  expect(imp.stderr).toBe("");
  expect(imp.code).toBe(0);
  expect(imp.stdout).toContain(`imported 3 users into ${t.users} and 4 groups into ${t.groups}; 0 refused`);
  const ann = (await items(t.users)).ann!;
  expect(ann).toMatchObject({ UID: "1000", RealName: "Ann Smith,,,", Password: hash, PasswordAgeMaxDays: "90", PasswordWarnDays: "14", PasswordDisableDays: "7", AccountExpireDate: "2031-05-01" });
  expect((ann.SSHPublicKeys as string[]).sort()).toEqual([KEY_ALICE, KEY_BOB].sort());
  expect((await items(t.users)).ben!.SSHPublicKeys).toBeUndefined();

  const dst = makeRoot();
  const pass = await ddum(["sync", "--root", dst, "-c", writeConfig(d, { user_table_name: t.users, group_table_name: t.groups, create_homes: true })]);
  expect(pass.stderr).toBe("");
  expect(pass.code).toBe(0);
  for (const f of ["passwd", "shadow", "group", "gshadow"]) {
    const lines = (root: string) => readFileSync(join(root, "etc", f), "utf8").split("\n");
    const names = ["ann", "ben", "cat", "devs"];
    const pick = (root: string) => lines(root).filter((l) => names.includes(l.split(":")[0]!)).sort();
    expect(pick(dst)).toEqual(pick(src));
    expect(pick(dst).length).toBe(f === "passwd" || f === "shadow" ? 3 : 4);
  }
  const keysAfter = readFileSync(join(dst, "home/ann/.ssh/authorized_keys"), "utf8").split("\n").filter((l) => l.startsWith("ssh-"));
  expect(keysAfter.sort()).toEqual([KEY_ALICE, KEY_BOB].sort());
  expect(checkAccounts(dst).pwck.code).toBe(0);

  // Again: every record collides and is refused alone (exit 3); nothing is overwritten.
  const before = await items(t.users);
  const again = await ddum(["import", "--from-local", "--root", src, "-c", t.cfg]);
  expect(again.code).toBe(3);
  expect(again.stdout).toContain(`refused user "ann":\n  ${t.users} record "ann": Name: already in the table; not overwritten`);
  expect(await items(t.users)).toEqual(before);
});

test("import refuses a record whose ID another name holds, an empty password, and an unusable key, and imports the rest", async () => {
  const t = await fresh();
  await d.put(t.users, [userItem("zoe", 1001)]);
  const src = makeRoot();
  const add = (line: string, f: string) => appendFileSync(join(src, "etc", f), `${line}\n`);
  add("amy:x:1000:1000::/home/amy:/bin/bash", "passwd");
  add("amy:!:20000:0:99999:7:::", "shadow");
  add("bo:x:1001:1001::/home/bo:/bin/bash", "passwd");
  add("bo:!:20000:0:99999:7:::", "shadow");
  add("cy:x:1002:1002::/home/cy:/bin/bash", "passwd");
  add("cy::20000:0:99999:7:::", "shadow");
  add("dee:x:1003:1003::/home/dee:/bin/bash", "passwd");
  add("dee:!:20000:0:99999:7:::", "shadow");
  const ssh = join(src, "home/dee/.ssh");
  mkdirSync(ssh, { recursive: true });
  writeFileSync(join(ssh, "authorized_keys"), `from="10.0.0.0/8" ${KEY_ALICE}\n`);
  run("chown", ["-R", "1003:1003", join(src, "home/dee")]);
  const r = await ddum(["import", "--from-local", "--root", src, "-c", t.cfg]);
  expect(r.code).toBe(3);
  expect(r.stdout).toContain(`${t.users} record "bo": UID: 1001 is already used by "zoe"`);
  expect(r.stdout).toContain(`${t.users} record "cy": Password: the local account has an empty password`);
  expect(r.stdout).toContain(`${t.users} record "dee": SSHPublicKeys: local key`);
  expect(r.stdout).toContain("imported 1 user into");
  const u = await items(t.users);
  expect(Object.keys(u).filter((n) => !n.startsWith("#")).sort()).toEqual(["amy", "zoe"]);
});

test("every command has --help with its usage and exit codes; bare prefixes list their actions", async () => {
  const cmds = [
    "sync", "check", "daemon", "status", "authorized-keys", "tables create", "import",
    "user add", "user set", "user show", "user list", "user disable", "user enable", "user key add", "user key remove", "user passwd",
    "group add", "group set", "group show", "group list", "group member add", "group member remove", "group admin add", "group admin remove",
  ];
  for (const c of cmds) {
    const r = await ddum([...c.split(" "), "--help"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`$ ddum ${c}`);
    expect(r.stdout).toContain("Exit codes:");
  }
  for (const p of ["user", "group", "tables"]) {
    const h = await ddum([p, "--help"]);
    expect(h.code).toBe(0);
    expect(h.stdout).toContain(`ddum ${p} add`.replace("tables add", "tables create"));
    const bare = await ddum([p]);
    expect(bare.code).toBe(2);
    const unknown = await ddum([p, "frobnicate"]);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain(`unknown action "${p} frobnicate"`);
  }
});

test("user passwd on a terminal: asked twice without echo; a mismatch changes nothing", async () => {
  const t = await fresh();
  await ddum(["user", "add", "alice", "-c", t.cfg]);
  // script(1) gives ddum a pseudo-terminal; each line is typed once its prompt is on the screen
  // (ddum turns echo off before it prints a prompt), never after a guessed pause.
  const prompts = ["New password for alice: ", "Retype the new password: "];
  const typed = async (lines: string[]) => {
    const p = Bun.spawn(["script", "-qec", `${DDUM} user passwd alice -c ${t.cfg}`, "/dev/null"], { stdin: "pipe", stdout: "pipe", stderr: "pipe" });
    const reader = p.stdout.getReader();
    const decoder = new TextDecoder();
    let out = "";
    let seen = 0;
    const waitFor = async (text: string) => {
      while (out.indexOf(text, seen) < 0) {
        const { value, done } = await reader.read();
        if (done) throw new Error(`ddum ended before it asked "${text}"; it printed: ${out}`);
        out += decoder.decode(value, { stream: true });
      }
      seen = out.indexOf(text, seen) + text.length;
    };
    for (const [i, l] of lines.entries()) {
      await waitFor(prompts[i]!);
      p.stdin.write(`${l}\r`);
      await p.stdin.flush();
    }
    p.stdin.end();
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      out += decoder.decode(value, { stream: true });
    }
    return { out, code: await p.exited };
  };
  const ok = await typed(["typed s3cret", "typed s3cret"]);
  expect(ok.out).toContain("New password for alice: ");
  expect(ok.out).toContain("Retype the new password: ");
  expect(ok.out).toContain("user alice: changed LastPasswordChangeDate, Password");
  expect(ok.out).not.toContain("s3cret");
  const hash = String((await items(t.users)).alice!.Password);
  expect(systemCrypt("typed s3cret", hash)).toBe(hash);
  const bad = await typed(["one thing", "another"]);
  expect(bad.out).toContain("the passwords do not match; nothing was changed");
  expect(bad.out).not.toContain("one thing");
  expect(String((await items(t.users)).alice!.Password)).toBe(hash);
});

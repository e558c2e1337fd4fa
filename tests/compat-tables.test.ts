// Tables the old daemon served keep working: its own test scenario replayed, minimal records,
// keys judged one by one, weak hashes warned about, and names over 32 characters refused, each
// on a record's first pass and for a user already in place (the page memo's known pages too).
import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import { type AttributeValue, CreateTableCommand, DeleteTableCommand, ScanCommand } from "@aws-sdk/client-dynamodb";
import { chmodSync, chownSync, existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Admin } from "../src/admin/commands.ts";
import { parseConfig } from "../src/config.ts";
import { makeLogger } from "../src/log.ts";
import { Root } from "../src/paths.ts";
import { authorizedKeys } from "../src/sshkeys.ts";
import { decodeGroups, decodeKnownUserItem, decodeUserItem, isoDateToDays } from "../src/model.ts";
import { ddum, pass, testConfig, writeConfig } from "./helpers/ddum.ts";
import { type Dynamo, groupItem, type Item, startDynalite, userItem } from "./helpers/dynalite.ts";
import { KEY_ALICE, KEY_BOB, KEY_CAROL_RSA } from "./helpers/keys.ts";
import { checkAccounts, cleanupRoots, makeRoot, run, snapshot } from "./helpers/root.ts";

let d: Dynamo;
beforeAll(async () => {
  d = await startDynalite();
});
afterAll(async () => {
  await d.close();
  cleanupRoots();
});
afterEach(async () => {
  for (const t of ["Users", "Groups"]) await d.client.send(new DeleteTableCommand({ TableName: t })).catch(() => {});
});

/** The tables as the old daemon's tests create them: provisioned, with the UIDIndex / GIDIndex global secondary indexes. */
async function oldTables() {
  for (const [table, id, index] of [
    ["Groups", "GID", "GIDIndex"],
    ["Users", "UID", "UIDIndex"],
  ] as const) {
    await d.client.send(
      new CreateTableCommand({
        TableName: table,
        AttributeDefinitions: [
          { AttributeName: "Name", AttributeType: "S" },
          { AttributeName: id, AttributeType: "N" },
        ],
        KeySchema: [{ AttributeName: "Name", KeyType: "HASH" }],
        GlobalSecondaryIndexes: [
          {
            IndexName: index,
            KeySchema: [{ AttributeName: id, KeyType: "HASH" }],
            Projection: { ProjectionType: "KEYS_ONLY" },
            ProvisionedThroughput: { ReadCapacityUnits: 5, WriteCapacityUnits: 5 },
          },
        ],
        BillingMode: "PROVISIONED",
        ProvisionedThroughput: { ReadCapacityUnits: 5, WriteCapacityUnits: 5 },
      }),
    );
  }
}

const line = (root: string, file: string, name: string) =>
  readFileSync(join(root, "etc", file), "utf8")
    .split("\n")
    .find((l) => l.startsWith(`${name}:`));

function expectClean(root: string) {
  const { pwck, grpck } = checkAccounts(root);
  expect(`${pwck.stdout}${pwck.stderr}`).toBe("");
  expect(pwck.code).toBe(0);
  expect(`${grpck.stdout}${grpck.stderr}`).toBe("");
  expect(grpck.code).toBe(0);
}

/** OpenSSH's own fingerprint of a public key. */
const sshFingerprint = (key: string) => run("ssh-keygen", ["-l", "-f", "/dev/stdin"], { input: `${key}\n` }).stdout.split(" ")[1]!;

// The old daemon's tests/test_dynamodb.py, test_scan: its key is not a key (its data does not
// decode), so no sshd would ever use it.
const DUMMY_KEY_1 = `ssh-rsa EXAMPLEKEY${"A".repeat(360)}== example@example.com`;
const REAL_KEY_1 = `${KEY_CAROL_RSA.split(" ").slice(0, 2).join(" ")} example@example.com`;
const fullUser = (n: number, key: string): Item => ({
  Name: { S: `testscan${n}` },
  UID: { N: `600${n}` },
  GID: { N: `600${n}` },
  RealName: { S: `Test User 600${n}` },
  Home: { S: `/home/testscan${n}` },
  Shell: { S: "/bin/bash" },
  LastPasswordChangeDate: { S: "2019-01-01" },
  PasswordAgeMinDays: { N: "2" },
  PasswordAgeMaxDays: { N: "90" },
  PasswordWarnDays: { N: "15" },
  PasswordDisableDays: { N: "0" },
  AccountExpireDate: { S: "2025-01-01" },
  SSHPublicKeys: { SS: [key] },
});
const MINIMAL: Item = { Name: { S: "testscan3" }, UID: { N: "6003" }, GID: { N: "6003" } };

describe("the old daemon's own test scenario (test_scan)", () => {
  test("two full users and one with only Name, UID and GID: accounts, homes, keys and shadow fields, first pass and in place", async () => {
    await oldTables();
    await d.put("Groups", [groupItem("testscan1", 6001, { Members: { SS: ["testscan1"] } }), groupItem("testscan2", 6002, { Members: { SS: ["testscan2"] } })]);
    await d.put("Users", [fullUser(1, DUMMY_KEY_1), fullUser(2, DUMMY_KEY_1), MINIMAL]);
    const root = makeRoot();
    const config = { create_homes: true };

    const r1 = await pass(d, root, { config });
    expect(r1.rejections).toEqual([]);
    expect(r1.plan.refusals).toEqual([]);
    expect(r1.exitCode).toBe(0);
    // The homes, owned by their users, as the old test asserts.
    for (const n of [1, 2]) {
      const st = statSync(join(root, "home", `testscan${n}`));
      expect([st.isDirectory(), st.uid, st.gid]).toEqual([true, 6000 + n, 6000 + n]);
    }
    // The minimal user is present, its fields empty; it gets no home.
    expect(line(root, "passwd", "testscan3")).toBe("testscan3:x:6003:6003:::");
    expect(existsSync(join(root, "home", "testscan3"))).toBe(false);
    // The shadow fields ddum writes for each (no Password: locked; dates as days).
    const d2019 = isoDateToDays("2019-01-01");
    const d2025 = isoDateToDays("2025-01-01");
    expect(line(root, "shadow", "testscan1")).toBe(`testscan1:!:${d2019}:2:90:15:0:${d2025}:`);
    expect(line(root, "shadow", "testscan2")).toBe(`testscan2:!:${d2019}:2:90:15:0:${d2025}:`);
    expect(line(root, "shadow", "testscan3")).toBe("testscan3:!:::::::");
    expect(line(root, "group", "testscan1")).toBe("testscan1:x:6001:testscan1");
    expectClean(root);
    // The dummy key is left out and reported; the accounts apply without it.
    const keyWarnings = r1.warnings.filter((w) => w.field === "SSHPublicKeys");
    expect(keyWarnings.map((w) => w.name).sort()).toEqual(['"testscan1"', '"testscan2"']);
    for (const w of keyWarnings) expect(w.reason).toMatch(/^key 1 of 1 \(no fingerprint: no key data decodes\) is left out: key data does not encode a ssh-rsa key/);
    expect(existsSync(join(root, "home", "testscan1", ".ssh", "authorized_keys"))).toBe(false);
    const minimalWarnings = r1.warnings.filter((w) => w.name === '"testscan3"').map((w) => `${w.field}: ${w.reason}`);
    expect(minimalWarnings).toEqual([
      "RealName: is missing; read as empty",
      expect.stringMatching(/^Home: is missing; .*no home directory is made and no SSH key is written into a home/),
      expect.stringMatching(/^Shell: is missing; .*\/bin\/sh/),
    ]);

    // The same users with a key sshd can use: the key is written, as the old test asserts.
    await d.put("Users", [fullUser(1, REAL_KEY_1), fullUser(2, REAL_KEY_1)]);
    const r2 = await pass(d, root, { config });
    expect(r2.exitCode).toBe(0);
    expect(readFileSync(join(root, "home", "testscan1", ".ssh", "authorized_keys"), "utf8").trim().split("\n").at(-1)).toBe(REAL_KEY_1);
    expect(statSync(join(root, "home", "testscan1", ".ssh", "authorized_keys")).uid).toBe(6001);
    expect(r2.warnings.map((w) => `${w.name} ${w.field}`)).toEqual(['"testscan3" RealName', '"testscan3" Home', '"testscan3" Shell']);

    // Already in place: a pass that knows the page from the memo finds the same, writes nothing.
    const before = snapshot(root);
    const r3 = await pass(d, root, { config });
    expect(r3.memo.known).toBe(1);
    expect(r3.written).toEqual([]);
    // Users and their groups counted apart, the user private groups among them.
    expect(r3.counts).toMatchObject({ created: 0, updated: 0, unchanged: 6, refused: 0, rejected: 0, users: { unchanged: 3 }, groups: { unchanged: 3 } });
    expect(r3.warnings).toEqual(r2.warnings);
    expect(snapshot(root)).toEqual(before);
    expect(existsSync(join(root, "home", "testscan3"))).toBe(false);
    // Nothing reads keys for a user without a home, even a file that would pass for theirs.
    mkdirSync(join(root, ".ssh"), { mode: 0o700 });
    writeFileSync(join(root, ".ssh", "authorized_keys"), `${KEY_ALICE}\n`);
    chownSync(join(root, ".ssh", "authorized_keys"), 6003, 6003);
    expect(authorizedKeys(new Root(root), "home", "testscan3")).toEqual([]);
    expect(authorizedKeys(new Root(root), "home", "testscan1")).toEqual([REAL_KEY_1]);
  });
});

describe("minimal records", () => {
  test("keys of a user without Home go to the root-owned key files, never into a home; explicit empty Home and Shell read the same", async () => {
    await d.createTables();
    await d.put("Users", [{ ...MINIMAL, Home: { S: "" }, Shell: { S: "" }, RealName: { S: "" }, SSHPublicKeys: { SS: [KEY_ALICE] } }]);
    const root = makeRoot();
    const r = await pass(d, root, { config: { create_homes: true, ssh_key_location: "/etc/ssh/keys/%u" } });
    expect(r.exitCode).toBe(0);
    expect(line(root, "passwd", "testscan3")).toBe("testscan3:x:6003:6003:::");
    expect(readFileSync(join(root, "etc", "ssh", "keys", "testscan3"), "utf8")).toContain(KEY_ALICE);
    expect(r.warnings.map((w) => `${w.field}: ${w.reason.split(";")[0]}`)).toEqual(["Home: is empty", "Shell: is empty"]);
    expectClean(root);
    // And with keys in homes: no key file anywhere, the notice says why.
    const root2 = makeRoot();
    const r2 = await pass(d, root2, { config: { create_homes: true } });
    expect(r2.exitCode).toBe(0);
    expect(r2.homes.keysWritten).toEqual([]);
    expect(existsSync(join(root2, ".ssh"))).toBe(false);
    expect(existsSync(join(root2, "home"))).toBe(false);
  });
});

describe("SSH keys judged one by one", () => {
  const OPTIONS_KEY = `from="10.0.0.0/8",command="/bin/sh" ${KEY_BOB}`;
  test("a good key, an undecodable key and a key with options: the account and the good key apply, the other two are reported", async () => {
    await d.createTables();
    await d.put("Users", [userItem("alice", 2000, { SSHPublicKeys: { SS: [KEY_ALICE, DUMMY_KEY_1, OPTIONS_KEY] } }), userItem("carol", 2001)]);
    const root = makeRoot();
    const config = { create_homes: true };
    const check = (r: Awaited<ReturnType<typeof pass>>) => {
      expect(r.rejections).toEqual([]);
      expect(r.warnings.every((w) => w.table === "Users" && w.name === '"alice"' && w.field === "SSHPublicKeys")).toBe(true);
      const reasons = r.warnings.map((w) => w.reason);
      expect(reasons.length).toBe(2);
      const options = reasons.find((x) => x.includes("options"))!;
      expect(options).toMatch(/^key [123] of 3 \(SHA256:[A-Za-z0-9+/]{43}\) is left out/);
      expect(options).toContain(`(${sshFingerprint(KEY_BOB)})`);
      const dummy = reasons.find((x) => x !== options)!;
      expect(dummy).toMatch(/^key [123] of 3 \(no fingerprint: no key data decodes\) is left out: key data does not encode a ssh-rsa key/);
      expect(options.slice(0, 5)).not.toBe(dummy.slice(0, 5));
      const file = readFileSync(join(root, "home", "alice", ".ssh", "authorized_keys"), "utf8");
      expect(file).toContain(KEY_ALICE);
      expect(file).not.toContain("EXAMPLEKEY");
      expect(file).not.toContain(KEY_BOB.split(" ")[1]!);
    };
    const r1 = await pass(d, root, { config });
    expect(r1.exitCode).toBe(0);
    expect(line(root, "passwd", "alice")).toBe("alice:x:2000:2000:alice user:/home/alice:/bin/bash");
    check(r1);
    // Already in place, decoded from the memo's known page: the same judgement.
    const r2 = await pass(d, root, { config });
    expect(r2.memo.known).toBe(1);
    expect(r2.written).toEqual([]);
    check(r2);
    expect(r2.warnings).toEqual(r1.warnings);
  });

  test.each(["home", "/etc/ssh/keys/%u"])("keys of %s: a record refused for another field still revokes a key", async (location) => {
    await d.createTables();
    await d.put("Users", [userItem("alice", 2000, { SSHPublicKeys: { SS: [KEY_ALICE, KEY_BOB] } })]);
    const root = makeRoot();
    const config = { create_homes: true, ssh_key_location: location };
    const keyFile = location === "home" ? join(root, "home", "alice", ".ssh", "authorized_keys") : join(root, "etc", "ssh", "keys", "alice");
    expect((await pass(d, root, { config })).exitCode).toBe(0);
    expect(readFileSync(keyFile, "utf8")).toContain(KEY_BOB);
    const accounts = snapshot(root);
    // Bob's key is revoked in the same change that brings a typo in Shell; and a key with options is added.
    await d.put("Users", [userItem("alice", 2000, { Shell: { S: "bin/bash" }, SSHPublicKeys: { SS: [KEY_ALICE, `command="/bin/sh" ${KEY_CAROL_RSA}`] } })]);
    const r = await pass(d, root, { config });
    expect(r.exitCode).toBe(3);
    expect(r.rejections.map((x) => `${x.name} ${x.field}`)).toEqual(['"alice" Shell']);
    expect(r.warnings.map((x) => `${x.name} ${x.field}`)).toEqual(['"alice" SSHPublicKeys']);
    const file = readFileSync(keyFile, "utf8");
    expect(file).toContain(KEY_ALICE);
    expect(file).not.toContain(KEY_BOB.split(" ")[1]!);
    expect(file).not.toContain(KEY_CAROL_RSA.split(" ")[1]!);
    expect(r.homes.keysWritten).toEqual(["alice"]);
    // The account itself is left as it was.
    expect(snapshot(root)).toEqual(accounts);
  });

  test.each([
    ["the shell rule", "Shell", (root: string) => {
      mkdirSync(join(root, "opt", "bad"), { recursive: true, mode: 0o775 });
      chmodSync(join(root, "opt", "bad"), 0o775);
      return { Shell: { S: "/opt/bad/sh" } };
    }],
    ["the plan (a UID change)", "UID", () => ({ UID: { N: "2100" } })],
  ] as const)("a valid record refused later by %s still revokes a key", async (_what, field, change) => {
    await d.createTables();
    await d.put("Users", [userItem("alice", 2000, { SSHPublicKeys: { SS: [KEY_ALICE, KEY_BOB] } })]);
    const root = makeRoot();
    const config = { ssh_key_location: "/etc/ssh/keys/%u" };
    const keyFile = join(root, "etc", "ssh", "keys", "alice");
    expect((await pass(d, root, { config })).exitCode).toBe(0);
    const accounts = snapshot(root);
    await d.put("Users", [userItem("alice", 2000, { ...change(root), SSHPublicKeys: { SS: [KEY_ALICE] } } as Record<string, AttributeValue>)]);
    const r = await pass(d, root, { config });
    expect(r.exitCode).toBe(3);
    expect([...r.rejections, ...r.plan.refusals].map((x) => `${x.name} ${x.field}`)).toEqual([`"alice" ${field}`]);
    expect(readFileSync(keyFile, "utf8")).not.toContain(KEY_BOB.split(" ")[1]!);
    expect(readFileSync(keyFile, "utf8")).toContain(KEY_ALICE.split(" ")[1]!);
    expect(r.homes.keysWritten).toEqual(["alice"]);
    expect(snapshot(root)).toEqual(accounts);
  });

  test("a refused record never touches the keys of an account ddum does not manage", async () => {
    await d.createTables();
    const root = makeRoot();
    expect(run("useradd", ["-R", root, "-u", "2500", "-U", "-m", "localbob"]).code).toBe(0);
    const ssh = join(root, "home", "localbob", ".ssh");
    mkdirSync(ssh, { mode: 0o700 });
    writeFileSync(join(ssh, "authorized_keys"), `${KEY_BOB}\n`);
    await d.put("Users", [userItem("localbob", 2500, { Shell: { S: "bin/sh" }, SSHPublicKeys: { SS: [KEY_ALICE] } })]);
    const r = await pass(d, root, { config: { create_homes: true } });
    expect(r.rejections.map((x) => x.field)).toEqual(["Shell"]);
    expect(r.homes.keysWritten).toEqual([]);
    expect(readFileSync(join(ssh, "authorized_keys"), "utf8")).toBe(`${KEY_BOB}\n`);
  });
});

describe("names longer than 32 characters", () => {
  const N32 = `u${"x".repeat(31)}`;
  const N33 = `u${"x".repeat(32)}`;
  test("are refused for users and groups with the reason; 32 characters apply and pass pwck/grpck", async () => {
    await d.createTables();
    await d.put("Users", [userItem(N32, 2000), userItem(N33, 2001)]);
    await d.put("Groups", [groupItem(`g${"x".repeat(32)}`, 3000), groupItem("devs", 3001, { Members: { SS: [N32, N33] } })]);
    const root = makeRoot();
    const r = await pass(d, root);
    expect(r.exitCode).toBe(3);
    const why = r.rejections.map((x) => `${x.table} ${x.field}`);
    expect(why.sort()).toEqual(["Groups Name", "Users Name"]);
    for (const x of r.rejections) expect(x.reason).toMatch(/at most 32 characters: .*useradd.*pwck.*utmp/);
    // A group listing such a name applies without it.
    expect(r.warnings.map((x) => `${x.table} ${x.name} ${x.field}`)).toEqual(['Groups "devs" Members']);
    expect(r.warnings[0]!.reason).toContain(`entry "${N33}" is longer than 32 characters`);
    expect(line(root, "group", "devs")).toBe(`devs:x:3001:${N32}`);
    expect(line(root, "passwd", N32)).toBe(`${N32}:x:2000:2000:${N32} user:/home/${N32}:/bin/bash`);
    expect(line(root, "passwd", N33)).toBeUndefined();
    expectClean(root);
  });

  test("a user already in place under a 33-character name (made by the old daemon) is refused and left exactly as it is, pass after pass", async () => {
    await d.createTables();
    const root = makeRoot();
    const seeded = [
      ["passwd", `${N33}:x:2001:2001:old:/home/${N33}:/bin/bash`],
      ["shadow", `${N33}:!:19000:0:99999:7:::`],
      ["group", `${N33}:x:2001:`],
      ["gshadow", `${N33}:!::`],
    ] as const;
    for (const [f, l] of seeded) {
      writeFileSync(join(root, "etc", f), `${readFileSync(join(root, "etc", f), "utf8")}${l}\n`);
    }
    const state = join(root, "var", "lib", "ddum");
    mkdirSync(state, { recursive: true, mode: 0o700 });
    writeFileSync(join(state, "state.json"), JSON.stringify({ version: 1, ownership: { users: [N33, "alice"], groups: [N33], members: {}, admins: {} } }));
    await d.put("Users", [userItem(N33, 2001, { RealName: { S: "old" }, SSHPublicKeys: { SS: [KEY_ALICE] } }), userItem("alice", 2000)]);
    const config = { missing_users: "disable", ssh_key_location: "/etc/ssh/keys/%u" };
    for (let i = 0; i < 2; i++) {
      const r = await pass(d, root, { config });
      expect(r.exitCode).toBe(3);
      expect(r.rejections.map((x) => `${x.name} ${x.field}`)).toEqual([`"${N33}" Name`]);
      // Not disabled either (a refused record has not left the table): every line as it was.
      for (const [f, l] of seeded) expect(line(root, f, N33)).toBe(l);
      expect(line(root, "passwd", "alice")).toBe("alice:x:2000:2000:alice user:/home/alice:/bin/bash");
      // Its keys still follow the table: the account exists and is ddum's.
      expect(readFileSync(join(root, "etc", "ssh", "keys", N33), "utf8")).toContain(KEY_ALICE);
    }
    await d.put("Users", [userItem(N33, 2001, { RealName: { S: "old" }, SSHPublicKeys: { SS: [KEY_BOB] } })]);
    const r = await pass(d, root, { config });
    expect(r.homes.keysWritten).toEqual([N33]);
    const keys = readFileSync(join(root, "etc", "ssh", "keys", N33), "utf8");
    expect([keys.includes(KEY_BOB), keys.includes(KEY_ALICE.split(" ")[1]!)]).toEqual([true, false]);
    // A long name that the old daemon could not have made either never carries keys.
    const keysOf = (n: string) => {
      const dec = decodeUserItem("Users")(userItem(n, 2003, { SSHPublicKeys: { SS: [KEY_BOB] } }));
      return dec.kind === "rejected" ? (dec.keys ?? null) : "accepted";
    };
    expect(keysOf(N33)).toEqual([KEY_BOB]);
    for (const n of [`${N33}\n`, `${N33}/x`, `-${N33}`, "1".repeat(33), "x".repeat(257)]) expect(keysOf(n)).toBeNull();
  });

  test("the admin commands refuse them before writing anything", async () => {
    await d.createTables();
    const { config } = parseConfig(testConfig(d));
    const admin = await Admin.open(config, makeLogger({ level: "error" }), { root: makeRoot() });
    try {
      await expect(admin.userAdd(N33, {})).rejects.toThrow(/refused, nothing was written[\s\S]*at most 32 characters/);
      await expect(admin.groupAdd(`g${"x".repeat(32)}`, {})).rejects.toThrow(/refused, nothing was written[\s\S]*at most 32 characters/);
      await expect(admin.groupAdd("devs", { member: [N33] })).rejects.toThrow(/refused, nothing was written[\s\S]*Members: entry "ux+" is longer than 32 characters/);
    } finally {
      admin.close();
    }
    for (const t of ["Users", "Groups"]) expect((await d.client.send(new ScanCommand({ TableName: t }))).Items).toEqual([]);
  });
});

describe("each key judged on its own, on the first reading and on a known page", () => {
  const cases: [string, string, RegExp, string | null][] = [
    ["a key on two lines", `${KEY_ALICE}\nssh-ed25519 AAAA`, /single line/, "alice"],
    ["a key of an unknown type", "ssh-foo AAAA", /known key type/, null],
    ["a key with options", `command="/bin/sh" ${KEY_ALICE}`, /options before the key are not accepted/, "alice"],
    ["key data of another type", `ssh-rsa ${KEY_ALICE.split(" ")[1]}`, /does not encode a ssh-rsa key/, "alice"],
    ["key data that is not base64", "ssh-ed25519 !!!!", /base64/, null],
  ];
  test.each(cases)("%s is left out, the record and the other key apply", (_what, key, why, fp) => {
    for (const decode of [decodeUserItem("Users"), decodeKnownUserItem("Users")]) {
      const dec = decode(userItem("eve", 2000, { SSHPublicKeys: { SS: [KEY_BOB, key] } }));
      expect(dec.kind).toBe("ok");
      if (dec.kind !== "ok") continue;
      expect(dec.ok.sshKeys).toEqual([KEY_BOB]);
      expect(dec.warnings!.length).toBe(1);
      const w = dec.warnings![0]!;
      expect([w.table, w.name, w.field]).toEqual(["Users", '"eve"', "SSHPublicKeys"]);
      expect(w.reason).toMatch(/^key 2 of 2 /);
      expect(w.reason).toMatch(why);
      expect(w.reason).toContain(fp === null ? "(no fingerprint" : `(${sshFingerprint(KEY_ALICE)})`);
    }
  });
});

describe("ddum check: rejections and warnings", () => {
  test("warnings alone exit 0; a rejection exits 3; both are listed apart, in text and JSON", async () => {
    await d.createTables();
    const md5 = run("openssl", ["passwd", "-1", "-salt", "abcdefgh", "secret"]).stdout.trim();
    await d.put("Users", [MINIMAL, userItem("alice", 2000, { Password: { S: md5 }, SSHPublicKeys: { SS: [KEY_ALICE, `from="::1" ${KEY_BOB}`] } })]);
    const cfg = writeConfig(d);
    const text = await ddum(["check", "-c", cfg]);
    expect(text.code).toBe(0);
    expect(text.stdout).not.toContain("rejected:");
    const warned = text.stdout.split("\n").filter((l) => l.startsWith("warning: "));
    expect(warned.map((l) => l.split(":").slice(1, 3).join(":"))).toEqual([
      ' Users record "testscan3": RealName',
      ' Users record "testscan3": Home',
      ' Users record "testscan3": Shell',
      ' Users record "alice": Password',
      ' Users record "alice": SSHPublicKeys',
    ]);
    expect(text.stdout).toContain("md5crypt, a legacy method");
    expect(text.stdout).not.toContain(md5);
    expect(text.stdout).toContain("2 users and 0 groups read: 2 valid, 0 rejected, 5 warnings (applied anyway)");
    await d.put("Users", [userItem("bob", 2001, { Shell: { S: "bash" } })]);
    const json = await ddum(["check", "--json", "-c", cfg]);
    expect(json.code).toBe(3);
    const doc = JSON.parse(json.stdout);
    expect(doc.rejections.map((r: { name: string; field: string }) => `${r.name} ${r.field}`)).toEqual(["bob Shell"]);
    expect(doc.warnings.length).toBe(5);
    expect(doc.summary).toEqual({ users: 3, groups: 0, valid: 2, rejected: 1, warnings: 5 });
  });
});

describe("password fields of users already in place", () => {
  test("a hash the old daemon wrote ($6$ salt with '-', md5crypt) is in place, pass after pass; '!!' before a plaintext is refused and its line kept", async () => {
    await d.createTables();
    const sha = run("openssl", ["passwd", "-6", "-salt", "ab-cd", "secret"]).stdout.trim();
    const md5 = run("openssl", ["passwd", "-1", "-salt", "x-y", "secret"]).stdout.trim();
    const root = makeRoot();
    const lines = [
      ["ann", 2000, sha],
      ["bea", 2001, md5],
      ["cid", 2002, "!!secret"],
    ] as const;
    for (const [f, make] of [
      ["passwd", (n: string, id: number) => `${n}:x:${id}:${id}:${n} user:/home/${n}:/bin/bash`],
      ["shadow", (n: string, _id: number, pw: string) => `${n}:${pw}:19000::::::`],
      ["group", (n: string, id: number) => `${n}:x:${id}:`],
      ["gshadow", (n: string) => `${n}:!::`],
    ] as const) {
      const add = lines.map(([n, id, pw]) => make(n, id, pw)).join("\n");
      writeFileSync(join(root, "etc", f), `${readFileSync(join(root, "etc", f), "utf8")}${add}\n`);
    }
    const state = join(root, "var", "lib", "ddum");
    mkdirSync(state, { recursive: true, mode: 0o700 });
    writeFileSync(join(state, "state.json"), JSON.stringify({ version: 1, ownership: { users: ["ann", "bea", "cid"], groups: ["ann", "bea", "cid"], members: {}, admins: {} } }));
    await d.put("Users", lines.map(([n, id, pw]) => userItem(n, id, { Password: { S: pw }, LastPasswordChangeDate: { S: "2022-01-08" } })));
    expect(isoDateToDays("2022-01-08")).toBe(19000);
    const before = snapshot(root);
    for (let i = 0; i < 2; i++) {
      const r = await pass(d, root);
      expect(r.written).toEqual([]);
      expect(r.counts).toMatchObject({ created: 0, updated: 0, unchanged: 5, refused: 0, rejected: 1, users: { unchanged: 2, rejected: 1 }, groups: { unchanged: 3 } });
      expect(r.rejections.map((x) => `${x.name} ${x.field}`)).toEqual(['"cid" Password']);
      expect(r.rejections[0]!.reason).toContain("value not shown");
      expect(r.warnings.map((x) => `${x.name} ${x.field}`)).toEqual(['"bea" Password']);
      expect(snapshot(root)).toEqual(before);
    }
  });
});

describe("the known-page decoder gives every changed rule's verdict", () => {
  const md5 = "$1$x-y$j8LHAoRdAcJL/Ds3JJurk1"; // openssl passwd -1 -salt x-y secret
  test.each([
    ["only Name, UID and GID", MINIMAL, "ok", ["RealName", "Home", "Shell"]],
    ["a 33-character name", userItem(`u${"x".repeat(32)}`, 2000), "rejected", []],
    ["a legacy hash", userItem("eve", 2000, { Password: { S: md5 } }), "ok", ["Password"]],
    ["a key with options", userItem("eve", 2000, { SSHPublicKeys: { SS: [`from="::1" ${KEY_BOB}`] } }), "ok", ["SSHPublicKeys"]],
    ["'!!' before a plaintext", userItem("eve", 2000, { Password: { S: "!!secret" } }), "rejected", []],
  ] as const)("%s", (_what, item, kind, warned) => {
    const full = decodeUserItem("Users")(item);
    const known = decodeKnownUserItem("Users")(item);
    expect(known).toEqual(full);
    expect(known.kind).toBe(kind);
    expect((known.kind === "reserved" ? [] : (known.warnings ?? [])).map((w) => w.field)).toEqual([...warned]);
  });
});

test("a group's legacy hash applies with a warning; a group's '!' before a plaintext is refused", () => {
  const md5 = "$1$x-y$j8LHAoRdAcJL/Ds3JJurk1"; // openssl passwd -1 -salt x-y secret
  const r = decodeGroups("Groups", [groupItem("devs", 3000, { Password: { S: md5 } }), groupItem("ops", 3001, { Password: { S: "!secret" } })]);
  expect(r.records.map((g) => [g.name, g.password])).toEqual([["devs", md5]]);
  expect(r.warnings.map((w) => `${w.table} ${w.name} ${w.field}`)).toEqual(['Groups "devs" Password']);
  expect(r.warnings[0]!.reason).toContain("md5crypt");
  expect(r.rejections.map((w) => `${w.name} ${w.field}`)).toEqual(['"ops" Password']);
});

test("user show lists the warnings hosts apply a record with, and names a legacy hash's method", async () => {
  await d.createTables();
  const md5 = "$1$x-y$j8LHAoRdAcJL/Ds3JJurk1"; // openssl passwd -1 -salt x-y secret
  await d.put("Users", [{ ...MINIMAL, Password: { S: md5 }, SSHPublicKeys: { SS: [KEY_ALICE, `command="x" ${KEY_BOB}`] } }]);
  const { config } = parseConfig(testConfig(d));
  const admin = await Admin.open(config, makeLogger({ level: "error" }), { root: makeRoot() });
  const out: string[] = [];
  const write = process.stdout.write;
  process.stdout.write = ((s: string) => out.push(s) > 0) as typeof process.stdout.write;
  try {
    expect(await admin.userShow("testscan3", {})).toBe(0);
    await admin.userShow("testscan3", { json: true });
  } finally {
    process.stdout.write = write;
    admin.close();
  }
  const text = out.slice(0, -1).join("");
  expect(text).toContain("md5crypt hash");
  expect(text).toContain("Valid: yes");
  expect(text).toMatch(/Warnings \(hosts apply it anyway\):\n {2}RealName: is missing[\s\S]*\n {2}Password: uses md5crypt[\s\S]*\n {2}SSHPublicKeys: key [12] of 2/);
  expect(text).not.toContain(md5);
  const doc = JSON.parse(out.at(-1)!);
  expect(doc.valid).toBe(true);
  expect(doc.warnings.map((w: string) => w.split(":")[0])).toEqual(["RealName", "Home", "Shell", "Password", "SSHPublicKeys"]);
});

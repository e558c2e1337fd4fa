// Decoding a table's items, with exact answers: the cross-record check (records sharing an ID are
// all refused, each told who else has it, their keys still serve a key-only account), which
// refused records still give their keys, ddum's own items skipped, keys judged one at a time, and
// key fingerprints as OpenSSH prints them (checked against ssh-keygen itself). In-process and
// fast: the mutation run's tests for model.ts's decoding.
import { describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { decodeGroups, decodeUsers, keyFingerprint } from "../src/model.ts";
import { groupItem, userItem } from "./helpers/dynalite.ts";
import { KEY_ALICE, KEY_BOB, KEY_CAROL_RSA } from "./helpers/keys.ts";

const bare = (k: string) => k.split(" ").slice(0, 2).join(" ");

/** ssh-keygen's own fingerprint of a public key line. */
function sshKeygenFingerprint(line: string): string {
  const dir = mkdtempSync(join(tmpdir(), "ddum-fp-"));
  try {
    writeFileSync(join(dir, "k.pub"), `${line}\n`);
    const r = Bun.spawnSync(["ssh-keygen", "-l", "-E", "sha256", "-f", join(dir, "k.pub")]);
    if (r.exitCode !== 0) throw new Error(`ssh-keygen: ${r.stderr.toString()}`);
    return r.stdout.toString().split(" ")[1]!;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

describe("records that share an ID", () => {
  test("all of them are refused, each told the others' names; the rest decode; their keys still serve", () => {
    const d = decodeUsers("Users", [
      userItem("a", 2000, { SSHPublicKeys: { SS: [KEY_ALICE] } }),
      userItem("b", 2000),
      userItem("c", 2000, { SSHPublicKeys: { SS: [KEY_BOB] } }),
      userItem("d", 2001),
    ]);
    expect(d.records.map((r) => r.name)).toEqual(["d"]);
    expect(d.rejected).toBe(3);
    expect(d.rejections).toEqual([
      { table: "Users", name: '"a"', field: "UID", reason: '2000 is also used by "b", "c"; both are refused until one is changed' },
      { table: "Users", name: '"b"', field: "UID", reason: '2000 is also used by "a", "c"; both are refused until one is changed' },
      { table: "Users", name: '"c"', field: "UID", reason: '2000 is also used by "a", "b"; both are refused until one is changed' },
    ]);
    expect(d.keysOnly).toEqual([
      { name: "a", keys: [KEY_ALICE] },
      { name: "b", keys: [] },
      { name: "c", keys: [KEY_BOB] },
    ]);
  });

  test("groups: the same, by GID, with no keys", () => {
    const d = decodeGroups("Groups", [groupItem("x", 3000), groupItem("y", 3000), groupItem("z", 3001)]);
    expect(d.records.map((g) => g.name)).toEqual(["z"]);
    expect(d.rejections.map((r) => [r.name, r.field, r.reason])).toEqual([
      ['"x"', "GID", '3000 is also used by "y"; both are refused until one is changed'],
      ['"y"', "GID", '3000 is also used by "x"; both are refused until one is changed'],
    ]);
    expect(d.keysOnly).toEqual([]);
  });

  test("no two alike: every record, nothing refused", () => {
    const d = decodeUsers("Users", [userItem("a", 2002), userItem("b", 2000), userItem("c", 2001)]);
    expect(d.records.map((r) => r.name)).toEqual(["a", "b", "c"]);
    expect(d.rejected).toBe(0);
    expect(d.keysOnly).toEqual([]);
  });
});

describe("a refused record's keys", () => {
  test("still apply when its name and key set could be read (another field is at fault)", () => {
    const d = decodeUsers("Users", [userItem("eve", 2000, { Shell: { S: "sh" }, SSHPublicKeys: { SS: [KEY_ALICE] } })]);
    expect(d.rejections.map((r) => r.field)).toEqual(["Shell"]);
    expect(d.keysOnly).toEqual([{ name: "eve", keys: [KEY_ALICE] }]);
  });

  test("do not when the key set itself is at fault, or the name is", () => {
    const badKeys = decodeUsers("Users", [userItem("eve", 2000, { Shell: { S: "sh" }, SSHPublicKeys: { S: KEY_ALICE } })]);
    expect(badKeys.rejections.map((r) => r.field).sort()).toEqual(["SSHPublicKeys", "Shell"]);
    expect(badKeys.keysOnly).toEqual([]);
    const badName = decodeUsers("Users", [userItem("eve\nroot", 2000, { SSHPublicKeys: { SS: [KEY_ALICE] } })]);
    expect(badName.rejections.map((r) => r.field)).toContain("Name");
    expect(badName.keysOnly).toEqual([]);
  });

  test("do, for a name refused only for its length (one the old daemon made), but not an all-digit one", () => {
    const long = "a".repeat(40);
    const d = decodeUsers("Users", [userItem(long, 2000, { SSHPublicKeys: { SS: [KEY_ALICE] } })]);
    expect(d.rejections.map((r) => r.field)).toEqual(["Name"]);
    expect(d.keysOnly).toEqual([{ name: long, keys: [KEY_ALICE] }]);
    const digits = "1".repeat(40);
    expect(decodeUsers("Users", [userItem(digits, 2000, { SSHPublicKeys: { SS: [KEY_ALICE] } })]).keysOnly).toEqual([]);
  });
});

describe("items that are not records", () => {
  test("ddum's own items (#version, reservations) are skipped: neither records nor refused", () => {
    const d = decodeUsers("Users", [{ Name: { S: "#version" }, Version: { N: "7" } }, userItem("a", 2000)]);
    expect(d.records.map((r) => r.name)).toEqual(["a"]);
    expect(d.rejected).toBe(0);
    expect(d.rejections).toEqual([]);
  });

  test("an item without a Name, or with a Name that is not a string, is refused, not skipped", () => {
    const { Name: _drop, ...noName } = userItem("a", 2000);
    const d = decodeUsers("Users", [noName, { ...userItem("b", 2001), Name: { N: "5" } }]);
    expect(d.records).toEqual([]);
    expect(d.rejected).toBe(2);
    expect(d.rejections.map((r) => r.field)).toEqual(["Name", "Name"]);
  });

  test("any other name starting with # is a record, and refused as one", () => {
    const d = decodeUsers("Users", [userItem("#other", 2000)]);
    expect(d.records).toEqual([]);
    expect(d.rejections.map((r) => [r.name, r.field])).toEqual([['"#other"', "Name"]]);
  });
});

describe("keys judged one at a time", () => {
  test("a bad key before good ones is left out and said (its position, no fingerprint); the good ones all apply, sorted", () => {
    const d = decodeUsers("Users", [userItem("a", 2000, { SSHPublicKeys: { SS: ["ssh-rsa AAAA", KEY_CAROL_RSA, KEY_ALICE] } })]);
    expect(d.records[0]!.sshKeys).toEqual([KEY_ALICE, KEY_CAROL_RSA].sort());
    expect(d.warnings).toHaveLength(1);
    expect(d.warnings[0]!.field).toBe("SSHPublicKeys");
    expect(d.warnings[0]!.reason).toStartWith("key 1 of 3 (no fingerprint: no key data decodes) is left out: ");
    expect(d.warnings[0]!.reason).toEndWith("; the account and the other keys apply");
  });

  test("a key with options is left out with its fingerprint", () => {
    const d = decodeUsers("Users", [userItem("a", 2000, { SSHPublicKeys: { SS: [KEY_ALICE, `command="/bin/true" ${KEY_BOB}`] } })]);
    expect(d.records[0]!.sshKeys).toEqual([KEY_ALICE]);
    expect(d.warnings.map((w) => w.reason.split(")")[0])).toEqual([`key 2 of 2 (${sshKeygenFingerprint(KEY_BOB)}`]);
  });

  test("a record with warnings and a fault: both reported", () => {
    const d = decodeUsers("Users", [userItem("a", 2000, { Shell: { S: "sh" }, SSHPublicKeys: { SS: ["ssh-rsa AAAA", KEY_ALICE] } })]);
    expect(d.rejections.map((r) => r.field)).toEqual(["Shell"]);
    expect(d.warnings.map((w) => w.field)).toEqual(["SSHPublicKeys"]);
    expect(d.keysOnly).toEqual([{ name: "a", keys: [KEY_ALICE] }]);
  });
});

describe("keyFingerprint", () => {
  test.each([
    ["ed25519, with a comment", KEY_ALICE],
    ["ed25519, bare", bare(KEY_BOB)],
    ["rsa", KEY_CAROL_RSA],
  ])("as ssh-keygen prints it: %s", (_what, key) => {
    expect(keyFingerprint(key)).toBe(sshKeygenFingerprint(key));
    expect(keyFingerprint(key)).toMatch(/^SHA256:[A-Za-z0-9+/]{43}$/);
  });

  test("the key data after options and spaces or tabs; the first word that decodes as a known key type", () => {
    const fp = sshKeygenFingerprint(KEY_ALICE);
    expect(keyFingerprint(`from="10.0.0.0/8",no-pty\t${KEY_ALICE.replace(" ", "\t \t")}`)).toBe(fp);
    // A word of base64 that is no key (too short, or not naming a key type) is passed over.
    expect(keyFingerprint(`ssh-ed25519 AAAAB3Nz ${bare(KEY_ALICE).split(" ")[1]}`)).toBe(fp);
  });

  test.each([
    ["no key data", "ssh-ed25519"],
    ["a short word", "ssh-ed25519 AAAA"],
    ["a length that is no multiple of 4", `ssh-ed25519 ${bare(KEY_ALICE).split(" ")[1]!.slice(0, -1)}`],
    ["characters outside base64", `ssh-ed25519 ${bare(KEY_ALICE).split(" ")[1]!.replace("C3", "C!")}`],
    ["padding in the middle", "ssh-ed25519 AAAA=AAAAAAA"],
    // Base64 decoders skip what is not base64: only a word that is base64 through to its end counts.
    ["key data with junk after it", `ssh-ed25519 ${bare(KEY_ALICE).split(" ")[1]}!!!!`],
    ["an unknown key type", `ssh-foo ${Buffer.concat([Buffer.from([0, 0, 0, 7]), Buffer.from("ssh-foo"), Buffer.alloc(8)]).toString("base64")}`],
    ["a type length past the data", `ssh-ed25519 ${Buffer.concat([Buffer.from([0, 0, 0, 40]), Buffer.from("ssh-ed25519")]).toString("base64")}`],
    ["a type length that leaves nothing (3 bytes)", `ssh-ed25519 ${Buffer.from([0, 0, 1, 2, 3, 4]).toString("base64")}`],
  ])("none for %s", (_what, key) => {
    expect(keyFingerprint(key)).toBeNull();
  });
});

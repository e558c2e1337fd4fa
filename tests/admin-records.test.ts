// Pure parts of the admin commands: table-driven.
import { describe, expect, test } from "bun:test";
import { diffUpdate, firstFree, fingerprint, keysMatching, parseCount, parseDate, parseId, parseKeys, shadowAttrs, describePassword } from "../src/admin/records.ts";
import { joinCommandWords, protectValues } from "../src/cli.ts";
import { KEY_ALICE, KEY_BOB } from "./helpers/keys.ts";
import { run } from "./helpers/root.ts";

describe("joinCommandWords", () => {
  const names = ["user add", "user key add", "user key remove", "user", "tables create", "sync"];
  test.each([
    [["user", "add", "alice"], ["user add", "alice"]],
    [["user", "key", "add", "alice", "k"], ["user key add", "alice", "k"]],
    [["user", "key", "alice"], ["user", "key", "alice"]],
    [["user"], ["user"]],
    [["sync", "--dry-run"], ["sync", "--dry-run"]],
    [["tables", "create", "-c", "x"], ["tables create", "-c", "x"]],
    [["add", "user"], ["add", "user"]],
  ])("%j", (args, want) => expect(joinCommandWords(args, names)).toEqual(want));
});

describe("protectValues keeps option values as typed", () => {
  const takes = new Set(["realName", "c", "sshKey", "uid"]);
  test.each([
    [["--real-name", "007"], ["--real-name", "\u0001007"]],
    [["--real-name=", "x"], ["--real-name=\u0001", "x"]],
    [["--ssh-key", "-", "alice"], ["--ssh-key", "\u0001-", "alice"]],
    [["-c", "f", "--json"], ["-c", "\u0001f", "--json"]],
    [["--json", "1"], ["--json", "1"]],
    [["--", "--uid", "1"], ["--", "--uid", "1"]],
  ])("%j", (args, want) => expect(protectValues(args, takes)).toEqual(want));
});

describe("diffUpdate", () => {
  const base = { Name: { S: "a" }, UID: { N: "1000" }, Shell: { S: "/bin/sh" }, SSHPublicKeys: { SS: ["k2", "k1"] } };
  test("nothing changed (sets compared in any order)", () => {
    expect(diffUpdate(base, { ...base, SSHPublicKeys: { SS: ["k1", "k2"] } })).toBeNull();
  });
  test("set, add and remove, each conditional on what was read", () => {
    const { Shell: _s, ...noShell } = base;
    const u = diffUpdate(base, { ...noShell, UID: { N: "1001" }, RealName: { S: "A" } })!;
    expect(u.changed).toEqual(["RealName", "Shell", "UID"]);
    expect(u.UpdateExpression).toBe("SET #a0 = :n0, #a3 = :n3 REMOVE #a2");
    expect(u.ConditionExpression).toBe("attribute_exists(#k) AND attribute_not_exists(#a0) AND #a2 = :o2 AND #a3 = :o3");
    expect(u.ExpressionAttributeNames).toEqual({ "#k": "Name", "#a0": "RealName", "#a2": "Shell", "#a3": "UID" });
    expect(u.ExpressionAttributeValues).toEqual({ ":n0": { S: "A" }, ":o2": { S: "/bin/sh" }, ":o3": { N: "1000" }, ":n3": { N: "1001" } });
  });
});

test.each([
  [1000, 1005, [], 1000],
  [1000, 1005, [1000, 1001, 1003], 1002],
  [1000, 1002, [1000, 1001, 1002], null],
])("firstFree(%d, %d) skipping %j is %j", (min, max, taken, want) => {
  expect(firstFree(min, max, (n) => (taken as number[]).includes(n))).toBe(want);
});

test("fingerprint matches ssh-keygen -l; keysMatching by key, data or fingerprint", () => {
  const fp = run("ssh-keygen", ["-lf", "/dev/stdin"], { input: `${KEY_ALICE}\n` }).stdout.split(" ")[1];
  expect(fingerprint(KEY_ALICE)).toBe(fp!);
  const stored = [KEY_ALICE, KEY_BOB];
  expect(keysMatching(stored, fp!)).toEqual([KEY_ALICE]);
  expect(keysMatching(stored, KEY_BOB.split(" ")[1]!)).toEqual([KEY_BOB]);
  expect(keysMatching(stored, `${KEY_BOB.split(" ").slice(0, 2).join(" ")} other comment`)).toEqual([KEY_BOB]);
  expect(keysMatching(stored, "SHA256:nope")).toEqual([]);
});

describe("option values", () => {
  test.each([
    ["2030-01-31", "2030-01-31"],
    ["today", "1970-01-11"],
  ])("parseDate(%j)", (s, want) => expect(parseDate(s, 10, "--on")).toBe(want));
  test.each(["2030-02-30", "31.01.2030", "yesterday", ""])("parseDate(%j) throws", (s) => expect(() => parseDate(s, 10, "--on")).toThrow("--on: expected a date"));
  test.each([
    ["90", 90],
    ["none", null],
  ])("parseCount(%j)", (s, want) => expect(parseCount(s, "--max-days")).toBe(want));
  test.each(["-1", "1.5", "x", "99999999999"])("parseCount(%j) throws", (s) => expect(() => parseCount(s, "--max-days")).toThrow("--max-days"));
  test.each([
    ["auto", "auto"],
    ["1000", 1000],
  ])("parseId(%j)", (s, want) => expect(parseId(s, "--uid")).toBe(want as number));
  test.each(["-5", "4294967295", "1e3", "abc"])("parseId(%j) throws", (s) => expect(() => parseId(s, "--uid")).toThrow("--uid"));
});

test("parseKeys skips comments and blanks, normalizes, and names file:line of a bad key", () => {
  expect(parseKeys(`# keys\n\n  ${KEY_ALICE.replace(" ", "   ")}  \n${KEY_BOB}\n`, "f")).toEqual([KEY_ALICE, KEY_BOB]);
  expect(() => parseKeys(`${KEY_ALICE}\nno-pty ${KEY_BOB}\n`, "keys.pub")).toThrow("keys.pub:2: SSH key must start with a known key type");
});

test("shadowAttrs maps a shadow entry to the table's fields (days become dates; empty fields are left out)", () => {
  const item = { Name: { S: "a" } };
  shadowAttrs(item, ["a", "$6$x$y", "20000", "0", "90", "14", "", "21000", ""]);
  expect(item).toEqual({
    Name: { S: "a" },
    Password: { S: "$6$x$y" },
    LastPasswordChangeDate: { S: "2024-10-04" },
    PasswordAgeMinDays: { N: "0" },
    PasswordAgeMaxDays: { N: "90" },
    PasswordWarnDays: { N: "14" },
    AccountExpireDate: { S: "2027-07-01" },
  } as never);
});

test.each([
  [undefined, "none (login by SSH key only)"],
  ["!", "locked (!)"],
  ["*", "locked (*)"],
  ["$y$j9T$a$b", "yescrypt hash"],
  ["!$6$a$b", "sha512crypt hash, locked"],
])("describePassword(%j) never shows the hash", (p, want) => expect(describePassword(p)).toBe(want));

import { describe, expect, test } from "bun:test";
import * as v from "valibot";
import { dateSchema, decodeGroups, decodeKnownUserItem, decodeUserItem, decodeUsers, FAST, hasDuplicate, gecosSchema, hashScheme, isoDateToDays, isPasswordField, nameSchema, passwordSchema, passwordWarning, pathSchema, normalizeKey, printable, rejectionMessage, shellSchema, sshKeyProblem, sshKeyProblemReference } from "../src/model.ts";
import type { RawItem } from "../src/source/dynamo.ts";
import { groupItem, userItem } from "./helpers/dynalite.ts";
import { KEY_ALICE, KEY_CAROL_RSA } from "./helpers/keys.ts";

const ED25519 = KEY_ALICE;
const ED25519_BARE = KEY_ALICE.split(" ").slice(0, 2).join(" ");
const SHA512 = "$6$saltsalt$qFmFH.bQmmtXzyBY0s9v7Oicd2z4XSIecDzlB5KiA2/jctKu9YterLp8wwnSq.qc.eoxqOmSuNp2xS0ktL3nh/";

describe("users: a hostile-record corpus, each refused with its own message", () => {
  const cases: { name: string; item: RawItem; field: string; reason: RegExp }[] = [
    { name: "newline in Name", item: userItem("eve\nroot", 2000), field: "Name", reason: /letters, digits/ },
    { name: "newline in RealName", item: userItem("eve", 2000, { RealName: { S: "Eve\nroot::0:0::/root:/bin/bash" } }), field: "RealName", reason: /newline/ },
    { name: "colon in RealName", item: userItem("eve", 2000, { RealName: { S: "Eve:x" } }), field: "RealName", reason: /':'/ },
    { name: "NUL in RealName", item: userItem("eve", 2000, { RealName: { S: "Eve\0" } }), field: "RealName", reason: /NUL/ },
    { name: "vertical tab in RealName", item: userItem("eve", 2000, { RealName: { S: "E\vve" } }), field: "RealName", reason: /vertical tab/ },
    { name: "carriage return in RealName", item: userItem("eve", 2000, { RealName: { S: "E\rve" } }), field: "RealName", reason: /carriage return/ },
    { name: "257-character RealName", item: userItem("eve", 2000, { RealName: { S: "x".repeat(257) } }), field: "RealName", reason: /256/ },
    // C1 controls reach a terminal raw (U+009B is CSI); so do the Unicode line separators.
    { name: "C1 CSI in RealName", item: userItem("eve", 2000, { RealName: { S: "Eve\u009b31m" } }), field: "RealName", reason: /control characters/ },
    { name: "C1 CSI in Shell", item: userItem("eve", 2000, { Shell: { S: "/bin/bash\u009b31m" } }), field: "Shell", reason: /control characters/ },
    { name: "line separator in Home", item: userItem("eve", 2000, { Home: { S: "/home/eve\u2028x" } }), field: "Home", reason: /control characters/ },
    { name: "newline in Home", item: userItem("eve", 2000, { Home: { S: "/home/eve\n" } }), field: "Home", reason: /control/ },
    { name: "colon in Home", item: userItem("eve", 2000, { Home: { S: "/home/e:ve" } }), field: "Home", reason: /':'/ },
    { name: "relative Home", item: userItem("eve", 2000, { Home: { S: "home/eve" } }), field: "Home", reason: /absolute/ },
    { name: "dot-dot in Home", item: userItem("eve", 2000, { Home: { S: "/home/../etc" } }), field: "Home", reason: /'\.\.'/ },
    { name: "newline in Shell", item: userItem("eve", 2000, { Shell: { S: "/bin/sh\n" } }), field: "Shell", reason: /control/ },
    { name: "colon in Shell", item: userItem("eve", 2000, { Shell: { S: "/bin:/sh" } }), field: "Shell", reason: /':'/ },
    { name: "newline in Password", item: userItem("eve", 2000, { Password: { S: `${SHA512}\nroot` } }), field: "Password", reason: /not a crypt hash/ },
    { name: "colon in Password", item: userItem("eve", 2000, { Password: { S: "$6$a:b$c" } }), field: "Password", reason: /not a crypt hash/ },
    { name: "plaintext Password", item: userItem("eve", 2000, { Password: { S: "hunter2" } }), field: "Password", reason: /value not shown/ },
    { name: "UID stored as a string", item: userItem("eve", 2000, { UID: { S: "2000" } }), field: "UID", reason: /number \(N\), found a string/ },
    { name: "GID stored as a string", item: userItem("eve", 2000, { GID: { S: "2000" } }), field: "GID", reason: /number \(N\)/ },
    { name: "huge UID", item: userItem("eve", 2000, { UID: { N: "99999999999999999999" } }), field: "UID", reason: /from 0 to/ },
    { name: "negative UID", item: userItem("eve", 2000, { UID: { N: "-5" } }), field: "UID", reason: /from 0 to/ },
    { name: "fractional GID", item: userItem("eve", 2000, { GID: { N: "1000.5" } }), field: "GID", reason: /whole number/ },
    { name: "UID in exponent form", item: userItem("eve", 2000, { UID: { N: "2e3" } }), field: "UID", reason: /whole number/ },
    { name: "empty UID", item: userItem("eve", 2000, { UID: { N: "" } }), field: "UID", reason: /whole number/ },
    { name: "UID one above the limit", item: userItem("eve", 2000, { UID: { N: "4294967295" } }), field: "UID", reason: /from 0 to/ },
    { name: "sixteen-digit UID", item: userItem("eve", 2000, { UID: { N: "1000000000000000" } }), field: "UID", reason: /from 0 to/ },
    { name: "negative age", item: userItem("eve", 2000, { PasswordAgeMaxDays: { N: "-1" } }), field: "PasswordAgeMaxDays", reason: /from 0/ },
    { name: "missing UID", item: (() => { const i = userItem("eve", 2000); delete i.UID; return i; })(), field: "UID", reason: /required/ },
    { name: "missing Name", item: (() => { const i = userItem("eve", 2000); delete i.Name; return i; })(), field: "Name", reason: /required/ },
    { name: "bad date 2024-02-30", item: userItem("eve", 2000, { AccountExpireDate: { S: "2024-02-30" } }), field: "AccountExpireDate", reason: /exists on the calendar/ },
    { name: "date in another form", item: userItem("eve", 2000, { LastPasswordChangeDate: { S: "01/02/2024" } }), field: "LastPasswordChangeDate", reason: /YYYY-MM-DD/ },
    { name: "name -rf", item: userItem("-rf", 2000), field: "Name", reason: /must not start with '-'/ },
    { name: "name ..", item: userItem("..", 2000), field: "Name", reason: /'\.\.'/ },
    { name: "name 0", item: userItem("0", 2000), field: "Name", reason: /all digits/ },
    { name: "300-character name", item: userItem("a".repeat(300), 2000), field: "Name", reason: /at most 32 characters: .*useradd/ },
    { name: "empty name", item: userItem("", 2000), field: "Name", reason: /empty/ },
    { name: "SSH keys as a list instead of a set", item: userItem("eve", 2000, { SSHPublicKeys: { L: [{ S: ED25519 }] } }), field: "SSHPublicKeys", reason: /string set \(SS\), found a list/ },
  ];
  for (const c of cases) {
    test(c.name, () => {
      const { records, rejections, rejected } = decodeUsers("Users", [c.item, userItem("good", 3000)]);
      expect(records.map((r) => r.name)).toEqual(["good"]);
      expect(rejected).toBe(1);
      const r = rejections.find((x) => x.field === c.field)!;
      expect(r).toBeDefined();
      expect(r.table).toBe("Users");
      expect(r.field).toBe(c.field);
      expect(r.reason).toMatch(c.reason);
      const msg = rejectionMessage(r);
      expect(msg).not.toContain("\n");
      expect(msg).not.toContain("hunter2");
      expect(msg.startsWith("Users record ")).toBe(true);
    });
  }

  test("every fault of one record is reported", () => {
    const { rejections } = decodeUsers("Users", [userItem("eve", 2000, { UID: { S: "1" }, Shell: { S: "sh" } })]);
    expect(rejections.map((r) => r.field)).toEqual(["UID", "Shell"]);
  });

  test("duplicate UIDs refuse both records", () => {
    const { records, rejections } = decodeUsers("Users", [userItem("a", 2000), userItem("b", 2000), userItem("c", 2001)]);
    expect(records.map((r) => r.name)).toEqual(["c"]);
    expect(rejections.map((r) => `${r.name} ${r.field}`).sort()).toEqual(['"a" UID', '"b" UID']);
    expect(rejections[0]!.reason).toContain("also used by");
  });

  test("a valid record decodes fully", () => {
    const { records, rejections } = decodeUsers("Users", [
      userItem("alice", 2000, {
        Password: { S: SHA512 },
        LastPasswordChangeDate: { S: "2024-01-02" },
        PasswordAgeMinDays: { N: "1" },
        PasswordAgeMaxDays: { N: "90" },
        PasswordWarnDays: { N: "7" },
        PasswordDisableDays: { N: "30" },
        AccountExpireDate: { S: "2030-12-31" },
        SSHPublicKeys: { SS: [ED25519, `  ${ED25519_BARE.replace(" ", "   ")}  `, KEY_CAROL_RSA] },
      }),
    ]);
    expect(rejections).toEqual([]);
    expect(records[0]).toEqual({
      name: "alice",
      uid: 2000,
      gid: 2000,
      realName: "alice user",
      home: "/home/alice",
      shell: "/bin/bash",
      password: SHA512,
      lastChange: 19724,
      minDays: 1,
      maxDays: 90,
      warnDays: 7,
      inactiveDays: 30,
      expire: isoDateToDays("2030-12-31"),
      sshKeys: [ED25519_BARE, ED25519, KEY_CAROL_RSA],
    });
  });

  test.each([
    ["two canonical keys", [KEY_CAROL_RSA, ED25519], [ED25519, KEY_CAROL_RSA]],
    ["two keys, one with extra spaces", [ED25519, ` ${ED25519_BARE} `], [ED25519_BARE, ED25519]],
    ["the same key twice once normalized", [ED25519_BARE, `${ED25519_BARE.replace(" ", "  ")}`], [ED25519_BARE]],
    ["one key with extra spaces", [`${ED25519_BARE}  `], [ED25519_BARE]],
  ])("key lists: %s", (_what, keys, want) => {
    const { records } = decodeUsers("Users", [userItem("alice", 2000, { UID: { N: "0002000" }, SSHPublicKeys: { SS: keys } })]);
    expect([records[0]!.uid, records[0]!.sshKeys]).toEqual([2000, want]);
  });
});

describe("groups", () => {
  const cases: { name: string; item: RawItem; field: string; reason: RegExp }[] = [
    { name: "GID as a string", item: groupItem("devs", 2000, { GID: { S: "2000" } }), field: "GID", reason: /number \(N\)/ },
    { name: "member with a newline", item: groupItem("devs", 2000, { Members: { SS: ["bob\nroot"] } }), field: "Members", reason: /letters/ },
    { name: "administrator -rf", item: groupItem("devs", 2000, { Administrators: { SS: ["-rf"] } }), field: "Administrators", reason: /'-'/ },
    { name: "plaintext group password", item: groupItem("devs", 2000, { Password: { S: "secret" } }), field: "Password", reason: /crypt hash/ },
    { name: "colon in name", item: groupItem("de:vs", 2000), field: "Name", reason: /letters/ },
  ];
  for (const c of cases) {
    test(c.name, () => {
      const { records, rejections } = decodeGroups("Groups", [c.item, groupItem("ok", 3000)]);
      expect(records.map((r) => r.name)).toEqual(["ok"]);
      expect(rejections[0]!.field).toBe(c.field);
      expect(rejections[0]!.reason).toMatch(c.reason);
    });
  }
  test.each([
    [[], []],
    [["bob"], ["bob"]],
    [["bob", "alice"], ["alice", "bob"]],
    [["alice", "bob"], ["alice", "bob"]],
    [["b", "B", "a"], ["B", "a", "b"]],
  ])("member and administrator lists are sorted: %j", (list, want) => {
    const { records } = decodeGroups("Groups", [groupItem("devs", 2000, list.length ? { Members: { SS: list }, Administrators: { SS: list } } : {})]);
    expect([records[0]!.members, records[0]!.administrators]).toEqual([want, want]);
  });
  test("duplicate GIDs refuse both", () => {
    const { records, rejected } = decodeGroups("Groups", [groupItem("a", 2000), groupItem("b", 2000)]);
    expect(records).toEqual([]);
    expect(rejected).toBe(2);
  });
});

describe("field helpers", () => {
  test.each([
    [SHA512, true],
    ["$6$salt$hash", false],
    ["$y$j9T$abcdefgh$ijklmnop", false],
    ["!", true],
    ["!!", true],
    ["*", true],
    [`!${SHA512}`, true],
    ["", false],
    ["password", false],
    ["$6$", false],
    ["$9$abcdefgh", false],
  ])("password field %p → %p", (s, ok) => {
    expect(isPasswordField(s)).toBe(ok);
  });
  test.each([
    ["1970-01-01", 0],
    ["2024-02-29", 19782],
    ["2023-02-29", null],
    ["2024-13-01", null],
    ["24-01-01", null],
  ])("date %p → %p days", (s, days) => {
    expect(isoDateToDays(s)).toBe(days);
  });
  test("real keys pass", () => {
    expect(sshKeyProblem(ED25519)).toBeNull();
    expect(sshKeyProblem(KEY_CAROL_RSA)).toBeNull();
  });
});

describe("field rules at their edges (from the mutation run of model.ts)", () => {
  const B = (n: number) => "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789./".repeat(3).slice(0, n);
  // One hash of each scheme, in the shape libxcrypt writes it: its name, and whether it is weak.
  test.each([
    ["yescrypt", `$y$j9T$${B(22)}$${B(43)}`, false],
    ["sha512crypt", `$6$saltsalt$${B(86)}`, false],
    ["bcrypt", `$2b$10$${B(21)}O${B(31)}`, false],
    ["gost-yescrypt", `$gy$j9T$${B(22)}$${B(43)}`, false],
    ["scrypt", `$7$${B(16)}$${B(43)}`, false],
    ["sha256crypt", `$5$rounds=5000$saltsalt$${B(43)}`, true],
    ["bcrypt_x", `$2x$10$${B(21)}O${B(31)}`, true],
    ["md5crypt", `$1$saltsalt$${B(22)}`, true],
    ["sha1crypt", `$sha1$40000$${B(8)}$${B(28)}`, true],
    ["sunmd5", `$md5,rounds=1000$saltsalt$$${B(22)}`, true],
    ["nt", `$3$$${"0123456789abcdef".repeat(2)}`, true],
    ["bsdicrypt", `_${B(18)}.`, true],
    ["descrypt", `${B(12)}.`, true],
    ["bigcrypt", `${B(2)}${B(10)}.${B(10)}.`, true],
  ] as const)("%s: its scheme, and a warning only for a legacy one, locked or not", (name, hash, weak) => {
    expect(hashScheme(hash)?.name).toBe(name);
    expect(hashScheme(hash)?.weak).toBe(weak);
    expect(isPasswordField(hash)).toBe(true);
    for (const h of [hash, `!${hash}`, `!!${hash}`]) {
      const w = passwordWarning(h);
      if (weak) expect(w).toStartWith(`uses ${name}, a legacy method`);
      else expect(w).toBeNull();
    }
  });
  test("the NT hash's form is whole: nothing before or after, 32 lower-case hex digits", () => {
    const nt = `$3$$${"0123456789abcdef".repeat(2)}`;
    for (const bad of [`x${nt}`, `${nt}0`, nt.slice(0, -1), nt.toUpperCase().replace("$3$$", "$3$$"), `$3$$${"g".repeat(32)}`]) expect(hashScheme(bad)?.name).not.toBe("nt");
  });
  test("lock markers", () => {
    expect(isPasswordField("*")).toBe(true);
    expect(isPasswordField("!*")).toBe(true);
    expect(isPasswordField("!")).toBe(true);
    expect(isPasswordField("!!")).toBe(true);
    expect(isPasswordField("")).toBe(false);
    expect(isPasswordField("*!")).toBe(false);
  });
  test("dates: the whole string, and the year as written", () => {
    expect(isoDateToDays("x2024-01-01")).toBeNull();
    expect(isoDateToDays("2024-01-01x")).toBeNull();
    // Date.UTC reads years 0-99 as 1900-1999: such a date is not the one written.
    expect(isoDateToDays("0099-01-01")).toBeNull();
    expect(isoDateToDays("2024-02-30")).toBeNull();
    expect(isoDateToDays("2024-02-29")).toBe(19782);
  });
  test("printable: JSON-quoted, any value, cut after 64 characters", () => {
    expect(printable(42)).toBe('"42"');
    expect(printable(undefined)).toBe('"undefined"');
    expect(printable({ a: 1 })).toBe('"{\\"a\\":1}"');
    expect(printable("a".repeat(64))).toBe(`"${"a".repeat(64)}"`);
    expect(printable("a".repeat(65))).toBe(`"${"a".repeat(61)}..."`);
  });
  test("paths: empty and overlong are refused with their reason", () => {
    expect(v.safeParse(pathSchema, "").issues?.[0]?.message).toBe("must not be empty");
    expect(v.safeParse(pathSchema, `/${"x".repeat(4096)}`).issues?.[0]?.message).toBe("must be at most 4096 characters");
    expect(v.safeParse(pathSchema, `/${"x".repeat(4095)}`).success).toBe(true);
  });
  // Every spelling of a directory others can write, with "." segments and doubled slashes
  // anywhere between its parts, is refused as a shell's; look-alikes are not.
  test.each([
    "/tmp",
    "/tmp/sh",
    "//tmp/sh",
    "/./tmp/sh",
    "/././tmp/sh",
    "/.//tmp/sh",
    "/var/tmp/sh",
    "/var//tmp/sh",
    "/var/./tmp/sh",
    "/var/././tmp/sh",
    "/var/.//tmp/sh",
    "/dev/shm/sh",
    "/dev//shm/sh",
    "/dev/././shm/sh",
    "/dev/.//shm/sh",
    "/run/user/1000/sh",
    "/run//user/sh",
    "/run/././user/sh",
    "/run/.//user/sh",
    "/home/alice/sh",
    "/var/mail/sh",
    "/var/./mail/sh",
    "/var/crash/sh",
    "/var/spool/mail/sh",
    "/var/spool//mail/sh",
    "/var/spool/././mail/sh",
    "/var/./spool/.//mail/sh",
  ])("a shell in %s is refused", (path) => {
    expect(v.safeParse(shellSchema, path).issues?.[0]?.message).toBe("must not be in a directory others can write (/tmp, /var/tmp, /dev/shm, /home, ...)");
  });
  test.each(["/bin/bash", "/tmpfoo/sh", "/usr/bin/tmp", "/homework/sh", "/var/tmpx/sh", "/opt/home/sh", "/var/spool/cron/sh"])("a shell in %s is allowed", (path) => {
    expect(v.safeParse(shellSchema, path).success).toBe(true);
  });
});

describe("the reference SSH key check, at its edges", () => {
  const [edType, edBlob] = ED25519.split(" ") as [string, string];
  const blob = (b: Buffer) => b.toString("base64");
  const typed = (t: string, extra = "") => blob(Buffer.concat([Buffer.from([0, 0, 0, t.length]), Buffer.from(t + extra, "latin1")]));
  test.each([
    ["a real key", ED25519, null],
    ["exactly 16,384 characters", `${ED25519} ${"c".repeat(16384 - ED25519.length - 1)}`, null],
    ["16,385 characters", `${ED25519} ${"c".repeat(16384 - ED25519.length)}`, "is longer than 16384 characters"],
    ["a tab inside", `${edType}\t${edBlob}`, "must be a single line without control characters"],
    ["DEL inside", `${ED25519}\u007f`, "must be a single line without control characters"],
    ["an unknown type", `ssh-foo ${typed("ssh-foo")}`, /must start with a known key type .*found "ssh-foo"/],
    ["no type at all", ` ${edBlob}`, /must start with a known key type/],
    ["the type only", edType, "key data is not base64"],
    ["base64 with a character outside it", `${edType} ${edBlob.slice(0, 8)}*${edBlob.slice(9)}`, "key data is not base64"],
    ["padding in the middle", `${edType} AA==${edBlob}`, "key data is not base64"],
    ["a length not a multiple of 4", `${edType} ${edBlob}A`, "key data is not base64"],
    ["four bytes of data: the length field and nothing", `${edType} ${blob(Buffer.from([0, 0, 0, 11]))}`, "key data does not encode a ssh-ed25519 key"],
    ["three bytes of data", `${edType} ${blob(Buffer.from([0, 0, 11]))}`, "key data is too short"],
    ["a length field one past the data", `${edType} ${blob(Buffer.concat([Buffer.from([0, 0, 0, 12]), Buffer.from("ssh-ed25519")]))}`, "key data does not encode a ssh-ed25519 key"],
    ["exactly the type, nothing after", `${edType} ${typed(edType)}`, null],
    ["another type's name inside", `${edType} ${typed("ssh-rsa")}`, "key data does not encode a ssh-ed25519 key"],
  ] as const)("%s", (_what, key, expected) => {
    const got = sshKeyProblemReference(key);
    if (expected instanceof RegExp) expect(got).toMatch(expected);
    else expect(got).toBe(expected);
    // And the fast path says the same.
    expect(sshKeyProblem(key)).toBe(got);
  });
});

describe("the fast SSH key check agrees with the reference check", () => {
  const [edType, edBlob] = ED25519.split(" ") as [string, string];
  const rsaBlob = KEY_CAROL_RSA.split(" ")[1]!;
  const samples = [
    ED25519,
    KEY_CAROL_RSA,
    `${edType} ${edBlob}`,
    `${edType} ${edBlob} comment with spaces`,
    `  ${ED25519}`,
    `${ED25519}  `,
    `${edType}  ${edBlob}  x`,
    `ssh-rsa ${edBlob} wrong type`,
    `ssh-ed25519 ${rsaBlob} wrong type`,
    `ecdsa-sha2-nistp256 ${edBlob}`,
    `${edType} ${edBlob.slice(0, -4)} truncated`,
    `${edType} ${edBlob.slice(0, 8)}`,
    `${edType} AAAA`,
    `${edType} AAAAC3Nz`,
    `${edType} ${edBlob.replace("C", "*")}`,
    `${edType} ${edBlob}=`,
    `${edType} ${edBlob.slice(0, -1)}`,
    `${edType} A=AA${edBlob.slice(4)}`,
    `unknown-type ${edBlob}`,
    `no-blob-${edType}`,
    edType,
    "",
    " ",
    `${edType} ${edBlob} tab\there`,
    `${edType} ${edBlob} bell\u0007`,
    `${edType} ${edBlob} josé`,
    `command="x" ${ED25519}`,
    `${edType} ${"A".repeat(16400)}`,
    `${edType} ${Buffer.from("\x00\x00\x00\x0bssh-ed25519").toString("base64")}`,
    `${edType} ${Buffer.from("\x00\x00\x00\x0bssh-ed2551").toString("base64")}`,
    `${edType} ${Buffer.from("\xff\xff\xff\xffssh-ed25519").toString("base64")}`,
    `${edType} ${Buffer.from("\x00\x00\x00\x0assh-ed25519").toString("base64")}`,
  ];
  test("on valid, malformed and odd keys", () => {
    for (const k of samples) expect(`${JSON.stringify(k).slice(0, 80)} ${sshKeyProblem(k)}`).toBe(`${JSON.stringify(k).slice(0, 80)} ${sshKeyProblemReference(k)}`);
  });
  // Thousands of keys near the edges, from a fixed seed: the fast path must never accept what
  // the reference refuses (its "no" only hands over to the reference). Blobs that encode every
  // known type and near-miss types, with lengths off by one, padding of every kind, characters of
  // every class before, after and inside, lengths around the 16,384 limit.
  test("on thousands of generated near-miss keys (seeded)", () => {
    // mulberry32: every bit of its output is well mixed (an LCG's low bits repeat with a short period).
    let seed = 0x5eed;
    const rnd = (n: number) => {
      seed = (seed + 0x6d2b79f5) | 0;
      let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
      t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
      return ((t ^ (t >>> 14)) >>> 0) % n;
    };
    const types = ["ssh-ed25519", "ssh-rsa", "ecdsa-sha2-nistp256", "sk-ssh-ed25519@openssh.com", "ssh-ed25519-cert-v01@openssh.com", "ssh-dss", "ssh-foo", "ssh-ed2551", "ssh-ed25519x", "ssh-rsA", ""];
    const blobOf = (name: string, lenField: number, tail: number) => {
      const b = Buffer.alloc(4 + name.length + tail);
      b.writeUInt32BE(lenField >>> 0, 0);
      b.write(name, 4, "latin1");
      for (let i = 0; i < tail; i++) b[4 + name.length + i] = rnd(256);
      return b.toString("base64");
    };
    const chars = ["", " ", "  ", "\t", "\n", "\u0000", "\u007f", "\u0080", "é", "=", "A", "*", "-", "\u00a0"];
    const checked = new Set<string>();
    let accepted = 0;
    for (let i = 0; i < 6000; i++) {
      const type = types[rnd(types.length)]!;
      // Half the time the blob names the key's own type with the right length: near a valid key.
      const inner = rnd(2) === 0 ? type : types[rnd(types.length)]!;
      const lenField = rnd(2) === 0 ? inner.length : [inner.length + 1, inner.length - 1, 0, 0xffffffff, 3][rnd(5)]!;
      let blob = blobOf(inner, lenField, rnd(40));
      switch (rnd(12)) {
        case 0:
          blob = blob.replace(/=+$/, "");
          break;
        case 1:
          blob = `${blob}=`;
          break;
        case 2: {
          const at = rnd(blob.length);
          blob = blob.slice(0, at) + chars[rnd(chars.length)]! + blob.slice(at + 1);
          break;
        }
        case 3:
          blob = blob.slice(0, 4 * rnd(4));
          break;
        default:
      }
      const comment = rnd(3) === 0 ? "" : ` user${i}@host${chars[rnd(chars.length)]}`;
      let key = `${type} ${blob}${comment}`;
      if (rnd(10) === 0) key = chars[rnd(chars.length)]! + key;
      if (rnd(10) === 0) key += chars[rnd(chars.length)]!;
      if (rnd(50) === 0) key = `${key} ${"c".repeat(16384 - key.length - 1 + rnd(3))}`;
      if (checked.has(key)) continue;
      checked.add(key);
      const reference = sshKeyProblemReference(key);
      if (reference === null) accepted++;
      expect(`${JSON.stringify(key).slice(0, 100)} ${sshKeyProblem(key)}`).toBe(`${JSON.stringify(key).slice(0, 100)} ${reference}`);
    }
    // The generator reaches both answers, often.
    expect(accepted).toBeGreaterThan(300);
    expect(checked.size - accepted).toBeGreaterThan(2500);
  });
  test("normalizeKey gives single spaces and nothing around, leaving canonical keys as they are", () => {
    expect(normalizeKey(`  ${edType}   ${edBlob}  a  b `)).toBe(`${edType} ${edBlob} a b`);
    expect(normalizeKey(ED25519)).toBe(ED25519);
    expect(normalizeKey(`${ED25519} josé `)).toBe(`${ED25519} josé`);
    // Characters outside ASCII at either end are not taken for canonical: a no-break space is
    // trimmed like any white space.
    expect(normalizeKey(`${ED25519}\u00a0`)).toBe(ED25519);
    expect(normalizeKey(`\u00a0${ED25519}`)).toBe(ED25519);
  });
});

describe("fast checks agree with the schemas", () => {
  const samples = [
    "", ".", "..", "0", "123", "alice", "-rf", "a-b", "a.b_c", "x".repeat(256), "x".repeat(257), "ünï", "a:b", "a\nb", "a\u007f",
    "/home/alice", "/", "home", "/home/../etc", "/home/..x", "/a/..", "/a/b:c", "/a\tb", "/.hidden", "/a/./b",
    "!", "!!", "*", "!*", "$6$salt$hash", "$6$", "$y$j9T$a$b", "hunter2", "!$6$salt$hash", "!hunter2",
    "2024-02-29", "2023-02-29", "1969-12-31", "2024-1-1", "Alice Liddell,Room 1,+1 555", "tab\there", "x".repeat(4097),
  ];
  test.each([
    ["Name", nameSchema],
    ["RealName", gecosSchema],
    ["Home", pathSchema],
    ["Password", passwordSchema],
    ["date", dateSchema],
  ] as const)("%s", (_n, schema) => {
    const fast = FAST.get(schema)!;
    for (const s of samples) expect(`${JSON.stringify(s)} ${fast(s)}`).toBe(`${JSON.stringify(s)} ${v.safeParse(schema as v.GenericSchema<string>, s).success}`);
  });
});

describe("a known item decodes to the same record without its string rules", () => {
  // Valid items of every shape a table holds: optional fields present or not, numbers with
  // leading zeros, keys canonical or not, one to three of them, dates, locked passwords.
  const keyLists = [[], [ED25519], [KEY_CAROL_RSA, ED25519], [` ${ED25519_BARE} `], [ED25519, ED25519_BARE, KEY_CAROL_RSA], [`${ED25519_BARE}  x`, ED25519]];
  const optional: Record<string, RawItem[string][]> = {
    Password: [{ S: SHA512 }, { S: "!" }, { S: `!${SHA512}` }, { S: "*" }, { NULL: true }],
    LastPasswordChangeDate: [{ S: "2024-02-29" }, { S: "1970-01-01" }, { NULL: true }],
    AccountExpireDate: [{ S: "2030-12-31" }],
    PasswordAgeMinDays: [{ N: "0" }, { N: "007" }],
    PasswordAgeMaxDays: [{ N: "99999" }],
    PasswordWarnDays: [{ N: "7" }],
    PasswordDisableDays: [{ N: "2147483647" }],
    RealName: [{ S: "" }, { S: "Zoë Ünïcode,Room 1,+1 555" }, { S: "x".repeat(256) }],
    Shell: [{ S: "/usr/sbin/nologin" }],
  };
  const items: RawItem[] = [];
  let seed = 7;
  const pick = <T,>(xs: readonly T[]) => {
    seed = (seed * 1103515245 + 12345) % 2147483648;
    return xs[seed % xs.length]!;
  };
  for (let i = 0; i < 400; i++) {
    const extra: RawItem = { SSHPublicKeys: { SS: pick(keyLists) } };
    if (!extra.SSHPublicKeys!.SS!.length) delete extra.SSHPublicKeys;
    for (const [field, values] of Object.entries(optional)) if (pick([true, false])) extra[field] = pick(values);
    items.push(userItem(pick(["alice", "b.ob", "_svc", "x-1", "a".repeat(32)]), pick([1000, 65535, 4294967294]), extra));
  }

  test("400 valid items: the same record both ways", () => {
    const full = decodeUserItem("Users");
    const known = decodeKnownUserItem("Users");
    for (const item of items) {
      const d = full(item);
      expect(d.kind).toBe("ok");
      expect(known(item)).toEqual(d);
    }
  });

  test("it skips the string rules only: a wrong type, a missing field or a bad number still refuses", () => {
    const known = decodeKnownUserItem("Users");
    expect(known(userItem("eve", 2000, { Home: { N: "1" } })).kind).toBe("rejected");
    expect(known(userItem("eve", 2000, { UID: { N: "-1" } })).kind).toBe("rejected");
    const { GID: _, ...noGid } = userItem("eve", 2000);
    expect(known(noGid).kind).toBe("rejected");
    // What makes it only for known items: a rule it does not run.
    expect(known(userItem("eve", 2000, { RealName: { S: "Eve:x" } })).kind).toBe("ok");
  });
});

describe("hasDuplicate agrees with a set", () => {
  test("2,000 random lists, small and large IDs", () => {
    let seed = 11;
    const next = (m: number) => {
      seed = (seed * 1103515245 + 12345) % 2147483648;
      return seed % m;
    };
    for (let k = 0; k < 2000; k++) {
      const range = [3, 50, 100000, 4294967295][k % 4]!;
      const ids = Array.from({ length: next(40) }, () => (range === 4294967295 ? 4294967295 - next(30) : next(range)));
      expect(`${ids} ${hasDuplicate(ids)}`).toBe(`${ids} ${new Set(ids).size !== ids.length}`);
    }
  });
});

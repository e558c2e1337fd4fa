// The password grammar, held against the system's own crypt() (through Python's crypt module,
// which calls libcrypt's crypt_r: not ddum's code): every hash that openssl, mkpasswd and
// libxcrypt write is accepted and is exactly what crypt() recomputes from its phrase; every
// lookalike is refused, and crypt() never returns it for the phrase it was made from. The legacy
// warning agrees with libxcrypt's own crypt_checksalt().
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { decodeKnownUserItem, decodeUserItem, isPasswordField, passwordWarning } from "../src/model.ts";
import { redact } from "../src/log.ts";
import { ddum, writeConfig } from "./helpers/ddum.ts";
import { startDynalite, userItem } from "./helpers/dynalite.ts";
import { cleanupRoots, makeRoot, run } from "./helpers/root.ts";

afterAll(() => cleanupRoots());

const PHRASE = "secret";
const LONG_PHRASE = "averylongpassphrase123";

/** [phrase, hash] pairs through the system's crypt(); out is null when crypt() fails. */
function systemCrypt(pairs: [string, string][]): { out: string | null; checksalt: number }[] {
  const py = `
import ctypes, json, sys, warnings
warnings.simplefilter("ignore")
import crypt
lib = ctypes.CDLL("libcrypt.so.1")
lib.crypt_checksalt.argtypes = [ctypes.c_char_p]
out = []
for phrase, setting in json.load(sys.stdin):
    try:
        r = crypt.crypt(phrase, setting)
    except OSError:
        r = None
    if r is not None and r.startswith("*"):
        r = None
    out.append({"out": r, "checksalt": lib.crypt_checksalt(setting.encode("utf-8", "surrogateescape"))})
json.dump(out, sys.stdout)
`;
  const r = run("python3", ["-c", py], { input: JSON.stringify(pairs) });
  if (r.code !== 0) throw new Error(`python3 crypt: ${r.stderr}`);
  return JSON.parse(r.stdout);
}

const sh = (cmd: string, args: string[]) => {
  const r = run(cmd, args);
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(" ")}: ${r.stderr}`);
  return r.stdout.trim();
};
/** A hash made by the system's crypt() for a setting. */
const libxcrypt = (phrase: string, setting: string) => {
  const [r] = systemCrypt([[phrase, setting]]);
  if (!r?.out) throw new Error(`crypt() refused ${setting}`);
  return r.out;
};

const CRYPT_SALT_METHOD_LEGACY = 3;

/** [how it was made, phrase, hash] */
let good: [string, string, string][] = [];
let lookalikes: [string, () => string][] = [];

beforeAll(() => {
  const openssl = (args: string[]) => sh("openssl", ["passwd", ...args, PHRASE]);
  const mkpasswd = (args: string[]) => sh("mkpasswd", [...args, PHRASE]);
  good = [
    ["openssl -6, salt with '-' (the reported case)", PHRASE, openssl(["-6", "-salt", "ab-cd"])],
    ["openssl -6, salt of quotes and punctuation", PHRASE, openssl(["-6", "-salt", `a"b'c#%&()+,-./`])],
    ["openssl -5, salt of brackets and symbols", PHRASE, openssl(["-5", "-salt", "<=>?@[]^_`{|}~"])],
    ["openssl -1, salt with '-' and parentheses", PHRASE, openssl(["-1", "-salt", "a-b(c)"])],
    ["openssl -6, 16-character salt", PHRASE, openssl(["-6", "-salt", "~~~~~~~~~~~~~~~~"])],
    ...["yescrypt", "gost-yescrypt", "scrypt", "bcrypt", "bcrypt-a", "sha512crypt", "sha256crypt", "sunmd5", "md5crypt", "bsdicrypt", "descrypt", "nt"].map(
      (m) => [`mkpasswd -m ${m}`, PHRASE, mkpasswd(["-m", m])] as [string, string, string],
    ),
    ["mkpasswd -m sha512crypt -R 1000", PHRASE, mkpasswd(["-m", "sha512crypt", "-R", "1000"])],
    ["mkpasswd -m bcrypt -R 4", PHRASE, mkpasswd(["-m", "bcrypt", "-R", "4"])],
  ];
  // Made by libxcrypt's crypt() from these settings, in one run.
  const settings: [string, string, string][] = [
    ["libxcrypt $6$ with an empty salt", PHRASE, "$6$$"],
    ["libxcrypt $6$rounds=1000$", PHRASE, "$6$rounds=1000$a.b-c$"],
    ["libxcrypt $5$rounds=1000$ with an empty salt", PHRASE, "$5$rounds=1000$$"],
    ["libxcrypt $2y$", PHRASE, "$2y$04$abcdefghijklmnopqrstuu"],
    ["libxcrypt $2x$", PHRASE, "$2x$04$abcdefghijklmnopqrstuu"],
    ["libxcrypt $sha1$", PHRASE, "$sha1$4800$abcdefgh$"],
    ["libxcrypt $md5 without the doubled '$'", PHRASE, "$md5$abcdefgh"],
    ["libxcrypt bigcrypt", LONG_PHRASE, "abcdefghijklmnopqrstuvwx"],
    ["libxcrypt _ extended DES", PHRASE, "_J9..abcd"],
    ["libxcrypt $1$ with an empty salt", PHRASE, "$1$$"],
  ];
  const outs = systemCrypt(settings.map(([, p, set]) => [p, set]));
  settings.forEach(([how, p, set], i) => {
    if (!outs[i]!.out) throw new Error(`crypt() refused ${set}`);
    good.push([how, p, outs[i]!.out]);
  });
});

describe("hashes the host's libcrypt writes are accepted", () => {
  test("each is what crypt() recomputes from its phrase, with or without a lock marker, and warned about exactly when libxcrypt calls it legacy", () => {
    expect(good.length).toBe(29);
    const verdicts = systemCrypt(good.map(([, phrase, hash]) => [phrase, hash]));
    for (const [i, [how, , hash]] of good.entries()) {
      const v = verdicts[i]!;
      expect({ how, crypt: v.out }).toEqual({ how, crypt: hash });
      expect({ how, accepted: isPasswordField(hash), locked: isPasswordField(`!${hash}`), twice: isPasswordField(`!!${hash}`) }).toEqual({
        how,
        accepted: true,
        locked: true,
        twice: true,
      });
      expect({ how, warned: passwordWarning(hash) !== null }).toEqual({ how, warned: v.checksalt === CRYPT_SALT_METHOD_LEGACY });
    }
  });
});

describe("lookalikes are refused, and crypt() never returns them", () => {
  const sha512 = () => good[0]![2];
  const tail86 = "a".repeat(86);
  const cases: [string, () => string][] = [
    ["'!' before a plaintext password", () => "!secret"],
    ["'!!' before a plaintext password", () => "!!secret"],
    ["'!!' before a plaintext password with a space", () => "!!correct horse"],
    ["'*' before a plaintext password", () => "*secret"],
    ["a plaintext password", () => "secret"],
    ["an empty field (no password at all)", () => ""],
    ["a $6$ prefix before a plaintext password", () => "$6$ab-cd$plaintextpassword"],
    ["a $6$ hash with a character added", () => `${sha512()}x`],
    ["a $6$ hash cut short", () => sha512().slice(0, -1)],
    ["a $6$ hash whose salt is longer than crypt() keeps", () => sha512().replace("$ab-cd$", "$ab-cdefghijklmnopq$")],
    ["a $6$ salt with ';'", () => `$6$a;b$${tail86}`],
    ["a $6$ salt with '\\'", () => `$6$a\\b$${tail86}`],
    ["a $6$ salt with '!'", () => `$6$a!b$${tail86}`],
    ["a $6$ salt with '*'", () => `$6$a*b$${tail86}`],
    ["a $6$ salt with a space", () => `$6$a b$${tail86}`],
    ["a $6$ salt with a tab", () => `$6$a\tb$${tail86}`],
    ["a $6$ salt with a non-ASCII letter", () => `$6$a\u00e9b$${tail86}`],
    ["a $6$ salt with ':'", () => `$6$a:b$${tail86}`],
    ["a $6$ hash followed by a newline and a passwd line", () => `${sha512()}\nroot2::0:0::/root:/bin/sh`],
    ["$6$ with 999 rounds", () => `$6$rounds=999$ab$${tail86}`],
    ["$6$ rounds with a leading zero", () => `$6$rounds=01000$ab$${tail86}`],
    ["$6$ with a billion rounds", () => `$6$rounds=1000000000$ab$${tail86}`],
    ["an Apache $apr1$ hash (not a crypt() scheme)", () => sh("openssl", ["passwd", "-apr1", "-salt", "abcdefgh", PHRASE])],
    ["bcrypt with cost 03", () => `$2b$03$${"a".repeat(21)}u${"a".repeat(31)}`],
    ["bcrypt with cost 32", () => `$2b$32$${"a".repeat(21)}u${"a".repeat(31)}`],
    ["bcrypt whose salt crypt() would rewrite", () => libxcrypt(PHRASE, "$2b$04$abcdefghijklmnopqrstuu").replace("stuu", "stuv")],
    ["$1$ with a 9-character salt", () => `$1$abcdefghi$${"a".repeat(22)}`],
    ["13 letters that no DES hash ends with", () => "abcdefghijklm"],
    ["an NT hash one digit short", () => `$3$$${"0".repeat(31)}`],
    ["a yescrypt hash cut short", () => good.find(([h]) => h === "mkpasswd -m yescrypt")![2].slice(0, -1)],
    ["an unknown scheme", () => `$9$ab$${tail86}`],
  ];
  lookalikes = cases;
  // One run of crypt() for the whole table (a process per case is slow on a busy machine).
  const made = new Map<string, string>();
  const verdict = new Map<string, string | null>();
  beforeAll(() => {
    for (const [what, make] of cases) made.set(what, make());
    const outs = systemCrypt([...made.values()].map((s) => [PHRASE, s.replace(/^[!*]+/, "")]));
    for (const [i, what] of [...made.keys()].entries()) verdict.set(what, outs[i]!.out);
  });
  test.each(cases)("%s", (what) => {
    const s = made.get(what)!;
    expect(isPasswordField(s)).toBe(false);
    expect(verdict.has(what)).toBe(true);
    expect(verdict.get(what)).not.toBe(s);
    // Refused by the decoder, on the first reading and on a page the memo knows alike.
    for (const decode of [decodeUserItem("Users"), decodeKnownUserItem("Users")]) {
      const d = decode(userItem("eve", 2000, { Password: { S: s } }));
      expect(d.kind).toBe("rejected");
      if (d.kind === "rejected") {
        expect(d.rejections.map((r) => r.field)).toEqual(["Password"]);
        expect(JSON.stringify(d)).not.toContain(s.length > 3 ? s : "\u0000");
      }
    }
  });
});

describe("redaction", () => {
  test("hides every $-scheme and _ hash, whatever its salt holds, alone, quoted, locked or JSON-escaped", () => {
    const shaped = good.filter(([, , h]) => h.startsWith("$") || h.startsWith("_")).map(([, , h]) => h);
    expect(shaped.length).toBe(27);
    for (const h of shaped) {
      for (const line of [`Password ${h}`, `"${h}"`, `(${h})`, `!${h} next`, JSON.stringify({ p: h }), `x=${h}, y`]) {
        const out = redact(line);
        expect(out).toContain("(hash hidden)");
        // No piece of the digest is left: its last 10 characters never appear.
        expect(out).not.toContain(h.slice(-10));
      }
    }
  });
});

describe("a pass never shows a hash", () => {
  test("no log line, report, error or --json document of sync, dry run or check holds any of the table's hashes or lookalikes", async () => {
    const d = await startDynalite();
    try {
      await d.createTables();
      const users = good.map(([, , h], i) => userItem(`h${i}`, 2000 + i, { Password: { S: h } }));
      const bad = lookalikes.map(([, make], i) => userItem(`l${i}`, 3000 + i, { Password: { S: make() } }));
      // Valid hashes in records refused for another field, and in a group.
      const refused = good.slice(0, 5).map(([, , h], i) => userItem(`r${i}`, 4000 + i, { Password: { S: h }, Shell: { S: "sh" } }));
      await d.put("Users", [...users, ...bad, ...refused]);
      const root = makeRoot();
      const cfg = writeConfig(d, { create_homes: false, logging: { level: "debug" } });
      const outputs: string[] = [];
      const runIt = async (args: string[]) => {
        const r = await ddum([...args, ...(args[0] === "sync" ? ["--root", root] : []), "-c", cfg]);
        outputs.push(r.stdout, r.stderr);
        return r;
      };
      expect((await runIt(["check", "--json"])).code).toBe(3);
      expect((await runIt(["sync", "--dry-run", "--json"])).code).toBe(3);
      const first = await runIt(["sync", "--json"]);
      expect(first.code).toBe(3);
      expect(JSON.parse(first.stdout).summary.created).toBeGreaterThanOrEqual(good.length);
      // Every password changes (locked now): each update's report names the field, never the value.
      await d.put("Users", good.map(([, , h], i) => userItem(`h${i}`, 2000 + i, { Password: { S: `!${h}` } })));
      const second = await runIt(["sync"]);
      expect(second.code).toBe(3);
      expect(second.stdout).toContain("password changed");
      await runIt(["sync", "--json"]);
      const secrets = [...good.map(([, , h]) => h), ...lookalikes.map(([, make]) => make()).filter((x) => x.length >= 12)];
      expect(secrets.length).toBeGreaterThan(40);
      for (const out of outputs) for (const h of secrets) expect(out.includes(h) ? h : null).toBeNull();
      // The account files do hold them: the test looks for the right strings.
      expect(run("cat", [`${root}/etc/shadow`]).stdout).toContain(good[0]![2]);
    } finally {
      await d.close();
    }
  });
});

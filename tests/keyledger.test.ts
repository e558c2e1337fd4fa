// The key-file ledger: a key file is taken as in place from one statx only when nothing can have
// touched it since a pass read it in full. Every case below changes one thing after the ledger
// recorded a file that was right; the ledger must not confirm any of them.
import { afterAll, describe, expect, test } from "bun:test";
import { chmodSync, chownSync, linkSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { KeyLedger, LEDGER_FILE, SETTLED_MS } from "../src/keyledger.ts";
import { homeKeysInPlace, keyFileContent, rootKeysInPlace } from "../src/sshkeys.ts";
import { editSameSize, HOME_CASES, makeRightHome } from "./helpers/homes.ts";
import { KEY_ALICE, KEY_BOB } from "./helpers/keys.ts";
import { cleanupRoots, makeRoot } from "./helpers/root.ts";

afterAll(() => cleanupRoots());

/**
 * Change times must be SETTLED_MS old before a signature is recorded. The ledgers below run on a
 * clock past that window (the clock is passed in; nothing sleeps through it); the one test of an
 * unsettled file uses the real clock.
 */
const later = () => Date.now() + SETTLED_MS + 1000;
/** What the next pass sees: the ledger saved and loaded again. */
function reload(l: KeyLedger): KeyLedger {
  const dir = mkdtempSync(join(tmpdir(), "ddum-ledger-"));
  l.save(dir);
  const next = KeyLedger.load(dir, later);
  rmSync(dir, { recursive: true });
  return next;
}

describe("homes through the ledger", () => {
  const cases = HOME_CASES;
  const make = makeRightHome;

  test("a file whose change time has not settled is read, not recorded", () => {
    const home = make();
    const ledger = KeyLedger.empty();
    expect(homeKeysInPlace(home, 2001, 2001, [KEY_ALICE], ledger)).toBe(true);
    expect(homeKeysInPlace(home, 2001, 2001, [KEY_ALICE], ledger)).toBe(true);
    expect([ledger.recorded, ledger.confirmed, ledger.changed]).toEqual([0, 0, false]);
  });

  test("every change made after the ledger recorded a home is seen; nothing else is read again", async () => {
    const homes = cases.map(() => make());
    const verdicts: [string, boolean][] = [];
    for (const [i, [what, change, inPlace]] of cases.entries()) {
      const first = KeyLedger.empty(later);
      expect(homeKeysInPlace(homes[i]!, 2001, 2001, [KEY_ALICE], first)).toBe(true);
      expect([what, first.recorded]).toEqual([what, 1]);
      // The next pass, unchanged home: confirmed by signature alone.
      const ledger = reload(first);
      expect(homeKeysInPlace(homes[i]!, 2001, 2001, [KEY_ALICE], ledger)).toBe(true);
      expect([what, ledger.confirmed]).toEqual([what, 1]);
      change(homes[i]!);
      verdicts.push([what, homeKeysInPlace(homes[i]!, 2001, 2001, [KEY_ALICE], ledger)]);
      if (!inPlace) expect([what, ledger.confirmed]).toEqual([what, 1]);
    }
    expect(verdicts).toEqual(cases.map(([what, , inPlace]) => [what, inPlace]));
  });

  test("the keys the table wants are part of what was recorded: a revoked key is never confirmed", async () => {
    const home = make();
    writeFileSync(join(home, ".ssh", "authorized_keys"), keyFileContent([KEY_ALICE, KEY_BOB]));
    const first = KeyLedger.empty(later);
    expect(homeKeysInPlace(home, 2001, 2001, [KEY_ALICE, KEY_BOB], first)).toBe(true);
    expect(first.recorded).toBe(1);
    const ledger = reload(first);
    expect(homeKeysInPlace(home, 2001, 2001, [KEY_ALICE], ledger)).toBe(false);
    expect(homeKeysInPlace(home, 2002, 2001, [KEY_ALICE, KEY_BOB], ledger)).toBe(false);
    expect(ledger.confirmed).toBe(0);
    expect(homeKeysInPlace(home, 2001, 2001, [KEY_ALICE, KEY_BOB], ledger)).toBe(true);
    expect(ledger.confirmed).toBe(1);
  });
});

describe("root-owned key files through the ledger", () => {
  const make = () => {
    const dir = join(makeRoot(), "etc", "ssh", "authorized_keys");
    mkdirSync(dir, { recursive: true });
    const f = join(dir, "alice");
    writeFileSync(f, keyFileContent([KEY_ALICE]), { mode: 0o644 });
    chmodSync(f, 0o644);
    return f;
  };
  const cases: [string, (f: string) => void][] = [
    ["edited in place, same size", editSameSize],
    ["mode 0666", (f) => chmodSync(f, 0o666)],
    ["owned by a user", (f) => chownSync(f, 2001, 2001)],
    ["a second hard link", (f) => linkSync(f, `${f}.copy`)],
    ["replaced by a link to a right file", (f) => {
      renameSync(f, `${f}.real`);
      symlinkSync(`${f}.real`, f);
    }],
    ["removed", (f) => rmSync(f)],
  ];

  test("recorded once settled, confirmed while untouched, never after any change; the ledger survives a save", async () => {
    const files = [make(), ...cases.map(() => make())];
    const dir = join(files[0]!, "..", "..", "..", "..", "var", "lib", "ddum");
    const first = KeyLedger.empty(later);
    for (const f of files) expect(rootKeysInPlace(f, [KEY_ALICE], first)).toBe(true);
    expect(first.recorded).toBe(files.length);
    first.save(dir);

    // The real clock from here: the changes below are seconds old, as after a real edit.
    const second = KeyLedger.load(dir);
    expect(rootKeysInPlace(files[0]!, [KEY_ALICE], second)).toBe(true);
    expect(second.confirmed).toBe(1);
    for (const [i, [what, change]] of cases.entries()) {
      change(files[i + 1]!);
      // The ledger's answer is the full check's (a root-owned file may have two links: only root
      // can make them there), and never a confirmation by signature.
      expect([what, rootKeysInPlace(files[i + 1]!, [KEY_ALICE], second)]).toEqual([what, rootKeysInPlace(files[i + 1]!, [KEY_ALICE])]);
    }
    expect(cases.map(([what], i) => [what, rootKeysInPlace(files[i + 1]!, [KEY_ALICE])])).toEqual(cases.map(([what]) => [what, what === "a second hard link"]));
    expect(second.confirmed).toBe(1);
    // Saving keeps only what this ledger confirmed or recorded.
    expect(second.changed).toBe(true);
    second.save(dir);
    const third = KeyLedger.load(dir, later);
    for (const f of files.slice(1)) rootKeysInPlace(f, [KEY_ALICE], third);
    expect(rootKeysInPlace(files[0]!, [KEY_ALICE], third)).toBe(true);
    expect(third.confirmed).toBe(1);
  });

  test("a damaged or foreign ledger is an empty one", async () => {
    const f = make();
    const dir = join(f, "..", "..", "..", "..", "var", "lib", "ddum");
    const l = KeyLedger.empty(later);
    rootKeysInPlace(f, [KEY_ALICE], l);
    l.save(dir);
    const good = readFileSync(join(dir, LEDGER_FILE));
    for (const bad of [good.subarray(0, good.length - 4), Buffer.concat([good, Buffer.alloc(4)]), Buffer.from("not a ledger"), Buffer.alloc(0)]) {
      writeFileSync(join(dir, LEDGER_FILE), bad);
      const loaded = KeyLedger.load(dir, later);
      expect(rootKeysInPlace(f, [KEY_ALICE], loaded)).toBe(true); // read in full instead
      expect(loaded.confirmed).toBe(0);
    }
    writeFileSync(join(dir, LEDGER_FILE), good);
    const loaded = KeyLedger.load(dir, later);
    expect(rootKeysInPlace(f, [KEY_ALICE], loaded)).toBe(true);
    expect(loaded.confirmed).toBe(1);
  });
});

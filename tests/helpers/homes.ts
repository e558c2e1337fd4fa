// A home with its keys exactly as syncHomeKeys makes them (alice, UID/GID 2001, KEY_ALICE), and
// the ways one thing about it can go wrong: shared by the scan-time check's table and the
// key-file ledger's, which must both see every one of them.
import { chmodSync, chownSync, linkSync, mkdirSync, readFileSync, renameSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { keyFileContent } from "../../src/sshkeys.ts";
import { KEY_ALICE, KEY_BOB } from "./keys.ts";
import { makeRoot } from "./root.ts";

export function makeRightHome(): string {
  const home = join(makeRoot(), "home", "alice");
  mkdirSync(join(home, ".ssh"), { recursive: true, mode: 0o700 });
  writeFileSync(join(home, ".ssh", "authorized_keys"), keyFileContent([KEY_ALICE]), { mode: 0o600 });
  for (const p of [home, join(home, ".ssh"), join(home, ".ssh", "authorized_keys")]) chownSync(p, 2001, 2001);
  chmodSync(join(home, ".ssh"), 0o700);
  return home;
}

/** The key file's content with one same-length change (the key's blob altered). */
export const editSameSize = (f: string) => writeFileSync(f, readFileSync(f, "utf8").replace("AAAA", "BBBB"));

/** [what, change made to a right home, whether it is still in place]. */
export const HOME_CASES: [string, (home: string) => void, boolean][] = [
  ["everything as syncHomeKeys makes it", () => {}, true],
  ["home owned by someone else", (h) => chownSync(h, 2002, 2002), false],
  ["home is a symbolic link", (h) => {
    rmSync(`${h}.real`, { recursive: true, force: true });
    renameSync(h, `${h}.real`);
    symlinkSync(`${h}.real`, h);
  }, false],
  [".ssh mode 0755", (h) => chmodSync(join(h, ".ssh"), 0o755), false],
  [".ssh owned by root", (h) => chownSync(join(h, ".ssh"), 0, 0), false],
  [".ssh in another group", (h) => chownSync(join(h, ".ssh"), 2001, 0), false],
  [".ssh is a symbolic link", (h) => {
    renameSync(join(h, ".ssh"), join(h, "elsewhere"));
    symlinkSync("elsewhere", join(h, ".ssh"));
  }, false],
  ["key file mode 0644", (h) => chmodSync(join(h, ".ssh", "authorized_keys"), 0o644), false],
  ["key file owned by root", (h) => chownSync(join(h, ".ssh", "authorized_keys"), 0, 0), false],
  ["key file with a second hard link", (h) => linkSync(join(h, ".ssh", "authorized_keys"), join(h, "copy")), false],
  ["key file edited, same size", (h) => editSameSize(join(h, ".ssh", "authorized_keys")), false],
  ["key file replaced by a same-size file (rename)", (h) => {
    const f = join(h, ".ssh", "authorized_keys");
    writeFileSync(`${f}.new`, readFileSync(f, "utf8").replace("AAAA", "BBBB"), { mode: 0o600 });
    chownSync(`${f}.new`, 2001, 2001);
    renameSync(`${f}.new`, f);
  }, false],
  ["key file with a key added", (h) => writeFileSync(join(h, ".ssh", "authorized_keys"), keyFileContent([KEY_ALICE, KEY_BOB])), false],
  ["key file is a symbolic link", (h) => {
    const f = join(h, ".ssh", "authorized_keys");
    renameSync(f, join(h, "real_keys"));
    symlinkSync(join(h, "real_keys"), f);
  }, false],
  ["key file missing", (h) => rmSync(join(h, ".ssh", "authorized_keys")), false],
];

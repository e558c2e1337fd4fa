// The aarch64 build (Graviton hosts), run here under qemu-user with Debian's arm64 C and C++
// runtimes as its sysroot (tests/install-deps.sh): the same commands as the x86_64 build, against
// dynalite, with the same results byte for byte.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { keyFileContent } from "../src/sshkeys.ts";
import { buildArm64, qemuArgs } from "./helpers/arm64.ts";
import { DDUM, writeConfig } from "./helpers/ddum.ts";
import { type Dynamo, groupItem, startDynalite, userItem } from "./helpers/dynalite.ts";
import { KEY_ALICE, KEY_BOB, KEY_CAROL_RSA } from "./helpers/keys.ts";
import { ACCOUNT_FILES, checkAccounts, cleanupRoots, FLAVOUR, makeRoot, REPO, snapshot } from "./helpers/root.ts";

const VERSION = JSON.parse(readFileSync(join(REPO, "package.json"), "utf8")).version as string;
const HASH = "$6$Ddumdemo1$ZGQQCYJEEwpwiwHO6nUz6XdvqrCxmGutrcUxL8yObU2p.xua.Rv7PBxzQYQZK9sg81lL/4RYpPbm7EBHzEdr10";

let d: Dynamo;
beforeAll(async () => {
  buildArm64();
  d = await startDynalite();
  await d.createTables();
  await d.put("Users", [
    userItem("alice", 2001, { Password: { S: HASH }, SSHPublicKeys: { SS: [KEY_ALICE, KEY_CAROL_RSA] } }),
    userItem("bob", 2002, { GID: { N: "3000" }, SSHPublicKeys: { SS: [KEY_BOB] } }),
    userItem("carol", 2003),
  ]);
  await d.put("Groups", [groupItem("devs", 3000, { Members: { SS: ["alice", "bob"] }, Administrators: { SS: ["alice"] } })]);
}, 600_000);
afterAll(async () => {
  await d.close();
  cleanupRoots();
});

/** Run a binary without blocking this process (dynalite answers from here). */
async function exec(argv: string[]) {
  const proc = Bun.spawn(argv, { stdout: "pipe", stderr: "pipe", stdin: "ignore" });
  const [stdout, stderr, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  return { stdout, stderr, code };
}
const arm64 = (args: string[]) => exec(qemuArgs(args));
const x64 = (args: string[]) => exec([DDUM, ...args]);

test("the binary is an aarch64 executable, and --version runs under qemu", async () => {
  const elf = readFileSync(qemuArgs([])[3]!).subarray(0, 20);
  expect(elf.subarray(0, 4).toString("latin1")).toBe("\x7fELF");
  expect(elf.readUInt16LE(18)).toBe(183); // EM_AARCH64
  const v = await arm64(["--version"]);
  expect(v.stderr).toBe("");
  expect(v.stdout).toStartWith(`ddum ${VERSION} (commit `);
  expect(v.stdout).toContain(", linux arm64, bun ");
  expect(v.code).toBe(0);
}, 120_000);

test("check reads both tables and says so, as the x86_64 build does", async () => {
  const cfg = writeConfig(d);
  const r = await arm64(["check", "-c", cfg]);
  const x = await x64(["check", "-c", cfg]);
  expect(r.stderr).toContain("info: tables: users Users, groups Groups");
  expect(r.stdout).toContain("3 users and 1 group read");
  expect(r.code).toBe(0);
  expect([r.stdout, r.stderr]).toEqual([x.stdout, x.stderr]);
}, 120_000);

test("sync with homes and keys into a scratch root: pwck/grpck clean, the same files as the x86_64 build writes", async () => {
  const cfg = writeConfig(d, { create_homes: true });
  const root = makeRoot();
  const r = await arm64(["sync", "--root", root, "-c", cfg]);
  expect(r.stderr).toBe("");
  expect(r.code).toBe(0);
  const { pwck, grpck } = checkAccounts(root);
  expect(`${pwck.stdout}${pwck.stderr}${grpck.stdout}${grpck.stderr}`).toBe("");
  expect([pwck.code, grpck.code]).toEqual([0, 0]);
  for (const [name, uid, keys] of [
    ["alice", 2001, [KEY_ALICE, KEY_CAROL_RSA]],
    ["bob", 2002, [KEY_BOB]],
  ] as const) {
    const home = join(root, "home", name);
    expect(statSync(home).uid).toBe(uid);
    expect(statSync(home).mode & 0o7777).toBe(FLAVOUR.homeMode);
    const file = join(home, ".ssh", "authorized_keys");
    expect(readFileSync(file, "utf8")).toBe(keyFileContent([...keys].sort()));
    expect([statSync(file).uid, statSync(file).mode & 0o7777]).toEqual([uid, 0o600]);
  }
  const reference = makeRoot();
  expect((await x64(["sync", "--root", reference, "-c", cfg])).code).toBe(0);
  expect(snapshot(root)).toEqual(snapshot(reference));
  for (const f of ACCOUNT_FILES) expect(statSync(join(root, "etc", f)).mode).toBe(statSync(join(reference, "etc", f)).mode);
  // A second pass has nothing to do.
  const again = await arm64(["sync", "--root", root, "-c", cfg, "--json"]);
  expect(again.code).toBe(0);
  expect(JSON.parse(again.stdout).written).toEqual([]);
}, 300_000);

test("authorized-keys prints a user's keys from the root-owned files a sync wrote", async () => {
  const cfg = writeConfig(d, { ssh_key_location: "/etc/ssh/authorized_keys/%u" });
  const root = makeRoot();
  expect((await arm64(["sync", "--root", root, "-c", cfg])).code).toBe(0);
  expect(readFileSync(join(root, "etc", "ssh", "authorized_keys", "alice"), "utf8")).toBe(keyFileContent([KEY_ALICE, KEY_CAROL_RSA].sort()));
  const r = await arm64(["authorized-keys", "alice", "--root", root, "-c", cfg]);
  expect(r.stderr).toBe("");
  expect(r.code).toBe(0);
  expect(r.stdout).toBe(`${[KEY_ALICE, KEY_CAROL_RSA].sort().join("\n")}\n`);
  expect(r.stdout).toBe((await x64(["authorized-keys", "alice", "--root", root, "-c", cfg])).stdout);
}, 300_000);

// Where a home may be, against the compiled binary and real files: every spelling of a system
// directory, links above the home (present on the first pass or planted later), ddum's own
// directories, and the same refusals for a user already in place from an earlier pass.
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, test } from "bun:test";
import { chmodSync, chownSync, existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { systemDirProblem } from "../src/homes.ts";
import { normalPath } from "../src/safepath.ts";
import { keyFileContent } from "../src/sshkeys.ts";
import { ddum, treeSnapshot, writeConfig } from "./helpers/ddum.ts";
import { type Dynamo, startDynalite, userItem } from "./helpers/dynalite.ts";
import { KEY_ALICE, KEY_BOB } from "./helpers/keys.ts";
import { cleanupRoots, makeRoot } from "./helpers/root.ts";

let d: Dynamo;
beforeAll(async () => {
  d = await startDynalite();
});
afterAll(async () => {
  await d.close();
  cleanupRoots();
});
beforeEach(() => d.createTables());
afterEach(() => d.reset());

const keysOf = (...k: string[]) => ({ SSHPublicKeys: { SS: k } });

interface Report {
  homes: { homesCreated: string[]; keysWritten: string[] };
  refusals: { name: string; field: string; reason: string }[];
  rejections: { name: string; field: string; reason: string }[];
  notices: string[];
}

/** `ddum sync --json` on a root: exit code and the report. */
export async function sync(root: string, extra: Record<string, unknown> = { create_homes: true }): Promise<{ code: number; r: Report; stderr: string }> {
  const out = await ddum(["sync", "--json", "--root", root, "-c", writeConfig(d, extra)]);
  let r: Report;
  try {
    r = JSON.parse(out.stdout);
  } catch {
    throw new Error(`no JSON report (exit ${out.code}): ${out.stderr}`);
  }
  return { code: out.code, r, stderr: out.stderr };
}

const refusalOf = (r: Report, name: string) => r.refusals.filter((x) => x.name === name);

/** Every directory under dir, for "no directory was made there" (a pass adds files to /etc itself). */
const listing = (dir: string) =>
  existsSync(dir) ? readdirSync(dir, { recursive: true }).map(String).filter((p) => lstatSync(join(dir, p)).isDirectory()).sort() : [];

describe("home spellings", () => {
  test.each([
    ["/./etc/sudoers.d", "/etc/sudoers.d"],
    ["//etc/systemd/system/ssh.service.d", "/etc/systemd/system/ssh.service.d"],
    ["/etc/.", "/etc"],
    ["/root/./.", "/root"],
    ["/home/", "/home"],
    ["/var//lib/", "/var/lib"],
    ["/usr/lib/", "/usr/lib"],
  ])("normalPath(%p) is %p, and systemDirProblem refuses both", (raw, norm) => {
    expect(normalPath(raw)).toBe(norm);
    expect(systemDirProblem(raw)).not.toBeNull();
    expect(systemDirProblem(norm)).not.toBeNull();
  });

  test.each(["/home/alice", "/srv/home/bob", "/", "/a/b/c"])("normalPath keeps the normal %p as it is", (p) => {
    expect(normalPath(p)).toBe(p);
  });

  // Each case: [what, the Home, set-up of the root before the pass]. Links are relative, so that
  // even a broken ddum following them stays inside the scratch root.
  const CASES: [string, string, (root: string) => void][] = [
    ["/./ spelling", "/./etc/sudoers.d", () => {}],
    ["// spelling", "//etc/systemd/system/ssh.service.d", () => {}],
    ["trailing /.", "/home/.", () => {}],
    ["a symlinked ancestor (/var/run -> ../run)", "/var/run/sshd.d", (root) => {
      mkdirSync(join(root, "var"), { recursive: true });
      mkdirSync(join(root, "run"), { recursive: true });
      symlinkSync("../run", join(root, "var", "run"));
    }],
    ["a link inside a directory that already exists (/home/sys -> ../etc)", "/home/sys/cron.d", (root) => {
      mkdirSync(join(root, "home"), { recursive: true });
      symlinkSync("../etc", join(root, "home", "sys"));
    }],
    ["a link two levels up to a system tree (/srv/a -> ../usr, /srv/a/lib)", "/srv/a/lib/x", (root) => {
      mkdirSync(join(root, "srv"), { recursive: true });
      mkdirSync(join(root, "usr", "lib"), { recursive: true });
      symlinkSync("../usr", join(root, "srv", "a"));
    }],
  ];

  test.each(CASES)("%s: refused, and nothing made in the system directory", async (_what, home, setup) => {
    const root = makeRoot();
    setup(root);
    const before = { etc: listing(join(root, "etc")), run: listing(join(root, "run")), usr: listing(join(root, "usr")), root: listing(join(root, "root")) };
    await d.put("Users", [userItem("mallory", 2001, { Home: { S: home }, ...keysOf(KEY_ALICE) }), userItem("alice", 2002, keysOf(KEY_ALICE))]);
    const { code, r } = await sync(root);
    expect(code).toBe(3);
    const why = refusalOf(r, "mallory");
    expect(why.map((x) => x.field)).toEqual(["Home"]);
    expect(why[0]!.reason).toMatch(/system directory/);
    expect({ etc: listing(join(root, "etc")), run: listing(join(root, "run")), usr: listing(join(root, "usr")), root: listing(join(root, "root")) }).toEqual(before);
    // The other user is not held up.
    expect(r.homes.homesCreated).toEqual(["alice"]);
  });

  test("a symlinked parent planted after the first pass: refused for a new user and for the user already in place", async () => {
    const root = makeRoot();
    mkdirSync(join(root, "data"), { mode: 0o755 });
    await d.put("Users", [userItem("alice", 2001, { Home: { S: "/data/alice" }, ...keysOf(KEY_ALICE) })]);
    const first = await sync(root);
    expect(first.code).toBe(0);
    expect(first.r.homes.homesCreated).toEqual(["alice"]);
    // A second pass finds alice in place (the scan-time check).
    expect((await sync(root)).r.homes.keysWritten).toEqual([]);

    // /data now leads to /etc, holding a directory alice owns (as her old home would look).
    renameSync(join(root, "data"), join(root, "data.old"));
    symlinkSync("etc", join(root, "data"));
    mkdirSync(join(root, "etc", "alice"));
    chownSync(join(root, "etc", "alice"), 2001, 2001);
    await d.put("Users", [userItem("alice", 2001, { Home: { S: "/data/alice" }, ...keysOf(KEY_ALICE, KEY_BOB) }), userItem("carol", 2003, { Home: { S: "/data/carol" } })]);
    const before = treeSnapshot(join(root, "etc", "alice"));
    const { code, r } = await sync(root);
    expect(code).toBe(3);
    for (const n of ["alice", "carol"]) {
      expect([n, refusalOf(r, n).map((x) => x.field)]).toEqual([n, ["Home"]]);
      expect(refusalOf(r, n)[0]!.reason).toContain(`/data/${n} is /etc/${n}: /etc/${n} is inside the system directory /etc`);
    }
    expect(r.homes.keysWritten).toEqual([]);
    expect(treeSnapshot(join(root, "etc", "alice"))).toEqual(before);
    expect(existsSync(join(root, "etc", "carol"))).toBe(false);
  });

  test.each([0o777, 0o775, 0o1777])("a new user whose home's parent has mode %o is refused, and no home is made", async (mode) => {
    const root = makeRoot();
    mkdirSync(join(root, "home"), { mode: 0o755 });
    chmodSync(join(root, "home"), mode);
    await d.put("Users", [userItem("alice", 2001, keysOf(KEY_ALICE))]);
    const { code, r } = await sync(root);
    expect(code).toBe(3);
    expect(refusalOf(r, "alice").map((x) => x.reason)).toEqual([expect.stringContaining("/home is not owned by root or is writable by others")]);
    expect(existsSync(join(root, "home", "alice"))).toBe(false);
  });

  test("a new user whose home's parent is another user's directory is refused", async () => {
    const root = makeRoot();
    mkdirSync(join(root, "home", "bob"), { recursive: true, mode: 0o755 });
    chownSync(join(root, "home", "bob"), 2002, 2002);
    await d.put("Users", [userItem("alice", 2001, { Home: { S: "/home/bob/alice" } })]);
    const { r } = await sync(root);
    expect(refusalOf(r, "alice").map((x) => x.reason)).toEqual([expect.stringContaining("/home/bob is not owned by root")]);
    expect(existsSync(join(root, "home", "bob", "alice"))).toBe(false);
  });

  test("a user in place whose home's parent becomes writable by others is refused on the fast path, keys untouched", async () => {
    const root = makeRoot();
    await d.put("Users", [userItem("alice", 2001, keysOf(KEY_ALICE))]);
    expect((await sync(root)).code).toBe(0);
    chmodSync(join(root, "home"), 0o777);
    await d.put("Users", [userItem("alice", 2001, keysOf(KEY_ALICE, KEY_BOB))]);
    const ak = join(root, "home", "alice", ".ssh", "authorized_keys");
    const before = readFileSync(ak, "utf8");
    const { code, r } = await sync(root);
    expect(code).toBe(3);
    expect(refusalOf(r, "alice")[0]!.reason).toContain("/home is not owned by root or is writable by others");
    expect(readFileSync(ak, "utf8")).toBe(before);
    // And when nothing changed in the record (the scan-time check would find the keys in place).
    await d.put("Users", [userItem("alice", 2001, keysOf(KEY_ALICE))]);
    const again = await sync(root);
    expect(refusalOf(again.r, "alice").map((x) => x.field)).toEqual(["Home"]);
  });
});

describe("homes and ddum's own directories", () => {
  const KEYS = { create_homes: true, ssh_key_location: "/srv/keys/%u", metrics_file: "/srv/metrics/ddum.prom" };
  test.each([
    ["the key directory itself", "/srv/keys"],
    ["inside the key directory", "/srv/keys/mallory"],
    ["the key directory by another spelling", "/srv//keys/."],
    ["holding the key directory", "/srv"],
    ["the state directory", "/var/lib/ddum"],
    ["inside the state directory", "/var/lib/ddum/x"],
    ["the metrics directory", "/srv/metrics"],
    ["inside the metrics directory", "/srv/metrics/mallory"],
  ])("a home that is %s is refused", async (_what, home) => {
    const root = makeRoot();
    await d.put("Users", [userItem("mallory", 2001, { Home: { S: home }, ...keysOf(KEY_ALICE) }), userItem("alice", 2002, keysOf(KEY_ALICE))]);
    const { code, r } = await sync(root, KEYS);
    expect(code).toBe(3);
    expect(refusalOf(r, "mallory").map((x) => x.field)).toEqual(["Home"]);
    for (const dir of ["srv/keys", "srv/metrics", "var/lib/ddum"]) {
      if (existsSync(join(root, dir))) expect([dir, lstatSync(join(root, dir)).uid]).toEqual([dir, 0]);
    }
    // mallory's key file is still written by root, in root's directory.
    expect(lstatSync(join(root, "srv", "keys", "mallory")).uid).toBe(0);
  });

  test("a home that holds the state directory (state_dir inside it) is refused", async () => {
    const root = makeRoot();
    await d.put("Users", [userItem("mallory", 2001, { Home: { S: "/data/ddum" } })]);
    const { r } = await sync(root, { create_homes: true, state_dir: "/data/ddum/state" });
    expect(refusalOf(r, "mallory").map((x) => x.field)).toEqual(["Home"]);
    expect(lstatSync(join(root, "data", "ddum")).uid).toBe(0);
  });

  test("a home that is the key directory, already in place from an earlier pass (keys in home mode then), is refused once keys move there", async () => {
    const root = makeRoot();
    await d.put("Users", [userItem("mallory", 2001, { Home: { S: "/srv/keys" }, ...keysOf(KEY_ALICE) })]);
    expect((await sync(root)).code).toBe(0);
    expect(lstatSync(join(root, "srv", "keys")).uid).toBe(2001);
    const { code, r } = await sync(root, KEYS);
    expect(code).toBe(3);
    const fields = refusalOf(r, "mallory").map((x) => x.field).sort();
    // The home, and the key directory (mallory's, not root's) for the key file.
    expect(fields).toEqual(["Home", "SSHPublicKeys"]);
    expect(existsSync(join(root, "srv", "keys", "mallory"))).toBe(false);
  });

  test("authorized-keys serves a root-owned key file only: not a user's file, a link, a group-writable file or one in a user's directory", async () => {
    const root = makeRoot();
    const cfg = writeConfig(d, { ssh_key_location: "/srv/keys/%u" });
    const dir = join(root, "srv", "keys");
    mkdirSync(dir, { recursive: true, mode: 0o755 });
    const put = (name: string, owner: number, mode: number) => {
      writeFileSync(join(dir, name), keyFileContent([KEY_ALICE]), { mode });
      chownSync(join(dir, name), owner, owner);
      chmodSync(join(dir, name), mode);
    };
    put("root", 0, 0o644);
    const good = await ddum(["authorized-keys", "root", "--root", root, "-c", cfg]);
    expect([good.code, good.stdout]).toEqual([0, `${KEY_ALICE}\n`]);
    put("root", 2001, 0o644);
    const mine = await ddum(["authorized-keys", "root", "--root", root, "-c", cfg]);
    expect(mine.stdout).toBe("");
    expect(mine.code).not.toBe(0);
    expect(mine.stderr).toContain("not owned by root");
    put("root", 0, 0o664);
    expect((await ddum(["authorized-keys", "root", "--root", root, "-c", cfg])).stdout).toBe("");
    rmSync(join(dir, "root"));
    put("real", 0, 0o644);
    symlinkSync("real", join(dir, "root"));
    const link = await ddum(["authorized-keys", "root", "--root", root, "-c", cfg]);
    expect([link.stdout, link.stderr.includes("symbolic link")]).toEqual(["", true]);
    rmSync(join(dir, "root"));
    put("root", 0, 0o644);
    chownSync(dir, 2001, 2001);
    const userDir = await ddum(["authorized-keys", "root", "--root", root, "-c", cfg]);
    expect([userDir.stdout, userDir.stderr.includes("not owned by root or is writable by others")]).toEqual(["", true]);
  });
});

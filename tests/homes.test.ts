import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, test } from "bun:test";
import { chmodSync, chownSync, existsSync, linkSync, lstatSync, mkdirSync, readFileSync, readlinkSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { createHomesInParallel, PARALLEL_HOMES, parallelHomes, readSkel, systemDirProblem } from "../src/homes.ts";
import { Root } from "../src/paths.ts";
import { homeKeysInPlace, KEY_HEADER, keyFileContent, syncRootKeys } from "../src/sshkeys.ts";
import { SETTLED_MS } from "../src/keyledger.ts";
import { ddum, pass, treeSnapshot, writeConfig } from "./helpers/ddum.ts";
import { type Dynamo, startDynalite, userItem } from "./helpers/dynalite.ts";
import { HOME_CASES, makeRightHome } from "./helpers/homes.ts";
import { KEY_ALICE, KEY_BOB } from "./helpers/keys.ts";
import { checkAccounts, cleanupRoots, FLAVOUR, makeRoot } from "./helpers/root.ts";

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

const HOMES = { create_homes: true };
const keysOf = (...k: string[]) => ({ SSHPublicKeys: { SS: k } });
const read = (p: string) => readFileSync(p, "utf8");

describe("homes", () => {
  test("a missing home is made from skel, owned by the user, with the login.defs mode", async () => {
    const root = makeRoot();
    await d.put("Users", [userItem("alice", 2001, keysOf(KEY_ALICE))]);
    const r = await pass(d, root, { config: HOMES });
    expect(r.exitCode).toBe(0);
    expect(r.homes.homesCreated).toEqual(["alice"]);
    const home = join(root, "home", "alice");
    const st = statSync(home);
    expect([st.uid, st.gid, st.mode & 0o7777]).toEqual([2001, 2001, FLAVOUR.homeMode]); // Debian: UMASK 022; AL2023: HOME_MODE 0700
    for (const f of FLAVOUR.skel) {
      expect(read(join(home, f))).toBe(read(join(root, "etc", "skel", f)));
      expect(statSync(join(home, f)).uid).toBe(2001);
    }
    const ssh = statSync(join(home, ".ssh"));
    expect([ssh.uid, ssh.gid, ssh.mode & 0o7777]).toEqual([2001, 2001, 0o700]);
    const ak = join(home, ".ssh", "authorized_keys");
    expect(read(ak)).toBe(`${KEY_HEADER}\n${KEY_ALICE}\n`);
    const akSt = statSync(ak);
    expect([akSt.uid, akSt.gid, akSt.mode & 0o7777]).toEqual([2001, 2001, 0o600]);
    expect(checkAccounts(root).pwck.code).toBe(0);

    // No change: nothing in the home is touched.
    const before = treeSnapshot(home);
    const again = await pass(d, root, { config: HOMES });
    expect(again.homes).toMatchObject({ homesCreated: [], keysWritten: [] });
    expect(treeSnapshot(home)).toEqual(before);
  });

  test("an existing home is never re-chmodded", async () => {
    const root = makeRoot();
    const home = join(root, "home", "alice");
    mkdirSync(home, { recursive: true, mode: 0o750 });
    chownSync(home, 2001, 2001);
    await d.put("Users", [userItem("alice", 2001)]);
    await pass(d, root, { config: HOMES });
    expect(statSync(home).mode & 0o7777).toBe(0o750);
  });

  test.each(["/", "/etc", "/usr", "/root", "/home", "/usr/local/x", "/etc/ssh", "/etc/", "/home//", "//", "/usr/lib/"])("system directory %p is refused", (p) => {
    expect(systemDirProblem(p)).not.toBeNull();
  });
  test.each(["/home/alice", "/srv/home/bob", "/data/u/c", "/home/alice/", "/etcetera", "/usrx/y"])("ordinary home %p is accepted", (p) => {
    expect(systemDirProblem(p)).toBeNull();
  });
});

describe("many homes at once", () => {
  test("a first pass with 2,100 new homes makes them on two threads, each exactly as one thread would, under any umask", async () => {
    const root = makeRoot();
    const n = PARALLEL_HOMES + 100;
    await d.put("Users", Array.from({ length: n }, (_, i) => userItem(`p${i}`, 5000 + i, i % 3 === 0 ? keysOf(KEY_ALICE) : {})));
    const old = process.umask(0o077);
    let r: Awaited<ReturnType<typeof pass>>;
    try {
      r = await pass(d, root, { config: HOMES });
    } finally {
      process.umask(old);
    }
    expect(r.exitCode).toBe(0);
    // Both threads took batches from the list (how many each depends on their speeds).
    expect(parallelHomes.byWorker).toBeGreaterThanOrEqual(250);
    expect(parallelHomes.byWorker).toBeLessThanOrEqual(n - 250);
    expect(r.homes.homesCreated.length).toBe(n);
    expect(r.homes.keysWritten.length).toBe(Math.ceil(n / 3));
    const skel = (f: string) => statSync(join(root, "etc", "skel", f));
    for (const i of [0, 1, Math.ceil(n / 2) - 1, Math.ceil(n / 2), n - 2, n - 1]) {
      const home = join(root, "home", `p${i}`);
      const st = statSync(home);
      expect([i, st.uid, st.gid, st.mode & 0o7777]).toEqual([i, 5000 + i, 5000 + i, FLAVOUR.homeMode]);
      for (const f of FLAVOUR.skel) {
        const fst = statSync(join(home, f));
        expect([i, f, fst.uid, fst.mode & 0o7777, read(join(home, f))]).toEqual([i, f, 5000 + i, skel(f).mode & 0o7777, read(join(root, "etc", "skel", f))]);
      }
      if (i % 3 === 0) {
        const k = statSync(join(home, ".ssh", "authorized_keys"));
        expect([i, k.uid, k.mode & 0o7777, read(join(home, ".ssh", "authorized_keys"))]).toEqual([i, 5000 + i, 0o600, keyFileContent([KEY_ALICE])]);
        expect(statSync(join(home, ".ssh")).mode & 0o7777).toBe(0o700);
      } else expect(existsSync(join(home, ".ssh"))).toBe(false);
    }
    const { pwck, grpck } = checkAccounts(root);
    expect([pwck.code, grpck.code]).toEqual([0, 0]);
  });

  test("the executable carries its worker: dist/ddum makes some of 2,100 homes on its second thread", async () => {
    const root = makeRoot();
    const n = PARALLEL_HOMES + 100;
    await d.put("Users", Array.from({ length: n }, (_, i) => userItem(`q${i}`, 7000 + i)));
    const out = await ddum(["sync", "--root", root, "-c", writeConfig(d, HOMES)], { env: { DDUM_TRACE_MEMORY: "1" } });
    expect(out.code).toBe(0);
    const byWorker = Number(/homes made by the second thread: (\d+)\n/.exec(out.stderr)?.[1]);
    expect(byWorker).toBeGreaterThanOrEqual(250);
    expect(byWorker).toBeLessThanOrEqual(n - 250);
    for (const i of [0, n - 1]) expect(statSync(join(root, "home", `q${i}`)).uid).toBe(7000 + i);
  });

  test("when the worker cannot run, this thread makes its half too", async () => {
    const root = makeRoot();
    const skel = readSkel(new Root(root));
    const jobs = Array.from({ length: 600 }, (_, i) => ({ path: join(root, "home", `w${i}`), uid: 6000 + i, gid: 6000 + i, keys: i === 39 ? [KEY_BOB] : null }));
    mkdirSync(join(root, "home"), { recursive: true });
    const out = await createHomesInParallel(jobs, 0o750, skel, new URL("./no-such-worker.ts", import.meta.url).href);
    expect(out).toEqual(jobs.map(() => null));
    expect(parallelHomes.byWorker).toBe(0);
    for (const j of jobs) expect([j.uid, statSync(j.path).uid, statSync(j.path).mode & 0o7777]).toEqual([j.uid, j.uid, 0o750]);
    expect(read(join(root, "home", "w39", ".ssh", "authorized_keys"))).toBe(keyFileContent([KEY_BOB]));
    expect(existsSync(join(root, "home", "w38", ".ssh"))).toBe(false);
  });
});

describe("keys in homes", () => {
  test("revoked keys disappear; a user with no keys left has an empty managed file", async () => {
    const root = makeRoot();
    const ak = join(root, "home", "alice", ".ssh", "authorized_keys");
    await d.put("Users", [userItem("alice", 2001, keysOf(KEY_ALICE, KEY_BOB))]);
    await pass(d, root, { config: HOMES });
    expect(read(ak)).toBe(`${KEY_HEADER}\n${KEY_ALICE}\n${KEY_BOB}\n`);
    await d.put("Users", [userItem("alice", 2001, keysOf(KEY_BOB))]);
    await pass(d, root, { config: HOMES });
    expect(read(ak)).toBe(`${KEY_HEADER}\n${KEY_BOB}\n`);
    await d.put("Users", [userItem("alice", 2001)]);
    await pass(d, root, { config: HOMES });
    expect(read(ak)).toBe(`${KEY_HEADER}\n`);
  });

  test("keys a user added by hand are replaced by the table's", async () => {
    const root = makeRoot();
    await d.put("Users", [userItem("alice", 2001, keysOf(KEY_ALICE))]);
    await pass(d, root, { config: HOMES });
    const ak = join(root, "home", "alice", ".ssh", "authorized_keys");
    writeFileSync(ak, `${KEY_BOB}\n`);
    const r = await pass(d, root, { config: HOMES });
    expect(r.homes.keysWritten).toEqual(["alice"]);
    expect(read(ak)).toBe(`${KEY_HEADER}\n${KEY_ALICE}\n`);
  });

  test("hostile homes: every attack is refused and reported, targets stay byte for byte, other users still sync", async () => {
    const root = makeRoot();
    // Root's files the attacks aim at (the account files themselves change in the pass).
    const etc = join(root, "srv", "target");
    mkdirSync(etc, { recursive: true, mode: 0o755 });
    writeFileSync(join(etc, "config"), "root's config\n", { mode: 0o644 });
    const secret = join(root, "root-secret");
    writeFileSync(secret, "root's own file\n", { mode: 0o600 });
    const homes = join(root, "home");
    const mkhome = (name: string, uid: number) => {
      const h = join(homes, name);
      mkdirSync(h, { recursive: true, mode: 0o755 });
      chownSync(h, uid, uid);
      return h;
    };
    // 1. ~/.ssh is a link to a directory outside the home.
    symlinkSync(etc, join(mkhome("eve1", 2101), ".ssh"));
    // 2. authorized_keys is a link to a root-owned file.
    const h2 = mkhome("eve2", 2102);
    mkdirSync(join(h2, ".ssh"));
    chownSync(join(h2, ".ssh"), 2102, 2102);
    symlinkSync(secret, join(h2, ".ssh", "authorized_keys"));
    // 3. authorized_keys is a hard link to a root-owned file.
    const h3 = mkhome("eve3", 2103);
    mkdirSync(join(h3, ".ssh"));
    chownSync(join(h3, ".ssh"), 2103, 2103);
    linkSync(join(etc, "config"), join(h3, ".ssh", "authorized_keys"));
    // 4. The home itself is a link.
    mkdirSync(homes, { recursive: true });
    symlinkSync(etc, join(homes, "eve4"));
    // 5. The home belongs to another user.
    mkhome("eve5", 2001);
    const targets = () => ({ etc: treeSnapshot(etc), secret: read(secret) });
    const before = targets();
    await d.put(
      "Users",
      [1, 2, 3, 4, 5].map((i) => userItem(`eve${i}`, 2100 + i, keysOf(KEY_ALICE))).concat([userItem("good", 2200, keysOf(KEY_BOB))]),
    );
    const r = await pass(d, root, { config: HOMES });
    expect(r.exitCode).toBe(3);
    const reasons = Object.fromEntries(r.plan.refusals.map((x) => [x.name, `${x.field}: ${x.reason}`]));
    expect(reasons['"eve1"']).toMatch(/SSHPublicKeys: ~\/.ssh is a symbolic link/);
    expect(reasons['"eve2"']).toMatch(/SSHPublicKeys: ~\/.ssh\/authorized_keys is a symbolic link/);
    expect(reasons['"eve3"']).toMatch(/SSHPublicKeys: ~\/.ssh\/authorized_keys has 2 hard links/);
    expect(reasons['"eve4"']).toMatch(/Home: \/home\/eve4 is a symbolic link/);
    expect(reasons['"eve5"']).toMatch(/Home: \/home\/eve5 belongs to UID 2001/);
    expect(targets()).toEqual(before);
    expect(existsSync(join(etc, "authorized_keys"))).toBe(false);
    expect(existsSync(join(homes, "eve5", ".ssh"))).toBe(false);
    // The accounts themselves still sync, and so does everyone else.
    for (const i of [1, 2, 3, 4, 5]) expect(read(join(root, "etc", "passwd"))).toContain(`eve${i}:x:${2100 + i}:`);
    expect(read(join(homes, "good", ".ssh", "authorized_keys"))).toBe(`${KEY_HEADER}\n${KEY_BOB}\n`);
  });

  test("a home in a system directory is refused; the account still syncs", async () => {
    const root = makeRoot();
    await d.put("Users", [userItem("svc", 2300, { Home: { S: "/etc" } })]);
    const r = await pass(d, root, { config: HOMES });
    expect(r.plan.refusals.map((x) => x.reason)).toEqual(["/etc is a system directory; refused"]);
    expect(read(join(root, "etc", "passwd"))).toContain("svc:x:2300:2300:svc user:/etc:/bin/bash");
  });
});

describe("keys outside homes", () => {
  const MODE2 = { create_homes: false, ssh_key_location: "/etc/ssh/authorized_keys/%u" };

  test("root-owned files; a user with no keys has no file; authorized-keys prints them", async () => {
    const root = makeRoot();
    await d.put("Users", [userItem("alice", 2001, keysOf(KEY_ALICE, KEY_BOB)), userItem("bob", 2002)]);
    await pass(d, root, { config: MODE2 });
    const dir = join(root, "etc", "ssh", "authorized_keys");
    const dst = statSync(dir);
    expect([dst.uid, dst.mode & 0o7777]).toEqual([0, 0o755]);
    const f = join(dir, "alice");
    const st = lstatSync(f);
    expect([st.uid, st.gid, st.mode & 0o7777]).toEqual([0, 0, 0o644]);
    expect(read(f)).toBe(`${KEY_HEADER}\n${KEY_ALICE}\n${KEY_BOB}\n`);
    expect(existsSync(join(dir, "bob"))).toBe(false);
    expect(existsSync(join(root, "home", "alice"))).toBe(false);

    const cfg = writeConfig(d, MODE2);
    const out = await ddum(["authorized-keys", "--root", root, "-c", cfg, "alice"]);
    expect(out.code).toBe(0);
    expect(out.stdout).toBe(`${KEY_ALICE}\n${KEY_BOB}\n`);
    expect((await ddum(["authorized-keys", "--root", root, "-c", cfg, "bob"])).stdout).toBe("");
    expect((await ddum(["authorized-keys", "--root", root, "-c", cfg, "../../etc/shadow"])).code).toBe(2);

    await d.put("Users", [userItem("alice", 2001)]);
    const r = await pass(d, root, { config: MODE2 });
    expect(r.homes.keysRemoved).toEqual(["alice"]);
    expect(existsSync(f)).toBe(false);
    expect((await ddum(["authorized-keys", "--root", root, "-c", cfg, "alice"])).stdout).toBe("");
  });

  test("a tampered key file is put back, a link is refused, new files are 0644 under any umask", async () => {
    const root = makeRoot();
    const users = ["alice", "bob", "carol", "dave", "erin"].map((n, i) => userItem(n, 2001 + i, keysOf(KEY_ALICE)));
    await d.put("Users", users);
    const old = process.umask(0o077);
    try {
      await pass(d, root, { config: MODE2 });
    } finally {
      process.umask(old);
    }
    const dir = join(root, "etc", "ssh", "authorized_keys");
    const want = `${KEY_HEADER}\n${KEY_ALICE}\n`;
    for (const n of ["alice", "bob", "carol", "dave", "erin"]) {
      const st = lstatSync(join(dir, n));
      expect([n, st.uid, st.gid, st.mode & 0o7777]).toEqual([n, 0, 0, 0o644]);
    }
    // In place, same size: only the content differs.
    writeFileSync(join(dir, "alice"), want.replace("AAAA", "BBBB"));
    chmodSync(join(dir, "bob"), 0o666);
    chownSync(join(dir, "carol"), 2003, 2003);
    rmSync(join(dir, "dave"));
    symlinkSync("/etc/shadow", join(dir, "dave"));
    const r = await pass(d, root, { config: MODE2 });
    expect(r.homes.keysWritten.sort()).toEqual(["alice", "bob", "carol"]);
    for (const n of ["alice", "bob", "carol", "erin"]) {
      const st = lstatSync(join(dir, n));
      expect([n, st.uid, st.mode & 0o7777, read(join(dir, n))]).toEqual([n, 0, 0o644, want]);
    }
    expect(r.plan.refusals.map((x) => [x.name, x.field])).toEqual([[`"dave"`, "SSHPublicKeys"]]);
    expect(lstatSync(join(dir, "dave")).isSymbolicLink()).toBe(true);
    expect(readlinkSync(join(dir, "dave"))).toBe("/etc/shadow");
  });

  test("with the key-file ledger: a file edited after a pass recorded it is still put back", async () => {
    const root = makeRoot();
    await d.put("Users", ["alice", "bob"].map((n, i) => userItem(n, 2001 + i, keysOf(KEY_ALICE))));
    await pass(d, root, { config: MODE2 });
    const ledger = join(root, "var", "lib", "ddum", "keyfiles.ledger");
    expect(existsSync(ledger)).toBe(false); // just written: nothing settled to record
    // Later passes run on a clock past the settle window (passed in, not slept through).
    const later = () => Date.now() + SETTLED_MS + 1000;
    await pass(d, root, { config: MODE2, dryRun: true, clock: later });
    expect(existsSync(ledger)).toBe(false); // a dry run writes nothing, the ledger included
    const r2 = await pass(d, root, { config: MODE2, clock: later });
    expect(r2.homes.keysWritten).toEqual([]);
    expect(lstatSync(ledger).size).toBeGreaterThan(0);
    const f = join(root, "etc", "ssh", "authorized_keys", "alice");
    const want = read(f);
    writeFileSync(f, want.replace("AAAA", "BBBB"));
    const r3 = await pass(d, root, { config: MODE2, clock: later });
    expect(r3.homes.keysWritten).toEqual(["alice"]);
    expect(read(f)).toBe(want);
  });

  test("a file seen missing during the scan but present when the pass applies is looked at, not overwritten blindly", () => {
    const dir = join(makeRoot(), "etc", "ssh", "authorized_keys");
    mkdirSync(dir, { recursive: true });
    const want = keyFileContent([KEY_ALICE]);
    writeFileSync(join(dir, "alice"), want, { mode: 0o644 });
    chmodSync(join(dir, "alice"), 0o644);
    const ino = lstatSync(join(dir, "alice")).ino;
    expect(syncRootKeys(join(dir, "alice"), [KEY_ALICE], false, true)).toBe("unchanged");
    expect(lstatSync(join(dir, "alice")).ino).toBe(ino);
    writeFileSync(join(dir, "bob"), keyFileContent([KEY_BOB]));
    expect(syncRootKeys(join(dir, "bob"), [KEY_ALICE], false, true)).toBe("written");
    expect(read(join(dir, "bob"))).toBe(want);
    expect(syncRootKeys(join(dir, "carol"), [KEY_ALICE], false, true)).toBe("written");
    expect(read(join(dir, "carol"))).toBe(want);
    expect(lstatSync(join(dir, "carol")).mode & 0o7777).toBe(0o644);
  });

  test("authorized-keys reads a home's file in home mode", async () => {
    const root = makeRoot();
    await d.put("Users", [userItem("alice", 2001, keysOf(KEY_ALICE))]);
    await pass(d, root, { config: HOMES });
    const cfg = writeConfig(d, HOMES);
    const out = await ddum(["authorized-keys", "--root", root, "-c", cfg, "alice"]);
    expect(out.stdout).toBe(`${KEY_ALICE}\n`);
  });
});

test("a dry run creates no home and writes no key", async () => {
  const root = makeRoot();
  await d.put("Users", [userItem("alice", 2001, keysOf(KEY_ALICE))]);
  const before = treeSnapshot(root);
  const r = await pass(d, root, { config: HOMES, dryRun: true });
  expect(r.homes).toMatchObject({ homesCreated: ["alice"], keysWritten: ["alice"] });
  expect(treeSnapshot(root)).toEqual(before);
});

describe("homeKeysInPlace (the read-only check a pass makes while it scans)", () => {
  // Each case starts from a home that is exactly right, changes one thing, and says whether the
  // check may still call it in place. Anything it wrongly accepts would never be repaired.
  const cases = HOME_CASES;
  const make = makeRightHome;
  test.each(cases)("%s → %p", (_what, change, inPlace) => {
    const home = make();
    change(home);
    expect(homeKeysInPlace(home, 2001, 2001, [KEY_ALICE])).toBe(inPlace);
  });
  test("no keys: in place only when there is no ~/.ssh at all", () => {
    const home = make();
    expect(homeKeysInPlace(home, 2001, 2001, [])).toBe(false);
    rmSync(join(home, ".ssh"), { recursive: true });
    expect(homeKeysInPlace(home, 2001, 2001, [])).toBe(true);
    expect(homeKeysInPlace(home, 2001, 2001, [KEY_ALICE])).toBe(false);
    expect(homeKeysInPlace(join(home, "missing"), 2001, 2001, [])).toBe(false);
  });
});

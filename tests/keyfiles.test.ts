// Root-owned key files and every other file ddum writes outside /etc, attacked with links planted
// at the names ddum uses, against the compiled binary and real files.
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, test } from "bun:test";
import { chmodSync, chownSync, existsSync, linkSync, lstatSync, mkdirSync, readdirSync, readFileSync, readlinkSync, rmSync, statSync, symlinkSync, truncateSync, utimesSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { keyFileContent } from "../src/sshkeys.ts";
import { ddum, writeConfig } from "./helpers/ddum.ts";
import { type Dynamo, startDynalite, userItem } from "./helpers/dynalite.ts";
import { KEY_ALICE, KEY_BOB, KEY_CAROL_RSA } from "./helpers/keys.ts";
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
const read = (p: string) => readFileSync(p, "utf8");

interface Report {
  homes: { homesCreated: string[]; keysWritten: string[]; keysRemoved: string[] };
  refusals: { name: string; field: string; reason: string }[];
}

async function sync(root: string, extra: Record<string, unknown>): Promise<{ code: number; r: Report; stderr: string }> {
  const out = await ddum(["sync", "--json", "--root", root, "-c", writeConfig(d, extra)]);
  try {
    return { code: out.code, r: JSON.parse(out.stdout), stderr: out.stderr };
  } catch {
    throw new Error(`no JSON report (exit ${out.code}): ${out.stderr}`);
  }
}
const refusalOf = (r: Report, name: string) => r.refusals.filter((x) => x.name === name);

/** A file root must never write, with its content. */
function victim(root: string, name = "victim"): { path: string; check: () => void } {
  const path = join(root, "etc", name);
  writeFileSync(path, "precious\n", { mode: 0o600 });
  const ino = statSync(path).ino;
  return {
    path,
    check: () => {
      expect(read(path)).toBe("precious\n");
      expect(statSync(path).ino).toBe(ino);
    },
  };
}

/** Wait for a condition, looking again every 20 ms (at most a minute). */
async function until(cond: () => boolean): Promise<void> {
  const end = Date.now() + 60_000;
  while (!cond()) {
    if (Date.now() > end) throw new Error("condition not reached in 60 s");
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** A home as useradd leaves it: the user's, with ~/.ssh of the user's. */
function userHome(root: string, name: string, uid: number): string {
  const home = join(root, "home", name);
  mkdirSync(home, { recursive: true, mode: 0o755 });
  chownSync(home, uid, uid);
  return home;
}

describe("a %u key template that passes through users' homes", () => {
  const TEMPLATE = { create_homes: false, ssh_key_location: "/home/%u/.ssh/authorized_keys" };

  test("~/.ssh linked to root's, another user's, or nothing: refused per user; no target written or deleted; no home made", async () => {
    const root = makeRoot();
    // root's keys, and bob's (written by an earlier pass into a directory that was root's).
    mkdirSync(join(root, "root", ".ssh"), { recursive: true, mode: 0o700 });
    const rootKeys = victim(root, "../root/.ssh/authorized_keys");
    const alice = userHome(root, "alice", 2001);
    symlinkSync("../../root/.ssh", join(alice, ".ssh")); // relative: stays in the scratch root
    const mallory = userHome(root, "mallory", 2003);
    mkdirSync(join(root, "home", "bob", ".ssh"), { recursive: true });
    writeFileSync(join(root, "home", "bob", ".ssh", "authorized_keys"), "bob's key file\n");
    symlinkSync("../bob/.ssh", join(mallory, ".ssh"));
    await d.put("Users", [
      userItem("alice", 2001, keysOf(KEY_ALICE)),
      userItem("mallory", 2003), // no keys: would delete the link's target
      userItem("carol", 2004, keysOf(KEY_BOB)), // no home at all
    ]);
    const { code, r } = await sync(root, TEMPLATE);
    expect(code).toBe(3);
    for (const n of ["alice", "carol"]) {
      const why = refusalOf(r, n);
      expect([n, why.map((x) => x.field)]).toEqual([n, ["SSHPublicKeys"]]);
    }
    expect(refusalOf(r, "alice")[0]!.reason).toContain("only root can write");
    expect(refusalOf(r, "carol")[0]!.reason).toContain("/home/carol, the home of a user");
    rootKeys.check();
    expect(read(join(root, "home", "bob", ".ssh", "authorized_keys"))).toBe("bob's key file\n");
    expect(existsSync(join(root, "home", "carol"))).toBe(false);
    expect(r.homes.keysWritten).toEqual([]);
    expect(r.homes.keysRemoved).toEqual([]);
  });

  test("a key directory others can write: links planted at the key file and at the old temporary names are never written through", async () => {
    const root = makeRoot();
    const dir = join(root, "srv", "keys");
    mkdirSync(dir, { recursive: true });
    chmodSync(dir, 0o1777);
    const v = victim(root);
    for (const n of ["alice", "alice.ddum-new", "alice.tmp", ".alice.ddum-new"]) symlinkSync("../../etc/victim", join(dir, n));
    await d.put("Users", [userItem("alice", 2001, keysOf(KEY_ALICE))]);
    const { code, r } = await sync(root, { ssh_key_location: "/srv/keys/%u" });
    expect(code).toBe(3);
    expect(refusalOf(r, "alice")[0]!.reason).toContain("/srv/keys is not owned by root or is writable by others");
    v.check();
    expect(readlinkSync(join(dir, "alice"))).toBe("../../etc/victim");
  });

  test("a key directory that becomes a user's after a pass: refused on the fast path too (the file itself still in place)", async () => {
    const root = makeRoot();
    const cfg = { ssh_key_location: "/srv/keys/%u/authorized_keys" };
    await d.put("Users", [userItem("alice", 2001, keysOf(KEY_ALICE))]);
    const first = await sync(root, cfg);
    expect([first.code, first.r.homes.keysWritten]).toEqual([0, ["alice"]]);
    const f = join(root, "srv", "keys", "alice", "authorized_keys");
    expect([statSync(f).uid, statSync(join(root, "srv", "keys", "alice")).uid]).toEqual([0, 0]);
    expect((await sync(root, cfg)).r.homes.keysWritten).toEqual([]); // in place: the scan-time check
    chownSync(join(root, "srv", "keys", "alice"), 2001, 2001);
    const { code, r } = await sync(root, cfg);
    expect(code).toBe(3);
    expect(refusalOf(r, "alice").map((x) => x.field)).toEqual(["SSHPublicKeys"]);
    // authorized-keys does not serve it either.
    const ak = await ddum(["authorized-keys", "alice", "--root", root, "-c", writeConfig(d, cfg)]);
    expect([ak.code, ak.stdout]).toEqual([1, ""]);
  });

  test("temporary names no account name can produce: users x and x.ddum-new keep their own key files", async () => {
    const root = makeRoot();
    const cfg = { ssh_key_location: "/srv/keys/%u" };
    await d.put("Users", [userItem("x", 2001, keysOf(KEY_ALICE)), userItem("x.ddum-new", 2002, keysOf(KEY_BOB))]);
    expect((await sync(root, cfg)).code).toBe(0);
    await d.put("Users", [userItem("x", 2001, keysOf(KEY_ALICE, KEY_CAROL_RSA))]);
    expect((await sync(root, cfg)).code).toBe(0);
    expect(read(join(root, "srv", "keys", "x"))).toBe(keyFileContent([KEY_ALICE, KEY_CAROL_RSA].sort()));
    expect(read(join(root, "srv", "keys", "x.ddum-new"))).toBe(keyFileContent([KEY_BOB]));
  });

  test("a key file over 64 KiB is compared whole: the second pass leaves it alone", async () => {
    const root = makeRoot();
    const cfg = { ssh_key_location: "/srv/keys/%u" };
    const keys = Array.from({ length: 200 }, (_, i) => `${KEY_CAROL_RSA}${i}`);
    await d.put("Users", [userItem("alice", 2001, keysOf(...keys))]);
    const first = await sync(root, cfg);
    expect(first.code).toBe(0);
    const f = join(root, "srv", "keys", "alice");
    expect(statSync(f).size).toBeGreaterThan(65536);
    const before = statSync(f);
    for (let i = 0; i < 2; i++) {
      const again = await sync(root, cfg);
      expect([again.code, again.r.homes.keysWritten]).toEqual([0, []]);
    }
    expect([statSync(f).ino, statSync(f).mtimeMs]).toEqual([before.ino, before.mtimeMs]);
  });
});

describe("files read from a home: at most 1 MiB", () => {
  test("authorized-keys and import --from-local refuse a 1 GiB sparse authorized_keys, and say so", async () => {
    const root = makeRoot();
    writeFileSync(join(root, "etc", "passwd"), `${read(join(root, "etc", "passwd"))}alice:x:2001:2001::/home/alice:/bin/bash\n`);
    writeFileSync(join(root, "etc", "shadow"), `${read(join(root, "etc", "shadow"))}alice:!:19000:0:99999:7:::\n`);
    writeFileSync(join(root, "etc", "group"), `${read(join(root, "etc", "group"))}alice:x:2001:\n`);
    const home = userHome(root, "alice", 2001);
    mkdirSync(join(home, ".ssh"));
    const ak = join(home, ".ssh", "authorized_keys");
    writeFileSync(ak, `${KEY_ALICE}\n`);
    chownSync(join(home, ".ssh"), 2001, 2001);
    chownSync(ak, 2001, 2001);
    const cfg = writeConfig(d, { uid_min: 1000, uid_max: 60000, gid_min: 1000, gid_max: 60000 });
    const small = await ddum(["authorized-keys", "alice", "--root", root, "-c", cfg]);
    expect([small.code, small.stdout]).toEqual([0, `${KEY_ALICE}\n`]);
    truncateSync(ak, 1024 * 1024 * 1024);
    const big = await ddum(["authorized-keys", "alice", "--root", root, "-c", cfg]);
    expect([big.code, big.stdout]).toEqual([1, ""]);
    expect(big.stderr).toContain("larger than 1048576 bytes");
    const imp = await ddum(["import", "--from-local", "--dry-run", "--root", root, "-c", cfg]);
    expect(imp.stdout).toContain('refused user "alice"');
    expect(imp.stdout).toContain("larger than 1048576 bytes");
  });
});

describe("every file ddum writes outside /etc", () => {
  test("a metrics directory others can write (a textfile collector's): links at the names ddum writes are replaced, never followed", async () => {
    const root = makeRoot();
    const dir = join(root, "var", "lib", "node_exporter");
    mkdirSync(dir, { recursive: true });
    chmodSync(dir, 0o1777);
    const v = victim(root);
    const names = ["ddum.prom", "ddum.prom-", `ddum.prom.tmp-${process.pid + 1}`, "ddum.prom.tmp", ".ddum.prom"];
    for (const n of names) symlinkSync("../../../etc/victim", join(dir, n));
    // and in the state directory: every name a pass writes there besides what it must read first.
    const state = join(root, "var", "lib", "ddum");
    mkdirSync(state, { recursive: true });
    // (state.json- is read as the state's backup when state.json is missing: a link there is
    // tried below, on its own.)
    const stateNames = ["status.json-", "keyfiles.ledger", "scan-pages.memo"];
    for (const n of stateNames) symlinkSync("../../../etc/victim", join(state, n));
    await d.put("Users", [userItem("alice", 2001, keysOf(KEY_ALICE))]);
    for (let i = 0; i < 2; i++) {
      const { code } = await sync(root, { metrics_file: "/var/lib/node_exporter/ddum.prom", ssh_key_location: "/srv/keys/%u" });
      expect(code).toBe(0);
      v.check();
    }
    // No temporary file is left behind, in either directory.
    expect([...readdirSync(dir), ...readdirSync(state)].filter((n) => n.includes("~"))).toEqual([]);
    const prom = lstatSync(join(dir, "ddum.prom"));
    expect([prom.isFile(), prom.uid, prom.mode & 0o7777]).toEqual([true, 0, 0o644]);
    expect(read(join(dir, "ddum.prom"))).toContain("ddum_last_pass_success 1");
    for (const n of ["state.json", "state.json-", "status.json", "status.json-"]) {
      const st = lstatSync(join(state, n));
      expect([n, st.isFile(), st.mode & 0o7777]).toEqual([n, true, 0o600]);
    }
    // A link at state.json- with state.json gone: read as a backup that cannot be used, so the
    // state counts as lost and the pass stops; nothing is written through the link.
    rmSync(join(state, "state.json"));
    rmSync(join(state, "state.json-"));
    symlinkSync("../../../etc/victim", join(state, "state.json-"));
    const lost = await ddum(["sync", "--root", root, "-c", writeConfig(d, { metrics_file: "/var/lib/node_exporter/ddum.prom", ssh_key_location: "/srv/keys/%u" })]);
    expect(lost.code).toBe(1);
    expect(lost.stderr).toContain("ddum's state is lost");
    expect(readlinkSync(join(state, "state.json-"))).toBe("../../../etc/victim");
    v.check();
  });

  test("temporary files a killed pass left in the state and metrics directories are swept, nothing else", async () => {
    const root = makeRoot();
    const state = join(root, "var", "lib", "ddum");
    const prom = join(root, "var", "lib", "node_exporter");
    mkdirSync(state, { recursive: true });
    mkdirSync(prom, { recursive: true });
    const old = new Date(Date.now() - 5 * 60_000);
    const plant = (dir: string, name: string, age: Date | null) => {
      writeFileSync(join(dir, name), "left by a killed pass\n");
      if (age) utimesSync(join(dir, name), age, age);
    };
    plant(state, ".ddum~state.json~0123456789abcdef", old);
    plant(state, ".ddum~keyfiles.ledger~0123456789abcdef", old);
    plant(prom, ".ddum~ddum.prom~0123456789abcdef", old);
    plant(state, ".ddum~status.json~fresh000fresh000", null); // a live writer's: seconds old
    plant(state, ".ddum~notours~0123456789abcdef", old);
    symlinkSync("../../../etc/victim", join(state, ".ddum~status.json~feedfeedfeedfeed"));
    await d.put("Users", [userItem("alice", 2001)]);
    const { code } = await sync(root, { metrics_file: "/var/lib/node_exporter/ddum.prom" });
    expect(code).toBe(0);
    expect(readdirSync(state).filter((n) => n.startsWith(".ddum~")).sort()).toEqual([".ddum~notours~0123456789abcdef", ".ddum~status.json~feedfeedfeedfeed", ".ddum~status.json~fresh000fresh000"]);
    expect(readdirSync(prom).filter((n) => n.startsWith(".ddum~"))).toEqual([]);
  });

  test("the daemon: a pidfile that is a link or a hard link to another file is refused; the default pidfile is under --root; the log never follows a link", async () => {
    const root = makeRoot();
    const v = victim(root);
    const cfg = writeConfig(d, { logging: { file: join(root, "var", "log", "ddum.log") }, full_update_period: 3600 });
    mkdirSync(join(root, "var", "log"), { recursive: true });
    mkdirSync(join(root, "run"), { recursive: true });
    const pid = join(root, "run", "ddum.pid");
    symlinkSync(v.path, pid);
    const linked = await ddum(["daemon", "-f", "--root", root, "-c", cfg, "-p", pid]);
    expect(linked.code).not.toBe(0);
    expect(linked.stderr).toContain("pidfile");
    v.check();
    const hard = join(root, "run", "hard.pid");
    linkSync(v.path, hard);
    const hardRun = await ddum(["daemon", "-f", "--root", root, "-c", cfg, "-p", hard]);
    expect(hardRun.code).not.toBe(0);
    v.check();

    // Detached, with the default pidfile (under --root) and the log file a link to the victim.
    symlinkSync(v.path, join(root, "var", "log", "ddum.log"));
    await d.put("Users", [userItem("alice", 2001)]);
    const started = await ddum(["daemon", "--root", root, "-c", cfg]);
    expect(started.code).toBe(0);
    const pidfile = join(root, "var", "run", "dynamodb-user-manager.pid");
    const daemonPid = Number(read(pidfile).trim());
    expect(daemonPid).toBeGreaterThan(1);
    await until(() => existsSync(join(root, "var", "lib", "ddum", "status.json")));
    process.kill(daemonPid, "SIGTERM");
    await until(() => !existsSync(pidfile));
    expect(readlinkSync(join(root, "var", "log", "ddum.log"))).toBe(v.path);
    v.check();
  });
});

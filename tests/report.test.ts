// What an admin reads: the status of the last pass, the plan and its summary, the JSON forms.
// Every test runs the compiled binary against a real dynalite and a scratch root.
import { afterAll, beforeEach, beforeAll, describe, expect, test } from "bun:test";
import { spawnSync } from "node:child_process";
import { readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { DDUM, ddum, writeConfig } from "./helpers/ddum.ts";
import { type Dynamo, groupItem, startDynalite, userItem } from "./helpers/dynalite.ts";
import { KEY_ALICE, KEY_BOB } from "./helpers/keys.ts";
import { cleanupRoots, makeRoot } from "./helpers/root.ts";

let d: Dynamo;
beforeAll(async () => {
  d = await startDynalite();
});
beforeEach(async () => {
  await d.reset();
  await d.createTables();
});
afterAll(async () => {
  await d.close();
  cleanupRoots();
});

const statusJson = (root: string) => JSON.parse(readFileSync(join(root, "var", "lib", "ddum", "status.json"), "utf8"));

describe("ddum status names the records the last pass rejected or refused", () => {
  test("each one, with its table, field and reason", async () => {
    const root = makeRoot();
    const cfg = writeConfig(d);
    // "daemon" is a local account ddum did not make: refused. A name with a space: rejected.
    await d.put("Users", [userItem("alice", 2001), userItem("daemon", 2500), userItem("bad name", 2002)]);
    const s = await ddum(["sync", "--root", root, "-c", cfg]);
    expect(s.code).toBe(3);
    const r = await ddum(["status", "--root", root, "-c", cfg]);
    expect(r.code).toBe(0);
    const lines = r.stdout.trimEnd().split("\n");
    expect(lines[0]).toMatch(/^OK: last pass partial/);
    expect(lines.slice(1)).toEqual([
      expect.stringMatching(/^ {2}rejected: Users record "bad name": Name: /),
      expect.stringMatching(/^ {2}refused: Users record "?daemon"?: /),
    ]);
    const j = JSON.parse((await ddum(["status", "--json", "--root", root, "-c", cfg])).stdout);
    expect(j.lastPass.problems.map((p: { kind: string }) => p.kind)).toEqual(["rejected", "refused"]);
    expect(j.lastPass.problemsMore).toBe(0);
  });

  test("a pass with hundreds of bad records keeps the first 50 and counts the rest", async () => {
    const root = makeRoot();
    const cfg = writeConfig(d);
    await d.put("Users", Array.from({ length: 230 }, (_, i) => userItem(`bad name${i}`, 3000 + i)));
    expect((await ddum(["sync", "--root", root, "-c", cfg])).code).toBe(3);
    const st = statusJson(root);
    expect(st.lastPass.problems.length).toBe(50);
    expect(st.lastPass.problemsMore).toBe(180);
    const r = await ddum(["status", "--root", root, "-c", cfg]);
    expect(r.stdout.split("\n").filter((l) => l.startsWith("  rejected: Users record")).length).toBe(50);
    expect(r.stdout).toContain("  and 180 more (ddum sync --dry-run lists them all)\n");
  });

  test("a clean pass lists none", async () => {
    const root = makeRoot();
    const cfg = writeConfig(d);
    await d.put("Users", [userItem("alice", 2001)]);
    expect((await ddum(["sync", "--root", root, "-c", cfg])).code).toBe(0);
    const r = await ddum(["status", "--root", root, "-c", cfg]);
    expect(r.stdout.trimEnd().split("\n").length).toBe(1);
    expect(statusJson(root).lastPass.problems).toEqual([]);
  });

  test("a name with escape codes from the table reaches the terminal escaped", async () => {
    const root = makeRoot();
    const cfg = writeConfig(d);
    await d.put("Users", [userItem("ev\u001b]0;pwned\u0007e", 2001)]);
    expect((await ddum(["sync", "--root", root, "-c", cfg])).code).toBe(3);
    const r = await ddum(["status", "--root", root, "-c", cfg]);
    expect(r.stdout).toContain("  rejected: Users record");
    expect(r.stdout).not.toMatch(/[\u0000-\u0009\u000b-\u001f\u007f]/);
  });
});

/** OpenSSH's own fingerprint of a key line. */
function sshFingerprint(key: string): string {
  const r = spawnSync("ssh-keygen", ["-lf", "/dev/stdin"], { input: `${key}\n`, encoding: "utf8" });
  expect(r.status).toBe(0);
  return r.stdout.split(" ")[1]!;
}

const SUMMARY = /^(?:dry run, nothing written; a pass would do: )?users: (\d+) created, (\d+) updated, (\d+) disabled, (\d+) unchanged, (\d+) refused, (\d+) rejected; groups: (\d+) created, (\d+) updated, (\d+) unchanged, (\d+) refused, (\d+) rejected; homes: (\d+) created; key files: (\d+) written, (\d+) removed; \d+(?:\.\d+)? s$/m;
const summaryOf = (out: string) => {
  const m = SUMMARY.exec(out);
  expect(m).not.toBeNull();
  const n = m!.slice(1).map(Number);
  return { users: n.slice(0, 6), groups: n.slice(6, 11), homes: n[11], keys: n.slice(12, 14) };
};

describe("the plan", () => {
  test("one line per change, with its marker, sorted by name; the summary counts users and groups apart, the same way on every pass", async () => {
    const root = makeRoot();
    const cfg = writeConfig(d, { missing_users: "disable", max_disable_percent: 100 });
    // UID order is not name order.
    await d.put("Users", [userItem("carol", 2001), userItem("alice", 2003), userItem("bob", 2002)]);
    await d.put("Groups", [groupItem("devs", 3000, { Members: { SS: ["alice", "bob"] } })]);
    const plan = await ddum(["sync", "--dry-run", "--root", root, "-c", cfg]);
    expect(plan.code).toBe(0);
    const lines = plan.stdout.trimEnd().split("\n");
    expect(lines.slice(0, -1).map((l) => l.replace(/:.*/, ""))).toEqual([
      "+ user alice",
      "+ group alice (user private group)",
      "+ user bob",
      "+ group bob (user private group)",
      "+ user carol",
      "+ group carol (user private group)",
      "+ group devs",
    ]);
    expect(lines).toContain("+ group devs: GID 3000; Members alice,bob");
    expect(lines[0]).toMatch(/^\+ user alice: UID 2003; GID 2003; RealName alice user; Home \/home\/alice; Shell \/bin\/bash; password locked/);
    expect(summaryOf(plan.stdout)).toEqual({ users: [3, 0, 0, 0, 0, 0], groups: [4, 0, 0, 0, 0], homes: 0, keys: [0, 0] });

    const first = await ddum(["sync", "--root", root, "-c", cfg]);
    expect(summaryOf(first.stdout)).toEqual({ users: [3, 0, 0, 0, 0, 0], groups: [4, 0, 0, 0, 0], homes: 0, keys: [0, 0] });
    const second = await ddum(["sync", "--root", root, "-c", cfg]);
    expect(summaryOf(second.stdout)).toEqual({ users: [0, 0, 0, 3, 0, 0], groups: [0, 0, 4, 0, 0], homes: 0, keys: [0, 0] });

    // An update and a disable, each on one line with its marker.
    await d.put("Users", [userItem("bob", 2002, { Shell: { S: "/bin/sh" } })]);
    await d.remove("Users", "carol");
    const third = await ddum(["sync", "--root", root, "-c", cfg]);
    const changes = third.stdout.split("\n").filter((l) => /^[+~!] /.test(l));
    expect(changes).toEqual([
      "~ user bob: Shell: /bin/bash → /bin/sh",
      expect.stringMatching(/^! user carol \(no longer in the table: disabled\): /),
    ]);
    expect(summaryOf(third.stdout)).toEqual({ users: [0, 1, 1, 1, 0, 0], groups: [0, 0, 4, 0, 0], homes: 0, keys: [0, 0] });
  });

  test("an SSH key change names the file and the fingerprints that come and go (as ssh-keygen -l gives them)", async () => {
    const root = makeRoot();
    const cfg = writeConfig(d, { ssh_key_location: "/etc/ssh/keys/%u" });
    await d.put("Users", [userItem("alice", 2001, { SSHPublicKeys: { SS: [KEY_ALICE] } })]);
    const first = await ddum(["sync", "--root", root, "-c", cfg]);
    expect(first.stdout).toContain(`~ keys alice: /etc/ssh/keys/alice: +${sshFingerprint(KEY_ALICE)}\n`);
    expect(summaryOf(first.stdout).keys).toEqual([1, 0]);

    // The key an admin removes is named, with the one that replaces it.
    await d.put("Users", [userItem("alice", 2001, { SSHPublicKeys: { SS: [KEY_BOB] } })]);
    const swap = await ddum(["sync", "--dry-run", "--root", root, "-c", cfg]);
    expect(swap.stdout).toContain(`~ keys alice: /etc/ssh/keys/alice: +${sshFingerprint(KEY_BOB)} -${sshFingerprint(KEY_ALICE)}\n`);
    expect((await ddum(["sync", "--root", root, "-c", cfg])).code).toBe(0);

    // No key left: the file goes, and the key with it.
    await d.put("Users", [userItem("alice", 2001)]);
    const gone = await ddum(["sync", "--root", root, "-c", cfg]);
    expect(gone.stdout).toContain(`~ keys alice: /etc/ssh/keys/alice removed (no keys left): -${sshFingerprint(KEY_BOB)}\n`);
    expect(summaryOf(gone.stdout).keys).toEqual([0, 1]);
  });

  test("keys in a home: a key planted by hand is named when the pass takes it out", async () => {
    const root = makeRoot();
    const cfg = writeConfig(d, { create_homes: true });
    await d.put("Users", [userItem("alice", 2001, { SSHPublicKeys: { SS: [KEY_ALICE] } })]);
    const first = await ddum(["sync", "--root", root, "-c", cfg]);
    expect(first.stdout).toContain("+ home alice: /home/alice\n");
    expect(first.stdout).toContain(`~ keys alice: /home/alice/.ssh/authorized_keys: +${sshFingerprint(KEY_ALICE)}\n`);
    expect(summaryOf(first.stdout).homes).toBe(1);
    const file = join(root, "home", "alice", ".ssh", "authorized_keys");
    writeFileSync(file, `${readFileSync(file, "utf8")}${KEY_BOB}\n`);
    const again = await ddum(["sync", "--root", root, "-c", cfg]);
    expect(again.stdout).toContain(`~ keys alice: /home/alice/.ssh/authorized_keys: -${sshFingerprint(KEY_BOB)}\n`);
  });

  test("--summary prints the summary line alone", async () => {
    const root = makeRoot();
    const cfg = writeConfig(d);
    await d.put("Users", [userItem("alice", 2001), userItem("daemon", 2500)]);
    for (const args of [["verify", "--summary"], ["sync", "--dry-run", "--summary"], ["sync", "--summary"]]) {
      const r = await ddum([...args, "--root", root, "-c", cfg]);
      const lines = r.stdout.trimEnd().split("\n");
      expect(lines[0]).toMatch(SUMMARY);
      expect(lines.length).toBe(args[0] === "verify" ? 2 : 1);
    }
  });

  test("colour only on a terminal, and not with NO_COLOR", async () => {
    const root = makeRoot();
    const cfg = writeConfig(d);
    await d.put("Users", [userItem("alice", 2001)]);
    // script(1) gives the command a terminal (dynalite runs in this process: spawn, never spawnSync).
    const onTty = async (noColor: string) => {
      const cmd = `${DDUM} sync --dry-run --root ${root} -c ${cfg}`;
      const proc = Bun.spawn(["script", "-qec", cmd, "/dev/null"], { stdout: "pipe", stderr: "pipe", stdin: "ignore", env: { ...process.env, NO_COLOR: noColor } });
      const out = await new Response(proc.stdout).text();
      await proc.exited;
      expect(out).toContain("user alice");
      return out;
    };
    expect(await onTty("")).toContain("\x1b[32m+\x1b[0m user alice");
    expect(await onTty("1")).not.toContain("\x1b[3");
    const piped = await ddum(["sync", "--dry-run", "--root", root, "-c", cfg], { env: { NO_COLOR: "" } });
    expect(piped.stdout).toContain("+ user alice");
    expect(piped.stdout).not.toContain("\x1b");
  });
});

describe("--json", () => {
  test("sync: a version, null for no value, plain names, whole milliseconds", async () => {
    const root = makeRoot();
    const cfg = writeConfig(d);
    await d.put("Users", [userItem("alice", 2001), userItem("daemon", 2500), userItem('e"ve', 2002), userItem("bad name", 2003)]);
    const r = await ddum(["sync", "--json", "--root", root, "-c", cfg]);
    expect(r.code).toBe(3);
    const doc = JSON.parse(r.stdout);
    expect(doc.version).toBe(1);
    const alice = doc.actions.find((a: { kind: string; name: string }) => a.kind === "create-user" && a.name === "alice");
    expect(alice.changes.find((c: { field: string }) => c.field === "UID")).toEqual({ field: "UID", from: null, to: "2001" });
    expect(r.stdout).not.toContain("(none)");
    expect(doc.refusals.map((x: { name: string }) => x.name)).toEqual(["daemon"]);
    expect(doc.rejections.map((x: { name: string }) => x.name).sort()).toEqual(["bad name", 'e"ve']);
    for (const v of Object.values(doc.timings)) expect(Number.isInteger(v)).toBe(true);
    expect(doc.summary).toMatchObject({ users: { created: 1, refused: 1, rejected: 2 }, groups: { created: 1 } });
  });

  test("check, status, verify, user list and group list carry the version; status names plainly", async () => {
    const root = makeRoot();
    const cfg = writeConfig(d);
    await d.put("Users", [userItem("alice", 2001), userItem("bad name", 2003)]);
    await ddum(["sync", "--root", root, "-c", cfg]);
    const check = JSON.parse((await ddum(["check", "--json", "-c", cfg])).stdout);
    expect(check.version).toBe(1);
    expect(check.rejections[0].name).toBe("bad name");
    const status = JSON.parse((await ddum(["status", "--json", "--root", root, "-c", cfg])).stdout);
    expect(status.version).toBe(1);
    expect(status.lastPass.problems[0]).toMatchObject({ kind: "rejected", name: "bad name", field: "Name" });
    expect(JSON.parse((await ddum(["verify", "--json", "--root", root, "-c", cfg])).stdout).version).toBe(1);
    expect(JSON.parse((await ddum(["user", "list", "--json", "-c", cfg])).stdout)).toMatchObject({ version: 1, users: [{ name: "alice" }, { name: "bad name" }] });
    expect(JSON.parse((await ddum(["group", "list", "--json", "-c", cfg])).stdout)).toMatchObject({ version: 1, groups: [] });
  });

  test("a command that fails prints a JSON error object on stdout, with the exit code", async () => {
    const root = makeRoot();
    const down = writeConfig(d, { endpoint_url: "http://127.0.0.1:9", max_attempts: 1 });
    for (const args of [["sync", "--json", "--root", root], ["sync", "--dry-run", "--json", "--root", root], ["check", "--json"], ["user", "list", "--json"]]) {
      const r = await ddum([...args, "-c", down]);
      expect(r.code).toBe(1);
      const doc = JSON.parse(r.stdout);
      expect(doc).toEqual({ version: 1, error: { message: expect.stringContaining("Users"), exitCode: 1 } });
      expect(r.stderr).toContain(doc.error.message.slice(0, 30));
    }
    // A configuration error: exit 2, said the same way.
    const bad = join(root, "bad.cfg");
    writeFileSync(bad, '{"uid_min": "many"}');
    const r = await ddum(["sync", "--json", "--root", root, "-c", bad]);
    expect(r.code).toBe(2);
    expect(JSON.parse(r.stdout)).toEqual({ version: 1, error: { message: expect.stringContaining("uid_min"), exitCode: 2 } });
  });
});

describe("the daemon's trail", () => {
  test("one log line per change: the account and what changed, never a hash", async () => {
    const HASH = "$6$Ddumdemo1$ZGQQCYJEEwpwiwHO6nUz6XdvqrCxmGutrcUxL8yObU2p.xua.Rv7PBxzQYQZK9sg81lL/4RYpPbm7EBHzEdr10";
    const root = makeRoot();
    const cfg = writeConfig(d, { full_update_period: 3600, full_update_jitter: 0 });
    await d.put("Users", [userItem("alice", 2001, { Password: { S: HASH } })]);
    const proc = Bun.spawn([DDUM, "daemon", "-f", "-p", join(root, "ddum.pid"), "--root", root, "-c", cfg], { stdout: "pipe", stderr: "pipe" });
    let err = "";
    const reading = (async () => {
      for await (const chunk of proc.stderr) err += new TextDecoder().decode(chunk);
    })();
    const passes = () => err.split("pass done:").length - 1;
    const until = async (n: number) => {
      while (passes() < n && proc.exitCode === null) await new Promise((r) => setTimeout(r, 50));
    };
    await until(1);
    await d.put("Users", [userItem("alice", 2001, { Password: { S: `!${HASH}` }, Shell: { S: "/bin/sh" } })]);
    proc.kill("SIGHUP");
    await until(2);
    proc.kill("SIGTERM");
    await proc.exited;
    await reading;
    const changes = err.split("\n").filter((l) => l.includes("change: "));
    expect(changes).toEqual([
      expect.stringMatching(/change: \+ user alice: UID 2001; .*password set/),
      expect.stringContaining("change: + group alice (user private group): GID 2001"),
      "info: change: ~ user alice: Shell: /bin/bash → /bin/sh; password changed",
    ]);
    expect(err).not.toContain("$6$");
    expect(err).not.toContain(HASH.slice(-12));
  }, 60_000);
});

describe("configuration mistakes and automatic IDs", () => {
  test("a misspelt key stops every command with the key it most likely meant; nothing is written", async () => {
    const root = makeRoot();
    await d.put("Users", [userItem("alice", 2001, { SSHPublicKeys: { SS: [KEY_ALICE] } })]);
    const cfg = writeConfig(d, { ssh_key_locaton: "/etc/ssh/keys/%u" });
    const before = readFileSync(join(root, "etc", "passwd"), "utf8");
    for (const args of [["sync", "--root", root], ["check"], ["user", "list"], ["status", "--root", root]]) {
      const r = await ddum([...args, "-c", cfg]);
      expect([args[0], r.code]).toEqual([args[0], 2]);
      expect(r.stderr).toContain('unknown key "ssh_key_locaton" (did you mean "ssh_key_location"?)');
    }
    expect(readFileSync(join(root, "etc", "passwd"), "utf8")).toBe(before);
  });

  test("an empty managed range is refused, in the config or against login.defs, naming where each bound came from", async () => {
    const root = makeRoot();
    await d.put("Users", [userItem("alice", 2001)]);
    const both = await ddum(["sync", "--root", root, "-c", writeConfig(d, { uid_min: 70000, uid_max: 60000 })]);
    expect(both.code).toBe(2);
    expect(both.stderr).toContain("uid_min (70000) is greater than uid_max (60000)");
    const defs = await ddum(["sync", "--root", root, "-c", writeConfig(d, { gid_min: 70000 })]);
    expect(defs.code).toBe(2);
    expect(defs.stderr).toContain(`the managed GID range is empty: gid_min is 70000, above GID_MAX in ${join(root, "etc", "login.defs")} (60000)`);
    expect(readFileSync(join(root, "etc", "passwd"), "utf8")).not.toContain("alice");
  });

  test("--uid auto and --gid auto start at auto_id_min (2000), not at 1000, and stay inside the managed range", async () => {
    const cfg = writeConfig(d);
    const u = await ddum(["user", "add", "alice", "-c", cfg]);
    expect([u.code, u.stdout]).toEqual([0, expect.stringContaining("UID 2000, GID 2000")]);
    const g = await ddum(["group", "add", "devs", "--gid", "auto", "-c", cfg]);
    expect([g.code, g.stdout]).toEqual([0, expect.stringContaining("2001")]);
    // A managed range that starts higher wins.
    const high = writeConfig(d, { uid_min: 5000, gid_min: 5000 });
    expect((await ddum(["user", "add", "bob", "--uid", "auto", "-c", high])).stdout).toContain("UID 5000, GID 5000");
    // auto_id_min above the range: no ID is made up outside it.
    const above = writeConfig(d, { auto_id_min: 70000 });
    const r = await ddum(["user", "add", "carol", "-c", above]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("no free UID left from auto_id_min (70000) in the managed range 1000-60000");
    expect((await ddum(["user", "show", "carol", "-c", above])).code).toBe(1);
  });

  test("ddum check warns about a table UID or GID of 1000 or 1001", async () => {
    const cfg = writeConfig(d);
    await d.put("Users", [userItem("ann", 1000), userItem("ben", 2002, { GID: { N: "1001" } }), userItem("cat", 2003)]);
    await d.put("Groups", [groupItem("ops", 1001)]);
    const r = await ddum(["check", "-c", cfg]);
    expect(r.code).toBe(0);
    const warned = r.stdout.split("\n").filter((l) => l.includes("stock cloud images"));
    expect(warned.map((l) => l.replace(/: \d+ is the ID.*/, "")).sort()).toEqual(['warning: Groups record "ops": GID', 'warning: Users record "ann": UID', 'warning: Users record "ben": GID']);
    expect(JSON.parse((await ddum(["check", "--json", "-c", cfg])).stdout).warnings.length).toBe(3);
  });
});

test("the demo, written into a pipe, holds no escape codes", async () => {
  const proc = Bun.spawn([process.execPath, join(import.meta.dir, "..", "examples", "demo.ts")], { stdout: "pipe", stderr: "pipe", env: { ...process.env, NO_COLOR: "" } });
  const [out, err, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  expect(code).toBe(0);
  expect(out).toContain("$ ddum sync --dry-run");
  expect(out).toMatch(/^\+ user alice: /m);
  expect(out + err).not.toContain("\x1b");
}, 60_000);

test("ddum(8) lists every file in the state directory and every environment variable ddum reads", () => {
  const page = readFileSync(join(import.meta.dir, "..", "packaging", "ddum.8"), "utf8").replace(/\\-/g, "-");
  const files = page.slice(page.indexOf(".SH FILES"), page.indexOf(".SH ENVIRONMENT"));
  for (const f of ["state.json", "state.json-", "status.json", "homes.lock", "keyfiles.ledger", "scan-pages.memo"]) expect([f, files.includes(`/var/lib/ddum/${f}\n`)]).toEqual([f, true]);
  const env = page.slice(page.indexOf(".SH ENVIRONMENT"), page.indexOf(".SH SELINUX"));
  for (const v of ["DDUM_DEBUG", "DDUM_TRACE_MEMORY", "DDUM_LOG_FILE", "NO_COLOR", "HTTPS_PROXY", "NO_PROXY", "AWS_REGION", "AWS_PROFILE"]) expect([v, env.includes(v)]).toEqual([v, true]);
});

test("a home's key file filled by its user: the keys taken out are counted past 20, the file is read through no link", async () => {
  const root = makeRoot();
  const cfg = writeConfig(d, { create_homes: true });
  await d.put("Users", [userItem("alice", 2001, { SSHPublicKeys: { SS: [KEY_ALICE] } })]);
  expect((await ddum(["sync", "--root", root, "-c", cfg])).code).toBe(0);
  const ssh = join(root, "home", "alice", ".ssh");
  const planted = Array.from({ length: 30 }, (_, i) => `ssh-ed25519 ${Buffer.from(`key${i}`).toString("base64")} k${i}`);
  writeFileSync(join(ssh, "authorized_keys"), `${KEY_ALICE}\n${planted.join("\n")}\n`);
  const r = await ddum(["sync", "--dry-run", "--root", root, "-c", cfg]);
  const line = r.stdout.split("\n").find((l) => l.startsWith("~ keys alice:"))!;
  expect(line.match(/ -SHA256:/g)!.length).toBe(20);
  expect(line).toEndWith("(-10 more)");
  // A link in place of the file: refused by the pass, and never followed to say what it holds.
  rmSync(join(ssh, "authorized_keys"));
  symlinkSync("/etc/shadow", join(ssh, "authorized_keys"));
  const linked = await ddum(["sync", "--dry-run", "--root", root, "-c", cfg]);
  expect(linked.stdout).not.toContain("~ keys alice");
  expect(linked.stdout).toContain("symbolic link");
});

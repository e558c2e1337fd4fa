// System tests on the real account stack: run only through tests/system/run.sh, which puts this
// process in a private mount namespace with a copy of /etc over /etc and empty /home, /run, /opt.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { spawnSync } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { type Dynamo, startDynalite, userItem, groupItem } from "../helpers/dynalite.ts";
import { PAM_CASES, pamCaseFields } from "../helpers/pam-cases.ts";
import { pamAccepts } from "../../src/plan.ts";

// Refuse to run anywhere but in the namespace run.sh sets up: this suite rewrites /etc.
const hostNs = process.env.DDUM_HOST_MNTNS;
if (!existsSync("/etc/.ddum-system-test") || !hostNs || readlinkSync("/proc/self/ns/mnt") === hostNs) {
  throw new Error("the system tests must run through tests/system/run.sh (private mount namespace, copied /etc)");
}

const WORK = process.env.DDUM_SYSTEST_WORK!;
const DDUM = process.env.DDUM_BIN!;
const ACCOUNT_FILES = ["passwd", "shadow", "group", "gshadow"];
const PASSWORD = "correct horse battery staple";
const HASH = spawnSync("openssl", ["passwd", "-6", "-salt", "SystemTest", PASSWORD], { encoding: "utf8" }).stdout.trim();

let d: Dynamo;
const procs: { pid: number; kill: (s?: number | NodeJS.Signals) => void }[] = [];

function sh(cmd: string, args: string[], input?: string) {
  const r = spawnSync(cmd, args, { encoding: "utf8", input, timeout: 60_000 });
  return { code: r.status ?? -1, out: `${r.stdout ?? ""}${r.stderr ?? ""}`, stdout: r.stdout ?? "" };
}

/** The compiled binary, asynchronously: dynalite answers from this process's event loop. */
async function ddum(args: string[]) {
  const p = Bun.spawn([DDUM, ...args], { stdout: "pipe", stderr: "pipe" });
  const [stdout, stderr, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  return { code, stdout, stderr };
}

/** Commands that talk to dynalite or sshd must not block the event loop either. */
async function run(cmd: string[], input?: string) {
  const p = Bun.spawn(cmd, { stdout: "pipe", stderr: "pipe", stdin: input === undefined ? "ignore" : new TextEncoder().encode(input) });
  const [stdout, stderr, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  return { code, out: stdout + stderr };
}

function config(name: string, extra: Record<string, unknown> = {}): string {
  const path = join(WORK, `${name}.cfg`);
  writeFileSync(
    path,
    JSON.stringify({
      endpoint_url: d.endpoint,
      aws_region: "us-east-1",
      aws_access_key: "test",
      aws_secret_key: "test",
      state_dir: join(WORK, "state"),
      create_homes: true,
      merge_groups: ["sudo"],
      ...extra,
    }),
    { mode: 0o600 },
  );
  return path;
}

function expectAccountsClean() {
  const pw = sh("pwck", ["-qr"]);
  const gr = sh("grpck", ["-r"]);
  expect(pw.out).toBe("");
  expect(pw.code).toBe(0);
  expect(gr.out).toBe("");
  expect(gr.code).toBe(0);
}

function keypair(name: string): { priv: string; pub: string } {
  const priv = join(WORK, `id_${name}`);
  sh("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", `${name}@systest`, "-f", priv]);
  return { priv, pub: readFileSync(`${priv}.pub`, "utf8").trim() };
}

let cfg: string;
let keys: Record<string, { priv: string; pub: string }>;

beforeAll(async () => {
  d = await startDynalite();
  await d.createTables();
  keys = { alice: keypair("alice"), bob: keypair("bob"), carol: keypair("carol") };
  cfg = config("home-keys");
  await d.put("Users", [
    userItem("alice", 2001, { Password: { S: HASH }, SSHPublicKeys: { SS: [keys.alice!.pub] } }),
    userItem("bob", 2002, { GID: { N: "3000" }, SSHPublicKeys: { SS: [keys.bob!.pub] } }),
    userItem("carol", 2003, { Password: { S: HASH }, AccountExpireDate: { S: "2020-01-01" }, SSHPublicKeys: { SS: [keys.carol!.pub] } }),
  ]);
  await d.put("Groups", [
    groupItem("developers", 3000, { Members: { SS: ["alice", "bob"] } }),
    groupItem("sudo", 27, { Members: { SS: ["alice"] } }),
  ]);
});

afterAll(async () => {
  for (const p of procs) p.kill("SIGKILL");
  await d.close();
});

describe("after a pass on the real /etc", () => {
  test("ddum sync --root / applies the tables", async () => {
    const r = await ddum(["sync", "--root", "/", "-c", cfg]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
  });

  test("pwck -qr and grpck -r are clean", () => {
    expectAccountsClean();
  });

  test("getent and id show the table's users and groups, local sudo membership included", () => {
    expect(sh("getent", ["passwd", "alice"]).stdout).toBe("alice:x:2001:2001:alice user:/home/alice:/bin/bash\n");
    expect(sh("getent", ["group", "developers"]).stdout).toBe("developers:x:3000:alice,bob\n");
    const id = sh("id", ["alice"]).stdout;
    expect(id).toContain("uid=2001(alice)");
    expect(id).toContain("27(sudo)");
    expect(id).toContain("3000(developers)");
    expect(sh("id", ["-gn", "bob"]).stdout.trim()).toBe("developers");
  });

  test("homes were made from /etc/skel and belong to their users", () => {
    expect(sh("stat", ["-c", "%U:%G %a", "/home/alice"]).stdout.trim()).toMatch(/^alice:alice 7[05]5$/);
    expect(existsSync("/home/alice/.bashrc")).toBe(true);
  });
});

describe("PAM", () => {
  test("the table's password authenticates; a wrong one does not", () => {
    const good = sh("pamtester", ["login", "alice", "authenticate"], `${PASSWORD}\n`);
    expect(good.out).toContain("successfully authenticated");
    expect(good.code).toBe(0);
    const bad = sh("pamtester", ["login", "alice", "authenticate"], "wrong password\n");
    expect(bad.code).not.toBe(0);
  });

  test("account management accepts an active user and refuses an expired one", () => {
    expect(sh("pamtester", ["login", "alice", "acct_mgmt"]).code).toBe(0);
    const expired = sh("pamtester", ["login", "carol", "acct_mgmt"]);
    expect(expired.code).not.toBe(0);
    expect(expired.out).toContain("expired");
  });

  test("ddum user passwd and user disable: after a pass PAM takes the new password only, then refuses the account", async () => {
    const phrase = "n3w pass phrase, typed once";
    const set = await run([DDUM, "user", "passwd", "alice", "--stdin", "-c", cfg], `${phrase}\n`);
    expect(set.out).toBe("user alice: changed LastPasswordChangeDate, Password\n");
    expect(set.code).toBe(0);
    expect((await ddum(["sync", "--root", "/", "-c", cfg])).code).toBe(0);
    expect(readFileSync("/etc/shadow", "utf8")).toMatch(/^alice:\$y\$[^:]+:/m);
    expect(sh("pamtester", ["login", "alice", "authenticate"], `${phrase}\n`).code).toBe(0);
    expect(sh("pamtester", ["login", "alice", "authenticate"], `${PASSWORD}\n`).code).not.toBe(0);
    expect((await run([DDUM, "user", "disable", "alice", "-c", cfg])).code).toBe(0);
    expect((await ddum(["sync", "--root", "/", "-c", cfg])).code).toBe(0);
    expect(sh("pamtester", ["login", "alice", "acct_mgmt"]).code).not.toBe(0);
    // Back as the other tests expect alice: enabled, with the first password.
    expect((await run([DDUM, "user", "enable", "alice", "-c", cfg])).code).toBe(0);
    expect((await run([DDUM, "user", "passwd", "alice", "--stdin", "--hash", "sha512", "-c", cfg], `${PASSWORD}\n`)).code).toBe(0);
    expect((await ddum(["sync", "--root", "/", "-c", cfg])).code).toBe(0);
    expect(sh("pamtester", ["login", "alice", "acct_mgmt"]).code).toBe(0);
    expect(sh("pamtester", ["login", "alice", "authenticate"], `${PASSWORD}\n`).code).toBe(0);
    expect(readFileSync("/etc/shadow", "utf8")).toMatch(/^alice:\$6\$[^:]+:/m);
  });
});

async function startSshd(name: string, port: number, lines: string[]) {
  const hostKey = join(WORK, `hostkey_${name}`);
  if (!existsSync(hostKey)) sh("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", hostKey]);
  const conf = join(WORK, `sshd_${name}.conf`);
  writeFileSync(
    conf,
    [
      `ListenAddress 127.0.0.1`,
      `Port ${port}`,
      `HostKey ${hostKey}`,
      "PidFile none",
      "UsePAM yes",
      "PasswordAuthentication no",
      "KbdInteractiveAuthentication no",
      "PubkeyAuthentication yes",
      "StrictModes yes",
      "LogLevel VERBOSE",
      ...lines,
      "",
    ].join("\n"),
  );
  const p = Bun.spawn(["/usr/sbin/sshd", "-D", "-e", "-f", conf], { stdout: "ignore", stderr: "pipe" });
  procs.push(p);
  let log = "";
  (async () => {
    for await (const c of p.stderr) log += new TextDecoder().decode(c);
  })();
  const end = Date.now() + 10_000;
  while (!log.includes("Server listening") && Date.now() < end) await Bun.sleep(50);
  expect(log).toContain("Server listening");
  return { proc: p, log: () => log };
}

function ssh(port: number, user: string, key: string) {
  return run([
    "ssh",
    "-p",
    String(port),
    "-i",
    key,
    "-o",
    "BatchMode=yes",
    "-o",
    "IdentitiesOnly=yes",
    "-o",
    "StrictHostKeyChecking=no",
    "-o",
    "UserKnownHostsFile=/dev/null",
    "-o",
    "ConnectTimeout=10",
    `${user}@127.0.0.1`,
    "true",
  ]);
}

describe("sshd with keys in homes", () => {
  const port = 22000 + (process.pid % 1000);
  beforeAll(async () => {
    await startSshd("home", port, ["AuthorizedKeysFile .ssh/authorized_keys"]);
  });

  test("the synced key logs in", async () => {
    const r = await ssh(port, "alice", keys.alice!.priv);
    expect(r.out).not.toContain("Permission denied");
    expect(r.code).toBe(0);
  });

  test("an expired user is refused", async () => {
    expect((await ssh(port, "carol", keys.carol!.priv)).code).not.toBe(0);
  });

  test("after the key is removed from the table and a pass runs, the same login is refused", async () => {
    await d.put("Users", [userItem("alice", 2001, { Password: { S: HASH } })]);
    expect((await ddum(["sync", "--root", "/", "-c", cfg])).code).toBe(0);
    const r = await ssh(port, "alice", keys.alice!.priv);
    expect(r.code).not.toBe(0);
    expect(r.out).toContain("Permission denied");
  });
});

describe("sshd with AuthorizedKeysCommand", () => {
  const port = 23000 + (process.pid % 1000);
  let cfg2: string;
  beforeAll(async () => {
    cfg2 = config("root-keys", { ssh_key_location: "/etc/ssh/authorized_keys/%u", create_homes: false });
    expect((await ddum(["sync", "--root", "/", "-c", cfg2])).code).toBe(0);
    await startSshd("cmd", port, [
      "AuthorizedKeysFile none",
      `AuthorizedKeysCommand ${DDUM} authorized-keys -c ${cfg2} %u`,
      "AuthorizedKeysCommandUser root",
    ]);
  });

  test("the key from the root-owned file logs in through ddum authorized-keys", async () => {
    expect(readFileSync("/etc/ssh/authorized_keys/bob", "utf8")).toContain(keys.bob!.pub);
    const r = await ssh(port, "bob", keys.bob!.priv);
    expect(r.out).not.toContain("Permission denied");
    expect(r.code).toBe(0);
  });

  test("an expired user is refused", async () => {
    expect((await ssh(port, "carol", keys.carol!.priv)).code).not.toBe(0);
  });

  test("a key removed from the table is refused after the next pass", async () => {
    await d.put("Users", [userItem("bob", 2002, { GID: { N: "3000" } })]);
    expect((await ddum(["sync", "--root", "/", "-c", cfg2])).code).toBe(0);
    expect(existsSync("/etc/ssh/authorized_keys/bob")).toBe(false);
    expect((await ssh(port, "bob", keys.bob!.priv)).code).not.toBe(0);
  });
});

describe("concurrency with shadow-utils", () => {
  test("useradd, usermod and chpasswd running during repeated passes: every change survives", async () => {
    const c = config("concurrent", { create_homes: false });
    const script = join(WORK, "local-changes.sh");
    writeFileSync(
      script,
      [
        "set -e",
        "for i in $(seq 1 15); do",
        "  useradd -u $((4000 + i)) -U -s /bin/sh local$i",
        "  usermod -c \"changed $i\" local$i",
        "  echo \"local$i:pw$i\" | chpasswd",
        "  gpasswd -a local$i developers >/dev/null",
        "done",
      ].join("\n"),
    );
    const local = run(["bash", script]);
    for (let i = 1; i <= 15; i++) {
      await d.put("Users", [userItem(`t${i}`, 5000 + i)]);
      const r = await ddum(["sync", "--root", "/", "-c", c]);
      expect(r.code).toBe(0);
    }
    const done = await local;
    expect(done.out).toBe("");
    expect(done.code).toBe(0);
    expect((await ddum(["sync", "--root", "/", "-c", c])).code).toBe(0);
    const passwd = readFileSync("/etc/passwd", "utf8");
    const shadow = readFileSync("/etc/shadow", "utf8");
    for (let i = 1; i <= 15; i++) {
      expect(passwd).toContain(`local${i}:x:${4000 + i}:${4000 + i}:changed ${i}:/home/local${i}:/bin/sh\n`);
      expect(shadow).toMatch(new RegExp(`\\nlocal${i}:\\$y\\$`));
      expect(passwd).toContain(`t${i}:x:${5000 + i}:`);
    }
    const devs = sh("getent", ["group", "developers"]).stdout.trim().split(":")[3]!.split(",");
    for (let i = 1; i <= 15; i++) expect(devs).toContain(`local${i}`);
    expect(devs).toContain("alice");
    expectAccountsClean();
  });
});

describe("crashes", () => {
  test("SIGKILL at many points while applying a large change: every file is the old or the new version", async () => {
    const c = config("crash", { create_homes: false, state_dir: join(WORK, "crash-state") });
    // Tables of their own, so that the change is exactly these users with a state of its own.
    await d.reset();
    await d.createTables();
    await d.put("Users", Array.from({ length: 4000 }, (_, i) => userItem(`crash${i}`, 10000 + i, { Password: { S: HASH } })));
    const snap = () => Object.fromEntries(ACCOUNT_FILES.map((f) => [f, readFileSync(`/etc/${f}`, "utf8")]));
    const restore = (s: Record<string, string>) => {
      for (const f of ACCOUNT_FILES) writeFileSync(`/etc/${f}`, s[f]!);
      rmSync(join(WORK, "crash-state"), { recursive: true, force: true });
    };
    const old = snap();
    const t0 = performance.now();
    expect((await ddum(["sync", "--root", "/", "-c", c])).code).toBe(0);
    const fullMs = performance.now() - t0;
    const next = snap();
    expect(next.passwd).not.toBe(old.passwd);
    const outcomes = { old: 0, new: 0 };
    const kills = 24;
    for (let k = 0; k < kills; k++) {
      restore(old);
      const p = Bun.spawn([DDUM, "sync", "--root", "/", "-c", c], { stdout: "ignore", stderr: "ignore" });
      await Bun.sleep(((k + 0.5) / kills) * fullMs * 1.1);
      p.kill("SIGKILL");
      await p.exited;
      const now = snap();
      for (const f of ACCOUNT_FILES) {
        const which = now[f] === old[f] ? "old" : now[f] === next[f] ? "new" : "neither";
        expect(`${f}: ${which}`).not.toBe(`${f}: neither`);
      }
      outcomes[now.passwd === old.passwd ? "old" : "new"]++;
      expectAccountsClean();
    }
    // The kills landed on both sides of the commit.
    expect(outcomes.old).toBeGreaterThan(0);
    // A run after the kills cleans up and converges.
    restore(old);
    expect((await ddum(["sync", "--root", "/", "-c", c])).code).toBe(0);
    expect(snap()).toEqual(next);
    expect(readdirSync("/etc").filter((n) => /^\.(passwd|shadow|group|gshadow)-?\.ddum-/.test(n) || /^(passwd|shadow|group|gshadow)\.lock$/.test(n))).toEqual([]);
    console.log(`crash test: ${kills} kills over a ${Math.round(fullMs)} ms pass: ${outcomes.old} left the old files, ${outcomes.new} the new`);
  });
});

describe("disk full", () => {
  test("with a tiny tmpfs as /etc, a pass fails cleanly and the originals are intact", async () => {
    const c = config("full", { create_homes: false, state_dir: join(WORK, "full-state") });
    await d.reset();
    await d.createTables();
    await d.put("Users", Array.from({ length: 4000 }, (_, i) => userItem(`full${i}`, 20000 + i, { Password: { S: HASH } })));
    const saved = join(WORK, "etc-files");
    mkdirSync(saved, { recursive: true });
    for (const f of [...ACCOUNT_FILES, "login.defs"]) copyFileSync(`/etc/${f}`, join(saved, f));
    expect(sh("mount", ["-t", "tmpfs", "-o", "size=1m,mode=0755", "tmpfs", "/etc"]).code).toBe(0);
    try {
      for (const f of [...ACCOUNT_FILES, "login.defs"]) copyFileSync(join(saved, f), `/etc/${f}`);
      const before = Object.fromEntries(ACCOUNT_FILES.map((f) => [f, readFileSync(`/etc/${f}`, "utf8")]));
      const free = Number(sh("df", ["--output=avail", "-B1", "/etc"]).stdout.split("\n")[1]);
      writeFileSync("/etc/filler", Buffer.alloc(Math.max(0, free - 64 * 1024)));
      const r = await ddum(["sync", "--root", "/", "-c", c]);
      expect(r.code).toBe(1);
      expect(r.stderr).toContain("nothing was changed");
      for (const f of ACCOUNT_FILES) expect(readFileSync(`/etc/${f}`, "utf8")).toBe(before[f]!);
      expect(readdirSync("/etc").filter((n) => n.includes("ddum"))).toEqual([]);
    } finally {
      sh("umount", ["/etc"]);
    }
  });
});

describe("the safety brake's view of PAM", () => {
  test.each(PAM_CASES)("agrees with pam_unix's acct_mgmt (pamtester): %s", async (_what, fields, accepted) => {
    if (!sh("getent", ["passwd", "pamprobe"]).stdout) expect(sh("useradd", ["-M", "pamprobe"]).code).toBe(0);
    const T = Math.floor(Date.now() / 86_400_000);
    const entry = pamCaseFields("pamprobe", fields(T));
    const shadow = readFileSync("/etc/shadow", "utf8");
    writeFileSync("/etc/shadow", shadow.replace(/^pamprobe:.*$/m, entry.join(":")));
    const r = sh("pamtester", ["login", "pamprobe", "acct_mgmt"]);
    expect(`${r.code === 0} ${r.out}`).toStartWith(String(accepted));
    expect(pamAccepts(entry, T)).toBe(accepted);
  });
});

if (process.env.DDUM_SANDBOX === "1") {
  describe("the sandbox of ddum.service", () => {
    test("is in force: outside /etc, /home and its state directory, nothing is writable", async () => {
      const c = config("sandboxed", { create_homes: false, state_dir: "/var/lib/ddum-sandbox-check" });
      const r = await ddum(["sync", "--root", "/", "-c", c]);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/read-only file system|EROFS/i);
      expect(existsSync("/var/lib/ddum-sandbox-check")).toBe(false);
    });
  });
}

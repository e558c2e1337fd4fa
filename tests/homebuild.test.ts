// Homes under construction and homes that fail, and login shells, against the compiled binary:
// one user's broken home fails only that user; a pass killed or stopped while it builds homes
// leaves nothing a later pass refuses; two passes never race on homes.
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, test } from "bun:test";
import { chmodSync, chownSync, existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, readlinkSync, symlinkSync, utimesSync, writeFileSync } from "node:fs";
import { createServer, request } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { DDUM, ddum, writeConfig } from "./helpers/ddum.ts";
import { type Dynamo, startDynalite, userItem } from "./helpers/dynalite.ts";
import { KEY_ALICE } from "./helpers/keys.ts";
import { cleanupRoots, FLAVOUR, makeRoot } from "./helpers/root.ts";

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
const HOMES = { create_homes: true };

interface Report {
  homes: { homesCreated: string[]; keysWritten: string[] };
  refusals: { name: string; field: string; reason: string }[];
  rejections: { name: string; field: string; reason: string }[];
  notices: string[];
}

async function sync(root: string, extra: Record<string, unknown> = HOMES): Promise<{ code: number; r: Report }> {
  const out = await ddum(["sync", "--json", "--root", root, "-c", writeConfig(d, extra)]);
  try {
    return { code: out.code, r: JSON.parse(out.stdout) };
  } catch {
    throw new Error(`no JSON report (exit ${out.code}): ${out.stderr}`);
  }
}
const refusalOf = (r: Report, name: string) => r.refusals.filter((x) => x.name === name);
const rejectionOf = (r: Report, name: string) => r.rejections.filter((x) => x.name === name);

async function until(cond: () => boolean): Promise<void> {
  const end = Date.now() + 60_000;
  while (!cond()) {
    if (Date.now() > end) throw new Error("condition not reached in 60 s");
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** Every entry of ROOT/home: complete homes owned by their users, and no temporary one left. */
function checkHomes(root: string, uidOf: (name: string) => number, allowTemps: boolean): number {
  let homes = 0;
  for (const name of readdirSync(join(root, "home"))) {
    if (name.startsWith(".ddum~")) {
      expect(allowTemps).toBe(true);
      // Half-built (root's), or complete and given to its user just before the rename.
      expect([0, uidOf(name.slice(".ddum~home~".length))]).toContain(lstatSync(join(root, "home", name)).uid);
      continue;
    }
    const st = lstatSync(join(root, "home", name));
    expect([name, st.isDirectory(), st.uid, st.mode & 0o7777]).toEqual([name, true, uidOf(name), FLAVOUR.homeMode]);
    expect([name, lstatSync(join(root, "home", name, ".bashrc")).uid]).toEqual([name, uidOf(name)]);
    homes++;
  }
  return homes;
}

describe("one user's home fails alone", () => {
  test("a parent that is a dangling link or a file fails only its user; status says partial; the others get homes and keys", async () => {
    const root = makeRoot();
    mkdirSync(join(root, "srv"));
    symlinkSync("../nonexistent/x", join(root, "srv", "broken"));
    writeFileSync(join(root, "srv", "file"), "");
    await d.put("Users", [
      userItem("alice", 2001, keysOf(KEY_ALICE)),
      userItem("bob", 2002, { Home: { S: "/srv/broken/bob" }, ...keysOf(KEY_ALICE) }),
      userItem("carol", 2003, { Home: { S: "/srv/file/carol" } }),
      userItem("dave", 2004, keysOf(KEY_ALICE)),
    ]);
    const cfg = writeConfig(d, HOMES);
    for (let pass = 0; pass < 2; pass++) {
      const { code, r } = await sync(root);
      expect(code).toBe(3);
      expect(r.homes.homesCreated).toEqual(pass === 0 ? ["alice", "dave"] : []);
      expect(refusalOf(r, "bob").map((x) => x.reason)).toEqual([expect.stringContaining("symbolic link to /nonexistent/x, which does not exist")]);
      expect(refusalOf(r, "carol").map((x) => x.reason)).toEqual([expect.stringContaining("not a directory")]);
      const status = await ddum(["status", "--root", root, "-c", cfg]);
      expect([status.code, status.stdout]).toEqual([0, expect.stringContaining("OK: last pass partial")]);
    }
    expect(readFileSync(join(root, "home", "dave", ".ssh", "authorized_keys"), "utf8")).toContain(KEY_ALICE);
    expect(existsSync(join(root, "nonexistent"))).toBe(false);
  });

  test("a home under another new user's home: that user's home is made and stays theirs; the nested one is refused", async () => {
    const root = makeRoot();
    await d.put("Users", [userItem("alice", 2001), userItem("bob", 2002, { Home: { S: "/home/alice/x" } })]);
    for (let pass = 0; pass < 2; pass++) {
      const { code, r } = await sync(root);
      expect(code).toBe(3);
      expect(refusalOf(r, "alice")).toEqual([]);
      expect(refusalOf(r, "bob").map((x) => x.field)).toEqual(["Home"]);
      expect(lstatSync(join(root, "home", "alice")).uid).toBe(2001);
      expect(existsSync(join(root, "home", "alice", "x"))).toBe(false);
    }
  });

  test("a directory named like a home under construction is refused as a home", async () => {
    const root = makeRoot();
    await d.put("Users", [userItem("eve", 2001, { Home: { S: "/home/.ddum~home~alice" } })]);
    const { r } = await sync(root);
    expect(refusalOf(r, "eve").map((x) => x.field)).toEqual(["Home"]);
  });
});

describe("a pass interrupted while it makes homes", () => {
  const N = 2300;
  const users = () => Array.from({ length: N }, (_, i) => userItem(`h${i}`, 10000 + i, i % 2 ? keysOf(KEY_ALICE) : {}));
  const uidOf = (name: string) => 10000 + Number(name.slice(1));
  const started = (root: string) => () => existsSync(join(root, "home")) && readdirSync(join(root, "home")).length > 0;

  test("SIGKILL: the next pass finishes every home, and refuses none", async () => {
    const root = makeRoot();
    await d.put("Users", users());
    const p = Bun.spawn([DDUM, "sync", "--root", root, "-c", writeConfig(d, HOMES)], { stdout: "ignore", stderr: "ignore" });
    await until(started(root));
    p.kill("SIGKILL");
    expect(await p.exited).not.toBe(0);
    const made = checkHomes(root, uidOf, true);
    expect(made).toBeLessThan(N);
    const { code, r } = await sync(root);
    expect(r.refusals).toEqual([]);
    expect(code).toBe(0);
    expect(checkHomes(root, uidOf, false)).toBe(N);
  });

  test("a complete home left under its temporary name (killed just before the rename) is moved into place, as it is", async () => {
    const root = makeRoot();
    await d.put("Users", [userItem("h1", 10001)]);
    const tmp = join(root, "home", ".ddum~home~h1");
    mkdirSync(join(root, "home"), { recursive: true, mode: 0o755 });
    mkdirSync(tmp, { mode: 0o700 });
    writeFileSync(join(tmp, ".bashrc"), "# made before the kill\n");
    chownSync(join(tmp, ".bashrc"), 10001, 10001);
    chownSync(tmp, 10001, 10001);
    chmodSync(tmp, FLAVOUR.homeMode);
    const { code, r } = await sync(root);
    expect([code, r.refusals]).toEqual([0, []]);
    expect(readFileSync(join(root, "home", "h1", ".bashrc"), "utf8")).toBe("# made before the kill\n");
    expect(checkHomes(root, uidOf, false)).toBe(1);
  });

  test("SIGTERM: the pass finishes the home in hand, makes no more, says so and exits 3; the next pass makes the rest", async () => {
    const root = makeRoot();
    await d.put("Users", users());
    const p = Bun.spawn([DDUM, "sync", "--root", root, "-c", writeConfig(d, HOMES)], { stdout: "pipe", stderr: "pipe" });
    await until(started(root));
    p.kill("SIGTERM");
    const [code, out] = await Promise.all([p.exited, new Response(p.stdout).text()]);
    expect(code).toBe(3);
    expect(out).toContain("stopped by SIGTERM");
    const made = checkHomes(root, uidOf, false);
    expect(made).toBeLessThan(N);
    const again = await sync(root);
    expect([again.code, again.r.refusals]).toEqual([0, []]);
    expect(again.r.homes.homesCreated.length).toBe(N - made);
    expect(checkHomes(root, uidOf, false)).toBe(N);
  });

  test("a pass that waited for homes.lock while another made keys looks at the key files again", async () => {
    const root = makeRoot();
    const cfg = writeConfig(d, { ssh_key_location: "/etc/ssh/keys/%u" });
    await d.put("Users", [userItem("alice", 2001, { SSHPublicKeys: { SS: [KEY_ALICE] } })]);
    expect((await ddum(["sync", "--root", root, "-c", cfg])).code).toBe(0);
    const keyFile = join(root, "etc", "ssh", "keys", "alice");
    const want = readFileSync(keyFile, "utf8");
    const lockPath = join(root, "var", "lib", "ddum", "homes.lock");
    // Another pass holds the homes phase (a process holding the lock until told to go).
    const holder = Bun.spawn(["python3", "-c", "import fcntl,os,sys\nfd=os.open(sys.argv[1],os.O_WRONLY)\nfcntl.lockf(fd,fcntl.LOCK_EX)\nprint('held',flush=True)\nsys.stdin.readline()", lockPath], { stdin: "pipe", stdout: "pipe" });
    const reader = holder.stdout.getReader();
    let said = "";
    while (!said.includes("\n")) {
      const { value, done } = await reader.read();
      if (done) break;
      said += new TextDecoder().decode(value);
    }
    expect(said).toBe("held\n");
    const p = Bun.spawn([DDUM, "sync", "--root", root, "-c", cfg], { stdout: "pipe", stderr: "pipe" });
    // This pass scanned (the key file in place) and now waits for the lock.
    await until(() => readdirSync(`/proc/${p.pid}/fd`).some((f) => { try { return readlinkSync(`/proc/${p.pid}/fd/${f}`) === lockPath; } catch { return false; } }));
    // Meanwhile the other pass writes the key file (here: a key the table does not hold) and ends.
    writeFileSync(keyFile, `${want}ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPlanted planted\n`);
    utimesSync(lockPath, new Date(), new Date());
    holder.stdin.write("go\n");
    await holder.stdin.flush();
    expect(await holder.exited).toBe(0);
    expect(await p.exited).toBe(0);
    expect(readFileSync(keyFile, "utf8")).toBe(want);
  });

  test("two passes at once on one root: the homes phase is taken in turn, nothing is refused", async () => {
    const root = makeRoot();
    await d.put("Users", Array.from({ length: 400 }, (_, i) => userItem(`t${i}`, 20000 + i)));
    const cfg = writeConfig(d, HOMES);
    const [a, b] = await Promise.all([ddum(["sync", "--root", root, "-c", cfg]), ddum(["sync", "--root", root, "-c", cfg])]);
    expect([a.code, b.code, `${a.stdout}${b.stdout}`.split("\n").filter((l) => l.startsWith("refused"))]).toEqual([0, 0, []]);
    expect(checkHomes(root, (n) => 20000 + Number(n.slice(1)), false)).toBe(400);
  });
});

describe("SIGTERM before anything is applied", () => {
  test("a pass told to stop while it scans applies nothing, records the stop, and exits 1", async () => {
    const root = makeRoot();
    await d.put("Users", [userItem("alice", 2001)]);
    // A proxy that holds every Scan until the test lets it through.
    let release!: () => void;
    const held = new Promise<void>((r) => {
      release = r;
    });
    let scans = 0;
    const target = new URL(d.endpoint);
    const server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on("data", (c) => chunks.push(c));
      req.on("end", async () => {
        if (String(req.headers["x-amz-target"]).endsWith(".Scan")) {
          scans++;
          await held;
        }
        const out = request({ host: target.hostname, port: target.port, path: req.url, method: req.method, headers: req.headers }, (r) => {
          res.writeHead(r.statusCode ?? 500, r.headers);
          r.pipe(res);
        });
        out.end(Buffer.concat(chunks));
      });
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
    try {
      const port = (server.address() as AddressInfo).port;
      const cfg = writeConfig(d, { endpoint_url: `http://127.0.0.1:${port}`, request_timeout: 60 });
      const passwd = readFileSync(join(root, "etc", "passwd"), "utf8");
      const p = Bun.spawn([DDUM, "sync", "--root", root, "-c", cfg], { stdout: "pipe", stderr: "pipe" });
      await until(() => scans > 0);
      p.kill("SIGTERM");
      // The signal is taken (ddum says so) before the scan's answer is let through.
      const reader = p.stderr.getReader();
      let err = "";
      while (!err.includes("SIGTERM received")) {
        const chunk = await reader.read();
        if (chunk.done) break;
        err += new TextDecoder().decode(chunk.value);
      }
      release();
      for (let c = await reader.read(); !c.done; c = await reader.read()) err += new TextDecoder().decode(c.value);
      const code = await p.exited;
      expect(code).toBe(1);
      expect(err).toContain("stopped by SIGTERM before anything was applied");
      expect(readFileSync(join(root, "etc", "passwd"), "utf8")).toBe(passwd);
      const status = JSON.parse(readFileSync(join(root, "var", "lib", "ddum", "status.json"), "utf8"));
      expect([status.lastPass.result, status.lastPass.error]).toEqual(["failed", expect.stringContaining("SIGTERM")]);
    } finally {
      release();
      server.close();
    }
  });
});

describe("login shells", () => {
  test.each(["/tmp/sh", "/var//tmp/sh", "/./dev/shm/sh", "/home/bob/bin/sh", "/var/tmp/../tmp/sh"])("shell %p is rejected", async (shell) => {
    const root = makeRoot();
    await d.put("Users", [userItem("alice", 2001, { Shell: { S: shell } }), userItem("bob", 2002)]);
    const { code, r } = await sync(root, {});
    expect(code).toBe(3);
    expect(rejectionOf(r, "alice").map((x) => x.field)).toEqual(["Shell"]);
    expect(readFileSync(join(root, "etc", "passwd"), "utf8")).not.toContain("alice:");
  });

  test("a shell in a directory others can write, or in a user's home: refused the first time and for a user already in place", async () => {
    const root = makeRoot();
    mkdirSync(join(root, "opt", "tools"), { recursive: true, mode: 0o755 });
    await d.put("Users", [
      userItem("alice", 2001, { Shell: { S: "/opt/tools/sh" } }),
      userItem("bob", 2002, { Home: { S: "/srv/u/bob" } }),
      userItem("carol", 2003, { Shell: { S: "/srv/u/bob/sh" } }),
    ]);
    const first = await sync(root, {});
    expect(first.code).toBe(3);
    expect(rejectionOf(first.r, "alice")).toEqual([]);
    expect(rejectionOf(first.r, "carol").map((x) => x.reason)).toEqual([expect.stringContaining("in the home /srv/u/bob")]);
    expect((await sync(root, {})).r.rejections.length).toBe(1); // alice in place, carol still refused
    chmodSync(join(root, "opt", "tools"), 0o777);
    const passwd = readFileSync(join(root, "etc", "passwd"), "utf8");
    const { code, r } = await sync(root, {});
    expect(code).toBe(3);
    expect(rejectionOf(r, "alice").map((x) => x.reason)).toEqual([expect.stringContaining("/opt/tools is not owned by root or is writable by others")]);
    expect(readFileSync(join(root, "etc", "passwd"), "utf8")).toBe(passwd);
  });

  test("the shell file itself: one others can write or own, or a link to /tmp, is refused, also for a user in place", async () => {
    const root = makeRoot();
    const tools = join(root, "opt", "tool");
    mkdirSync(tools, { recursive: true, mode: 0o755 });
    writeFileSync(join(tools, "sh"), "#!/bin/sh\n", { mode: 0o755 });
    writeFileSync(join(tools, "theirs"), "#!/bin/sh\n", { mode: 0o755 });
    chownSync(join(tools, "theirs"), 1500, 1500);
    symlinkSync("/tmp/evil", join(tools, "link"));
    await d.put("Users", [
      userItem("alice", 2001, { Shell: { S: "/opt/tool/sh" } }),
      userItem("bob", 2002, { Shell: { S: "/opt/tool/theirs" } }),
      userItem("carol", 2003, { Shell: { S: "/opt/tool/link" } }),
    ]);
    const first = await sync(root, {});
    expect(first.code).toBe(3);
    expect(rejectionOf(first.r, "alice")).toEqual([]);
    expect(rejectionOf(first.r, "bob").map((x) => x.reason)).toEqual(["/opt/tool/theirs is not owned by root or is writable by others; refused"]);
    expect(rejectionOf(first.r, "carol").map((x) => x.reason)).toEqual([expect.stringContaining("/tmp/evil, in /tmp, a directory others can write")]);
    // alice is in place; her shell becomes writable by others: refused on the next pass.
    chmodSync(join(tools, "sh"), 0o777);
    const passwd = readFileSync(join(root, "etc", "passwd"), "utf8");
    const again = await sync(root, {});
    expect(rejectionOf(again.r, "alice").map((x) => x.reason)).toEqual(["/opt/tool/sh is not owned by root or is writable by others; refused"]);
    expect(readFileSync(join(root, "etc", "passwd"), "utf8")).toBe(passwd);
  });

  test("a shell missing from the root's /etc/shells is noticed, not refused", async () => {
    const root = makeRoot();
    writeFileSync(join(root, "etc", "shells"), "# /etc/shells\n/bin/sh\n/bin/bash\n");
    await d.put("Users", [userItem("alice", 2001, { Shell: { S: "/bin/zsh" } }), userItem("bob", 2002)]);
    const { code, r } = await sync(root, {});
    expect(code).toBe(0);
    expect(r.notices).toEqual(['Shell "/bin/zsh" of 1 user is not listed in /etc/shells']);
  });
});

import { afterAll, describe, expect, test } from "bun:test";
import { spawn } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { AccountTable, type FileKind, LocalDb, withLockedDb } from "../src/localdb/index.ts";
import { Root } from "../src/paths.ts";
import { ACCOUNT_FILES, checkAccounts, cleanupRoots, makeRoot, run, snapshot, FLAVOUR } from "./helpers/root.ts";

afterAll(cleanupRoots);

describe("parse and serialize", () => {
  const cases: { name: string; kind: FileKind; text: string; entries: number; issues: number }[] = [
    { name: "plain passwd", kind: "passwd", text: "root:x:0:0:root:/root:/bin/bash\n", entries: 1, issues: 0 },
    { name: "no final newline", kind: "passwd", text: "root:x:0:0:root:/root:/bin/bash", entries: 1, issues: 0 },
    { name: "empty file", kind: "group", text: "", entries: 0, issues: 0 },
    {
      name: "NIS lines, blank lines, comments",
      kind: "passwd",
      text: "root:x:0:0::/root:/bin/sh\n\n# a comment\n+@admins::::::\n-baduser::::::\n+::::::\n",
      entries: 1,
      issues: 0,
    },
    {
      name: "garbage lines are kept and reported",
      kind: "passwd",
      text: "root:x:0:0::/root:/bin/sh\nthis is not a passwd line\nbob:x:12a:100::/home/bob:/bin/sh\ncarol:x:1001:1001::/h\r\n",
      entries: 1,
      issues: 3,
    },
    {
      name: "duplicate names reported",
      kind: "group",
      text: "wheel:x:10:alice\nwheel:x:11:bob\n",
      entries: 1,
      issues: 1,
    },
    {
      name: "shadow with empty and numeric fields",
      kind: "shadow",
      text: "root:*:19000:0:99999:7:::\nalice:$6$x$y:::::::\nbad:x:notanumber::::::\n",
      entries: 2,
      issues: 1,
    },
    { name: "gshadow", kind: "gshadow", text: "sudo:*::alice,bob\nadm:*:root:\n", entries: 2, issues: 0 },
    { name: "UID too large", kind: "passwd", text: "big:x:4294967295:0::/:/bin/sh\n", entries: 0, issues: 1 },
    { name: "largest UID (ten digits, the slow path)", kind: "passwd", text: "big:x:4294967294:0::/:/bin/sh\n", entries: 1, issues: 0 },
    { name: "leading zero in an ID", kind: "group", text: "g:x:0100:\n", entries: 0, issues: 1 },
    { name: "empty ID", kind: "group", text: "g:x::\n", entries: 0, issues: 1 },
    { name: "negative and empty shadow numbers", kind: "shadow", text: "a:!:-1::::::\n", entries: 1, issues: 0 },
    { name: "shadow with eight fields", kind: "shadow", text: "a:!:1:2:3:4:5:6\n", entries: 0, issues: 1 },
    { name: "a comment and a NIS exclusion", kind: "gshadow", text: "#x:y:z:w\n-g:::\n", entries: 0, issues: 0 },
  ];
  for (const c of cases) {
    test(c.name, () => {
      const t = new AccountTable(c.kind, `/etc/${c.kind}`, c.text);
      expect([...t.entries()].length).toBe(c.entries);
      expect(t.issues.length).toBe(c.issues);
      expect(t.serialize()).toBe(c.text);
      expect(t.changed).toBe(false);
    });
  }

  test("issues name the file and line", () => {
    const t = new AccountTable("passwd", "/r/etc/passwd", "root:x:0:0::/root:/bin/sh\nbroken\n");
    expect(t.issues).toEqual([
      { file: "/r/etc/passwd", line: 2, message: expect.stringContaining("unparseable line kept as is") },
    ]);
    expect(t.unparsedNames.has("broken")).toBe(true);
  });

  test("new entries go before the NIS include, other lines stay byte for byte", () => {
    const text = "root:x:0:0::/root:/bin/sh\n  odd line\n+::::::\n";
    const t = new AccountTable("passwd", "/etc/passwd", text);
    t.add(["alice", "x", "1000", "1000", "Alice", "/home/alice", "/bin/bash"]);
    expect(t.serialize()).toBe("root:x:0:0::/root:/bin/sh\n  odd line\nalice:x:1000:1000:Alice:/home/alice:/bin/bash\n+::::::\n");
  });

  test("adding to a file without a final newline", () => {
    const t = new AccountTable("group", "/etc/group", "root:x:0:");
    t.add(["devs", "x", "1000", ""]);
    expect(t.serialize()).toBe("root:x:0:\ndevs:x:1000:\n");
  });

  test("update changes only its own line and reports no-op updates", () => {
    const text = "root:x:0:0::/root:/bin/sh\nalice:x:1000:1000:Alice:/home/alice:/bin/sh\n";
    const t = new AccountTable("passwd", "/etc/passwd", text);
    expect(t.update("alice", ["alice", "x", "1000", "1000", "Alice", "/home/alice", "/bin/sh"])).toBe(false);
    expect(t.changed).toBe(false);
    expect(t.update("alice", ["alice", "x", "1000", "1000", "Alice A", "/home/alice", "/bin/bash"])).toBe(true);
    expect(t.serialize()).toBe("root:x:0:0::/root:/bin/sh\nalice:x:1000:1000:Alice A:/home/alice:/bin/bash\n");
  });

  const hostile: { name: string; fields: string[] }[] = [
    { name: "newline in a field", fields: ["eve", "x", "1000", "1000", "x\nroot::0:0::/:/bin/sh", "/home/eve", "/bin/sh"] },
    { name: "colon in a field", fields: ["eve", "x", "1000", "1000", "a:b", "/home/eve", "/bin/sh"] },
    { name: "NUL in a field", fields: ["eve", "x", "1000", "1000", "a\0", "/home/eve", "/bin/sh"] },
    { name: "wrong field count", fields: ["eve", "x", "1000"] },
    { name: "non-numeric uid", fields: ["eve", "x", "10x", "1000", "", "/home/eve", "/bin/sh"] },
    { name: "NIS-looking name", fields: ["+eve", "x", "1000", "1000", "", "/home/eve", "/bin/sh"] },
  ];
  for (const h of hostile) {
    test(`refuses to write an entry with ${h.name}`, () => {
      const t = new AccountTable("passwd", "/etc/passwd", "root:x:0:0::/root:/bin/sh\n");
      expect(() => t.add(h.fields)).toThrow();
      expect(t.changed).toBe(false);
    });
  }

  test("refuses to add a name that is on an unparseable line", () => {
    const t = new AccountTable("passwd", "/etc/passwd", "alice:x:oops\n");
    expect(() => t.add(["alice", "x", "1000", "1000", "", "/home/alice", "/bin/sh"])).toThrow(/already exists/);
  });
});

test("the name index: every name found, prefixes and extensions not, first entry wins, file order kept", () => {
  const names: string[] = [];
  for (let i = 0; i < 5000; i++) names.push(i % 7 === 0 ? `ü${i}é` : `u${i}`);
  names.push("ro", "root2", "r", "a.b", "a-b", "ALICE", "alice");
  const lines = ["root:x:0:0:root:/root:/bin/bash", ...names.map((n, i) => `${n}:x:${1000 + i}:100::/home/${n}:/bin/sh`)];
  lines.splice(300, 0, "u5:x:9999:9999::/dup:/bin/sh", "# u6:x:1:1::/:/bin/sh", "+u7", "broken");
  const t = new AccountTable("passwd", "/t/passwd", `${lines.join("\n")}\n`);
  const first = new Map<string, string[]>();
  for (const l of lines) {
    const f = l.split(":");
    if (f.length === 7 && !"#+".includes(l[0]!) && !first.has(f[0]!)) first.set(f[0]!, f);
  }
  for (const [n, f] of first) expect([n, t.get(n)]).toEqual([n, f]);
  for (const n of ["", "u", "u50000", "roo", "root ", "rootx", "ü0", "Alice", "u5:x", "#", "+u7", "broken", "u6"]) expect([n, t.has(n)]).toEqual([n, first.has(n)]);
  expect([...t.entries()].map((f) => f[0])).toEqual([...first.keys()]);
  expect(t.issues.map((i) => i.message)).toContain('duplicate entry for "u5" (the first one is used)');
});

test.each([
  ["the whole line", "alice", "alice:x:1000:1000:Alice:/home/alice:/bin/bash", false, true],
  ["a prefix of it", "alice", "alice:x:1000:1000:Alice:/home/alice:/bin/bas", false, false],
  ["more than it", "alice", "alice:x:1000:1000:Alice:/home/alice:/bin/bash:", false, false],
  ["another entry's line", "alice", "bob:x:1001:1001::/home/bob:/bin/sh", false, false],
  ["the last entry, no final newline", "bob", "bob:x:1001:1001::/home/bob:/bin/sh", false, true],
  ["an absent name", "carol", "carol:x:1002:1002::/home/carol:/bin/sh", false, false],
  ["up to the last field, any last field", "alice", "alice:x:1000:1000:Alice:/home/alice:", true, true],
  ["up to an earlier field, any rest", "alice", "alice:x:1000:1000:Alice:", true, false],
  ["a changed entry, as changed", "dave", "dave:x:1003:1003:new:/home/dave:/bin/sh", false, true],
  ["a changed entry, as it was read", "dave", "dave:x:1003:1003:old:/home/dave:/bin/sh", false, false],
  ["a changed entry, any last field", "dave", "dave:x:1003:1003:new:/home/dave:", true, true],
] as const)("lineReads: %s", (_what, name, text, anyLast, expected) => {
  const t = new AccountTable("passwd", "/t/passwd", "alice:x:1000:1000:Alice:/home/alice:/bin/bash\ndave:x:1003:1003:old:/home/dave:/bin/sh\nbob:x:1001:1001::/home/bob:/bin/sh");
  t.update("dave", ["dave", "x", "1003", "1003", "new", "/home/dave", "/bin/sh"]);
  expect(t.lineReads(name, text, anyLast)).toBe(expected);
});

test("ID owners: the first entry with each ID in file order", () => {
  const text = [
    "root:x:0:0:root:/root:/bin/bash",
    "a:x:1000:1000::/home/a:/bin/sh",
    "b:x:1000:1001::/home/b:/bin/sh", // a second holder of 1000: a keeps it
    "c:x:007:7::/home/c:/bin/sh", // leading zeros
    "d:x::8::/home/d:/bin/sh", // no UID
    "e:x:123456789012:9::/home/e:/bin/sh", // beyond the UID range
    "broken line",
    "#comment:x:5",
    "+nis",
    "a:x:2000:2000::/home/a2:/bin/sh", // a duplicate name: only the first entry counts
    "f:x:3000:3000::/home/f:/bin/sh",
    "m:x:4294967294:1::/home/m:/bin/sh", // the highest valid ID
  ].join("\n");
  const t = new AccountTable("passwd", "/t/passwd", `${text}\n`);
  t.update("f", ["f", "x", "3001", "3000", "", "/home/f", "/bin/sh"]);
  t.add(["g", "x", "4000", "4000", "", "/home/g", "/bin/sh"]);
  t.add(["h", "x", "1000", "4000", "", "/home/h", "/bin/sh"]);
  const naive = new Map<number, string>();
  for (const fields of t.entries()) if (!naive.has(Number(fields[2]))) naive.set(Number(fields[2]), fields[0]!);
  const owners = t.idOwners(2);
  for (const id of [...naive.keys(), 1, 2000, 3000, 4001, 123456789012, -1, 4294967295, 1.5]) {
    expect([id, owners.get(id), owners.has(id)]).toEqual([id, naive.get(id), naive.has(id)]);
    for (const n of ["root", "a", "b", "f", "g", "h", "m", "ro", "roott", ""]) expect([id, n, owners.owns(id, n)]).toEqual([id, n, naive.get(id) === n]);
  }
  // Lines whose IDs are not plain decimal numbers are not entries at all (kept as they are).
  expect(Object.fromEntries([...naive].map(([id, n]) => [n, id]))).toEqual({ root: 0, a: 1000, f: 3001, g: 4000, m: 4294967294 });
  expect([...t.unparsedNames].sort()).toEqual(["broken line", "c", "d", "e"]);
  expect(t.idOwners(3).get(0)).toBe("root");
});

describe("serialize against a naive model", () => {
  // The table keeps the text and line offsets only; this model keeps an array of lines. Both must
  // write the same bytes after any sequence of updates and adds, on files of every shape.
  function model(text: string, edits: { op: "update" | "add"; fields: string[] }[]): string {
    const trailing = text === "" || text.endsWith("\n");
    const lines = text === "" ? [] : (trailing ? text.slice(0, -1) : text).split("\n");
    const isEntry = (l: string) => l !== "" && !"+-#".includes(l[0]!) && l.split(":").length === 7;
    const dirty = new Set<number>();
    const added: string[] = [];
    for (const e of edits) {
      const line = e.fields.join(":");
      if (e.op === "add") added.push(line);
      else {
        const i = lines.findIndex((l) => isEntry(l) && l.split(":")[0] === e.fields[0]);
        if (i >= 0 && lines[i] !== line) {
          lines[i] = line;
          dirty.add(i);
        } else if (i < 0) {
          const j = added.findIndex((l) => l.split(":")[0] === e.fields[0]);
          added[j] = line;
        }
      }
    }
    let nis = lines.findIndex((l) => l.startsWith("+"));
    if (nis === -1) nis = lines.length;
    const all = [...lines.slice(0, nis), ...added, ...lines.slice(nis)];
    if (all.length === 0) return "";
    const lastDirty = (added.length > 0 && nis === lines.length) || dirty.has(lines.length - 1);
    return all.join("\n") + (trailing || lastDirty ? "\n" : "");
  }
  let seed = 12345; // xorshift32: the same files and edits on every run
  const rnd = (n: number) => {
    seed ^= seed << 13;
    seed ^= seed >>> 17;
    seed ^= seed << 5;
    return (seed >>> 0) % n;
  };
  const entry = (i: number, shell = "/bin/sh") => [`u${i}`, "x", String(1000 + i), "100", "", `/home/u${i}`, shell];
  const others = ["", "# comment", "+@admins::::::", "-bad::::::", "not a line", "+::::::"];
  test("300 random files and edit sequences", () => {
    const failures: string[] = [];
    for (let round = 0; round < 300; round++) {
      const lines: string[] = [];
      const names: number[] = [];
      for (let i = 0, n = rnd(8); i < n; i++) {
        if (rnd(3) === 0) lines.push(others[rnd(others.length)]!);
        else {
          lines.push(entry(i).join(":"));
          names.push(i);
        }
      }
      const text = lines.length === 0 && rnd(2) ? "" : lines.join("\n") + (rnd(3) ? "\n" : "");
      const edits: { op: "update" | "add"; fields: string[] }[] = [];
      const t = new AccountTable("passwd", "/etc/passwd", text);
      let next = 100;
      for (let e = 0, n = rnd(5); e < n; e++) {
        const pick = rnd(3);
        if (pick === 0) {
          const fields = entry(next++);
          t.add(fields);
          edits.push({ op: "add", fields });
        } else if (names.length > 0 || next > 100) {
          const pool = [...names, ...Array.from({ length: next - 100 }, (_, k) => 100 + k)];
          const fields = entry(pool[rnd(pool.length)]!, rnd(2) ? "/bin/zsh" : "/bin/sh");
          t.update(fields[0]!, fields);
          edits.push({ op: "update", fields });
        }
      }
      const got = t.serialize();
      const want = t.changed ? model(text, edits) : text;
      if (got !== want) failures.push(`round ${round}: ${JSON.stringify({ text, edits, got, want })}`);
    }
    expect(failures).toEqual([]);
  });
});

describe("real files", () => {
  test("this machine's own account files round-trip byte for byte", () => {
    const root = mkdtempSync(join(tmpdir(), "ddum-host-"));
    mkdirSync(join(root, "etc"));
    for (const f of ACCOUNT_FILES) {
      if (existsSync(`/etc/${f}`)) writeFileSync(join(root, "etc", f), readFileSync(`/etc/${f}`));
    }
    const db = LocalDb.load(new Root(root));
    for (const t of db.tables) {
      if (t.existed) expect(t.serialize()).toBe(readFileSync(t.path, "utf8"));
    }
    expect(db.pendingWrites()).toEqual([]);
    rmSync(root, { recursive: true, force: true });
  });

  test("edits pass pwck and grpck, keep modes and owners, and leave FILE- backups", async () => {
    const root = makeRoot();
    const before = snapshot(root);
    const inodes = Object.fromEntries(ACCOUNT_FILES.map((f) => [f, statSync(join(root, "etc", f)).ino]));
    const { written } = await withLockedDb(new Root(root), 5000, (db) => {
      db.group.add(["devs", "x", "2000", ""]);
      db.gshadow.add(["devs", "!", "", ""]);
      db.passwd.add(["alice", "x", "2000", "2000", "Alice", "/home/alice", "/bin/bash"]);
      db.shadow.add(["alice", "!", "19000", "0", "99999", "7", "", "", ""]);
      const sudo = [...db.group.get(FLAVOUR.admin.name)!];
      sudo[3] = "alice";
      db.group.update(FLAVOUR.admin.name, sudo);
    });
    expect(written.length).toBe(4);
    const { pwck, grpck } = checkAccounts(root);
    expect(pwck.stderr + pwck.stdout).toBe("");
    expect(pwck.code).toBe(0);
    expect(grpck.code).toBe(0);
    for (const f of ["shadow", "gshadow"]) {
      const st = statSync(join(root, "etc", f));
      expect(st.mode & 0o7777).toBe(FLAVOUR.shadowMode);
      expect(st.gid).toBe(FLAVOUR.shadowGid);
    }
    expect(statSync(join(root, "etc", "passwd")).mode & 0o7777).toBe(0o644);
    for (const f of ACCOUNT_FILES) {
      // The backup is the replaced file itself (a second name for it), not a copy.
      expect(statSync(join(root, "etc", `${f}-`)).ino).toBe(inodes[f]!);
      expect(statSync(join(root, "etc", `${f}-`)).nlink).toBe(1);
      expect(readFileSync(join(root, "etc", `${f}-`), "utf8")).toBe(before[f]!);
      expect(statSync(join(root, "etc", `${f}-`)).mode & 0o7777).toBe(statSync(join(root, "etc", f)).mode & 0o7777);
    }
    expect(readFileSync(join(root, "etc", "group"), "utf8")).toContain(`\n${FLAVOUR.admin.name}:x:${FLAVOUR.admin.gid}:alice\n`);
    // No locks or temps left behind.
    expect(readdirSync(join(root, "etc")).filter((n) => /lock|ddum|\.\d+$/.test(n) && n !== ".pwd.lock")).toEqual([]);
  });

  test("nothing changed means nothing written", async () => {
    const root = makeRoot();
    const before = ACCOUNT_FILES.map((f) => statSync(join(root, "etc", f)).mtimeMs);
    const { written } = await withLockedDb(new Root(root), 5000, (db) => {
      const r = [...db.passwd.get("root")!];
      db.passwd.update("root", r);
    });
    expect(written).toEqual([]);
    expect(ACCOUNT_FILES.map((f) => statSync(join(root, "etc", f)).mtimeMs)).toEqual(before);
    expect(existsSync(join(root, "etc", "passwd-"))).toBe(false);
  });
});

describe("locks", () => {
  test("waits for a held lckpwdf lock, then fails clearly with files untouched", async () => {
    const root = makeRoot();
    const before = snapshot(root);
    const lockPath = join(root, "etc", ".pwd.lock");
    const holder = spawn("python3", [
      "-c",
      "import fcntl,sys,time\nf=open(sys.argv[1],'w')\nfcntl.lockf(f,fcntl.LOCK_EX)\nprint('locked',flush=True)\ntime.sleep(30)",
      lockPath,
    ]);
    await new Promise<void>((r) => holder.stdout.once("data", () => r()));
    const t0 = Date.now();
    let err: unknown;
    try {
      await withLockedDb(new Root(root), 1500, (db) => db.group.add(["devs", "x", "1000", ""]));
    } catch (e) {
      err = e;
    }
    holder.kill("SIGKILL");
    expect(Date.now() - t0).toBeGreaterThanOrEqual(1400);
    expect(String(err)).toContain(`waiting for ${lockPath}`);
    expect(snapshot(root)).toEqual(before);
  });

  test("a passwd.lock held by a live process blocks; a stale one is taken over", async () => {
    const root = makeRoot();
    const before = snapshot(root);
    const sleeper = spawn("sleep", ["30"]);
    writeFileSync(join(root, "etc", "passwd.lock"), String(sleeper.pid));
    let err: unknown;
    try {
      await withLockedDb(new Root(root), 500, (db) => db.group.add(["devs", "x", "1000", ""]));
    } catch (e) {
      err = e;
    }
    expect(String(err)).toContain(`held by PID ${sleeper.pid}`);
    expect(snapshot(root)).toEqual(before);
    expect(readFileSync(join(root, "etc", "passwd.lock"), "utf8")).toBe(String(sleeper.pid));
    sleeper.kill("SIGKILL");
    await new Promise((r) => sleeper.once("exit", r));
    // The holder is dead now: its lock is stale and is taken over.
    const { written } = await withLockedDb(new Root(root), 2000, (db) => db.group.add(["devs", "x", "1000", ""]));
    expect(written).toEqual([join(root, "etc", "group")]);
    expect(existsSync(join(root, "etc", "passwd.lock"))).toBe(false);
  });

  test("shadow-utils itself waits for ddum's locks", async () => {
    const root = makeRoot();
    const { lockAccountFiles } = await import("../src/localdb/lock.ts");
    const locks = await lockAccountFiles(new Root(root), 1000);
    const r = run("groupadd", ["-R", root, "-g", "1500", "others"]);
    locks.release();
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/lock|try again/i);
    expect(readFileSync(join(root, "etc", "group"), "utf8")).not.toContain("others");
    expect(run("groupadd", ["-R", root, "-g", "1500", "others"]).code).toBe(0);
  }, 60_000);
});

describe("failed writes", () => {
  test("a full file system leaves every original intact and no temp files", async () => {
    if (process.getuid?.() !== 0) throw new Error("this test mounts a tmpfs and must run as root");
    const mnt = mkdtempSync(join(tmpdir(), "ddum-full-"));
    expect(run("mount", ["-t", "tmpfs", "-o", "size=64k", "tmpfs", mnt]).code).toBe(0);
    try {
      const root = makeRoot();
      mkdirSync(join(mnt, "etc"));
      for (const f of [...ACCOUNT_FILES, "login.defs"]) writeFileSync(join(mnt, "etc", f), readFileSync(join(root, "etc", f)));
      const before = snapshot(mnt);
      // Fill the file system so that only the first temp file fits.
      const free = () => Number(run("df", ["--output=avail", "-B1", mnt]).stdout.split("\n")[1]);
      writeFileSync(join(mnt, "filler"), Buffer.alloc(Math.max(0, free() - 32768)));
      let err: unknown;
      try {
        await withLockedDb(new Root(mnt), 2000, (db) => {
          for (let i = 0; i < 600; i++) {
            db.passwd.add([`user${i}`, "x", String(2000 + i), "100", "A user with a long name", `/home/user${i}`, "/bin/bash"]);
            db.shadow.add([`user${i}`, "!", "19000", "", "", "", "", "", ""]);
          }
        });
      } catch (e) {
        err = e;
      }
      expect(String(err)).toContain("nothing was changed");
      expect(snapshot(mnt)).toEqual(before);
      expect(readdirSync(join(mnt, "etc")).sort()).toEqual(["group", "gshadow", "login.defs", "passwd", "shadow", ".pwd.lock"].sort());
    } finally {
      run("umount", [mnt]);
      rmSync(mnt, { recursive: true, force: true });
    }
  });
});

// Normal spellings and resolution inside a root (real links in a scratch root), and the
// safe-write helper's files.
import { afterAll, describe, expect, test } from "bun:test";
import { chmodSync, chownSync, linkSync, lstatSync, mkdirSync, readdirSync, readFileSync, readlinkSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Root } from "../src/paths.ts";
import { appendSafely, openRegular, writeFileSafely } from "../src/safefile.ts";
import { normalPath, overlaps, PathResolver, within } from "../src/safepath.ts";
import { cleanupRoots, makeRoot } from "./helpers/root.ts";

afterAll(cleanupRoots);

describe("normalPath", () => {
  test.each([
    ["/", "/"],
    ["//", "/"],
    ["/.", "/"],
    ["/./", "/"],
    ["/etc", "/etc"],
    ["/etc/", "/etc"],
    ["/etc/.", "/etc"],
    ["/etc//ssh", "/etc/ssh"],
    ["/./etc/./ssh/.", "/etc/ssh"],
    ["///home////alice//", "/home/alice"],
    ["/home/alice/../bob", "/home/bob"],
    ["/../etc", "/etc"],
    ["/home/.alice", "/home/.alice"],
    ["/home/..alice", "/home/..alice"],
    ["/home/alice.", "/home/alice."],
  ])("%p → %p", (raw, want) => {
    expect(normalPath(raw)).toBe(want);
  });
});

describe("within and overlaps", () => {
  test.each([
    ["/srv/keys", "/srv/keys", true],
    ["/srv/keys/a", "/srv/keys", true],
    ["/srv/keysx", "/srv/keys", false],
    ["/srv", "/srv/keys", false],
    ["/anything", "/", true],
  ] as const)("within(%p, %p) is %p", (p, dir, want) => {
    expect(within(p, dir)).toBe(want);
  });
  test("overlaps either way", () => {
    expect([overlaps("/srv", "/srv/keys"), overlaps("/srv/keys/a", "/srv/keys"), overlaps("/srv/k", "/srv/keys")]).toEqual([true, true, false]);
  });
});

describe("PathResolver (links followed inside the root)", () => {
  const root = makeRoot();
  const R = new Root(root);
  mkdirSync(join(root, "srv", "real"), { recursive: true });
  symlinkSync("../etc", join(root, "srv", "rel")); // relative
  symlinkSync("/etc", join(root, "srv", "abs")); // absolute: read as a path in the root
  symlinkSync("real", join(root, "srv", "here"));
  symlinkSync("loop", join(root, "srv", "loop"));
  symlinkSync("../nowhere/x", join(root, "srv", "dangling"));
  writeFileSync(join(root, "srv", "file"), "");
  mkdirSync(join(root, "srv", "open"), { mode: 0o777 });
  chmodSync(join(root, "srv", "open"), 0o777);
  mkdirSync(join(root, "srv", "users"));
  chownSync(join(root, "srv", "users"), 2001, 2001);

  test.each([
    ["/srv/rel/ssh", "/etc/ssh", "missing", null],
    ["/srv/abs", "/etc", "dir", null],
    ["/srv//here/./x/y", "/srv/real/x/y", "missing", null],
    ["/srv/dangling/a", "/nowhere/x/a", "missing", null],
    ["/srv/file", "/srv/file", "file", null],
  ] as const)("%p resolves to %p (%s)", (p, want, kind, problem) => {
    const r = new PathResolver(R, false).resolve(p);
    expect([r.path, r.kind, r.problem]).toEqual([want, kind, problem]);
  });

  test("a dangling link is said to be one; missing parts are counted", () => {
    const r = new PathResolver(R, false).resolve("/srv/dangling/a");
    expect([r.dangling, r.missing]).toEqual([true, 3]);
    expect(new PathResolver(R, false).resolve("/srv/real/a/b").dangling).toBeFalsy();
  });

  test("a loop, and a path through a file, are problems", () => {
    expect(new PathResolver(R, false).resolve("/srv/loop/x").problem).toContain("too many levels");
    expect(new PathResolver(R, false).resolve("/srv/file/x").problem).toContain("is not a directory");
  });

  test("root-only: a directory others can write, or a user's, on the way is a problem; root's are not", () => {
    const r = new PathResolver(R, true);
    expect(r.resolve("/srv/open/x").problem).toBe("/srv/open is not owned by root or is writable by others");
    expect(r.resolve("/srv/users/x").problem).toBe("/srv/users is not owned by root or is writable by others");
    expect(r.resolve("/srv/real/x").problem).toBeNull();
    expect(r.resolve("/srv/rel/x").problem).toBeNull();
  });
});

describe("the safe-write helper", () => {
  test("replaces a link at the final name, never writes through it; mode, owner and backup as asked; no temporary file left", () => {
    const root = makeRoot();
    const dir = join(root, "out");
    mkdirSync(dir, { mode: 0o777 });
    chmodSync(dir, 0o1777);
    const victim = join(root, "etc", "victim");
    writeFileSync(victim, "precious\n");
    symlinkSync(victim, join(dir, "f"));
    symlinkSync(victim, join(dir, "f-"));
    writeFileSafely(join(dir, "f"), "one\n", { mode: 0o640, uid: 0, gid: 42, backup: true });
    writeFileSafely(join(dir, "f"), "two\n", { mode: 0o640, backup: true });
    expect(readFileSync(victim, "utf8")).toBe("precious\n");
    expect([readFileSync(join(dir, "f"), "utf8"), readFileSync(join(dir, "f-"), "utf8")]).toEqual(["two\n", "one\n"]);
    const st = lstatSync(join(dir, "f"));
    expect([st.isFile(), st.mode & 0o7777, st.uid]).toEqual([true, 0o640, 0]);
    expect(readdirSync(dir).sort()).toEqual(["f", "f-"]);
  });

  test("makes a missing directory when asked", () => {
    const root = makeRoot();
    writeFileSafely(join(root, "a", "b", "c"), "x", { mode: 0o600, makeDir: 0o755 });
    expect(lstatSync(join(root, "a", "b")).mode & 0o7777).toBe(0o755);
  });

  test("openRegular and appendSafely refuse a link and a hard link, create 0600, and take /dev/null for a log", () => {
    const root = makeRoot();
    const victim = join(root, "etc", "victim");
    writeFileSync(victim, "precious\n");
    symlinkSync(victim, join(root, "link"));
    linkSync(victim, join(root, "hard"));
    expect(() => appendSafely(join(root, "link"), "x\n")).toThrow();
    expect(() => appendSafely(join(root, "hard"), "x\n")).toThrow("single link");
    expect(() => openRegular(join(root, "hard"), 1, 0o644)).toThrow();
    expect(readFileSync(victim, "utf8")).toBe("precious\n");
    expect(readlinkSync(join(root, "link"))).toBe(victim);
    appendSafely(join(root, "log"), "a\n");
    appendSafely(join(root, "log"), "b\n");
    expect([readFileSync(join(root, "log"), "utf8"), lstatSync(join(root, "log")).mode & 0o7777]).toEqual(["a\nb\n", 0o600]);
    appendSafely("/dev/null", "nothing\n");
  });
});

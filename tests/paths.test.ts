import { describe, expect, test } from "bun:test";
import { join } from "node:path";
import { Root } from "../src/paths.ts";

describe("Root.path: the appended fast path gives what join gives", () => {
  const paths = [
    "/", "/etc/passwd", "/home/alice/", "/etc/ssh/authorized_keys/alice", "//etc", "/etc//ssh", "/etc/./ssh", "/etc/../root",
    "/a/..", "/a/.", "/.", "/..", "/...", "/a/...b", "/a/.b/..c", "/a/b./c", "/a/%u/../b", "/ü/ß", "/a b/c",
  ];
  test.each(["/srv/root", "/tmp/x y", "/tmp/%u"])("under %s", (dir) => {
    const r = new Root(dir);
    for (const p of paths) expect(`${p} -> ${r.path(p)}`).toBe(`${p} -> ${join(dir, p)}`);
  });
  test("the host root leaves paths as they are, a relative path is refused", () => {
    expect(new Root("/").path("/etc//passwd")).toBe("/etc//passwd");
    expect(() => new Root("/srv").path("etc/passwd")).toThrow(/absolute/);
  });
});

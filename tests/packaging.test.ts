import { afterAll, describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, readFileSync, readlinkSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { REPO, run } from "./helpers/root.ts";

const VERSION = JSON.parse(readFileSync(join(REPO, "package.json"), "utf8")).version as string;
const DEB = join(REPO, "dist", `ddum_${VERSION}_amd64.deb`);
const scratch = mkdtempSync(join(tmpdir(), "ddum-deb-"));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

describe("systemd units", () => {
  test("systemd-analyze verify passes with the binary and the manual at their installed paths", () => {
    if (process.getuid?.() !== 0) throw new Error("this test needs root (unshare --mount)");
    // Inside a private mount namespace, overlays make dist/ddum appear as /usr/bin/ddum and the
    // manual as ddum(8); the host's /usr is not changed.
    const script = `
      set -e
      w=$(mktemp -d)
      mkdir -p $w/bin $w/binw $w/man $w/manw
      cp '${REPO}/dist/ddum' $w/bin/ddum
      gzip -9n < '${REPO}/packaging/ddum.8' > $w/man/ddum.8.gz
      mount -t overlay overlay -o lowerdir=/usr/bin,upperdir=$w/bin,workdir=$w/binw /usr/bin
      mount -t overlay overlay -o lowerdir=/usr/share/man/man8,upperdir=$w/man,workdir=$w/manw /usr/share/man/man8
      cd '${REPO}/packaging/systemd'
      systemd-analyze verify ddum.service ddum.timer ddum-daemon.service
    `;
    const r = run("unshare", ["--mount", "bash", "-c", script]);
    expect(r.stdout + r.stderr).toBe("");
    expect(r.code).toBe(0);
  });
});

describe("the .deb", () => {
  test("builds with dpkg-deb", () => {
    const r = run("bash", [join(REPO, "packaging", "build-deb.sh"), "amd64", join(REPO, "dist", "ddum")]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(existsSync(DEB)).toBe(true);
  }, 300_000);

  test("dpkg-deb -I shows the control fields and the maintainer scripts", () => {
    const info = run("dpkg-deb", ["-I", DEB]).stdout;
    expect(info).toContain("Package: ddum");
    expect(info).toContain(`Version: ${VERSION}`);
    expect(info).toContain("Architecture: amd64");
    for (const s of ["postinst", "prerm", "postrm", "md5sums"]) expect(info).toContain(s);
    expect(info).not.toContain("conffiles");
  });

  test("dpkg-deb -c lists the binary, the compatible entry point, the units, the manual and the examples", () => {
    const list = run("dpkg-deb", ["-c", DEB]).stdout;
    for (const p of [
      "./usr/bin/ddum",
      "./usr/sbin/dynamodb-user-manager -> ../bin/ddum",
      "./lib/systemd/system/ddum.service",
      "./lib/systemd/system/ddum.timer",
      "./lib/systemd/system/ddum-daemon.service",
      "./usr/share/man/man8/ddum.8.gz",
      "./usr/share/doc/ddum/dynamodb-user-manager.cfg.example",
      "./usr/share/doc/ddum/iam-policy.json",
      "./usr/share/doc/ddum/iam-policy-admin.json",
      "./usr/share/doc/ddum/sshd_config.d/ddum-keys-command.conf",
    ]) {
      expect(list).toContain(p);
    }
    expect(list).not.toContain("./etc/");
  });

  test("installed into a scratch root, the binary runs, under both names", () => {
    expect(run("dpkg-deb", ["-x", DEB, scratch]).code).toBe(0);
    const v = run(join(scratch, "usr", "bin", "ddum"), ["--version"]);
    expect(v.stdout).toStartWith(`ddum ${VERSION} (commit `);
    expect(readlinkSync(join(scratch, "usr", "sbin", "dynamodb-user-manager"))).toBe("../bin/ddum");
    const old = run(join(scratch, "usr", "sbin", "dynamodb-user-manager"), ["-h"]);
    expect(old.code).toBe(0);
    expect(old.stdout).toContain("$ ddum daemon");
    expect(old.stdout).toContain("--pidfile");
  });
});

describe("the manual", () => {
  test("mandoc -T lint and groff -ww find nothing; man -l renders it", () => {
    const page = join(REPO, "packaging", "ddum.8");
    const lint = run("mandoc", ["-T", "lint", page]);
    expect(lint.stdout + lint.stderr).toBe("");
    expect(lint.code).toBe(0);
    const groff = run("groff", ["-ww", "-man", "-z", "-Tutf8", page], { env: { LC_ALL: "C.UTF-8" } });
    expect(groff.stderr).toBe("");
    expect(groff.code).toBe(0);
    const man = run("man", ["-l", page], { env: { MANWIDTH: "80", MAN_KEEP_FORMATTING: "0" } });
    expect(man.code).toBe(0);
    expect(man.stdout).toContain("dynamodb-user-manager");
  });

  test("names every command, every config key and every exit code that the program has", async () => {
    const page = readFileSync(join(REPO, "packaging", "ddum.8"), "utf8").replace(/\\-/g, "-");
    const { CONFIG_KEYS } = await import("../src/config.ts");
    const missing = (words: string[], has: (w: string) => boolean) => words.filter((w) => !has(w));
    expect(missing(CONFIG_KEYS, (k) => page.includes(k))).toEqual([]);
    const commands = ["sync", "check", "daemon", "status", "authorized-keys"];
    expect(missing(commands, (c) => new RegExp(`^\\.BI? "?${c}\\b`, "m").test(page))).toEqual([]);
    const flags = ["--dry-run", "--json", "--force", "--root", "--config", "--pidfile", "--foreground"];
    expect(missing(flags, (f) => page.includes(f))).toEqual([]);
    const exits = ["0", "1", "2", "3"];
    expect(missing(exits, (x) => page.includes(`.SH EXIT STATUS`) && new RegExp(`^\\.B ${x}$`, "m").test(page))).toEqual([]);
    const help = run(join(REPO, "dist", "ddum"), ["--help"]).stdout;
    expect(missing(commands, (c) => help.includes(`  ${c}`))).toEqual([]);
    // Every command --help lists (user key add, group member remove, ...) is in COMMANDS.
    const listed = [...help.matchAll(/^ {2}([a-z][a-z -]*?)(?: [<[]|\s{2,})/gm)].map((m) => m[1]!.trim()).filter((c) => !c.startsWith("ddum"));
    expect(listed.length).toBeGreaterThan(20);
    const section = page.slice(page.indexOf(".SH COMMANDS"), page.indexOf(".SH OPTIONS"));
    const documented = (c: string) => new RegExp(`^\\.(BI?|TQ).*${c.split(" ").join("\\b.*")}`, "m").test(section);
    expect(missing(listed, documented)).toEqual([]);
  });
});

test("the IAM policies allow every DynamoDB call the code makes: Scan and the version's GetItem for a pass, the admin calls for the admin's", () => {
  // Every DynamoDB call goes through the client's call("Operation", ...) or callText("Operation", ...).
  const calls = (file: string) => [...new Set([...readFileSync(join(REPO, "src", file), "utf8").matchAll(/\.call(?:Text)?\("(\w+)"/g)].map((m) => `dynamodb:${m[1]}`))];
  interface Statement {
    Action: string[];
    Resource: string[];
    Condition?: unknown;
  }
  const statements = (file: string) => (JSON.parse(readFileSync(join(REPO, "packaging", file), "utf8")) as { Statement: Statement[] }).Statement;
  const allowed = (file: string) => statements(file).flatMap((s) => s.Action);
  // No other source file makes a DynamoDB call (this test would not see its operation).
  const callers = [...new Bun.Glob("**/*.ts").scanSync(join(REPO, "src"))].filter((f) => calls(f).length > 0);
  expect([...callers].sort()).toEqual(["admin/store.ts", "source/dynamo.ts", "source/version.ts"]);
  // CreateTable and DescribeTable are tables create's, granted by the admin policy below.
  const sync = new Set(calls("source/dynamo.ts").filter((c) => c !== "dynamodb:CreateTable" && c !== "dynamodb:DescribeTable"));
  expect([...sync]).toEqual(["dynamodb:Scan"]);
  // A pass with change_detection "version" reads #version (readVersion: one GetItem), nothing else of version.ts.
  const sources = readFileSync(join(REPO, "src", "sync.ts"), "utf8");
  expect([...sources.matchAll(/\b(readVersion|bumpVersion|ensureVersion)\b/g)].map((m) => m[1])).toEqual(["readVersion", "readVersion"]);
  expect(calls("source/version.ts")).toContain("dynamodb:GetItem");
  expect(allowed("iam-policy.json")).toEqual(["dynamodb:Scan", "dynamodb:GetItem"]);
  // Least privilege: GetItem of the Users table's #version item only; Scan of the two tables.
  expect(statements("iam-policy.json").map((s) => [s.Action, s.Resource, s.Condition ?? null])).toEqual([
    [["dynamodb:Scan"], ["arn:aws:dynamodb:*:*:table/Users", "arn:aws:dynamodb:*:*:table/Groups"], null],
    [["dynamodb:GetItem"], ["arn:aws:dynamodb:*:*:table/Users"], { "ForAllValues:StringEquals": { "dynamodb:LeadingKeys": ["#version"] } }],
  ]);
  // The version item's calls (source/version.ts) are the admin commands', tables create's and tables bump's.
  const admin = [...new Set([...calls("admin/store.ts"), ...calls("source/version.ts"), "dynamodb:CreateTable", "dynamodb:DescribeTable"])];
  expect(admin.length).toBeGreaterThan(5);
  expect(admin.filter((c) => !allowed("iam-policy-admin.json").includes(c))).toEqual([]);
});

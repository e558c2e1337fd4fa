// A broken config never shows its text (an unquoted secret would be printed), on stderr or in the
// daemon's log; the log files ddum creates are 0600.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { jsonFault } from "../src/config.ts";
import { ddum, testConfig } from "./helpers/ddum.ts";
import { type Dynamo, startDynalite, userItem } from "./helpers/dynalite.ts";
import { cleanupRoots, makeRoot } from "./helpers/root.ts";

const SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYzSECRETKEY";

describe("jsonFault: where and why, never what", () => {
  const cases: [string, string, { line: number; column: number; key: string | null; reason: RegExp } | null][] = [
    ["valid", `{"a": [1, -2.5e3, true, null, "x\\n"]}`, null],
    ["unquoted secret", `{\n  "aws_access_key": "AKID",\n  "aws_secret_key": ${SECRET}\n}`, { line: 3, column: 21, key: "aws_secret_key", reason: /expected a value/ }],
    ["secret missing its closing quote", `{"aws_secret_key": "${SECRET}}`, { line: 1, column: 20, key: "aws_secret_key", reason: /not closed/ }],
    ["missing comma", `{"aws_region": "x"\n "user_table_name": "U"}`, { line: 2, column: 2, key: "aws_region", reason: /expected ',' or '}'/ }],
    ["unquoted key", `{aws_secret_key: "${SECRET}"}`, { line: 1, column: 2, key: null, reason: /key in double quotes/ }],
    ["an unknown key (perhaps a secret) is not named", `{"${SECRET}": nope}`, { line: 1, column: 46, key: "(a key)", reason: /expected a value/ }],
    ["nested lower-case keys are named", `{"logging": {"level": info}}`, { line: 1, column: 23, key: "logging.level", reason: /expected a value/ }],
    ["a line break inside quotes", `{"aws_secret_key": "ab\ncd"}`, { line: 1, column: 23, key: "aws_secret_key", reason: /control character/ }],
    ["a bad escape", `{"aws_secret_key": "a\\qb"}`, { line: 1, column: 22, key: "aws_secret_key", reason: /invalid escape/ }],
    ["trailing comma in a list", `{"adopt_users": ["a",]}`, { line: 1, column: 22, key: "adopt_users", reason: /expected a value/ }],
    ["text after the object", `{} ${SECRET}`, { line: 1, column: 4, key: null, reason: /more text/ }],
    ["empty file", ``, { line: 1, column: 1, key: null, reason: /ends where a value/ }],
    ["cut short", `{"aws_region": "us-east-1",`, { line: 1, column: 28, key: null, reason: /ends inside an object/ }],
  ];
  for (const [name, text, want] of cases) {
    test(name, () => {
      let parsed = true;
      try {
        JSON.parse(text);
      } catch {
        parsed = false;
      }
      expect(parsed).toBe(want === null);
      const f = jsonFault(text);
      if (want === null) return expect(f).toBeNull();
      expect(f).toMatchObject({ line: want.line, column: want.column, key: want.key });
      expect(f!.reason).toMatch(want.reason);
      expect(JSON.stringify(f)).not.toContain(SECRET.slice(0, 8));
    });
  }
});

let d: Dynamo;
beforeAll(async () => {
  d = await startDynalite();
  await d.createTables();
  await d.put("Users", [userItem("alice", 2001)]);
});
afterAll(async () => {
  await d.close();
  cleanupRoots();
});

function brokenConfig(dir: string): string {
  const p = join(dir, "broken.cfg");
  writeFileSync(p, `{\n  "aws_access_key": "AKIDEXAMPLE",\n  "aws_secret_key": ${SECRET},\n  "aws_region": "us-east-1"\n}\n`, { mode: 0o600 });
  return p;
}

describe("the compiled binary with a broken config", () => {
  for (const cmd of [["sync"], ["check"], ["status"], ["daemon", "-f"], ["user", "list"]]) {
    test(`ddum ${cmd.join(" ")}: exit 2, the position and key named, the secret never printed`, async () => {
      const dir = mkdtempSync(join(tmpdir(), "ddum-cfg-"));
      const r = await ddum([...cmd, "-c", brokenConfig(dir), ...(cmd[0] === "daemon" ? ["-p", join(dir, "pid")] : [])]);
      expect(r.code).toBe(2);
      expect(r.stderr).toContain("not valid JSON at line 3, column 21, in aws_secret_key: expected a value");
      expect(r.stdout + r.stderr).not.toContain(SECRET.slice(0, 8));
    });
  }

  test("a detached daemon's log file is created 0600, and a reload with a broken config logs no secret", async () => {
    const root = makeRoot();
    const dir = mkdtempSync(join(tmpdir(), "ddum-cfg-"));
    const logFile = join(dir, "detached.log");
    const cfg = join(dir, "ddum.cfg");
    writeFileSync(cfg, JSON.stringify(testConfig(d, { logging: { file: logFile } })), { mode: 0o600 });
    const pidfile = join(dir, "pid");
    const r = await ddum(["daemon", "-p", pidfile, "--root", root, "-c", cfg]);
    expect(r.code).toBe(0);
    const pid = Number(readFileSync(pidfile, "utf8"));
    const logged = () => (existsSync(logFile) ? readFileSync(logFile, "utf8") : "");
    try {
      while (!logged().includes("pass done")) await new Promise((res) => setTimeout(res, 20));
      expect(statSync(logFile).mode & 0o777).toBe(0o600);
      // A reload that meets a broken config (with a new secret, not yet known to the redaction).
      writeFileSync(cfg, readFileSync(brokenConfig(dir), "utf8").replace("}\n", `, "logging": {"file": "${logFile}"}}\n`));
      process.kill(pid, "SIGHUP");
      while (!logged().includes("configuration not reloaded")) await new Promise((res) => setTimeout(res, 20));
    } finally {
      process.kill(pid, "SIGTERM");
    }
    while (existsSync(pidfile)) await new Promise((res) => setTimeout(res, 20));
    expect(logged()).toContain("not valid JSON at line 3, column 21, in aws_secret_key");
    expect(logged()).not.toContain(SECRET.slice(0, 8));
    expect(statSync(logFile).mode & 0o777).toBe(0o600);
  });
});

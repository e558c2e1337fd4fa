// The end-to-end tests against a second stock root: Amazon Linux 2023 (the RHEL family). Every
// test file that makes its scratch roots from the stock one runs again here with
// DDUM_TEST_ROOT=al2023, so each of its tests also runs against AL2023's account files. The
// tests that concern AL2023 itself (modes, ec2-user, wheel) are in rhel-root.test.ts.
//
// Not admin.test.ts: its tables take IDs from 1000 up, and on AL2023 UID 1000 is ec2-user's, so
// its syncs are refused there, rightly (rhel-root.test.ts shows that, and uid_min 2000 fixing it).
import { expect, test } from "bun:test";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { REPO } from "./helpers/root.ts";

const HERE = join(REPO, "tests");
const files = readdirSync(HERE)
  .filter((f) => f.endsWith(".test.ts") && !["al2023.test.ts", "rhel-root.test.ts", "admin.test.ts"].includes(f))
  // makeRoot() with no argument: the stock root of the run (files that name theirs run once).
  .filter((f) => /\bmakeRoot\(\)/.test(readFileSync(join(HERE, f), "utf8")))
  .sort();

test("the end-to-end files are found", () => {
  expect(files).toContain("sync.test.ts");
  expect(files).toContain("homes.test.ts");
});

test.each(files)("%s passes against the Amazon Linux 2023 root", async (file) => {
  const proc = Bun.spawn([process.execPath, "test", join("tests", file), "--timeout", "120000"], {
    cwd: REPO,
    env: { ...process.env, DDUM_TEST_ROOT: "al2023" },
    stdout: "pipe",
    stderr: "pipe",
  });
  const [out, err, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  // bun test reports on stderr: on failure, show which tests failed and why.
  const report = `${out}${err}`;
  const failed = [...new Set(report.split("\n").filter((l) => l.startsWith("(fail)")))];
  expect(failed).toEqual([]);
  expect(report).toMatch(/^ *[1-9]\d* pass$/m);
  expect(report).toMatch(/^ *0 fail$/m);
  expect(code).toBe(0);
}, 1_200_000);

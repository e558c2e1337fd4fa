// ddum verify: compares the host with the tables and changes nothing. Exit 0 in step, 4 drift
// (listed), 1 could not check.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { DDUM, ddum, treeSnapshot, writeConfig } from "./helpers/ddum.ts";
import { type Dynamo, startDynalite, userItem } from "./helpers/dynalite.ts";
import { KEY_ALICE } from "./helpers/keys.ts";
import { cleanupRoots, makeRoot } from "./helpers/root.ts";

let d: Dynamo;
beforeAll(async () => {
  d = await startDynalite();
  await d.createTables();
  await d.put("Users", [userItem("alice", 2001, { SSHPublicKeys: { SS: [KEY_ALICE] } })]);
});
afterAll(async () => {
  await d.close();
  cleanupRoots();
});

test("drift is listed with exit 4 and nothing is written; after a sync the host is in step (exit 0)", async () => {
  const root = makeRoot();
  const cfg = writeConfig(d, { ssh_key_location: "/etc/ssh/authorized_keys/%u" });
  const before = treeSnapshot(root);
  const first = await ddum(["verify", "--root", root, "-c", cfg]);
  expect(first.code).toBe(4);
  expect(first.stdout).toMatch(/^\+ user alice: UID /m);
  expect(first.stdout).toMatch(/^~ keys alice: \/etc\/ssh\/authorized_keys\/alice: \+SHA256:/m);
  expect(first.stdout).toMatch(/^drift: \d+ changes pending on this host; ddum sync applies them$/m);
  expect(treeSnapshot(root)).toEqual(before);

  expect((await ddum(["sync", "--root", root, "-c", cfg])).code).toBe(0);
  const inStep = await ddum(["verify", "--root", root, "-c", cfg]);
  expect([inStep.code, inStep.stdout]).toEqual([0, "in step: this host matches the tables\n"]);
  const json = JSON.parse((await ddum(["verify", "--json", "--root", root, "-c", cfg])).stdout);
  expect(json).toMatchObject({ version: 1, inStep: true, pending: { accounts: 0, homes: 0, keyFiles: 0 } });

  // A hand-edited managed line, then an edited key file: each is drift.
  const passwd = join(root, "etc", "passwd");
  const text = readFileSync(passwd, "utf8");
  writeFileSync(passwd, text.replace(/^alice:(.*):\/bin\/bash$/m, "alice:$1:/bin/sh"));
  const edited = await ddum(["verify", "--root", root, "-c", cfg]);
  expect(edited.code).toBe(4);
  expect(edited.stdout).toContain("~ user alice: Shell: /bin/sh → /bin/bash");
  writeFileSync(passwd, text);
  const keyFile = join(root, "etc", "ssh", "authorized_keys", "alice");
  writeFileSync(keyFile, `${readFileSync(keyFile, "utf8")}ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPlanted planted\n`);
  const keys = await ddum(["verify", "--json", "--root", root, "-c", cfg]);
  expect(keys.code).toBe(4);
  expect(JSON.parse(keys.stdout)).toMatchObject({ version: 1, inStep: false, keyFiles: { write: ["alice"], remove: [] } });
  expect(readFileSync(keyFile, "utf8")).toContain("planted");
}, 60_000);

test("a host whose tables cannot be read is not reported in step: exit 1", async () => {
  const root = makeRoot();
  mkdirSync(join(root, "var", "lib"), { recursive: true });
  const cfg = writeConfig(d, { endpoint_url: "http://127.0.0.1:9", max_attempts: 1 });
  const r = await ddum(["verify", "--root", root, "-c", cfg]);
  expect(r.code).toBe(1);
  expect(r.stderr).toContain("could not check: scan of table");
  const j = await ddum(["verify", "--json", "--root", root, "-c", cfg]);
  expect(j.code).toBe(1);
  expect(JSON.parse(j.stdout)).toMatchObject({ version: 1, inStep: null });
});

test("a wrong --root, and a non-root user on the host's own files, are usage errors (exit 2) that say so", async () => {
  const cfg = writeConfig(d);
  const empty = mkdtempSync(join(tmpdir(), "ddum-noroot-"));
  for (const cmd of ["sync", "verify"]) {
    const missing = await ddum([cmd, "--root", join(empty, "nope"), "-c", cfg]);
    expect([missing.code, missing.stderr]).toEqual([2, `error: --root ${join(empty, "nope")}: no such directory\n`]);
    const bare = await ddum([cmd, "--root", empty, "-c", cfg]);
    expect(bare.code).toBe(2);
    expect(bare.stderr).toContain(`--root ${empty}: no etc/passwd there`);
  }
  // Not root, on the real /: refused before anything is read (config readable by everyone here).
  chmodSync(dirname(cfg), 0o755);
  chmodSync(cfg, 0o644);
  for (const cmd of ["sync", "verify"]) {
    const r = Bun.spawnSync(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", DDUM, cmd, "-c", cfg], { stdout: "pipe", stderr: "pipe" });
    expect(r.exitCode).toBe(2);
    expect(r.stderr.toString()).toContain(`error: must run as root: ddum ${cmd} reads /etc/shadow`);
  }
});

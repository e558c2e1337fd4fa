// A lost or damaged state file: recovered from its backup; with neither, on a host where ddum kept
// state, every pass stops loudly and `ddum status` says how to recover. A damaged status.json is
// only replaced. All through the compiled binary, on real roots.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, readFileSync, rmSync, utimesSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { ddum, writeConfig } from "./helpers/ddum.ts";
import { type Dynamo, putOne, startDynalite, userItem } from "./helpers/dynalite.ts";
import { cleanupRoots, makeRoot, snapshot } from "./helpers/root.ts";

let d: Dynamo;
let cfg: string;
beforeAll(async () => {
  d = await startDynalite();
  await d.createTables();
  await d.put("Users", [userItem("alice", 2001), userItem("bob", 2002)]);
  cfg = writeConfig(d);
});
afterAll(async () => {
  await d.close();
  cleanupRoots();
});

const stateDir = (root: string) => join(root, "var", "lib", "ddum");
const sync = (root: string, ...more: string[]) => ddum(["sync", "--root", root, "-c", cfg, ...more]);
const status = (root: string, ...more: string[]) => ddum(["status", "--root", root, "-c", cfg, ...more]);

/** A root after one successful pass: alice and bob are ddum's. */
async function managedRoot(): Promise<string> {
  const root = makeRoot();
  const r = await sync(root);
  expect(r.code).toBe(0);
  for (const f of ["state.json", "state.json-", "status.json"]) expect(existsSync(join(stateDir(root), f))).toBe(true);
  expect(readFileSync(join(stateDir(root), "state.json-"), "utf8")).toBe(readFileSync(join(stateDir(root), "state.json"), "utf8"));
  return root;
}

describe("state.json lost or damaged, its backup readable", () => {
  const damages: [string, (p: string) => void][] = [
    ["deleted", (p) => rmSync(p)],
    ["emptied", (p) => writeFileSync(p, "")],
    ["cut in half", (p) => writeFileSync(p, readFileSync(p, "utf8").slice(0, 30))],
    ["not in the expected form", (p) => writeFileSync(p, '{"version":1,"ownership":{"users":[7]}}')],
  ];
  for (const [how, damage] of damages) {
    test(`${how}: the pass recovers ownership from state.json-, applies, says so, and writes state.json again`, async () => {
      const root = await managedRoot();
      const state = join(stateDir(root), "state.json");
      const good = readFileSync(state, "utf8");
      damage(state);
      // status warns before the next pass.
      const st = await status(root);
      expect(st.stdout).toContain("its backup");
      expect(JSON.parse((await status(root, "--json")).stdout).warnings).toEqual([expect.stringContaining("its backup")]);
      // A change to a managed user is applied: alice is still ddum's.
      await putOne(d, "Users", userItem("alice", 2001, { RealName: { S: `Alice ${how}` } }));
      const r = await sync(root);
      expect(r.stderr).toBe("");
      expect(r.code).toBe(0);
      expect(r.stdout).toContain("~ user alice: RealName: ");
      expect(r.stdout).toContain("notice: state: ");
      expect(r.stdout).toContain("its backup");
      expect(r.stdout).not.toContain("refused:");
      expect(readFileSync(join(root, "etc", "passwd"), "utf8")).toContain(`alice:x:2001:2001:Alice ${how}`);
      expect(readFileSync(state, "utf8")).toBe(good);
      const after = await status(root);
      expect(after.code).toBe(0);
      expect(after.stdout).not.toContain("WARNING");
    });
  }
});

describe("neither state file readable, on a host where ddum kept state", () => {
  const losses: [string, (dir: string) => void][] = [
    ["both deleted", (dir) => {
      rmSync(join(dir, "state.json"));
      rmSync(join(dir, "state.json-"));
    }],
    ["both emptied", (dir) => {
      writeFileSync(join(dir, "state.json"), "");
      writeFileSync(join(dir, "state.json-"), "");
    }],
    ["state.json deleted, its backup damaged", (dir) => {
      rmSync(join(dir, "state.json"));
      writeFileSync(join(dir, "state.json-"), "{");
    }],
    ["both deleted and status.json damaged, the backup's name left as a directory", (dir) => {
      rmSync(join(dir, "state.json"));
      rmSync(join(dir, "state.json-"));
      Bun.spawnSync(["mkdir", join(dir, "state.json-")]);
      writeFileSync(join(dir, "status.json"), "");
    }],
  ];
  for (const [how, lose] of losses) {
    test(`${how}: sync, dry run and status fail loudly and say how to recover; nothing is written`, async () => {
      const root = await managedRoot();
      lose(stateDir(root));
      await putOne(d, "Users", userItem("alice", 2001, { RealName: { S: `Alice ${how}` } }));
      const before = snapshot(root);
      for (const args of [[], ["--dry-run"]]) {
        const r = await sync(root, ...args);
        expect(r.code).toBe(1);
        expect(r.stderr).toContain("ddum's state is lost");
        expect(r.stderr).toContain("To recover, restore");
        expect(r.stdout).not.toContain("refused:");
      }
      expect(snapshot(root)).toEqual(before);
      const st = await status(root);
      expect(st.code).toBe(1);
      expect(st.stdout).toStartWith("CRITICAL: ddum's state is lost");
      expect(st.stdout).toContain("To recover, restore");
      const js = await status(root, "--json");
      expect(js.code).toBe(1);
      expect(JSON.parse(js.stdout).stateError).toContain("state is lost");
      // The way out: restore the state.
      rmSync(join(stateDir(root), "state.json-"), { recursive: true, force: true });
      writeFileSync(join(stateDir(root), "state.json"), JSON.stringify({ version: 1, ownership: { users: ["alice", "bob"], groups: ["alice", "bob"], members: {}, admins: {} } }));
      const again = await sync(root);
      expect(again.code).toBe(0);
      expect(readFileSync(join(root, "etc", "passwd"), "utf8")).toContain(`alice:x:2001:2001:Alice ${how}`);
      expect(existsSync(join(stateDir(root), "state.json-"))).toBe(true);
    });
  }

  test("a new host (no state directory at all) is not a lost state; its first pass leaves both files and the mark", async () => {
    const root = makeRoot();
    const r = await sync(root);
    expect(r.code).toBe(0);
    const dir = stateDir(root);
    expect(readFileSync(join(dir, "state.json-"), "utf8")).toBe(readFileSync(join(dir, "state.json"), "utf8"));
    expect(JSON.parse(readFileSync(join(dir, "status.json"), "utf8")).stateKept).toBe(true);
  });

  test("a host whose tables were empty still keeps a state after its first pass, so its loss is told too", async () => {
    const d2 = await startDynalite();
    try {
      await d2.createTables();
      const cfg2 = writeConfig(d2);
      const root = makeRoot();
      expect((await ddum(["sync", "--root", root, "-c", cfg2])).code).toBe(0);
      expect(existsSync(join(stateDir(root), "state.json"))).toBe(true);
      rmSync(join(stateDir(root), "state.json"));
      rmSync(join(stateDir(root), "state.json-"));
      const r = await ddum(["sync", "--root", root, "-c", cfg2]);
      expect(r.code).toBe(1);
      expect(r.stderr).toContain("status.json says ddum has kept state on this host");
    } finally {
      await d2.close();
    }
  });

  test("a state.json from before backups were kept gets its backup at the next pass", async () => {
    const root = await managedRoot();
    rmSync(join(stateDir(root), "state.json-"));
    expect((await sync(root)).code).toBe(0);
    expect(readFileSync(join(stateDir(root), "state.json-"), "utf8")).toBe(readFileSync(join(stateDir(root), "state.json"), "utf8"));
  });

  test("a backup behind state.json (its write failed) is written again at the next pass", async () => {
    const root = await managedRoot();
    const backup = join(stateDir(root), "state.json-");
    writeFileSync(backup, JSON.stringify({ version: 1, ownership: { users: ["alice"], groups: ["alice"], members: {}, admins: {} } }));
    utimesSync(backup, new Date(0), new Date(0));
    expect((await sync(root)).code).toBe(0);
    expect(readFileSync(backup, "utf8")).toBe(readFileSync(join(stateDir(root), "state.json"), "utf8"));
  });
});

describe("status.json only reports", () => {
  for (const [how, text] of [
    ["empty", ""],
    ["not JSON", "{ lastPass"],
    ["a record of the wrong shape", '{"lastPass":5,"lastSuccess":"x"}'],
    ["a list", "[]"],
  ] as const) {
    test(`${how}: status says so, and the next pass applies and replaces it`, async () => {
      const root = await managedRoot();
      writeFileSync(join(stateDir(root), "status.json"), text);
      const st = await status(root);
      expect(st.code).toBe(2);
      expect(st.stdout).toContain("the next pass replaces it");
      expect(JSON.parse((await status(root, "--json")).stdout).warnings).toEqual([expect.stringContaining("the next pass replaces it")]);
      await putOne(d, "Users", userItem("bob", 2002, { RealName: { S: `Bob ${how}` } }));
      const r = await sync(root);
      expect(r.code).toBe(0);
      expect(r.stdout).toContain("~ user bob: RealName: ");
      expect(readFileSync(join(root, "etc", "passwd"), "utf8")).toContain(`bob:x:2002:2002:Bob ${how}`);
      const json = JSON.parse(readFileSync(join(stateDir(root), "status.json"), "utf8"));
      expect(json.lastPass.result).toBe("ok");
      expect((await status(root)).code).toBe(0);
    });
  }
});

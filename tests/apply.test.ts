// The apply step (the one writer of the account files) says how far it got when something fails;
// a pass tells its phases through the hooks it is given, and runs alike without them.
import { afterAll, describe, expect, test } from "bun:test";
import { join } from "node:path";
import { applyUnderLocks, type ApplyStep } from "../src/apply.ts";
import { parseConfig } from "../src/config.ts";
import { LocalDb } from "../src/localdb/index.ts";
import type { User } from "../src/model.ts";
import { Root } from "../src/paths.ts";
import { NO_HOOKS } from "../src/perf.ts";
import { EMPTY_OWNERSHIP, plan, type Policy } from "../src/plan.ts";
import { readState } from "../src/state.ts";
import { runPass } from "../src/sync.ts";
import { testConfig } from "./helpers/ddum.ts";
import { startDynalite, userItem } from "./helpers/dynalite.ts";
import { cleanupRoots, makeRoot, snapshot } from "./helpers/root.ts";
import { bareUser } from "./helpers/records.ts";

afterAll(cleanupRoots);

const policy: Policy = { uidMin: 1000, uidMax: 60000, gidMin: 1000, gidMax: 60000, adoptUsers: [], adoptGroups: [], missingUsers: "keep", maxDisablePercent: 100, force: false };
const newcomer: User = bareUser("newcomer", 23456);

function step(root: string, overrides: Partial<ApplyStep<{ db: LocalDb; state: ReturnType<typeof readState> }>> = {}) {
  const r = new Root(root);
  const stateFile = join(root, "var", "lib", "ddum");
  return {
    root: r,
    stateFile,
    lockTimeoutMs: 5000,
    hooks: NO_HOOKS,
    local: () => ({ db: LocalDb.load(r), state: readState(stateFile) }),
    decide: (l: { db: LocalDb; state: ReturnType<typeof readState> }) =>
      plan({ users: [newcomer], groups: [], userNames: new Set(["newcomer"]), userTable: "Users", groupTable: "Groups" }, l.db, l.state.ownership ?? EMPTY_OWNERSHIP, policy, 20600),
    committed: () => {},
    ...overrides,
  };
}

describe("an error says how far the pass got", () => {
  test("before anything is written: nothing was applied, the locks are released", async () => {
    const root = makeRoot();
    const before = snapshot(root);
    const failing = step(root, {
      decide: () => {
        throw new Error("the planner broke");
      },
    });
    await expect(applyUnderLocks(failing)).rejects.toThrow("sync failed, nothing was applied: the planner broke");
    expect(snapshot(root)).toEqual(before);
    // The locks were released: the next apply takes them and writes.
    const ok = await applyUnderLocks(step(root));
    expect(ok.written.map((p) => p.slice(root.length))).toContain("/etc/passwd");
  });

  test("after the commit: the files are written, a cache that cannot follow is a notice", async () => {
    const root = makeRoot();
    const r = await applyUnderLocks(
      step(root, {
        committed: () => {
          throw new Error("disk full");
        },
      }),
    );
    expect(r.written.length).toBeGreaterThan(0);
    expect(snapshot(root).passwd).toContain("newcomer:x:23456:23456:");
    expect(r.plan.notices).toContain("the account files were written, but a cache could not be brought up to date: disk full");
    expect(readState(join(root, "var", "lib", "ddum")).ownership.users).toEqual(["newcomer"]);
  });
});

describe("performance hooks", () => {
  test("a pass tells its phases and collection hints through the hooks it is given, in order", async () => {
    const d = await startDynalite();
    try {
      await d.createTables();
      await d.put("Users", [userItem("hooked", 24000)]);
      const root = makeRoot();
      const told: string[] = [];
      const hooks = { phase: (n: string) => told.push(n), collect: (full: boolean) => told.push(full ? "gc full" : "gc"), note: (l: string) => told.push(`note ${l.split(":")[0]}`) };
      const { config } = parseConfig(testConfig(d));
      const r = await runPass(config, { root: new Root(root), dryRun: false, force: false, today: 20600, hooks });
      expect(r.plan.actions.map((a) => a.kind)).toEqual(["create-user", "create-group"]);
      // A young-generation collection after each account file written (the four of them).
      expect(told).toEqual(["context", "scan", "desired", "lock", "temps", "load", "plan", "gc", "gc", "gc", "gc", "commit", "homes", "key ledger saved", "page memo saved", "note key-file ledger", "note page memo"]);
      // Without hooks, the same pass on a twin root: the same outcome.
      const twin = makeRoot();
      const quiet = await runPass(config, { root: new Root(twin), dryRun: false, force: false, today: 20600 });
      expect(snapshot(twin)).toEqual(snapshot(root));
      expect(quiet.counts).toEqual(r.counts);
    } finally {
      await d.close();
    }
  });
});

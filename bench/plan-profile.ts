// Profile the local half of a no-change pass (load, plan, key files) without DynamoDB:
//   bun --cpu-prof-md bench/plan-profile.ts ROOT N
// ROOT is a root that a pass of bench/profile.ts N filled; the records are rebuilt the same way.
import { parseConfig } from "../src/config.ts";
import { LocalDb } from "../src/localdb/index.ts";
import { decodeGroups, decodeUsers } from "../src/model.ts";
import { Root } from "../src/paths.ts";
import { plan } from "../src/plan.ts";
import { syncHomes } from "../src/homes.ts";
import { readLoginDefs } from "../src/localdb/logindefs.ts";
import { readState, stateDir } from "../src/state.ts";
import { policyFor, todayDays } from "../src/sync.ts";
import { profileUser } from "./profile-items.ts";

const root = new Root(process.argv[2]!);
const n = Number(process.argv[3] ?? 100000);
const items = Array.from({ length: n }, (_, i) => profileUser(i));
const users = decodeUsers("Users", items);
const groups = decodeGroups("Groups", []);
const { config } = parseConfig({ uid_max: 1000000, gid_max: 1000000 });
const policy = policyFor(config, root, false);
const desired = { users: users.records, groups: groups.records, userNames: new Set(users.records.map((u) => u.name)), userTable: "Users", groupTable: "Groups" };
for (let round = 0; round < 3; round++) {
  let t = performance.now();
  const db = LocalDb.load(root);
  const state = readState(stateDir(root, config.state_dir));
  const tLoad = performance.now() - t;
  t = performance.now();
  const p = plan(desired, db, state.ownership, policy, todayDays());
  const tPlan = performance.now() - t;
  t = performance.now();
  const h = await syncHomes(
    p.accepted,
    { root, createHomes: false, keyLocation: "/etc/ssh/authorized_keys/%u", dryRun: false, loginDefs: readLoginDefs(root) },
  );
  const tKeys = performance.now() - t;
  console.log(
    `load ${tLoad.toFixed(0)} ms, plan ${tPlan.toFixed(0)} ms, keys ${tKeys.toFixed(0)} ms: ${p.actions.length} actions, ${p.unchanged} unchanged, ` +
      `${p.refusals.length} refused, ${h.keysWritten.length} key files written; rss ${Math.round(process.memoryUsage().rss / 1048576)} MB`,
  );
}

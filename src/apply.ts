// The one writer of the account files. Under their locks: stale temps removed, the local side
// read again if it changed since the scan, the plan made against it, ownership recorded in
// state.json, then /etc/passwd, shadow, group and gshadow replaced as one change. An error says
// how far it got: nothing applied, ownership recorded only, or which files were written.
import { DdumError } from "./errors.ts";
import { removeStaleTemps } from "./localdb/commit.ts";
import { type LocalDb, lockAccountFiles } from "./localdb/index.ts";
import { LOCKED_FILES } from "./localdb/lock.ts";
import type { Root } from "./paths.ts";
import type { PassHooks } from "./perf.ts";
import type { Action, Plan } from "./plan.ts";
import { type State, updateState } from "./state.ts";

/** Carry the plan's actions out on the tables in memory (nothing is written yet). */
export function applyPlan(db: LocalDb, actions: Action[]): void {
  for (const a of actions) {
    switch (a.kind) {
      case "create-user":
        db.passwd.add(a.passwd);
        db.shadow.add(a.shadow);
        break;
      case "update-user":
        db.passwd.update(a.name, a.passwd);
        if (a.addShadow) db.shadow.add(a.shadow);
        else db.shadow.update(a.name, a.shadow);
        break;
      case "disable-user":
        db.shadow.update(a.name, a.shadow);
        break;
      case "create-group":
        db.group.add(a.group);
        if (db.gshadow.existed) db.gshadow.add(a.gshadow);
        break;
      case "update-group":
        db.group.update(a.name, a.group);
        if (a.gshadow && db.gshadow.has(a.name)) db.gshadow.update(a.name, a.gshadow);
        else if (a.gshadow) db.gshadow.add(a.gshadow);
        break;
    }
  }
}

export interface LocalSide {
  db: LocalDb;
  state: State;
}

export interface Applied<L extends LocalSide> {
  plan: Plan;
  local: L;
  /** The account files replaced. */
  written: string[];
}

export interface ApplyStep<L extends LocalSide> {
  root: Root;
  stateFile: string;
  lockTimeoutMs: number;
  hooks: PassHooks;
  /** The local side to plan against, read under the locks (or the scan's, if nothing changed). */
  local(): L;
  decide(local: L): Plan;
  /** Told under the locks what the commit wrote; for caches, so whatever it throws is a notice. */
  committed(p: Plan, local: L, written: string[]): void;
}

export async function applyUnderLocks<L extends LocalSide>(step: ApplyStep<L>): Promise<Applied<L>> {
  const { root, hooks } = step;
  const locks = await lockAccountFiles(root, step.lockTimeoutMs);
  // How far the pass got, for an error to say truthfully.
  let stage: "nothing" | "state" | "commit" = "nothing";
  try {
    hooks.phase("lock");
    removeStaleTemps(root.etc(""), LOCKED_FILES);
    hooks.phase("temps");
    const local = step.local();
    hooks.phase("load");
    const p = step.decide(local);
    hooks.phase("plan");
    // The planner's garbage goes before serializing when the plan is large (a first pass): a full
    // collection of a 100,000-user heap costs a few hundred milliseconds, which a pass with a
    // handful of changes does not need to pay.
    const large = p.actions.length >= 1000;
    if (large) hooks.collect(true);
    if (p.brake) return { plan: p, local, written: [] };
    const { db, state } = local;
    applyPlan(db, p.actions);
    const writes = db.pendingWrites();
    if (state.recovered) p.notices.push(`state: ${state.recovered}, and is written back to state.json`);
    if (p.ownershipChanged || state.unsaved) {
      // Ownership is recorded before the account files change: after a crash between the two,
      // ddum may own a name that does not exist yet (harmless), never the other way round.
      // A state recovered from its backup, or never written, is written now too.
      const ownership = p.ownership;
      await updateState(step.stateFile, (st) => ({ ...st, ownership }));
      stage = "state";
    }
    // commitFiles reports its own failures before and during the renames (DdumError); anything
    // else comes after every file was renamed into place.
    stage = "commit";
    const written = db.commit(writes, (full) => hooks.collect(full));
    hooks.phase("commit");
    try {
      step.committed(p, local, written);
    } catch (e) {
      p.notices.push(`the account files were written, but a cache could not be brought up to date: ${(e as Error).message}`);
    }
    if (large && written.length > 0) hooks.collect(true);
    return { plan: p, local, written };
  } catch (e) {
    if (e instanceof DdumError) throw e;
    const how = {
      nothing: "nothing was applied",
      state: "ownership was recorded in state.json, the account files were not changed",
      commit: "after the account files were replaced (they hold the new accounts)",
    }[stage];
    throw new DdumError(`sync failed, ${how}: ${(e as Error).message}`);
  } finally {
    locks.release();
  }
}

// One pass: scan → validate → lock → read local → plan → apply → unlock.
import { closeSync, fstatSync, futimesSync, mkdirSync } from "node:fs";
import { basename, dirname } from "node:path";
import { removeStaleTempsFor } from "./safefile.ts";
import { checkRanges, type Config } from "./config.ts";
import { DdumError, EXIT } from "./errors.ts";
import { HomeRules, type HomesResult, type HomeUser, homeMayBeUsed, homesOf, keyRulesFor, ownDirs, parallelHomes, syncHomes } from "./homes.ts";
import { KeyLedger } from "./keyledger.ts";
import { memoEnvironment, PageMemo } from "./pagememo.ts";
import { removeStaleTemps } from "./localdb/commit.ts";
import { identityOf, LocalDb, lockAccountFiles, type ParseIssue, readAccountText } from "./localdb/index.ts";
import { fcntlLock, LOCKED_FILES } from "./localdb/lock.ts";
import { defsNumber, readLoginDefs } from "./localdb/logindefs.ts";
import { printable, type Rejection, type User } from "./model.ts";
import type { Root } from "./paths.ts";
import { type Action, InPlaceUsers, type Plan, type Policy, plan } from "./plan.ts";
import { homeKeysInPlace, KeyDirRules, rootKeysPrecheck } from "./sshkeys.ts";
import { setLabelRoot } from "./selinux.ts";
import { passCounts } from "./report.ts";
import { type Counts, type PassRecord, passProblems, readState, type State, stateDir, updateState, updateStatus, withPassRecord, writeMetrics } from "./state.ts";
import { ShellRules } from "./shells.ts";
import { stopSignal } from "./stop.ts";
import { type Progress, readTables } from "./tables.ts";

/** The files a pass writes in the state directory. */
const STATE_FILES = ["state.json", "state.json-", "status.json", "status.json-", "keyfiles.ledger", "scan-pages.memo"];

export interface SyncOptions {
  root: Root;
  dryRun: boolean;
  force: boolean;
  /** Days since 1970-01-01 (UTC); defaults to now. */
  today?: number;
  /** The wall clock (ms) for the key ledger's settle window; defaults to Date.now. */
  clock?: () => number;
  onProgress?: Progress;
}

export interface SyncResult {
  dryRun: boolean;
  plan: Plan;
  homes: HomesResult;
  rejections: Rejection[];
  /** What records were applied despite: a default for a missing field, a key left out, a weak hash. */
  warnings: Rejection[];
  localIssues: ParseIssue[];
  counts: Counts;
  written: string[];
  exitCode: number;
  timings: { scanMs: number; decodeMs: number; applyMs: number; homesMs: number; totalMs: number };
  /** Pages of the Users table, and how many of them the page memo knew (see pagememo.ts). */
  memo: { pages: number; known: number };
}

export function todayDays(now = Date.now()): number {
  return Math.floor(now / 86_400_000);
}

export function policyFor(config: Config, root: Root, force: boolean): Policy {
  const defs = readLoginDefs(root);
  const pick = (key: keyof Config, def: string, fallback: number) => (config[key] as number | null | undefined) ?? defsNumber(defs, def) ?? fallback;
  const ranges = { uidMin: pick("uid_min", "UID_MIN", 1000), uidMax: pick("uid_max", "UID_MAX", 60000), gidMin: pick("gid_min", "GID_MIN", 1000), gidMax: pick("gid_max", "GID_MAX", 60000) };
  checkRanges(ranges, config, root.etc("login.defs"));
  return {
    ...ranges,
    adoptUsers: config.adopt_users,
    adoptGroups: config.adopt_groups,
    mergeGroups: config.merge_groups,
    missingUsers: config.missing_users,
    maxDisablePercent: config.max_disable_percent,
    force,
  };
}

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

export function countsOf(p: Plan, rejected: number): Counts {
  let created = 0;
  let updated = 0;
  for (const a of p.actions) {
    if (a.kind.startsWith("create")) created++;
    else updated++;
  }
  return { created, updated, unchanged: p.unchanged, refused: p.refusals.length, rejected };
}

/**
 * DDUM_TRACE_MEMORY=1: time and resident size after each phase, on stderr (for the benchmark);
 * DDUM_TRACE_MEMORY=heap adds the JavaScript heap's size and object count (slow: it walks the heap).
 */
function traceMemory(phase: string): void {
  const mode = process.env.DDUM_TRACE_MEMORY;
  if (!mode) return;
  let heap = "";
  if (mode === "heap") {
    const { heapSize, objectCount } = require("bun:jsc").heapStats();
    heap = `, heap ${Math.round(heapSize / 1048576)} MB, ${objectCount} objects`;
  }
  process.stderr.write(`${Math.round(performance.now())} ms, memory after ${phase}: rss ${Math.round(process.memoryUsage().rss / 1048576)} MB${heap}\n`);
}

/**
 * Key files are checked as each page of the Users table arrives, while the next page is on its
 * way: root-owned files under a %u template, or ~/.ssh/authorized_keys in an existing home (read
 * only, through no-follow descriptors). The names found in place are not looked at again after
 * the plan; the plan still decides whose keys a pass may write at all.
 */
function keyPrecheck(config: Config, ledger: KeyLedger, homeRules: HomeRules, keyRules: KeyDirRules): { check: (u: User) => void; inPlace: Set<string>; missing: Set<string> } {
  const inPlace = new Set<string>();
  const missing = new Set<string>();
  if (config.ssh_key_location === "home") {
    // The same rules as syncHomes: a home that may not be used is never "in place".
    return {
      inPlace,
      missing,
      check: (u) => {
        // A user without a Home has no key file in a home: never "in place", never written.
        const path = u.home === "" ? null : homeMayBeUsed(u.home, homeRules);
        if (path !== null && homeKeysInPlace(path, u.uid, u.gid, u.sshKeys, ledger)) inPlace.add(u.name);
      },
    };
  }
  return {
    inPlace,
    missing,
    check: (u) => {
      // A key directory that may not be used: the same, refused after the plan.
      const path = keyRules.pathOrNull(config.ssh_key_location, u.name);
      if (path === null) return;
      const seen = rootKeysPrecheck(path, u.sshKeys, ledger);
      if (seen === "in place") inPlace.add(u.name);
      else if (seen === "missing") missing.add(u.name);
    },
  };
}

/**
 * The accounts that refused records' keys apply to: owned by ddum, with a local passwd line that
 * parses, a UID in the managed range, and the home that line names (the record's is not trusted).
 */
export function keysOnlyUsers(list: readonly { name: string; keys: string[] }[], db: LocalDb, ownership: { users: readonly string[] }, policy: Policy): HomeUser[] {
  if (list.length === 0) return [];
  const owned = new Set(ownership.users);
  const out: HomeUser[] = [];
  for (const { name, keys } of list) {
    if (!owned.has(name) || db.passwd.unparsedNames.has(name)) continue;
    const pw = db.passwd.get(name);
    if (!pw || !/^[0-9]+$/.test(pw[2] ?? "") || !/^[0-9]+$/.test(pw[3] ?? "")) continue;
    const uid = Number(pw[2]);
    if (uid === 0 || uid < policy.uidMin || uid > policy.uidMax) continue;
    const home = pw[5] ?? "";
    if (home !== "" && !home.startsWith("/")) continue;
    out.push({ name, uid, gid: Number(pw[3]), home, sshKeys: keys });
  }
  return out;
}

export async function runPass(config: Config, opts: SyncOptions): Promise<SyncResult> {
  const t0 = performance.now();
  const startedAt = Date.now();
  const today = opts.today ?? todayDays();
  setLabelRoot(opts.root.dir);
  const stateFile = stateDir(opts.root, config.state_dir);
  // The local side is read while the scan runs (when its first page is in), without locks: a real
  // pass takes the locks after the scan and reads again whatever changed in between.
  const snap: { local: { db: LocalDb; state: State; stateId: string; seen: InPlaceUsers; env: string } | null } = { local: null };
  const policy = policyFor(config, opts.root, opts.force);
  // What the in-place check depends on besides the record (--force is not part of it).
  const memoEnv = (passwd: string | null, shadow: string | null, owned: readonly string[]) =>
    memoEnvironment({ config, policy: { ...policy, force: false }, passwd, shadow, owned });
  const readLocal = () => {
    const stateId = identityOf(`${stateFile}/state.json`);
    const db = LocalDb.load(opts.root);
    const state = readState(stateFile);
    db.group.idOwners(2);
    return { db, state, stateId, seen: new InPlaceUsers(db, state.ownership, policy), env: memoEnv(db.textOf("passwd"), db.textOf("shadow"), state.ownership.users) };
  };
  // Key files whose signature (one statx) matches the one they had when a pass last read them
  // are not read again: see keyledger.ts.
  const ledger = KeyLedger.load(stateFile, opts.clock);
  const own = ownDirs(config.ssh_key_location, config.state_dir, config.metrics_file);
  const keys = keyPrecheck(config, ledger, new HomeRules(opts.root, own), new KeyDirRules(opts.root));
  // Pages of users a pass found valid and in place throughout, under the same files, ownership,
  // policy and build: their users are taken as such without working it out again (pagememo.ts).
  const memo = PageMemo.load(stateFile);
  // The page being decoded: whether it can be recorded, and its valid users not in place yet.
  let page = { digest: undefined as string | undefined, known: false, valid: false, pending: [] as string[] };
  // Pages whose users are in place but for those pending, which this pass's commit may put there.
  const mended: { digest: string; pending: string[] }[] = [];
  let pages = 0;
  const tables = await readTables(
    config,
    (table, items) => {
      opts.onProgress?.(table, items);
      snap.local ??= readLocal();
    },
    {
      begin: (digest) => {
        snap.local ??= readLocal();
        pages++;
        const known = digest !== undefined && memo.knows(snap.local.env, digest);
        page = { digest, known, valid: digest !== undefined, pending: [] };
        return known;
      },
      item: (d) => {
        if (d.kind === "reserved") return;
        if (d.kind === "rejected") {
          page.valid = false;
          return;
        }
        keys.check(d.ok);
        // Users whose lines are already right are recognised as they arrive (see InPlaceUsers).
        const seen = snap.local!.seen;
        if (!(page.known ? seen.add(d.ok) : seen.check(d.ok)) && page.valid) page.pending.push(d.ok.name);
      },
      end: () => {
        if (!page.valid) return;
        if (page.pending.length === 0) memo.record(page.digest!);
        else mended.push({ digest: page.digest!, pending: page.pending });
      },
    },
  );
  traceMemory("scan");
  let userNames: Set<string> | undefined;
  // Shells are judged here, after the scan, for every user (in place or not): the same rule on
  // every path, once per distinct shell.
  const shellRules = new ShellRules(opts.root, homesOf(tables.users.records));
  const shells = shellRules.filter(tables.users.records, config.user_table_name);
  const desired = {
    users: shells.users,
    groups: tables.groups.records,
    // Only a pass that disables missing users asks (a set of 100,000 names is not free).
    get userNames() {
      userNames ??= new Set(tables.userNames);
      return userNames;
    },
    groupNames: new Set(tables.groupNames),
    userTable: config.user_table_name,
    groupTable: config.group_table_name,
  };
  traceMemory("desired");
  const rejections = [...tables.users.rejections, ...shells.rejections, ...tables.groups.rejections];
  const warnings = [...tables.users.warnings, ...tables.groups.warnings];
  const rejected = tables.users.rejected + shells.rejections.length + tables.groups.rejected;
  const homesFor = async (p: Plan, db: LocalDb): Promise<HomesResult> => {
    const t = performance.now();
    const homeRules = new HomeRules(opts.root, own, homesOf(p.accepted));
    const homesOpts = {
      homeRules,
      keyDirRules: keyRulesFor(opts.root, homeRules, config.ssh_key_location),
      root: opts.root,
      createHomes: config.create_homes,
      keyLocation: config.ssh_key_location,
      dryRun: opts.dryRun,
      loginDefs: readLoginDefs(opts.root),
      keysInPlace: keys.inPlace,
      keysMissing: keys.missing,
    };
    const r = await syncHomes(p.accepted, homesOpts);
    // Refused records whose keys could be read: those keys apply to the account ddum manages
    // under that name, as it is (no home is made for it).
    // The same for valid records that a later rule refused (the shell rule, the plan): a
    // revocation never waits for whatever else is wrong with the record.
    const acceptedNames = new Set(p.accepted.map((u) => u.name));
    const refusedLater = tables.users.records.filter((u) => !acceptedNames.has(u.name)).map((u) => ({ name: u.name, keys: u.sshKeys }));
    const keysOnly = keysOnlyUsers([...tables.users.keysOnly, ...refusedLater], db, p.ownership, policy);
    if (keysOnly.length > 0) {
      const k = await syncHomes(keysOnly, { ...homesOpts, createHomes: false });
      r.keysWritten.push(...k.keysWritten);
      r.keysRemoved.push(...k.keysRemoved);
      r.keyChanges.push(...k.keyChanges);
      r.refusals.push(...k.refusals);
      r.notices.push(...k.notices);
    }
    tHomes = performance.now() - t;
    return r;
  };
  const noHomes: HomesResult = { homesCreated: [], keysWritten: [], keysRemoved: [], keyChanges: [], refusals: [], notices: [] };
  let tApply = 0;
  let tHomes = 0;
  const result = (p: Plan, db: LocalDb, written: string[], homes: HomesResult): SyncResult => {
    const homeRefusals = homes.refusals.map((r) => ({ table: config.user_table_name, ...r, name: printable(r.name) }));
    p.refusals.push(...homeRefusals);
    p.notices.push(...homes.notices, ...shellRules.unlisted(desired.users));
    return {
      dryRun: opts.dryRun,
      plan: p,
      homes,
      rejections,
      warnings,
      localIssues: db.issues,
      counts: passCounts(p, {
        usersRejected: tables.users.rejected + shells.rejections.length,
        groupsRejected: tables.groups.rejected,
        groupTable: config.group_table_name,
        tableGroups: desired.groupNames,
        localGroup: (n) => db.group.has(n),
        homes,
      }),
      written,
      timings: { scanMs: tables.scanMs, decodeMs: tables.decodeMs, applyMs: tApply, homesMs: tHomes, totalMs: performance.now() - t0 },
      memo: { pages, known: memo.hits },
      exitCode: p.brake ? EXIT.failed : rejected > 0 || p.refusals.length > 0 ? EXIT.partial : EXIT.ok,
    };
  };

  if (opts.dryRun) {
    // No locks, no state, no writes: read what is there and say what would change.
    const { db, state, seen } = snap.local ?? readLocal();
    const p = plan(desired, db, state.ownership, policy, today, seen);
    if (state.recovered) p.notices.push(`state: ${state.recovered}; a real pass writes it back to state.json`);
    return result(p, db, [], await homesFor(p, db));
  }

  if (stopSignal.requested) throw new DdumError(`stopped by ${stopSignal.requested} before anything was applied`);
  const tLock = performance.now();
  const locks = await lockAccountFiles(opts.root, config.lock_timeout * 1000);
  let p: Plan;
  let db: LocalDb;
  let written: string[];
  let memoEnvAfter: string | null = null;
  try {
    traceMemory("lock");
    removeStaleTemps(opts.root.etc(""), LOCKED_FILES);
    traceMemory("temps");
    let local = snap.local;
    // Read again, the users seen in place during the scan are checked again by the plan itself.
    if (!local || local.db.changedOnDisk() || identityOf(`${stateFile}/state.json`) !== local.stateId) local = readLocal();
    const scanTimeLocal = local === snap.local;
    snap.local = null;
    db = local.db;
    const state = local.state;
    traceMemory("load");
    p = plan(desired, db, state.ownership, policy, today, local.seen);
    traceMemory("plan");
    // Collect the planner's garbage before serializing when the plan is large (a first pass): a
    // full collection of a 100,000-user heap costs a few hundred milliseconds, which a pass with
    // a handful of changes does not need to pay.
    const large = p.actions.length >= 1000;
    if (large) {
      Bun.gc(true);
      traceMemory("gc");
    }
    if (p.brake) return result(p, db, [], noHomes);
    applyPlan(db, p.actions);
    const writes = db.pendingWrites();
    if (state.recovered) p.notices.push(`state: ${state.recovered}, and is written back to state.json`);
    if (p.ownershipChanged || state.unsaved) {
      // Ownership is recorded before the account files change: after a crash between the two,
      // ddum may own a name that does not exist yet (harmless), never the other way round.
      // A state recovered from its backup, or never written, is written now too.
      const ownership = p.ownership;
      await updateState(stateFile, (st) => ({ ...st, ownership }));
    }
    written = db.commit(writes);
    traceMemory("commit");
    // The pages recorded hold for the files as they are now (see pagememo.ts), read back while
    // the locks are held; not when the plan did not use what was seen during the scan.
    if (scanTimeLocal) {
      const rewritten = written.includes(opts.root.etc("passwd")) || written.includes(opts.root.etc("shadow"));
      memoEnvAfter =
        rewritten || p.ownershipChanged
          ? memoEnv(readAccountText(opts.root, "passwd"), readAccountText(opts.root, "shadow"), p.ownership.users)
          : local.env;
      // A user this commit created or updated now has exactly its record's lines, is owned, and
      // holds its UID (the plan refuses a UID someone else holds): in place, as the next pass's
      // check would find. A page whose every other user was in place is recorded too.
      if (rewritten && mended.length > 0) {
        const madeRight = new Set<string>();
        for (const a of p.actions) if (a.kind === "create-user" || a.kind === "update-user") madeRight.add(a.name);
        for (const m of mended) if (m.pending.every((n) => madeRight.has(n))) memo.record(m.digest);
      }
    }
    if (large && written.length > 0) {
      Bun.gc(true);
      traceMemory("gc");
    }
    tApply = performance.now() - tLock;
  } catch (e) {
    if (e instanceof DdumError) throw e;
    throw new DdumError(`sync failed, nothing was applied: ${(e as Error).message}`);
  } finally {
    locks.release();
  }
  // Homes and keys after the account files, outside their locks: the accounts exist by now. Two
  // passes on one root never work on homes at the same time (homes.lock in the state directory).
  // Whatever goes wrong here, the account files are written: it is reported, not a failed pass.
  let homes: HomesResult;
  try {
    mkdirSync(stateFile, { recursive: true, mode: 0o755 });
    const homesLock = await fcntlLock(`${stateFile}/homes.lock`, config.lock_timeout * 1000, "another ddum pass is making homes");
    try {
      // Another pass made homes and keys after this one began its scan: what the scan saw of the
      // key files is stale (a key it saw in place may be one this pass revokes). Look again.
      if (fstatSync(homesLock).mtimeMs >= startedAt) {
        keys.inPlace.clear();
        keys.missing.clear();
      }
      homes = await homesFor(p, db);
      if (!opts.dryRun) futimesSync(homesLock, new Date(), new Date());
    } finally {
      closeSync(homesLock);
    }
  } catch (e) {
    homes = { ...noHomes, refusals: [{ name: "(every user)", field: "Home", reason: `homes and keys were not made: ${(e as Error).message}` }] };
  }
  traceMemory("homes");
  try {
    ledger.save(stateFile);
  } catch (e) {
    // Only a cache: the next pass reads the key files in full.
    p.notices.push(`the key-file ledger could not be saved: ${(e as Error).message}`);
  }
  try {
    if (memoEnvAfter !== null) memo.save(stateFile, memoEnvAfter);
  } catch (e) {
    // Only a cache: the next pass checks every user itself.
    p.notices.push(`the page memo could not be saved: ${(e as Error).message}`);
  }
  if (process.env.DDUM_TRACE_MEMORY) {
    process.stderr.write(`key-file ledger: ${ledger.confirmed} confirmed by signature, ${ledger.recorded} recorded\n`);
    process.stderr.write(`page memo: ${memo.hits} of ${pages} pages of users known\n`);
    if (parallelHomes.byWorker > 0) process.stderr.write(`homes made by the second thread: ${parallelHomes.byWorker}\n`);
  }
  return result(p, db, written, homes);
}

export interface RecordedPass {
  result: SyncResult | null;
  error: DdumError | null;
  exitCode: number;
}

/**
 * A real (not dry) pass whose outcome is recorded in the state file and the metrics file:
 * what `ddum sync` and every round of `ddum daemon` run. Never throws for a failed pass.
 */
export async function recordedPass(config: Config, opts: Omit<SyncOptions, "dryRun">): Promise<RecordedPass> {
  const start = new Date();
  let result: SyncResult | null = null;
  let error: DdumError | null = null;
  try {
    result = await runPass(config, { ...opts, dryRun: false });
  } catch (e) {
    error = e instanceof DdumError ? e : new DdumError(`pass failed: ${(e as Error).message}`);
  }
  const end = new Date();
  const failed = error !== null || result?.plan.brake;
  const rec: PassRecord = {
    start: start.toISOString(),
    end: end.toISOString(),
    result: failed ? "failed" : result!.exitCode === EXIT.partial ? "partial" : "ok",
    counts: result?.counts ?? null,
    error: error?.message ?? result?.plan.brake ?? null,
    durationMs: end.getTime() - start.getTime(),
    ...(result ? passProblems(result.rejections, result.plan.refusals) : {}),
  };
  try {
    const dir = stateDir(opts.root, config.state_dir);
    // Temporary files a killed pass left beside the files it writes here are swept once a pass.
    removeStaleTempsFor(dir, STATE_FILES);
    const st = await updateStatus(dir, (s) => withPassRecord(s, rec));
    if (config.metrics_file) {
      const metrics = opts.root.path(config.metrics_file);
      removeStaleTempsFor(dirname(metrics), [basename(metrics)]);
      writeMetrics(metrics, st);
    }
  } catch (e) {
    // The accounts are what matter; a status that cannot be written is reported, not fatal.
    error ??= new DdumError(`the pass ran, but its status could not be recorded: ${(e as Error).message}`);
  }
  return { result, error, exitCode: error && !result ? error.exitCode : (result?.exitCode ?? EXIT.failed) };
}

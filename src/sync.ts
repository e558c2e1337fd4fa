// One pass, in named steps that return values: observe (scan + local snapshot), decide (the plan,
// from the rule book's verdicts), apply (apply.ts, the one writer of the account files), converge
// homes and keys, record (the caches); then the pass's record in status.json (recordedPass).
import { closeSync, fstatSync, futimesSync, mkdirSync } from "node:fs";
import { basename, dirname } from "node:path";
import { type ApplyStep, applyUnderLocks } from "./apply.ts";
import { checkRanges, type Config } from "./config.ts";
import { DdumError, EXIT } from "./errors.ts";
import { HomeRules, type HomesResult, homeMayBeUsed, homesOf, keyRulesFor, ownDirs, parallelHomes, syncHomes } from "./homes.ts";
import { keysOnlyUsers, userRulesText } from "./judge.ts";
import { KeyLedger } from "./keyledger.ts";
import { identityOf, LocalDb, type ParseIssue, readAccountText } from "./localdb/index.ts";
import { fcntlLock } from "./localdb/lock.ts";
import { defsNumber, readLoginDefs } from "./localdb/logindefs.ts";
import { printable, type Rejection, type User } from "./model.ts";
import { memoEnvironment, PageBook, PageMemo } from "./pagememo.ts";
import type { Root } from "./paths.ts";
import { ALL_CACHES, type Caches, NO_HOOKS, type PassHooks } from "./perf.ts";
import { type Desired, InPlaceUsers, type Plan, type Policy, plan } from "./plan.ts";
import { passCounts } from "./report.ts";
import { removeStaleTempsFor } from "./safefile.ts";
import { setLabelRoot } from "./selinux.ts";
import { ShellRules } from "./shells.ts";
import { homeKeysInPlace, KeyDirRules, rootKeysPrecheck } from "./sshkeys.ts";
import { type Counts, type PassRecord, passProblems, readState, type State, stateDir, updateStatus, withPassRecord, writeMetrics } from "./state.ts";
import { stopSignal } from "./stop.ts";
import { type Progress, readTables, type TableState } from "./tables.ts";

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
  /** Phase timing, memory trace, collection hints (perf.ts); none by default. */
  hooks?: PassHooks;
  /** Which caches the pass uses (perf.ts); all by default. */
  caches?: Caches;
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

/** What one pass works with, made before it starts: policy, today, where state lives, caches, hooks. */
interface PassContext {
  config: Config;
  opts: SyncOptions;
  t0: number;
  /** The wall clock when the pass began (homes.lock's mtime is compared with it). */
  startedAt: number;
  today: number;
  policy: Policy;
  stateFile: string;
  hooks: PassHooks;
  caches: Caches;
  /** Key files whose signature matches the last reading are not read again (keyledger.ts). */
  ledger: KeyLedger;
  /** Pages of users whose bytes this build found valid before (pagememo.ts). */
  pages: PageBook;
  /** The digest of what the in-place verdicts read besides the record, for the page memo. */
  memoEnv(texts: { passwd: string | null; shadow: string | null; group: string | null }, owned: { users: readonly string[]; groups: readonly string[] }): string;
  /** The key-file and home directories ddum keeps for itself. */
  own: ReturnType<typeof ownDirs>;
}

/** The local side as read: the account files, state.json, and the users found in place so far. */
interface Local {
  db: LocalDb;
  state: State;
  stateId: string;
  seen: InPlaceUsers;
  env: string;
}

/** What the scan saw, with the local side as read while it ran (null: no page arrived). */
interface Observed {
  tables: TableState;
  desired: Desired;
  shellRules: ShellRules;
  rejections: Rejection[];
  warnings: Rejection[];
  rejected: number;
  /** Users refused by the shell rule. */
  shellRejected: number;
  keys: { inPlace: Set<string>; missing: Set<string> };
  local: Local | null;
}

function passContext(config: Config, opts: SyncOptions): PassContext {
  setLabelRoot(opts.root.dir);
  const stateFile = stateDir(opts.root, config.state_dir);
  const policy = policyFor(config, opts.root, opts.force);
  const caches = opts.caches ?? ALL_CACHES;
  return {
    config,
    opts,
    t0: performance.now(),
    startedAt: Date.now(),
    today: opts.today ?? todayDays(),
    policy,
    stateFile,
    hooks: opts.hooks ?? NO_HOOKS,
    caches,
    ledger: caches.keyLedger ? KeyLedger.load(stateFile, opts.clock) : KeyLedger.empty(opts.clock),
    pages: new PageBook(caches.pageMemo ? PageMemo.load(stateFile) : PageMemo.empty()),
    // What the in-place verdicts depend on besides the record (--force is not part of it).
    memoEnv: (texts, owned) => memoEnvironment({ config, policy: { ...policy, force: false }, ...texts, owned: owned.users, ownedGroups: owned.groups, rules: userRulesText() }),
    own: ownDirs(config.ssh_key_location, config.state_dir, config.metrics_file),
  };
}

function readLocal(cx: PassContext): Local {
  const stateId = identityOf(`${cx.stateFile}/state.json`);
  const db = LocalDb.load(cx.opts.root);
  const state = readState(cx.stateFile);
  db.group.idOwners(2);
  const seen = new InPlaceUsers(db, state.ownership, cx.policy, cx.today);
  return { db, state, stateId, seen, env: cx.memoEnv({ passwd: db.textOf("passwd"), shadow: db.textOf("shadow"), group: db.textOf("group") }, state.ownership) };
}

/**
 * Observe: both tables scanned and decoded page by page; while the next page is on its way, the
 * local side is read (without locks, at the first page) and each user is judged in place or not,
 * and its key files looked at. Shells are judged after the scan, for every user.
 */
async function observe(cx: PassContext): Promise<Observed> {
  const { config, opts, pages } = cx;
  let local: Local | null = null;
  const keys = keyPrecheck(config, cx.ledger, new HomeRules(opts.root, cx.own), new KeyDirRules(opts.root));
  const tables = await readTables(
    config,
    (table, items) => {
      opts.onProgress?.(table, items);
      local ??= readLocal(cx);
    },
    {
      begin: (digest) => {
        local ??= readLocal(cx);
        return pages.begin(local.env, digest);
      },
      item: (d) => {
        if (d.kind === "reserved") return;
        if (d.kind === "rejected") return pages.rejected();
        keys.check(d.ok);
        if (pages.known) local!.seen.hold(d.ok);
        else pages.user(d.ok.name, local!.seen.check(d.ok));
      },
      end: () => pages.end(),
    },
  );
  cx.hooks.phase("scan");
  let userNames: Set<string> | undefined;
  const shellRules = new ShellRules(opts.root, homesOf(tables.users.records));
  const shells = shellRules.filter(tables.users.records, config.user_table_name);
  const desired: Desired = {
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
  cx.hooks.phase("desired");
  return {
    tables,
    desired,
    shellRules,
    rejections: [...tables.users.rejections, ...shells.rejections, ...tables.groups.rejections],
    warnings: [...tables.users.warnings, ...tables.groups.warnings],
    rejected: tables.users.rejected + shells.rejections.length + tables.groups.rejected,
    shellRejected: shells.rejections.length,
    keys,
    local,
  };
}

/** Decide: the plan, from the verdicts of the rule book (judge.ts). */
function decide(cx: PassContext, seen: Observed, local: Local): Plan {
  return plan(seen.desired, local.db, local.state.ownership, cx.policy, cx.today, local.seen);
}

/**
 * Converge homes and keys, after the account files and outside their locks: the accounts exist
 * by now. Two passes on one root never work on homes at the same time (homes.lock in the state
 * directory). In a real pass, whatever goes wrong here is reported, not a failed pass: the
 * account files are written.
 */
async function converge(cx: PassContext, seen: Observed, p: Plan, db: LocalDb): Promise<HomesResult> {
  const { config, opts } = cx;
  const homesFor = async (): Promise<HomesResult> => {
    const homeRules = new HomeRules(opts.root, cx.own, homesOf(p.accepted));
    const homesOpts = {
      homeRules,
      keyDirRules: keyRulesFor(opts.root, homeRules, config.ssh_key_location),
      root: opts.root,
      createHomes: config.create_homes,
      keyLocation: config.ssh_key_location,
      dryRun: opts.dryRun,
      loginDefs: readLoginDefs(opts.root),
      keysInPlace: seen.keys.inPlace,
      keysMissing: seen.keys.missing,
      collect: (full: boolean) => cx.hooks.collect(full),
    };
    const r = await syncHomes(p.accepted, homesOpts);
    // Refused records whose keys could be read: those keys apply to the account ddum manages
    // under that name, as it is (no home is made for it).
    // The same for valid records that a later rule refused (the shell rule, the plan): a
    // revocation never waits for whatever else is wrong with the record.
    const acceptedNames = new Set(p.accepted.map((u) => u.name));
    const refusedLater = seen.tables.users.records.filter((u) => !acceptedNames.has(u.name)).map((u) => ({ name: u.name, keys: u.sshKeys }));
    const keysOnly = keysOnlyUsers([...seen.tables.users.keysOnly, ...refusedLater], db, p.ownership, cx.policy);
    if (keysOnly.length > 0) {
      const k = await syncHomes(keysOnly, { ...homesOpts, createHomes: false });
      r.keysWritten.push(...k.keysWritten);
      r.keysRemoved.push(...k.keysRemoved);
      r.keyChanges.push(...k.keyChanges);
      r.refusals.push(...k.refusals);
      r.notices.push(...k.notices);
    }
    return r;
  };
  if (opts.dryRun) return homesFor();
  let homes: HomesResult;
  try {
    mkdirSync(cx.stateFile, { recursive: true, mode: 0o755 });
    const homesLock = await fcntlLock(`${cx.stateFile}/homes.lock`, config.lock_timeout * 1000, "another ddum pass is making homes");
    try {
      // Another pass made homes and keys after this one began its scan: what the scan saw of the
      // key files is stale (a key it saw in place may be one this pass revokes). Look again.
      if (fstatSync(homesLock).mtimeMs >= cx.startedAt) {
        seen.keys.inPlace.clear();
        seen.keys.missing.clear();
      }
      homes = await homesFor();
      futimesSync(homesLock, new Date(), new Date());
    } finally {
      closeSync(homesLock);
    }
  } catch (e) {
    homes = { ...NO_HOMES, refusals: [{ name: "(every user)", field: "Home", reason: `homes and keys were not made: ${(e as Error).message}` }] };
  }
  cx.hooks.phase("homes");
  return homes;
}

/** Record: the caches for the next pass. Each is only a cache: one that cannot be saved is a notice. */
function record(cx: PassContext, p: Plan, memoEnv: string | null): void {
  try {
    if (cx.caches.keyLedger) cx.ledger.save(cx.stateFile);
  } catch (e) {
    p.notices.push(`the key-file ledger could not be saved: ${(e as Error).message}`);
  }
  try {
    if (memoEnv !== null && cx.caches.pageMemo) cx.pages.memo.save(cx.stateFile, memoEnv);
  } catch (e) {
    p.notices.push(`the page memo could not be saved: ${(e as Error).message}`);
  }
  cx.hooks.note(`key-file ledger: ${cx.ledger.confirmed} confirmed by signature, ${cx.ledger.recorded} recorded`);
  cx.hooks.note(`page memo: ${cx.pages.memo.hits} of ${cx.pages.pages} pages of users known`);
  if (parallelHomes.byWorker > 0) cx.hooks.note(`homes made by the second thread: ${parallelHomes.byWorker}`);
}

const NO_HOMES: HomesResult = { homesCreated: [], keysWritten: [], keysRemoved: [], keyChanges: [], refusals: [], notices: [] };

function finish(cx: PassContext, seen: Observed, p: Plan, db: LocalDb, written: string[], homes: HomesResult, ms: { applyMs: number; homesMs: number }): SyncResult {
  const homeRefusals = homes.refusals.map((r) => ({ table: cx.config.user_table_name, ...r, name: printable(r.name) }));
  p.refusals.push(...homeRefusals);
  p.notices.push(...homes.notices, ...seen.shellRules.unlisted(seen.desired.users));
  return {
    dryRun: cx.opts.dryRun,
    plan: p,
    homes,
    rejections: seen.rejections,
    warnings: seen.warnings,
    localIssues: db.issues,
    counts: passCounts(p, {
      usersRejected: seen.tables.users.rejected + seen.shellRejected,
      groupsRejected: seen.tables.groups.rejected,
      groupTable: cx.config.group_table_name,
      tableGroups: seen.desired.groupNames ?? new Set(seen.tables.groupNames),
      localGroup: (n) => db.group.has(n),
      homes,
    }),
    written,
    timings: { scanMs: seen.tables.scanMs, decodeMs: seen.tables.decodeMs, ...ms, totalMs: performance.now() - cx.t0 },
    memo: { pages: cx.pages.pages, known: cx.pages.memo.hits },
    exitCode: p.brake ? EXIT.failed : seen.rejected > 0 || p.refusals.length > 0 ? EXIT.partial : EXIT.ok,
  };
}

/** One pass: observe, decide, apply, converge homes and keys, record. */
export async function runPass(config: Config, opts: SyncOptions): Promise<SyncResult> {
  const cx = passContext(config, opts);
  const seen = await observe(cx);
  const timed = async <T>(f: () => Promise<T>): Promise<[T, number]> => {
    const t = performance.now();
    return [await f(), performance.now() - t];
  };
  if (opts.dryRun) {
    // No locks, no state, no writes: read what is there and say what would change.
    const local = seen.local ?? readLocal(cx);
    const p = decide(cx, seen, local);
    if (local.state.recovered) p.notices.push(`state: ${local.state.recovered}; a real pass writes it back to state.json`);
    const [homes, homesMs] = await timed(() => converge(cx, seen, p, local.db));
    return finish(cx, seen, p, local.db, [], homes, { applyMs: 0, homesMs });
  }
  if (stopSignal.requested) throw new DdumError(`stopped by ${stopSignal.requested} before anything was applied`);
  let memoEnv: string | null = null;
  const [applied, applyMs] = await timed(() => applyUnderLocks(applyStep(cx, seen, (env) => (memoEnv = env))));
  const { plan: p, local, written } = applied;
  if (p.brake) return finish(cx, seen, p, local.db, [], NO_HOMES, { applyMs: 0, homesMs: 0 });
  const [homes, homesMs] = await timed(() => converge(cx, seen, p, local.db));
  record(cx, p, memoEnv);
  return finish(cx, seen, p, local.db, written, homes, { applyMs, homesMs });
}

/**
 * Apply's inputs: the scan-time local side unless the files or state.json changed since (then
 * read again, and its users judged again by the plan itself), and, once the files are written,
 * the page memo's environment read back under the locks (see pagememo.ts); not when the plan did
 * not use what was seen during the scan.
 */
function applyStep(cx: PassContext, seen: Observed, memoEnv: (env: string) => void): ApplyStep<Local> {
  const { opts } = cx;
  let fromScan = false;
  return {
    root: opts.root,
    stateFile: cx.stateFile,
    lockTimeoutMs: cx.config.lock_timeout * 1000,
    hooks: cx.hooks,
    local: () => {
      const scanned = seen.local;
      seen.local = null;
      fromScan = scanned !== null && !scanned.db.changedOnDisk() && identityOf(`${cx.stateFile}/state.json`) === scanned.stateId;
      return fromScan ? scanned! : readLocal(cx);
    },
    decide: (local) => decide(cx, seen, local),
    committed: (p, local, written) => {
      if (!fromScan) return;
      const rewritten = ["passwd", "shadow", "group"].some((f) => written.includes(opts.root.etc(f)));
      const reread = () => ({ passwd: readAccountText(opts.root, "passwd"), shadow: readAccountText(opts.root, "shadow"), group: readAccountText(opts.root, "group") });
      memoEnv(rewritten || p.ownershipChanged ? cx.memoEnv(reread(), p.ownership) : local.env);
      if (rewritten && cx.pages.mendable) {
        const madeRight = new Set<string>();
        for (const a of p.actions) if (a.kind === "create-user" || a.kind === "update-user") madeRight.add(a.name);
        cx.pages.mendedBy(madeRight);
      }
    },
  };
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

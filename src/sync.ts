// One pass, in named steps that return values: detect (with change_detection "version": whether
// the tables changed, from their version), observe (scan, or the scan snapshot, + local snapshot),
// decide (the plan, from the rule book's verdicts), apply (apply.ts, the one writer of the account
// files), converge homes and keys, record (the caches, the snapshot); then the pass's record in
// status.json (recordedPass).
import { constants as C, closeSync, fstatSync, futimesSync, mkdirSync } from "node:fs";
import { basename, dirname } from "node:path";
import { type ApplyStep, applyUnderLocks } from "./apply.ts";
import { type Config, checkRanges } from "./config.ts";
import { DdumError, EXIT } from "./errors.ts";
import { AT_FDCWD, ENOENT, O_PATH, openAt, SIG_WORDS, statSignatureAt, statSignatureFilled, statxName } from "./fsat.ts";
import { HomeRules, type HomesResult, type HomeUser, homeMayBeUsed, homesOf, keyRulesFor, ownDirs, parallelHomes, syncHomes } from "./homes.ts";
import { keysOnlyUsers, userRulesText } from "./judge.ts";
import { KeyLedger, SETTLED_MS } from "./keyledger.ts";
import { identityOf, LocalDb, type ParseIssue, readAccountText } from "./localdb/index.ts";
import { fcntlLock } from "./localdb/lock.ts";
import { defsNumber, readLoginDefs } from "./localdb/logindefs.ts";
import { printable, type Rejection, type User } from "./model.ts";
import { buildId, memoEnvironment, PageBook, PageMemo } from "./pagememo.ts";
import type { Root } from "./paths.ts";
import { ALL_CACHES, type Caches, NO_HOOKS, type PassHooks } from "./perf.ts";
import { type Desired, EMPTY_OWNERSHIP, InPlaceUsers, type Plan, type Policy, plan } from "./plan.ts";
import { passCounts } from "./report.ts";
import { removeStaleTempsFor } from "./safefile.ts";
import { setLabelRoot } from "./selinux.ts";
import { ShellRules } from "./shells.ts";
import { readSnapshot, type ScanSnapshot, SNAPSHOT_FILE, SnapshotRecorder } from "./snapshot.ts";
import type { DynamoClient } from "./source/dynamo.ts";
import { homeKeysConfirmed, homeKeysInPlace, homeKeysLedgerKey, KeyDirRules, rootKeysLedgerKey, rootKeysPrecheck } from "./sshkeys.ts";
import { type Counts, type PassDetection as Detection, type PassRecord, passProblems, readState, type State, stateDir, updateStatus, withPassRecord, writeMetrics } from "./state.ts";
import { type CheckEntry, isHome, readSteady, STEADY_FILE, type Steady, type SteadyReport, writeSteady } from "./steady.ts";
import { stopSignal } from "./stop.ts";
import { type Progress, readTables, type TableState } from "./tables.ts";
import { VERSION } from "./version.ts";

/** The files a pass writes in the state directory. */
const STATE_FILES = ["state.json", "state.json-", "status.json", "status.json-", "keyfiles.ledger", "scan-pages.memo", SNAPSHOT_FILE, STEADY_FILE];

export interface SyncOptions {
  root: Root;
  dryRun: boolean;
  force: boolean;
  /** Days since 1970-01-01 (UTC); defaults to now. */
  today?: number;
  /** The wall clock (ms) for the key ledger's settle window; defaults to Date.now. */
  clock?: () => number;
  /** The wall clock (ms) for change detection: full_scan_period and the time of a scan; defaults to Date.now. */
  now?: () => number;
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
  /** DynamoDB read units the pass consumed (its Scan pages and GetItem, as DynamoDB reported them). */
  readUnits: number;
  detection: Detection;
  /** What change detection had to say (a version that could not be read, a damaged snapshot); also among the plan's notices. */
  detectionNotices: string[];
}

export type { PassDetection as Detection, PassKind } from "./state.ts";

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
function keyPrecheck(config: Config, ledger: KeyLedger, homeRules: HomeRules, keyRules: KeyDirRules): { check: (u: HomeUser) => void; inPlace: Set<string>; missing: Set<string> } {
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
  /** The wall clock of change detection (SyncOptions.now). */
  now: () => number;
  /** The settle window's clock at the start (the key ledger's): identities recorded must be older. */
  settleFrom: number;
  /** login.defs and /etc/shells as they were before this pass read them (identityOf). */
  fileIds: { loginDefs: string; shells: string };
}

/** The local side as read: the account files, state.json, and the users found in place so far. */
interface Local {
  db: LocalDb;
  state: State;
  stateId: string;
  /** state.json-, as it was before the state was read. */
  backupId: string;
  seen: InPlaceUsers;
  env: string;
}

/** What the scan saw, with the local side as read while it ran (null: no page arrived). */
interface Observed {
  tables: TableState;
  desired: Desired;
  shellRules: ShellRules;
  /** Every home of the valid records, in normal form (the shell rule's). */
  homes: Set<string>;
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
  // Taken before the files are read (policyFor reads login.defs, ShellRules /etc/shells).
  const settleFrom = (opts.clock ?? Date.now)();
  const fileIds = { loginDefs: identityOf(opts.root.etc("login.defs")), shells: identityOf(opts.root.etc("shells")) };
  const policy = policyFor(config, opts.root, opts.force);
  const caches = opts.caches ?? ALL_CACHES;
  return {
    now: opts.now ?? Date.now,
    settleFrom,
    fileIds,
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
  const backupId = identityOf(`${cx.stateFile}/state.json-`);
  const db = LocalDb.load(cx.opts.root);
  const state = readState(cx.stateFile);
  db.group.idOwners(2);
  const seen = new InPlaceUsers(db, state.ownership, cx.policy, cx.today);
  return { db, state, stateId, backupId, seen, env: cx.memoEnv({ passwd: db.textOf("passwd"), shadow: db.textOf("shadow"), group: db.textOf("group") }, state.ownership) };
}

/**
 * Observe: both tables scanned and decoded page by page; while the next page is on its way, the
 * local side is read (without locks, at the first page) and each user is judged in place or not,
 * and its key files looked at. Shells are judged after the scan, for every user.
 */
async function observe(cx: PassContext, det: Detected): Promise<Observed> {
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
    {
      ...(det.client ? { client: det.client } : {}),
      ...(det.snapshot ? { source: det.snapshot.source } : {}),
      ...(det.recorder ? { keep: det.recorder.keep } : {}),
      onCapacity: (units) => {
        det.readUnits += units;
      },
    },
  );
  cx.hooks.phase("scan");
  let userNames: Set<string> | undefined;
  const homes = homesOf(tables.users.records);
  const shellRules = new ShellRules(opts.root, homes);
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
    homes,
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
async function converge(cx: PassContext, input: ConvergeInput): Promise<HomesResult> {
  const { config, opts } = cx;
  const homesFor = async (): Promise<HomesResult> => {
    const homeRules = new HomeRules(opts.root, cx.own, homesOf(input.accepted));
    const homesOpts = {
      homeRules,
      keyDirRules: keyRulesFor(opts.root, homeRules, config.ssh_key_location),
      root: opts.root,
      createHomes: config.create_homes,
      keyLocation: config.ssh_key_location,
      dryRun: opts.dryRun,
      loginDefs: readLoginDefs(opts.root),
      keysInPlace: input.keys.inPlace,
      keysMissing: input.keys.missing,
      collect: (full: boolean) => cx.hooks.collect(full),
    };
    const r = await syncHomes(input.accepted, homesOpts);
    const keysOnly = input.keysOnly();
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
        input.keys.inPlace.clear();
        input.keys.missing.clear();
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

/** What converge works on: the accepted users, those whose keys alone apply, and what the precheck found. */
interface ConvergeInput {
  accepted: HomeUser[];
  keysOnly(): HomeUser[];
  keys: { inPlace: Set<string>; missing: Set<string> };
}

/**
 * The scan's (or the snapshot's) users to converge: the accepted ones, and the refused records
 * whose keys could be read: those keys apply to the account ddum manages under that name, as it
 * is (no home is made for it). The same for valid records that a later rule refused (the shell
 * rule, the plan): a revocation never waits for whatever else is wrong with the record.
 */
function convergeInput(cx: PassContext, seen: Observed, p: Plan, db: LocalDb): ConvergeInput & { computed: HomeUser[] } {
  const input = {
    accepted: p.accepted,
    keys: seen.keys,
    computed: [] as HomeUser[],
    keysOnly: () => {
      const acceptedNames = new Set(p.accepted.map((u) => u.name));
      const refusedLater = seen.tables.users.records.filter((u) => !acceptedNames.has(u.name)).map((u) => ({ name: u.name, keys: u.sshKeys }));
      input.computed = keysOnlyUsers([...seen.tables.users.keysOnly, ...refusedLater], db, p.ownership, cx.policy);
      return input.computed;
    },
  };
  return input;
}

/** Record: the caches for the next pass. Each is only a cache: one that cannot be saved is a notice. */
function record(cx: PassContext, p: Plan, memoEnv: string | null): void {
  try {
    if (cx.caches.keyLedger) cx.ledger.save(cx.stateFile);
  } catch (e) {
    p.notices.push(`the key-file ledger could not be saved: ${(e as Error).message}`);
  }
  cx.hooks.phase("key ledger saved");
  try {
    if (memoEnv !== null && cx.caches.pageMemo) cx.pages.memo.save(cx.stateFile, memoEnv);
  } catch (e) {
    p.notices.push(`the page memo could not be saved: ${(e as Error).message}`);
  }
  cx.hooks.phase("page memo saved");
  cx.hooks.note(`key-file ledger: ${cx.ledger.confirmed} confirmed by signature, ${cx.ledger.recorded} recorded`);
  cx.hooks.note(`page memo: ${cx.pages.memo.hits} of ${cx.pages.pages} pages of users known`);
  if (parallelHomes.byWorker > 0) cx.hooks.note(`homes made by the second thread: ${parallelHomes.byWorker}`);
}

const NO_HOMES: HomesResult = { homesCreated: [], keysWritten: [], keysRemoved: [], keyChanges: [], refusals: [], notices: [] };

/** The counts of a plan's refusals, rejections and verdicts, before homes and key files. */
function planCounts(cx: PassContext, seen: Observed, p: Plan, db: LocalDb, homes: HomesResult): Counts {
  return passCounts(p, {
    usersRejected: seen.tables.users.rejected + seen.shellRejected,
    groupsRejected: seen.tables.groups.rejected,
    groupTable: cx.config.group_table_name,
    tableGroups: seen.desired.groupNames ?? new Set(seen.tables.groupNames),
    localGroup: (n) => db.group.has(n),
    homes,
  });
}

/** Homes' refusals, as the pass reports them (the Users table's). */
function homeRefusalsOf(cx: PassContext, homes: HomesResult): Rejection[] {
  return homes.refusals.map((r) => ({ table: cx.config.user_table_name, ...r, name: printable(r.name) }));
}

function finish(cx: PassContext, det: Detected, seen: Observed, p: Plan, db: LocalDb, written: string[], homes: HomesResult, ms: { applyMs: number; homesMs: number }, unlisted = seen.shellRules.unlisted(seen.desired.users)): SyncResult {
  p.refusals.push(...homeRefusalsOf(cx, homes));
  p.notices.push(...homes.notices, ...unlisted, ...det.notices);
  return {
    dryRun: cx.opts.dryRun,
    plan: p,
    homes,
    rejections: seen.rejections,
    warnings: seen.warnings,
    localIssues: db.issues,
    counts: planCounts(cx, seen, p, db, homes),
    written,
    timings: { scanMs: seen.tables.scanMs, decodeMs: seen.tables.decodeMs, ...ms, totalMs: performance.now() - cx.t0 },
    memo: { pages: cx.pages.pages, known: cx.pages.memo.hits },
    readUnits: det.readUnits,
    detection: det.info,
    detectionNotices: det.notices,
    exitCode: p.brake ? EXIT.failed : seen.rejected > 0 || p.refusals.length > 0 ? EXIT.partial : EXIT.ok,
  };
}

const timed = async <T>(f: () => Promise<T>): Promise<[T, number]> => {
  const t = performance.now();
  return [await f(), performance.now() - t];
};

/** One pass: detect, observe, decide, apply, converge homes and keys, record. */
export async function runPass(config: Config, opts: SyncOptions): Promise<SyncResult> {
  const cx = passContext(config, opts);
  const det = await detect(cx);
  try {
    if (det.steady) {
      const r = await steadyPass(cx, det, det.steady);
      if (r) return r;
      // Its user list could not be read after all: plan from the snapshot (or scan).
      choose(cx, det, { steady: false });
    }
    const seen = await observe(cx, det);
    if (opts.dryRun) {
      // No locks, no state, no writes: read what is there and say what would change.
      const local = seen.local ?? readLocal(cx);
      const p = decide(cx, seen, local);
      if (local.state.recovered) p.notices.push(`state: ${local.state.recovered}; a real pass writes it back to state.json`);
      const [homes, homesMs] = await timed(() => converge(cx, convergeInput(cx, seen, p, local.db)));
      return finish(cx, det, seen, p, local.db, [], homes, { applyMs: 0, homesMs });
    }
    if (stopSignal.requested) throw new DdumError(`stopped by ${stopSignal.requested} before anything was applied`);
    let memoEnv: string | null = null;
    const [applied, applyMs] = await timed(() => applyUnderLocks(applyStep(cx, seen, (env) => (memoEnv = env))));
    const { plan: p, local, written } = applied;
    if (p.brake) return finish(cx, det, seen, p, local.db, [], NO_HOMES, { applyMs: 0, homesMs: 0 });
    const input = convergeInput(cx, seen, p, local.db);
    const [homes, homesMs] = await timed(() => converge(cx, input));
    // What the plan decided, before homes add to it: what a steady record keeps.
    const unlisted = seen.shellRules.unlisted(seen.desired.users);
    const report: SteadyReport = {
      rejections: seen.rejections,
      warnings: seen.warnings,
      refusals: [...p.refusals],
      notices: [...p.notices],
      unlisted,
      localIssues: local.db.issues,
      counts: planCounts(cx, seen, p, local.db, NO_HOMES),
      rejected: seen.rejected,
    };
    record(cx, p, memoEnv);
    recordTables(cx, det, { seen, p, local, written, keysOnly: input.computed, report });
    return finish(cx, det, seen, p, local.db, written, homes, { applyMs, homesMs }, unlisted);
  } finally {
    det.client?.destroy();
  }
}

// ---- change detection ------------------------------------------------------------------------

/** What detect found, and what the rest of the pass needs of it. */
interface Detected {
  info: Detection;
  /** The client the version was read with (the scan uses it too); destroyed at the end of the pass. */
  client: DynamoClient | null;
  readUnits: number;
  /** For the report: why the snapshot or the version could not be used. */
  notices: string[];
  /** The version read before the scan, under which this scan's snapshot is recorded (null: none is). */
  recordAs: number | null;
  /** When this pass's scan began (ms). */
  scannedAt: number;
  /** Collects the pages of this pass's scan, for the snapshot. */
  recorder?: SnapshotRecorder;
  /** The snapshot this pass plans from ("snapshot"), with its file's identity when it was read. */
  snapshot?: ScanSnapshot & { identity: string };
  /** The steady record this pass converges from ("steady"). */
  steady?: Steady;
}

const iso = (ms: number) => new Date(ms).toISOString();

/**
 * Detect: with change_detection "version" (and not a dry run, which always scans), one GetItem of
 * #version, then the cheapest pass that is exact: "steady" when the steady record still holds
 * (same version, same snapshot, a full scan younger than full_scan_period, everything else the
 * plan read unchanged: see steady.ts), "snapshot" when the snapshot is of this version and young
 * enough, else "scan". A version that cannot be read (no #version item, a malformed one, a
 * refused GetItem) means a full scan, said in a notice, and no snapshot is recorded.
 */
async function detect(cx: PassContext): Promise<Detected> {
  const { config, opts } = cx;
  cx.hooks.phase("context");
  const scan = (mode: Detection["mode"], reason: string): Detected => ({
    info: { mode, kind: "scan", version: null, lastFullScan: iso(cx.now()), reason },
    client: null,
    readUnits: 0,
    notices: [],
    recordAs: null,
    scannedAt: cx.now(),
  });
  if (config.change_detection === "scan") return scan("scan", 'change_detection is "scan": every pass scans the tables');
  if (opts.dryRun) return scan("version", "a dry run always scans the tables in full");
  const { makeClient } = await import("./source/dynamo.ts");
  const { readVersion } = await import("./source/version.ts");
  const client = await makeClient(config);
  const det = scan("version", "");
  det.client = client;
  let version: number | null;
  try {
    const r = await readVersion(client, config.user_table_name, { consistentRead: config.consistent_read });
    det.readUnits += r.readUnits;
    version = r.version;
    cx.hooks.phase("version read");
  } catch (e) {
    det.info.reason = `the tables' version could not be read: ${(e as Error).message}`;
    det.notices.push(`scanned the tables in full: ${det.info.reason}`);
    return det;
  }
  if (version === null) {
    det.info.reason = `table ${config.user_table_name} holds no #version item`;
    det.notices.push(
      `the tables have no version: table ${config.user_table_name} holds no #version item, so every pass scans both tables in full; make it with "ddum tables create" (or "ddum tables bump")`,
    );
    return det;
  }
  det.info.version = version;
  choose(cx, det, { steady: true });
  return det;
}

/** With the tables' version read (det.info.version): a steady pass, a pass from the snapshot, or a scan. */
function choose(cx: PassContext, det: Detected, o: { steady: boolean }): void {
  const { config } = cx;
  const version = det.info.version!;
  const client = det.client!;
  det.steady = undefined;
  det.recordAs = version;
  det.info = { mode: "version", kind: "scan", version, lastFullScan: null, reason: "" };
  const now = cx.now();
  const period = config.full_scan_period * 1000;
  const young = (at: number) => now - at >= 0 && now - at < period;
  const where = client.where;
  const snapPath = `${cx.stateFile}/${SNAPSHOT_FILE}`;

  // Steady: the record's own copy of the snapshot's version and time, and the snapshot's identity,
  // so that the snapshot itself need not be read.
  const st = o.steady ? readSteady(cx.stateFile) : ({ missing: true } as const);
  cx.hooks.phase("steady record read");
  let why = "damaged" in st ? `the steady record cannot be used: ${st.damaged}` : "";
  if ("meta" in st) {
    const m = st.meta;
    if (m.version === version && young(m.scannedAt) && m.snapshot.identity === identityOf(snapPath)) {
      const changed = steadyChange(cx, st);
      cx.hooks.phase("steady record checked");
      if (changed === null) {
        det.steady = st;
        det.recordAs = null;
        det.info = { mode: "version", kind: "steady", version, lastFullScan: iso(m.scannedAt), reason: `version ${version} unchanged and nothing the plan reads changed since the last pass that changed nothing` };
        return;
      }
      why = changed;
    }
  }

  const snapId = identityOf(snapPath);
  const snap = readSnapshot(cx.stateFile);
  if ("damaged" in snap) {
    det.info.reason = `the scan snapshot cannot be used: ${snap.damaged}`;
    det.notices.push(`scanned the tables in full: ${det.info.reason}`);
  } else if ("missing" in snap) {
    det.info.reason = "no scan snapshot yet";
  } else if (snap.meta.version !== version) {
    det.info.reason = `the tables' version moved from ${snap.meta.version} to ${version}`;
  } else if (!young(snap.meta.scannedAt)) {
    det.info.reason = `the last full scan (${iso(snap.meta.scannedAt)}) is not younger than full_scan_period (${config.full_scan_period} s)`;
  } else if (snap.meta.usersTable !== config.user_table_name || snap.meta.groupsTable !== config.group_table_name || snap.meta.endpoint !== where?.endpoint || snap.meta.region !== where?.region) {
    det.info.reason = `the scan snapshot is of tables ${snap.meta.usersTable} and ${snap.meta.groupsTable} at ${snap.meta.endpoint} (${snap.meta.region}), not those configured`;
  } else {
    det.snapshot = { ...snap, identity: snapId };
    det.recordAs = null;
    det.info = {
      mode: "version",
      kind: "snapshot",
      version,
      lastFullScan: iso(snap.meta.scannedAt),
      reason: `version ${version} unchanged since the last full scan${why ? `; planned again: ${why}` : ""}`,
    };
    return;
  }
  det.recorder = new SnapshotRecorder();
  det.scannedAt = cx.now();
  det.info.lastFullScan = iso(det.scannedAt);
}

/** The digest of everything but the snapshot's items that a plan reads (see steady.ts). */
function planInputs(cx: PassContext, snapshotSha: string, ids: { files: Readonly<Record<string, string>>; state: string; backup: string }): string {
  const h = new Bun.CryptoHasher("sha256");
  const parts = [
    "ddum steady inputs 1",
    VERSION,
    buildId(),
    userRulesText(),
    JSON.stringify(cx.config),
    // --force changes only the brake, which a plan with no action never meets.
    JSON.stringify({ ...cx.policy, force: false }),
    String(cx.today),
    snapshotSha,
    `login.defs ${cx.fileIds.loginDefs}`,
    `shells ${cx.fileIds.shells}`,
    ...["passwd", "shadow", "group", "gshadow"].map((k) => `${k} ${ids.files[k]}`),
    `state.json ${ids.state}`,
    `state.json- ${ids.backup}`,
  ];
  for (const part of parts) h.update(part).update("\0");
  return h.digest("hex");
}

/** Why a steady record no longer holds (null: it does): the plan's inputs, or a shell's verdict. */
function steadyChange(cx: PassContext, steady: Steady): string | null {
  const { root } = cx.opts;
  const files = Object.fromEntries(["passwd", "shadow", "group", "gshadow"].map((k) => [k, identityOf(root.etc(k))]));
  const now = planInputs(cx, steady.meta.snapshot.sha256, { files, state: identityOf(`${cx.stateFile}/state.json`), backup: identityOf(`${cx.stateFile}/state.json-`) });
  if (now !== steady.meta.inputs) return "the account files, the state, login.defs, /etc/shells, the configuration, this build or the day changed since the last pass that changed nothing";
  // The shell rule reads the file system: each distinct shell is judged again, against every home
  // (asked of a few paths: their hashes are looked up, no set of 100,000 homes is built for them).
  const homes = { has: (p: string) => p !== "" && isHome(steady.check, p) };
  const rules = new ShellRules(root, homes);
  for (const [shell, verdict] of steady.meta.shells) {
    if (rules.problem(shell) !== verdict) return `the verdict on the shell ${shell} changed`;
  }
  return null;
}

/** The ctime (ms) in an identity (identityOf), or null for "absent". */
function ctimeOf(identity: string): number | null {
  const at = identity.lastIndexOf(":");
  return at < 0 ? null : Number(BigInt(identity.slice(at + 1)) / 1_000_000n);
}

/**
 * Record, after a complete pass in version mode: the snapshot of this pass's scan (under the
 * version read before it), and, when the plan changed nothing, the steady record. Each is only
 * a way to avoid work: one that cannot be saved is a notice, and the next pass scans or plans.
 */
function recordTables(
  cx: PassContext,
  det: Detected,
  r: { seen: Observed; p: Plan; local: Local; written: string[]; keysOnly: HomeUser[]; report: SteadyReport },
): void {
  const { config } = cx;
  const { p, seen, local } = r;
  let snap: { sha256: string; identity: string; scannedAt: number; version: number } | null = null;
  if (det.recorder && det.recordAs !== null && det.client) {
    const where = det.client.where;
    try {
      const saved = det.recorder.save(cx.stateFile, {
        version: det.recordAs,
        scannedAt: det.scannedAt,
        usersTable: config.user_table_name,
        groupsTable: config.group_table_name,
        endpoint: where?.endpoint ?? "",
        region: where?.region ?? "",
      });
      snap = { sha256: saved.sha256, identity: identityOf(`${cx.stateFile}/${SNAPSHOT_FILE}`), scannedAt: det.scannedAt, version: det.recordAs };
      cx.hooks.note(`scan snapshot: ${saved.bytes} bytes`);
    } catch (e) {
      p.notices.push(`the scan snapshot could not be saved (the next pass scans in full): ${(e as Error).message}`);
      return;
    }
  } else if (det.snapshot && det.info.version !== null) {
    snap = { sha256: det.snapshot.sha256, identity: det.snapshot.identity, scannedAt: det.snapshot.meta.scannedAt, version: det.info.version };
  }
  if (snap === null) return;
  // Only a plan that changed nothing, made from files and a state nobody changed since (their
  // change times settled before the pass began: a change within the same clock tick would keep
  // an identity), is one the next pass may take as its own.
  if (p.actions.length > 0 || p.ownershipChanged || r.written.length > 0 || local.state.unsaved || local.state.recovered || p.brake) return;
  const files = local.db.identities();
  const ids = [...Object.values(files), local.stateId, local.backupId, cx.fileIds.loginDefs, cx.fileIds.shells];
  if (ids.some((id) => (ctimeOf(id) ?? 0) > cx.settleFrom - SETTLED_MS)) return;
  const shells = new Map<string, string | null>();
  for (const u of seen.tables.users.records) if (!shells.has(u.shell)) shells.set(u.shell, seen.shellRules.problem(u.shell));
  const check = checkEntries(cx, p.accepted);
  try {
    writeSteady(
      cx.stateFile,
      {
        snapshot: { sha256: snap.sha256, identity: snap.identity },
        version: snap.version,
        scannedAt: snap.scannedAt,
        inputs: planInputs(cx, snap.sha256, { files, state: local.stateId, backup: local.backupId }),
        shells: [...shells],
        report: r.report,
      },
      { entries: check, inHomes: config.ssh_key_location === "home", homes: seen.homes },
      p.accepted,
      r.keysOnly,
    );
  } catch (e) {
    p.notices.push(`the steady record could not be saved (the next pass plans from the snapshot): ${(e as Error).message}`);
  }
}

/**
 * The check list's entry of each accepted user: the key-file ledger's key for its key file, as the
 * precheck (keyPrecheck) computes it, at the path the precheck would look at.
 */
function checkEntries(cx: PassContext, accepted: readonly HomeUser[]): CheckEntry[] {
  const { config, opts } = cx;
  const inHomes = config.ssh_key_location === "home";
  const homeRules = new HomeRules(opts.root, cx.own);
  const keyRules = new KeyDirRules(opts.root);
  return accepted.map((u) => {
    let key: readonly [number, number] | null = [0, 0];
    if (inHomes) {
      const path = u.home === "" ? null : homeMayBeUsed(u.home, homeRules);
      if (path !== null) key = KeyLedger.words(homeKeysLedgerKey(path, u.uid, u.gid, u.sshKeys));
    } else if (u.sshKeys.length === 0) {
      key = null;
    } else {
      const path = keyRules.pathOrNull(config.ssh_key_location, u.name);
      if (path !== null) key = KeyLedger.words(rootKeysLedgerKey(path, u.sshKeys));
    }
    return { name: u.name, home: u.home, uid: u.uid, gid: u.gid, key };
  });
}

/**
 * Whether every accepted user's key file is confirmed unchanged by the key-file ledger, as the
 * precheck would confirm it (one statx each; with keys in homes, the home and ~/.ssh too), and no
 * key file is where none may be: then converging homes and keys would find nothing to do. Not
 * when homes are made with keys outside them (every home is looked at), nor with users whose
 * keys alone apply (their files are read in full): then converge runs.
 */
function keysConfirmed(cx: PassContext, steady: Steady): boolean {
  const { config, opts } = cx;
  const inHomes = config.ssh_key_location === "home";
  if ((!inHomes && config.create_homes) || steady.meta.keysOnly > 0 || !cx.caches.keyLedger) return false;
  const { words, stride, names, count } = steady.check;
  if (inHomes) {
    const homes = utf8.decode(steady.check.homes).split("\n");
    const homeRules = new HomeRules(opts.root, cx.own);
    for (let i = 0, w = 0; i < count; i++, w += stride) {
      if (homes[i] === "") continue; // no Home: no key file, nothing converge would do
      const path = homeMayBeUsed(homes[i]!, homeRules);
      if (path === null || !homeKeysConfirmed(path, words[w + 2]!, words[w + 3]!, [words[w]!, words[w + 1]!], cx.ledger)) return false;
    }
    return true;
  }
  const keyRules = new KeyDirRules(opts.root);
  const template = config.ssh_key_location;
  const sig = new Uint32Array(SIG_WORDS);
  // With %u once in the file name only (/etc/ssh/authorized_keys/%u), every file is in one
  // directory: it is judged once (KeyDirRules), opened once, and each file looked at from there,
  // its name written from the check list's bytes (no string per user).
  const last = template.slice(template.lastIndexOf("/") + 1);
  const parts = last.split("%u");
  const oneDir =
    parts.length === 2 && !template.slice(0, template.lastIndexOf("/")).includes("%u") && count > 0 && !names.includes(47) // no "/" in any name
      ? keyRules.pathOrNull(template, utf8.decode(names.subarray(0, names.indexOf(10))))
      : null;
  let dirfd = -1;
  if (oneDir !== null) {
    try {
      dirfd = openAt(AT_FDCWD, dirname(oneDir), O_PATH | C.O_DIRECTORY | C.O_NOFOLLOW);
    } catch {
      return false;
    }
  }
  const buf = statxName();
  const pre = Buffer.from(parts[0] ?? "", "utf8");
  const post = Buffer.from(parts[1] ?? "", "utf8");
  let prefixed = false;
  try {
    // Each name ends at a line break.
    for (let i = 0, w = 0, start = 0, end = 0; i < count; i++, w += stride, start = end + 1) {
      end = names.indexOf(10, start);
      const len = end - start;
      // "." and ".." are no names; a long one goes the long way.
      const plain = dirfd >= 0 && !(len <= 2 && names[start] === 46 && names[end - 1] === 46) && pre.length + len + post.length < 4000;
      const noKeys = words[w] === 0 && words[w + 1] === 0;
      if (plain) {
        if (!prefixed) pre.copy(buf, 0);
        prefixed = true;
        names.copy(buf, pre.length, start, end);
        if (post.length > 0) post.copy(buf, pre.length + len);
        buf[pre.length + len + post.length] = 0;
        // No keys: no file may be there (rootKeysPrecheck finds it "in place" only when missing).
        if (noKeys ? statSignatureFilled(dirfd, sig) !== ENOENT : !cx.ledger.confirmsFilled(words[w]!, words[w + 1]!, dirfd)) return false;
        continue;
      }
      const path = keyRules.pathOrNull(template, utf8.decode(names.subarray(start, end)));
      if (path === null) return false;
      prefixed = false; // the scratch name is overwritten below
      if (noKeys ? statSignatureAt(AT_FDCWD, path, sig) !== ENOENT : !cx.ledger.confirmsWords(words[w]!, words[w + 1]!, path)) return false;
    }
    return true;
  } finally {
    if (dirfd >= 0) closeSync(dirfd);
  }
}

/** UTF-8 to text, as Buffer's toString("utf8") makes it, and many times faster here. */
const utf8 = new TextDecoder();

/**
 * A steady pass: the plan is the one the steady record keeps (no action; its refusals, rejections
 * and notices); homes and keys are converged as on every pass: when the key-file ledger confirms
 * every key file unchanged there is nothing to do, else the record's users are converged in full
 * (each key file checked, and put right).
 */
async function steadyPass(cx: PassContext, det: Detected, steady: Steady): Promise<SyncResult | null> {
  const { opts, config } = cx;
  if (stopSignal.requested) throw new DdumError(`stopped by ${stopSignal.requested} before anything was applied`);
  const { report } = steady.meta;
  let accepted: HomeUser[] = [];
  let homes: HomesResult;
  let homesMs: number;
  const t = performance.now();
  if (keysConfirmed(cx, steady)) {
    homes = { homesCreated: [], keysWritten: [], keysRemoved: [], keyChanges: [], refusals: [], notices: [] };
    homesMs = performance.now() - t;
    cx.hooks.phase("keys confirmed");
  } else {
    const users = steady.users();
    if ("damaged" in users) {
      det.notices.push(`the steady record could not be read: ${users.damaged}`);
      return null;
    }
    accepted = users.accepted;
    const keys = keyPrecheck(config, cx.ledger, new HomeRules(opts.root, cx.own), new KeyDirRules(opts.root));
    for (const u of accepted) keys.check(u);
    cx.hooks.phase("keys checked");
    [homes, homesMs] = await timed(() => converge(cx, { accepted, keysOnly: () => users.keysOnly, keys }));
    homesMs += performance.now() - t - homesMs;
  }
  const p: Plan = {
    actions: [],
    refusals: [...report.refusals],
    notices: [...report.notices],
    unchanged: report.counts.unchanged,
    // Not read: ownership is unchanged (state.json's identity is part of the record's digest).
    ownership: EMPTY_OWNERSHIP,
    brake: null,
    disables: 0,
    // What converge and the report use of a user (name, IDs, home, keys), when converge ran: a
    // steady pass decodes no record.
    accepted: accepted as unknown as User[],
    ownershipChanged: false,
  };
  record(cx, p, null);
  const homeRefusals = homeRefusalsOf(cx, homes);
  p.refusals.push(...homeRefusals);
  p.notices.push(...homes.notices, ...report.unlisted, ...det.notices);
  const counts = structuredClone(report.counts);
  const side = config.user_table_name === config.group_table_name ? counts.groups : counts.users;
  if (side) side.refused += homeRefusals.length;
  counts.refused += homeRefusals.length;
  counts.homes = homes.homesCreated.length;
  counts.keyFilesWritten = homes.keysWritten.length;
  counts.keyFilesRemoved = homes.keysRemoved.length;
  return {
    dryRun: false,
    plan: p,
    homes,
    rejections: report.rejections,
    warnings: report.warnings,
    localIssues: report.localIssues,
    counts,
    written: [],
    timings: { scanMs: 0, decodeMs: 0, applyMs: 0, homesMs, totalMs: performance.now() - cx.t0 },
    memo: { pages: 0, known: 0 },
    readUnits: det.readUnits,
    detection: det.info,
    detectionNotices: det.notices,
    exitCode: report.rejected > 0 || p.refusals.length > 0 ? EXIT.partial : EXIT.ok,
  };
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
    ...(result ? { detection: result.detection, readUnits: result.readUnits } : {}),
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

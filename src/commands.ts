// What each command does. Heavy modules (the AWS SDK above all) are imported inside the
// commands that need them, so `ddum authorized-keys` and `ddum status` start fast.
import { spawn } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, statSync, writeSync } from "node:fs";
import { dirname } from "node:path";
import { type LoadedConfig, loadConfig } from "./config.ts";
import { DdumError, EXIT, errorMessage, JSON_VERSION, jsonError } from "./errors.ts";
import { escapeControls } from "./escape.ts";
import { addSecret, type Logger, logOptionsFromConfig, reconfigure, redact } from "./log.ts";
import { Root } from "./paths.ts";
import type { PassRecord } from "./state.ts";

const plural = (n: number, word: string) => `${n} ${n === 1 ? word : `${word}s`}`;

export interface Common {
  config?: string;
  root?: string;
}

function progress(): ((table: string, n: number) => void) | undefined {
  if (!process.stderr.isTTY) return undefined;
  const seen = new Map<string, number>();
  return (table, n) => {
    seen.set(table, n);
    process.stderr.write(`\rscanning ${[...seen].map(([t, c]) => `${t}: ${c}`).join(", ")} items   `);
  };
}

export function endProgress(): void {
  if (process.stderr.isTTY) process.stderr.write("\r\x1b[K");
}

let verbosity: "quiet" | "normal" | "verbose" = "normal";

/** -q / -v from the command line: they override the config's log level. */
export function setVerbosity(v: typeof verbosity): void {
  verbosity = v;
}

/**
 * Where a command that talks to DynamoDB looks, as lines: the config file (or none), the region
 * and where it came from, the endpoint and the tables. Said by ddum check, and by every such
 * command with -v.
 */
export async function sayWhere(loaded: LoadedConfig, log: Logger, always = false): Promise<void> {
  if (!always && verbosity !== "verbose") return;
  const { endpointFor, regionAndSource } = await import("./source/dynamo.ts");
  const { config } = loaded;
  const { region, source } = await regionAndSource(config);
  log.info(`config: ${loaded.path ?? "none: defaults"}`);
  log.info(`region: ${region} (from ${source})`);
  log.info(`endpoint: ${endpointFor(config, region)}`);
  log.info(`tables: users ${config.user_table_name}, groups ${config.group_table_name}`);
}

/** Load the config, register its secrets for redaction, apply its logging settings, print its warnings. */
export function setupConfig(path: string | undefined, log: Logger, logToFile = true): LoadedConfig {
  const loaded = loadConfig(path);
  for (const s of [loaded.config.aws_secret_key, loaded.config.aws_session_token]) addSecret(s);
  const warnings = [...loaded.warnings];
  const opts = logOptionsFromConfig(loaded.config.logging, (w) => warnings.push(w));
  if (verbosity === "verbose") opts.level = "debug";
  else if (verbosity === "quiet") opts.level = "error";
  if (!logToFile) delete opts.file;
  // A detached daemon has no stderr: without logging.file it logs to the file its parent chose.
  else if (!opts.file && process.env.DDUM_LOG_FILE) opts.file = process.env.DDUM_LOG_FILE;
  reconfigure(log, opts);
  for (const w of warnings) log.warn(w);
  return loaded;
}

/**
 * The system a command that reads or writes the account files works on, checked before anything
 * else: --root must be a directory holding etc/passwd, and the host's own files need root.
 */
export function accountRoot(dir: string | undefined, command: string): Root {
  const root = new Root(dir ?? "/");
  if (root.isHost) {
    if (process.geteuid?.() !== 0) {
      throw new DdumError(`must run as root: ddum ${command} reads /etc/shadow and writes the account files (or use --root DIR on a copy of a system)`, EXIT.usage);
    }
    return root;
  }
  let st: ReturnType<typeof statSync> | undefined;
  try {
    st = statSync(root.dir);
  } catch {
    throw new DdumError(`--root ${root.dir}: no such directory`, EXIT.usage);
  }
  if (!st.isDirectory()) throw new DdumError(`--root ${root.dir}: not a directory`, EXIT.usage);
  if (!existsSync(root.etc("passwd"))) throw new DdumError(`--root ${root.dir}: no etc/passwd there; --root names the top of a system (the directory holding etc/)`, EXIT.usage);
  return root;
}

/** Write all of text to stdout now, waiting out a full non-blocking pipe; a reader gone is a quiet exit. */
function writeOut(text: string): void {
  const buf = Buffer.from(text, "utf8");
  let off = 0;
  while (off < buf.length) {
    try {
      off += writeSync(1, buf, off, buf.length - off);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === "EAGAIN") Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 2);
      else if (code === "EPIPE") process.exit(process.exitCode ?? 0);
      else throw e;
    }
  }
}

export async function cmdSync(opts: Common & { dryRun?: boolean; json?: boolean; force?: boolean; summary?: boolean }, log: Logger): Promise<number> {
  const loaded = setupConfig(opts.config, log, false);
  const { config } = loaded;
  await sayWhere(loaded, log);
  const { runPass, recordedPass } = await import("./sync.ts");
  const { humanChunks, jsonChunks, wantColor } = await import("./report.ts");
  const { cachesFromEnv, hostHooks } = await import("./perf.ts");
  const hooks = hostHooks();
  const base = { root: accountRoot(opts.root, "sync"), force: opts.force === true, onProgress: progress(), hooks, caches: cachesFromEnv() };
  let result: Awaited<ReturnType<typeof runPass>>;
  if (opts.dryRun) {
    result = await runPass(config, { ...base, dryRun: true });
  } else {
    // SIGTERM (systemd stopping the unit, a shutdown) or SIGINT: before the account files are
    // locked the pass stops; while homes are being made it finishes the one in hand and stops.
    const { stopSignal } = await import("./stop.ts");
    // A second signal ends the process at once, as the first would have without this handler.
    for (const [sig, no] of [["SIGTERM", 15], ["SIGINT", 2]] as const) {
      process.on(sig, () => {
        if (stopSignal.requested) process.exit(128 + no);
        stopSignal.requested = sig;
        log.warn(`${sig} received: stopping; nothing more is applied (a second ${sig} ends ddum at once)`);
      });
    }
    const r = await recordedPass(config, base);
    endProgress();
    hooks.note(`${Math.round(performance.now())} ms, pass recorded`);
    if (!r.result) {
      log.error(r.error?.message ?? "pass failed");
      if (opts.json) writeOut(jsonError(redact(r.error?.message ?? "pass failed"), r.exitCode));
      return r.exitCode;
    }
    if (r.error) log.error(r.error.message);
    result = r.result;
  }
  endProgress();
  // Written piece by piece, synchronously: the report of a first pass of 100,000 users is over
  // 100 MB, and process.stdout would queue every piece in memory until a file or pipe took it.
  let pieces = 0;
  for (const chunk of opts.json ? jsonChunks(result) : humanChunks(result, { color: wantColor(), summaryOnly: opts.summary === true })) {
    writeOut(chunk);
    // Each piece leaves a thousand actions' worth of strings behind; left to pile up, a first
    // pass's report adds 350 MB of resident memory at 100,000 users (measured), collected, 20 MB.
    if (++pieces % 2 === 0) hooks.collect(false);
  }
  hooks.note(`${Math.round(performance.now())} ms, report written (${pieces} pieces)`);
  return result.exitCode;
}

/**
 * Compare the host with the tables, changing nothing: a dry-run pass whose pending changes
 * (account lines, homes, key files) are the drift. Refused and rejected records are listed but
 * are not drift: no pass would change the host for them.
 */
export async function cmdVerify(opts: Common & { json?: boolean; summary?: boolean }, log: Logger): Promise<number> {
  const loaded = setupConfig(opts.config, log, false);
  const { config } = loaded;
  await sayWhere(loaded, log);
  const root = accountRoot(opts.root, "verify");
  const { runPass } = await import("./sync.ts");
  const { humanChunks, wantColor } = await import("./report.ts");
  let result: Awaited<ReturnType<typeof runPass>>;
  try {
    const { hostHooks } = await import("./perf.ts");
    result = await runPass(config, { root, force: false, dryRun: true, onProgress: progress(), hooks: hostHooks() });
  } catch (e) {
    endProgress();
    const message = `could not check: ${errorMessage(e)}`;
    const code = e instanceof DdumError && e.exitCode === EXIT.usage ? EXIT.usage : EXIT.failed;
    if (opts.json) writeOut(`${JSON.stringify({ version: JSON_VERSION, inStep: null, error: { message: redact(message), exitCode: code } }, null, 2)}\n`);
    else log.error(message);
    return code;
  }
  endProgress();
  const { actions } = result.plan;
  const { homesCreated, keysWritten, keysRemoved } = result.homes;
  const pending = actions.length + homesCreated.length + keysWritten.length + keysRemoved.length;
  const refused = result.plan.refusals.length + result.homes.refusals.length;
  const rejected = result.rejections.length;
  if (opts.json) {
    const doc = {
      version: JSON_VERSION,
      inStep: pending === 0,
      pending: { accounts: actions.length, homes: homesCreated.length, keyFiles: keysWritten.length + keysRemoved.length },
      accounts: actions.map((a) => ({ kind: a.kind, name: a.name })),
      homes: homesCreated,
      keyFiles: { write: keysWritten, remove: keysRemoved },
      refused,
      rejected,
    };
    writeOut(`${JSON.stringify(doc, null, 2)}\n`);
  } else if (pending === 0) {
    const notes = refused + rejected > 0 ? ` (${refused} refused, ${rejected} rejected: see ddum check and ddum sync --dry-run)` : "";
    writeOut(`in step: this host matches the tables${notes}\n`);
  } else {
    for (const chunk of humanChunks(result, { color: wantColor(), summaryOnly: opts.summary === true })) writeOut(chunk);
    writeOut(`drift: ${pending} ${pending === 1 ? "change" : "changes"} pending on this host; ddum sync applies ${pending === 1 ? "it" : "them"}\n`);
  }
  return pending === 0 ? EXIT.ok : EXIT.drift;
}

export async function cmdCheck(opts: Common & { json?: boolean }, log: Logger): Promise<number> {
  const loaded = setupConfig(opts.config, log, false);
  const { config } = loaded;
  await sayWhere(loaded, log, true);
  const { readTables } = await import("./tables.ts");
  const { printable, rejectionMessage } = await import("./model.ts");
  const t = await readTables(config, progress());
  endProgress();
  // Rejected: the record will not be applied (exit 3). Warnings: applied with a default, a key
  // left out or a weak hash (exit 0 when there is nothing else).
  const rejections = [...t.users.rejections, ...t.groups.rejections];
  const warnings = [...t.users.warnings, ...t.groups.warnings];
  const cloudIds = (table: string, name: string, field: string, id: number) => {
    if (id !== 1000 && id !== 1001) return;
    warnings.push({
      table,
      name: printable(name),
      field,
      reason: `${id} is the ID stock cloud images give their default user and group (Debian's admin, Ubuntu's ubuntu, Amazon Linux's ec2-user); hosts made from them refuse this record. Give it an ID from auto_id_min (${config.auto_id_min}) up`,
    });
  };
  for (const u of t.users.records) {
    cloudIds(config.user_table_name, u.name, "UID", u.uid);
    if (u.gid !== u.uid) cloudIds(config.user_table_name, u.name, "GID", u.gid);
  }
  for (const g of t.groups.records) cloudIds(config.group_table_name, g.name, "GID", g.gid);
  const rejected = t.users.rejected + t.groups.rejected;
  const summary = {
    users: t.users.records.length + t.users.rejected,
    groups: t.groups.records.length + t.groups.rejected,
    valid: t.users.records.length + t.groups.records.length,
    rejected,
    warnings: warnings.length,
  };
  if (opts.json) {
    const { problemJson } = await import("./report.ts");
    process.stdout.write(`${JSON.stringify({ version: JSON_VERSION, rejections: rejections.map(problemJson), warnings: warnings.map(problemJson), summary }, null, 2)}\n`);
  } else {
    for (const r of rejections) process.stdout.write(`rejected: ${escapeControls(rejectionMessage(r))}\n`);
    for (const w of warnings) process.stdout.write(`warning: ${escapeControls(rejectionMessage(w))}\n`);
    process.stdout.write(
      `${plural(summary.users, "user")} and ${plural(summary.groups, "group")} read: ${summary.valid} valid, ${summary.rejected} rejected, ${plural(summary.warnings, "warning")} (applied anyway)\n`,
    );
  }
  return rejected > 0 ? EXIT.partial : EXIT.ok;
}

export async function cmdAuthorizedKeys(name: string, opts: Common, log: Logger): Promise<number> {
  const { nameSchema } = await import("./model.ts");
  const v = await import("valibot");
  if (!v.safeParse(nameSchema, name).success) {
    log.error(`not a valid user name: ${JSON.stringify(name)}`);
    return EXIT.usage;
  }
  const { config } = setupConfig(opts.config, log, false);
  const { authorizedKeys } = await import("./sshkeys.ts");
  let keys: string[];
  try {
    keys = authorizedKeys(new Root(opts.root ?? "/"), config.ssh_key_location, name);
  } catch (e) {
    // Refused (a key file not root's, a link, over the size limit): no key, and a message.
    log.error(`user ${name}: ${(e as Error).message}`);
    return EXIT.failed;
  }
  if (keys.length > 0) process.stdout.write(`${keys.join("\n")}\n`);
  return EXIT.ok;
}

export async function cmdStatus(opts: Common & { json?: boolean }, log: Logger): Promise<number> {
  const { config } = setupConfig(opts.config, log, false);
  const { readState, readStatus, recordedDetection, recordedProblems, stateDir } = await import("./state.ts");
  const { summaryLine } = await import("./report.ts");
  const dir = stateDir(new Root(opts.root ?? "/"), config.state_dir);
  let s: Awaited<ReturnType<typeof readState>>;
  try {
    s = readState(dir);
  } catch (e) {
    // A lost state stops every pass: that is the news, whatever the last pass was.
    if (opts.json) process.stdout.write(`${JSON.stringify({ version: JSON_VERSION, stateError: errorMessage(e), exitCode: EXIT.failed }, null, 2)}\n`);
    else process.stdout.write(`CRITICAL: ${errorMessage(e)}\n`);
    return EXIT.failed;
  }
  const damaged = readStatus(dir).damaged;
  const warnings = [
    ...(s.recovered ? [`${s.recovered}; the next pass writes state.json again`] : []),
    ...(damaged ? [`${damaged}; the next pass replaces it`] : []),
  ];
  const last = s.lastPass ?? null;
  const windowS = 2 * (config.full_update_period + config.full_update_jitter);
  const ageS = last ? (Date.now() - Date.parse(last.end)) / 1000 : Number.POSITIVE_INFINITY;
  let code = !last || ageS > windowS ? EXIT.usage : last.result === "failed" ? EXIT.failed : EXIT.ok;
  // Change detection by the tables' version: what the last pass saw, and when the tables were
  // last scanned in full (by the last pass that succeeded).
  const seen = recordedDetection(last);
  const fullScan = recordedDetection(s.lastSuccess)?.lastFullScan ?? null;
  const fullScanAgeS = fullScan ? (Date.now() - Date.parse(fullScan)) / 1000 : null;
  const versionMode = config.change_detection === "version";
  if (versionMode && last) {
    const limit = 2 * config.full_scan_period;
    if (fullScanAgeS === null || fullScanAgeS > limit) {
      warnings.push(
        fullScan === null
          ? `no successful pass has scanned the tables in full yet (change_detection "version")`
          : `the last full scan of the tables was at ${fullScan} (${Math.round(fullScanAgeS!)} s ago), more than twice full_scan_period (${limit} s): changes written without raising the tables' version are not seen`,
      );
      if (code === EXIT.ok) code = EXIT.failed;
    }
    if (seen?.mode === "version" && seen.version === null) warnings.push(`the last pass could not use the tables' version, and scanned in full: ${seen.reason}`);
  }
  if (opts.json) {
    const { plainName } = await import("./report.ts");
    // Names plain, as in every JSON report (status.json keeps them as the text reports print them).
    const plain = (rec: PassRecord | null) => (rec?.problems ? { ...rec, problems: recordedProblems(rec).map((p) => ({ ...p, name: plainName(p.name) })) } : rec);
    const tables = {
      changeDetection: config.change_detection,
      version: seen?.version ?? null,
      lastPassKind: seen?.kind ?? null,
      lastFullScan: fullScan,
      lastFullScanAgeSeconds: fullScanAgeS === null ? null : Math.round(fullScanAgeS),
      readUnits: typeof last?.readUnits === "number" ? last.readUnits : null,
    };
    const doc = { version: JSON_VERSION, lastPass: plain(last), lastSuccess: plain(s.lastSuccess ?? null), ageSeconds: last ? Math.round(ageS) : null, tables, warnings, exitCode: code };
    process.stdout.write(`${JSON.stringify(doc, null, 2)}\n`);
    return code;
  }
  for (const w of warnings) process.stdout.write(`WARNING: ${escapeControls(w)}\n`);
  if (!last) {
    process.stdout.write("CRITICAL: ddum has never completed a pass on this host\n");
    return code;
  }
  const when = `${last.end} (${Math.round(ageS)} s ago)`;
  const counts = last.counts ? `; ${summaryLine(last.counts)}` : "";
  if (code === EXIT.usage) {
    process.stdout.write(`CRITICAL: no pass in the last ${windowS} s; the last one ended ${when}, ${last.result}${counts}\n`);
  } else if (last.result === "failed") {
    const ok = s.lastSuccess ? `; last success ${s.lastSuccess.end}` : "; never succeeded";
    process.stdout.write(`WARNING: the last pass failed at ${when}: ${escapeControls(String(last.error))}${ok}\n`);
  } else {
    process.stdout.write(`OK: last pass ${last.result} at ${when}, ${last.durationMs} ms${counts}\n`);
  }
  if (versionMode && seen) {
    const units = typeof last.readUnits === "number" ? `; ${last.readUnits} read units` : "";
    const full = fullScan ? `${fullScan} (${Math.round(fullScanAgeS!)} s ago)` : "none yet";
    process.stdout.write(`  tables: version ${seen.version ?? "unknown"}; last pass: ${seen.kind}; last full scan ${full}${units}\n`);
  }
  // The records behind "partial": named, so that no one has to run a pass to learn which.
  for (const p of recordedProblems(last)) process.stdout.write(`  ${p.kind}: ${escapeControls(`${p.table} record ${p.name}: ${p.field}: ${p.reason}`)}\n`);
  const more = typeof last.problemsMore === "number" && last.problemsMore > 0 ? last.problemsMore : 0;
  if (more > 0) process.stdout.write(`  and ${more} more (ddum sync --dry-run lists them all)\n`);
  return code;
}

export async function cmdTablesCreate(opts: Common & { billing?: string }, log: Logger): Promise<number> {
  const billing = opts.billing ?? "on-demand";
  if (billing !== "on-demand" && billing !== "provisioned") {
    log.error(`--billing: expected on-demand or provisioned, got ${JSON.stringify(billing)}`);
    return EXIT.usage;
  }
  const loaded = setupConfig(opts.config, log, false);
  const { config } = loaded;
  await sayWhere(loaded, log, true);
  const { createTables, makeClient } = await import("./source/dynamo.ts");
  const client = await makeClient(config);
  try {
    const r = await createTables(client, [config.user_table_name, config.group_table_name], billing);
    for (const t of r.created) process.stdout.write(`created table ${t} (${billing}); it is active\n`);
    for (const t of r.existed) process.stdout.write(`table ${t} already exists; left as it is\n`);
    const { ensureVersion, VERSION_KEY } = await import("./source/version.ts");
    const v = await ensureVersion(client, config.user_table_name);
    process.stdout.write(
      v.created
        ? `created item ${VERSION_KEY} in table ${config.user_table_name} (Version 0): every change to the tables raises it\n`
        : `item ${VERSION_KEY} in table ${config.user_table_name} already exists (Version ${v.version}); left as it is\n`,
    );
    // The account the tables are in, from their ARN (arn:aws:dynamodb:REGION:ACCOUNT:table/NAME).
    const accounts = [...new Set(Object.values(r.arns).map((a) => a.split(":")[4] ?? "").filter((a) => a !== ""))];
    if (accounts.length > 0) process.stdout.write(`account: ${accounts.join(", ")} (from the tables' ARNs)\n`);
    return EXIT.ok;
  } finally {
    client.destroy();
  }
}

/**
 * Raise the tables' version by one, for writers other than ddum's admin commands (which raise it
 * themselves): hosts that detect changes by it then scan the tables.
 */
export async function cmdTablesBump(opts: Common, log: Logger): Promise<number> {
  const loaded = setupConfig(opts.config, log, false);
  const { config } = loaded;
  await sayWhere(loaded, log);
  const { makeClient } = await import("./source/dynamo.ts");
  const { bumpVersion, VERSION_KEY } = await import("./source/version.ts");
  const client = await makeClient(config);
  try {
    const v = await bumpVersion(client, config.user_table_name);
    process.stdout.write(`${VERSION_KEY} in table ${config.user_table_name} is now ${v}\n`);
    return EXIT.ok;
  } finally {
    client.destroy();
  }
}

export interface DaemonOpts extends Common {
  foreground?: boolean;
  pidfile?: string;
}

const DEFAULT_DETACHED_LOG = "/var/log/ddum.log";

export async function cmdDaemon(opts: DaemonOpts, log: Logger, argv: string[]): Promise<number> {
  const { DEFAULT_PIDFILE, Loop, PidFile, realSleep } = await import("./daemon.ts");
  // The default pidfile is under --root like every other path ddum uses.
  const pidRoot = new Root(opts.root ?? "/");
  const pidfile = opts.pidfile ?? pidRoot.path(DEFAULT_PIDFILE);
  if (opts.pidfile === undefined && !pidRoot.isHost && existsSync(pidRoot.etc("passwd"))) mkdirSync(dirname(pidfile), { recursive: true, mode: 0o755 });
  const detached = process.env.DDUM_DETACHED === "1";
  let loaded = setupConfig(opts.config, log, detached);
  if (!opts.foreground) return detach(argv, pidfile, loaded, log);

  const pid = PidFile.acquire(pidfile);
  const { recordedPass } = await import("./sync.ts");
  const { cachesFromEnv, hostHooks } = await import("./perf.ts");
  const hooks = hostHooks();
  const caches = cachesFromEnv();
  const root = accountRoot(opts.root, "daemon");
  const loop = new Loop({
    log,
    schedule: () => ({ period: loaded.config.full_update_period, jitter: loaded.config.full_update_jitter }),
    random: Math.random,
    sleep: realSleep,
    reload: () => {
      loaded = setupConfig(opts.config, log, detached);
    },
    pass: async () => {
      const r = await recordedPass(loaded.config, { root, force: false, hooks, caches });
      if (r.error) log.error(r.error.message);
      if (r.result) {
        const { changeLines, summaryLine } = await import("./report.ts");
        const { rejectionMessage } = await import("./model.ts");
        // The trail: one line per change made (account, what changed; a password only as "changed").
        if (!r.result.plan.brake) for (const line of changeLines(r.result)) log.info(`change: ${line}`);
        for (const x of [...r.result.rejections, ...r.result.plan.refusals, ...r.result.warnings]) log.warn(rejectionMessage(x));
        if (r.result.plan.brake) log.error(r.result.plan.brake);
        for (const n of r.result.detectionNotices) log.warn(n);
        const det = r.result.detection;
        const how = det.mode === "version" ? `; ${det.kind === "scan" ? "scanned" : `no scan (${det.kind})`}, version ${det.version ?? "unknown"}, ${r.result.readUnits} read units` : "";
        log.info(`pass done: ${summaryLine(r.result.counts, r.result.timings.totalMs)}${r.result.written.length ? `; wrote ${r.result.written.join(", ")}` : ""}${how}`);
      }
      return r.error === null;
    },
  });
  // As for sync: the pass in progress applies nothing more once the signal is in (it stops before
  // the locks, or after the home in hand); a second signal ends the daemon at once.
  const { stopSignal } = await import("./stop.ts");
  const stop = (sig: "SIGTERM" | "SIGINT", no: number) => () => {
    if (stopSignal.requested) process.exit(128 + no);
    stopSignal.requested = sig;
    log.info(`${sig} received: stopping; the pass in progress applies nothing more (a second ${sig} ends ddum at once)`);
    loop.stop();
  };
  process.on("SIGTERM", stop("SIGTERM", 15));
  process.on("SIGINT", stop("SIGINT", 2));
  process.on("SIGHUP", () => {
    log.info("SIGHUP received: reloading the configuration and running a pass");
    loop.hangup();
  });
  log.info(`daemon started (PID ${process.pid}, pidfile ${pidfile}, period ${loaded.config.full_update_period} s + up to ${loaded.config.full_update_jitter} s jitter)`);
  try {
    await loop.run();
  } finally {
    pid.release();
  }
  log.info("daemon stopped");
  return EXIT.ok;
}

/**
 * Without -f: start the same command again in its own session with -f and no terminal, wait
 * until it holds the pidfile, and return. Logs go to logging.file, else /var/log/ddum.log.
 */
async function detach(argv: string[], pidfile: string, loaded: LoadedConfig, log: Logger): Promise<number> {
  const logFile = (loaded.config.logging as { file?: string }).file ?? DEFAULT_DETACHED_LOG;
  const child = spawn(process.execPath, [...argv, "--foreground"], {
    detached: true,
    stdio: "ignore",
    env: { ...process.env, DDUM_DETACHED: "1", DDUM_LOG_FILE: logFile },
  });
  let exited: number | null = null;
  child.on("exit", (code) => {
    exited = code ?? 1;
  });
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    if (exited !== null) {
      log.error(`the daemon exited at start with code ${exited}; see ${logFile}`);
      return exited === 0 ? EXIT.failed : exited;
    }
    try {
      if (readFileSync(pidfile, "utf8").trim() === String(child.pid)) {
        child.unref();
        return EXIT.ok;
      }
    } catch {
      // not written yet
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  log.error(`the daemon did not write ${pidfile} within 10 s; see ${logFile}`);
  return EXIT.failed;
}

/** The user, group and import commands: the tables' client and managed ranges, closed after use. */
export async function cmdAdmin(
  opts: Common,
  log: Logger,
  run: (admin: import("./admin/commands.ts").Admin) => Promise<number>,
): Promise<number> {
  const loaded = setupConfig(opts.config, log, false);
  const { config } = loaded;
  await sayWhere(loaded, log);
  const { Admin } = await import("./admin/commands.ts");
  const admin = await Admin.open(config, log, { root: opts.root ?? "/" });
  try {
    let code: number;
    try {
      code = await run(admin);
    } catch (e) {
      // Failed after writing something (a record, then the retirement of its old ID): the
      // version goes up all the same, as the writes stand.
      await admin.raiseVersion(EXIT.failed);
      throw e;
    }
    return await admin.raiseVersion(code);
  } finally {
    admin.close();
  }
}

export async function cmdImport(opts: Common & { fromLocal?: boolean; dryRun?: boolean }, log: Logger): Promise<number> {
  if (!opts.fromLocal) {
    log.error("import needs a source: --from-local (the only one)");
    return EXIT.usage;
  }
  const { importLocal } = await import("./admin/import.ts");
  return cmdAdmin(opts, log, (admin) => importLocal(admin, new Root(opts.root ?? "/"), opts.dryRun === true));
}

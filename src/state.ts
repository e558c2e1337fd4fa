// ROOT/<state_dir>/state.json: which users and groups ddum owns, and how the last passes went.
import { closeSync, existsSync, mkdirSync, readFileSync, statSync } from "node:fs";
import * as v from "valibot";
import { DdumError } from "./errors.ts";
import { fcntlLock } from "./localdb/lock.ts";
import type { Root } from "./paths.ts";
import { writeFileSafely } from "./safefile.ts";
import { EMPTY_OWNERSHIP, type Ownership } from "./plan.ts";

export interface Counts {
  created: number;
  updated: number;
  unchanged: number;
  refused: number;
  rejected: number;
  /** The same, for users and for groups apart (absent in records written before they were kept). */
  users?: GroupCounts & { disabled: number };
  groups?: GroupCounts;
  homes?: number;
  keyFilesWritten?: number;
  keyFilesRemoved?: number;
}

export interface GroupCounts {
  created: number;
  updated: number;
  unchanged: number;
  refused: number;
  rejected: number;
}

export interface PassRecord {
  start: string;
  end: string;
  result: "ok" | "partial" | "failed";
  counts: Counts | null;
  error: string | null;
  durationMs: number;
  /** The records the pass rejected or refused, the first PROBLEMS_KEPT of them (`ddum status` names them). */
  problems?: PassProblem[];
  /** How many more were rejected or refused than `problems` lists. */
  problemsMore?: number;
  /** How the pass learnt what the tables hold (absent in records written before it was kept). */
  detection?: PassDetection;
  /** DynamoDB read units the pass consumed. */
  readUnits?: number;
}

/**
 * What a pass planned from: "scan", both tables scanned in full; "snapshot", not scanned (the
 * tables' version had not moved), planned from the scan snapshot; "steady", not scanned, and
 * nothing the plan reads had changed since a pass that changed nothing, so the plan was not made
 * again (homes and keys were converged as on every pass).
 */
export type PassKind = "scan" | "snapshot" | "steady";

export interface PassDetection {
  /** change_detection as configured. */
  mode: "scan" | "version";
  kind: PassKind;
  /** The tables' version this pass read (null: not read, none there, or unreadable). */
  version: number | null;
  /** When the full scan this pass planned from began (ISO 8601): its own, or the snapshot's. */
  lastFullScan: string | null;
  /** Why the pass scanned, or why it did not. */
  reason: string;
}

/** A pass record's detection, only in the expected form (status.json only reports). */
export function recordedDetection(rec: PassRecord | null | undefined): PassDetection | null {
  const d = rec?.detection as Partial<PassDetection> | undefined;
  if (typeof d !== "object" || d === null) return null;
  if ((d.mode !== "scan" && d.mode !== "version") || !["scan", "snapshot", "steady"].includes(d.kind as string)) return null;
  if (!(d.version === null || Number.isSafeInteger(d.version)) || !(d.lastFullScan === null || typeof d.lastFullScan === "string")) return null;
  return { mode: d.mode, kind: d.kind as PassKind, version: d.version ?? null, lastFullScan: d.lastFullScan ?? null, reason: typeof d.reason === "string" ? d.reason : "" };
}

export interface PassProblem {
  kind: "rejected" | "refused";
  table: string;
  name: string;
  field: string;
  reason: string;
}

/** status.json stays small whatever the tables hold: the first 50 problems, and a count of the rest. */
export const PROBLEMS_KEPT = 50;

type Problem = Omit<PassProblem, "kind">;

/** The rejected, then the refused records of a pass, bounded for the pass record. */
export function passProblems(rejected: readonly Problem[], refused: readonly Problem[]): Pick<PassRecord, "problems" | "problemsMore"> {
  const problems: PassProblem[] = [];
  for (const [kind, list] of [["rejected", rejected], ["refused", refused]] as const) {
    for (const r of list) {
      if (problems.length >= PROBLEMS_KEPT) break;
      problems.push({ kind, table: r.table, name: r.name, field: r.field, reason: r.reason });
    }
  }
  return { problems, problemsMore: rejected.length + refused.length - problems.length };
}

/** The problems of a pass record read back from status.json, only those in the expected form. */
export function recordedProblems(rec: PassRecord): PassProblem[] {
  if (!Array.isArray(rec.problems)) return [];
  const str = (x: unknown) => typeof x === "string";
  return rec.problems.filter(
    (p) => typeof p === "object" && p !== null && (p.kind === "rejected" || p.kind === "refused") && str(p.table) && str(p.name) && str(p.field) && str(p.reason),
  );
}

const names = v.array(v.string());
const StateSchema = v.object({
  version: v.literal(1),
  ownership: v.object({
    users: names,
    groups: names,
    members: v.record(v.string(), names),
    admins: v.record(v.string(), names),
  }),
  lastPass: v.optional(v.nullable(v.any())),
  lastSuccess: v.optional(v.nullable(v.any())),
});

export interface State {
  version: 1;
  ownership: Ownership;
  lastPass?: PassRecord | null;
  lastSuccess?: PassRecord | null;
  /** Set when state.json could not be read and its backup was used: why (the next write restores it). */
  recovered?: string;
  /** Set when there is no state.json yet, or its backup is missing: the next pass writes both. */
  unsaved?: boolean;
}

/** What status.json holds: it only reports, and a damaged one is replaced, never fatal. */
export interface Status {
  lastPass?: PassRecord | null;
  lastSuccess?: PassRecord | null;
  /** A state.json has been written on this host: from then on, no state is a lost state. */
  stateKept?: boolean;
  /** Why status.json could not be read, when it could not. */
  damaged?: string;
}

/** The state directory under the root: state.json (ownership) and status.json (the last passes). */
export function stateDir(root: Root, dir: string): string {
  return root.path(dir);
}

function readJson(path: string): unknown | undefined {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw new DdumError(`cannot read ${path}: ${(e as Error).message}`);
  }
  try {
    return parseStateText(text) ?? JSON.parse(text);
  } catch (e) {
    // Without it ddum cannot tell its accounts from others; refusing is safe, guessing is not.
    throw new DdumError(`${path} is corrupt (${(e as Error).message})`);
  }
}

const STATE_HEAD = '{"version":1,"ownership":{"users":[';
const NEEDS_JSON_PARSE = /[\\\u0000-\u001f]/;

/**
 * state.json as writeJson writes it, with its two long name lists (every managed user and group:
 * 210,000 strings at 100,000 users, 0.1 s of JSON.parse) cut at `","` instead of parsed one
 * string at a time; the rest goes through JSON.parse. Only text with no escape and no control
 * character, in exactly the compact layout ddum writes, is taken: in such text a string cannot
 * hold a quote, so the markers below can only be structure. Anything else returns undefined
 * (JSON.parse then reads it, or says why it cannot).
 */
export function parseStateText(text: string): unknown {
  const body = text.endsWith("\n") ? text.slice(0, -1) : text;
  if (!body.startsWith(STATE_HEAD) || !body.endsWith("}}") || NEEDS_JSON_PARSE.test(body)) return undefined;
  const lists: string[][] = [];
  let at = STATE_HEAD.length;
  for (const end of ['],"groups":[', '],"members":']) {
    const stop = body.indexOf(end, at);
    if (stop < 0) return undefined;
    if (stop > at) {
      if (body.charCodeAt(at) !== 34 || body.charCodeAt(stop - 1) !== 34 || stop - at < 2) return undefined;
      const names = body.slice(at + 1, stop - 1).split('","');
      for (const n of names) if (n.includes('"')) return undefined;
      lists.push(names);
    } else lists.push([]);
    at = stop + end.length;
  }
  let rest: unknown;
  try {
    rest = JSON.parse(`{"members":${body.slice(at, -1)}`);
  } catch {
    return undefined;
  }
  return { version: 1, ownership: { users: lists[0], groups: lists[1], ...(rest as object) } };
}

const isNames = (x: unknown): x is string[] => Array.isArray(x) && x.every((n) => typeof n === "string");
const isNameLists = (x: unknown) => typeof x === "object" && x !== null && !Array.isArray(x) && Object.values(x).every(isNames);

/** The schema's verdict in plain loops (a state file names every managed account); valibot explains a refusal. */
function isState(json: unknown): json is Pick<State, "version" | "ownership"> {
  const j = json as { version?: unknown; ownership?: Record<string, unknown> } | null;
  const o = j?.ownership;
  return j?.version === 1 && typeof o === "object" && o !== null && isNames(o.users) && isNames(o.groups) && isNameLists(o.members) && isNameLists(o.admins);
}

const isRecord = (x: unknown): x is PassRecord => {
  const r = x as PassRecord | null;
  return typeof r === "object" && r !== null && typeof r.end === "string" && ["ok", "partial", "failed"].includes(r.result);
};

/** status.json; a damaged one reads as empty, saying why, and the next pass replaces it. */
export function readStatus(dir: string): Status {
  const path = `${dir}/status.json`;
  let json: unknown;
  try {
    json = readJson(path) ?? {};
  } catch (e) {
    return { lastPass: null, lastSuccess: null, damaged: (e as Error).message };
  }
  const j = json as Status;
  const bad = (k: "lastPass" | "lastSuccess") => j[k] !== undefined && j[k] !== null && !isRecord(j[k]);
  if (typeof json !== "object" || json === null || Array.isArray(json) || bad("lastPass") || bad("lastSuccess")) {
    return { lastPass: null, lastSuccess: null, damaged: `${path} is not in the expected form` };
  }
  return { lastPass: j.lastPass ?? null, lastSuccess: j.lastSuccess ?? null, ...(j.stateKept === true ? { stateKept: true } : {}) };
}

/** One state file: its ownership, or why it cannot be used (absent: ENOENT). */
function readStateFile(path: string): { ownership: Ownership } | { absent: boolean; why: string } {
  let json: unknown;
  try {
    json = readJson(path);
  } catch (e) {
    return { absent: false, why: (e as Error).message };
  }
  if (json === undefined) return { absent: true, why: `${path} does not exist` };
  if (!isState(json)) {
    const r = v.safeParse(StateSchema, json);
    return { absent: false, why: `${path} is not in the expected form: ${r.success ? "unexpected structure" : r.issues[0]!.message}` };
  }
  return { ownership: json.ownership };
}

/**
 * Whether state.json- is missing or older than state.json (a write of the backup that failed, a
 * state.json from before backups were kept): the next pass writes it again. Two stats, no read.
 */
function backupBehind(path: string): boolean {
  const main = statSync(path, { throwIfNoEntry: false });
  const backup = statSync(`${path}-`, { throwIfNoEntry: false });
  return !main || !backup?.isFile() || backup.size !== main.size || backup.mtimeMs < main.mtimeMs;
}

/**
 * The state: state.json, else its backup state.json- (kept identical by every write). With
 * neither, a host where ddum kept state before (a backup that cannot be read, or status.json
 * saying so) is a lost state, and the pass stops: without it ddum would take its own accounts
 * for local ones, keep revoked keys and stop expiries. Only a host with no trace is new.
 */
export function readState(dir: string): State {
  const path = `${dir}/state.json`;
  const status = readStatus(dir);
  const { damaged: _, stateKept, ...records } = status;
  const main = readStateFile(path);
  if ("ownership" in main) {
    return { version: 1, ownership: main.ownership, ...records, ...(backupBehind(path) ? { unsaved: true } : {}) };
  }
  const backup = readStateFile(`${path}-`);
  if ("ownership" in backup) {
    return { version: 1, ownership: backup.ownership, ...records, recovered: `${main.why}; its backup ${path}- was used`, unsaved: true };
  }
  if (main.absent && backup.absent && !stateKept) {
    return { version: 1, ownership: structuredClone(EMPTY_OWNERSHIP), ...records, unsaved: true };
  }
  throw new DdumError(
    `ddum's state is lost: ${main.why}, and ${backup.why}${stateKept && backup.absent ? ` (${dir}/status.json says ddum has kept state on this host)` : ""}. ` +
      `Without it ddum cannot tell its own accounts from local ones, so no pass runs. To recover, restore ${path} ` +
      `(or ${path}-) from a backup of ${dir}. To start over as on a new host instead, remove ${path}, ${path}- and ${dir}/status.json, ` +
      "and list the users and groups ddum made in adopt_users and adopt_groups so that the next pass takes them back.",
  );
}

/**
 * Atomic replace through the safe-write helper (random temp name, O_EXCL|O_NOFOLLOW, fsync,
 * rename; the temp removed when any step fails). state.json gets a second copy of the same text
 * as state.json-, so that either file alone holds the whole state; other files keep their
 * previous version as FILE-.
 */
function writeJson(path: string, value: unknown): void {
  const text = `${JSON.stringify(value)}\n`;
  if (path.endsWith("/state.json")) {
    writeFileSafely(path, text, { mode: 0o600, makeDir: 0o755, sync: true });
    writeFileSafely(`${path}-`, text, { mode: 0o600, makeDir: 0o755, sync: true });
    return;
  }
  writeFileSafely(path, text, { mode: 0o600, backup: true, makeDir: 0o755, sync: true });
}

/** Write the state: state.json only when the ownership changed, status.json only when the status did. */
export function writeState(dir: string, next: State, prev?: State): void {
  if (!prev || prev.unsaved || (prev.ownership !== next.ownership && JSON.stringify(prev.ownership) !== JSON.stringify(next.ownership))) {
    writeJson(`${dir}/state.json`, { version: 1, ownership: next.ownership });
  }
  if (!prev || prev.lastPass !== next.lastPass || prev.lastSuccess !== next.lastSuccess) {
    if (next.lastPass !== undefined || next.lastSuccess !== undefined) {
      writeJson(`${dir}/status.json`, { lastPass: next.lastPass ?? null, lastSuccess: next.lastSuccess ?? null });
    }
  }
}

/**
 * Read-modify-write the state under its own lock (state.lock), so a status record written after
 * a pass never loses an ownership change made by a concurrent pass.
 */
export async function updateState(dir: string, edit: (s: State) => State): Promise<State> {
  mkdirSync(dir, { recursive: true, mode: 0o755 });
  const fd = await fcntlLock(`${dir}/state.lock`, 30_000, "another ddum process is writing its state");
  try {
    const prev = readState(dir);
    const next = edit(prev);
    writeState(dir, next, prev);
    return next;
  } finally {
    closeSync(fd);
  }
}

/**
 * Update only status.json, under the same lock: what every pass does at its end, without reading
 * state.json (every managed name) just to write it back unchanged.
 */
export async function updateStatus(dir: string, edit: (s: Pick<State, "lastPass" | "lastSuccess">) => Pick<State, "lastPass" | "lastSuccess">): Promise<Pick<State, "lastPass" | "lastSuccess">> {
  mkdirSync(dir, { recursive: true, mode: 0o755 });
  const fd = await fcntlLock(`${dir}/state.lock`, 30_000, "another ddum process is writing its state");
  try {
    const { damaged: _, stateKept, ...prev } = readStatus(dir);
    const next = edit(prev);
    // Once a state.json exists, status.json says so for good: a later loss of both state files is
    // then told from a new host.
    const kept = stateKept === true || existsSync(`${dir}/state.json`) || existsSync(`${dir}/state.json-`);
    writeJson(`${dir}/status.json`, { lastPass: next.lastPass ?? null, lastSuccess: next.lastSuccess ?? null, ...(kept ? { stateKept: true } : {}) });
    return next;
  } finally {
    closeSync(fd);
  }
}

/** Record how a pass went: lastPass always, lastSuccess when it applied. */
export function withPassRecord<S extends Pick<State, "lastPass" | "lastSuccess">>(s: S, rec: PassRecord): S {
  return { ...s, lastPass: rec, lastSuccess: rec.result === "failed" ? (s.lastSuccess ?? null) : rec };
}

/** Prometheus text exposition for node_exporter's textfile collector. */
export function metricsText(s: Pick<State, "lastPass" | "lastSuccess">): string {
  const ts = (iso: string | undefined) => (iso ? Date.parse(iso) / 1000 : 0);
  const last = s.lastPass ?? null;
  const lines: string[] = [];
  const metric = (name: string, help: string, value: number | string, labels = "") => {
    if (!lines.some((l) => l.startsWith(`# HELP ${name} `))) {
      lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} gauge`);
    }
    lines.push(`${name}${labels} ${value}`);
  };
  metric("ddum_last_success_timestamp_seconds", "End of the last pass that applied the tables.", ts(s.lastSuccess?.end));
  metric("ddum_last_pass_timestamp_seconds", "End of the last pass, successful or not.", ts(last?.end));
  metric("ddum_last_pass_success", "1 if the last pass applied the tables, 0 if it failed.", last && last.result !== "failed" ? 1 : 0);
  metric("ddum_pass_duration_seconds", "Wall time of the last pass.", last ? last.durationMs / 1000 : 0);
  for (const k of ["created", "updated", "unchanged", "refused"] as const) {
    metric("ddum_last_pass_accounts", "Users and groups by what the last pass did with them.", last?.counts?.[k] ?? 0, `{result="${k}"}`);
  }
  metric("ddum_rejected_records", "Table records rejected by validation in the last pass.", last?.counts?.rejected ?? 0);
  metric("ddum_last_pass_read_units", "DynamoDB read units the last pass consumed (Scan pages and GetItem).", typeof last?.readUnits === "number" ? last.readUnits : 0);
  const det = recordedDetection(last);
  for (const k of ["scan", "snapshot", "steady"] as const) {
    metric("ddum_last_pass_kind", "1 for what the last pass planned from: a full scan, the scan snapshot, or the steady record.", det?.kind === k ? 1 : 0, `{kind="${k}"}`);
  }
  if (det?.version != null) metric("ddum_tables_version", "The tables' version (#version) the last pass read.", det.version);
  const full = recordedDetection(s.lastSuccess)?.lastFullScan;
  metric("ddum_last_full_scan_timestamp_seconds", "Start of the full scan of the tables the last successful pass planned from.", full ? ts(full) : 0);
  return `${lines.join("\n")}\n`;
}

/** Atomic write of the textfile (temp in the same directory, rename), world-readable. */
export function writeMetrics(path: string, s: Pick<State, "lastPass" | "lastSuccess">): void {
  writeFileSafely(path, metricsText(s), { mode: 0o644, makeDir: 0o755, sync: true });
}

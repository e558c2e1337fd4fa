// ROOT/<state_dir>/state.json: which users and groups ddum owns, and how the last passes went.
import { closeSync, copyFileSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, writeSync, constants as C } from "node:fs";
import { dirname } from "node:path";
import * as v from "valibot";
import { DdumError } from "./errors.ts";
import { fcntlLock } from "./localdb/lock.ts";
import type { Root } from "./paths.ts";
import { EMPTY_OWNERSHIP, type Ownership } from "./plan.ts";

export interface Counts {
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
}

export function statePath(root: Root, stateDir: string): string {
  return root.path(`${stateDir}/state.json`);
}

export function readState(path: string): State {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return { version: 1, ownership: structuredClone(EMPTY_OWNERSHIP) };
    throw new DdumError(`cannot read state file ${path}: ${(e as Error).message}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    // Without it ddum cannot tell its accounts from others; refusing is safe, guessing is not.
    throw new DdumError(`state file ${path} is corrupt (${(e as Error).message}); restore it from ${path}- or remove it to start over`);
  }
  const r = v.safeParse(StateSchema, json);
  if (!r.success) throw new DdumError(`state file ${path} is not in the expected form: ${r.issues[0]!.message}`);
  return r.output as State;
}

/** Atomic replace: temp file, fsync, a copy of the previous one as state.json-, rename. */
export function writeState(path: string, state: State): void {
  mkdirSync(dirname(path), { recursive: true, mode: 0o755 });
  const tmp = `${path}.tmp-${process.pid}`;
  const fd = openSync(tmp, C.O_WRONLY | C.O_CREAT | C.O_TRUNC, 0o600);
  try {
    writeSync(fd, `${JSON.stringify(state, null, 1)}\n`);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  try {
    copyFileSync(path, `${tmp}-`);
    renameSync(`${tmp}-`, `${path}-`);
  } catch {
    // first write: no previous state to keep
  }
  renameSync(tmp, path);
}

/**
 * Read-modify-write the state under its own lock (state.json.lock), so a status record written
 * after a pass never loses an ownership change made by a concurrent pass.
 */
export async function updateState(path: string, edit: (s: State) => State): Promise<State> {
  mkdirSync(dirname(path), { recursive: true, mode: 0o755 });
  const fd = await fcntlLock(`${path}.lock`, 30_000, "another ddum process is writing its state");
  try {
    const next = edit(readState(path));
    writeState(path, next);
    return next;
  } finally {
    closeSync(fd);
  }
}

/** Record how a pass went: lastPass always, lastSuccess when it applied. */
export function withPassRecord(s: State, rec: PassRecord): State {
  return { ...s, lastPass: rec, lastSuccess: rec.result === "failed" ? (s.lastSuccess ?? null) : rec };
}

/** Prometheus text exposition for node_exporter's textfile collector. */
export function metricsText(s: State): string {
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
  return `${lines.join("\n")}\n`;
}

/** Atomic write of the textfile (temp in the same directory, rename), world-readable. */
export function writeMetrics(path: string, s: State): void {
  mkdirSync(dirname(path), { recursive: true, mode: 0o755 });
  const tmp = `${path}.tmp-${process.pid}`;
  const fd = openSync(tmp, C.O_WRONLY | C.O_CREAT | C.O_TRUNC, 0o644);
  try {
    writeSync(fd, metricsText(s));
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, path);
}

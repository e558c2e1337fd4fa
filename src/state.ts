// ROOT/<state_dir>/state.json: which users and groups ddum owns, and how the last passes went.
import { closeSync, copyFileSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, writeSync, constants as C } from "node:fs";
import { dirname } from "node:path";
import * as v from "valibot";
import { DdumError } from "./errors.ts";
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

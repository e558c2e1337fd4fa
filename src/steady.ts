// The steady record (STATE_DIR/scan.steady), for hosts with change_detection "version": what a
// complete pass that changed nothing concluded, under a digest of everything its plan read (the
// scan snapshot it planned from, the configuration, this build and its rule book, the day, and
// the identities — device, inode, size, modification and change times — of the four account
// files, state.json and its backup, login.defs and /etc/shells as that pass read them), with the
// verdict on each distinct shell (whose rule reads the file system).
//
// A later pass that finds the tables' version unchanged, the same snapshot, the same digest now
// and the same shell verdicts knows that the plan would be empty again and its refusals and
// rejections the same: a plan is a function of exactly these inputs. It does not make the plan
// again; it converges homes and SSH keys for the users the record lists, with the same code as
// every pass (each key file checked, through the key-file ledger), so a user's edited
// authorized_keys is still corrected at once. Anything else changed locally (a hand-edited
// passwd line, useradd, a new login.defs) changes the digest: that pass plans from the snapshot.
//
// Layout: a first line "ddum steady pass 1 <SHA-256 of everything after it, hex>", a line of JSON
// (SteadyMeta), then one line per user to converge (name, UID, GID, home, then its keys,
// separated by tabs), the accepted users first, then the users whose keys alone apply. A file
// that is missing, damaged or foreign is no record: the pass plans from the snapshot.
import { closeSync } from "node:fs";
import { writeCacheFile } from "./cachefile.ts";
import type { HomeUser } from "./homes.ts";
import type { ParseIssue } from "./localdb/index.ts";
import type { Rejection } from "./model.ts";
import { openDir, readFileAt } from "./safefile.ts";
import type { Counts } from "./state.ts";

export const STEADY_FILE = "scan.steady";
const MAGIC = "ddum steady pass 1";
const MAX_BYTES = 2 * 1024 * 1024 * 1024 - 1;

/** What the pass reported that its plan decided (homes and keys are converged again each time). */
export interface SteadyReport {
  rejections: Rejection[];
  warnings: Rejection[];
  /** The plan's refusals (not the homes'). */
  refusals: Rejection[];
  /** The plan's notices, and those about shells /etc/shells does not list. */
  notices: string[];
  unlisted: string[];
  localIssues: ParseIssue[];
  /** The counts with no home or key file made and no home refused. */
  counts: Counts;
  /** Records rejected (the exit code's "partial"). */
  rejected: number;
}

export interface SteadyMeta {
  /** The snapshot planned from: its checksum and its file's identity. */
  snapshot: { sha256: string; identity: string };
  /** The tables' version and the time of the scan the snapshot holds. */
  version: number;
  scannedAt: number;
  /** The digest of everything else the plan read (see the header of this file). */
  inputs: string;
  /** Each distinct shell of the valid records, and its verdict (null: may be used). */
  shells: [string, string | null][];
  /** The homes of valid records that no converged user has (the shell rule looks at every home). */
  shellHomes: string[];
  report: SteadyReport;
  /** How many lines of each kind follow. */
  accepted: number;
  keysOnly: number;
}

export interface Steady {
  meta: SteadyMeta;
  accepted: HomeUser[];
  keysOnly: HomeUser[];
}

const hex = (data: Uint8Array | string) => new Bun.CryptoHasher("sha256").update(data).digest("hex");
const UNSAFE = /[\t\n\r]/;

function line(u: HomeUser): string | null {
  if (UNSAFE.test(u.name) || UNSAFE.test(u.home) || u.sshKeys.some((k) => UNSAFE.test(k))) return null;
  let s = `${u.name}\t${u.uid}\t${u.gid}\t${u.home}`;
  for (const k of u.sshKeys) s += `\t${k}`;
  return s;
}

/**
 * Write the record (root-only, through the safe-write helper). False, with nothing written, when
 * a value holds a tab or a line break (no valid record does; the pass then plans every time).
 */
export function writeSteady(dir: string, meta: Omit<SteadyMeta, "accepted" | "keysOnly">, accepted: readonly HomeUser[], keysOnly: readonly HomeUser[]): boolean {
  const lines: string[] = [JSON.stringify({ ...meta, accepted: accepted.length, keysOnly: keysOnly.length })];
  for (const u of [...accepted, ...keysOnly]) {
    const l = line(u);
    if (l === null) return false;
    lines.push(l);
  }
  const rest = `${lines.join("\n")}\n`;
  writeCacheFile(`${dir}/${STEADY_FILE}`, Buffer.from(`${MAGIC} ${hex(rest)}\n${rest}`, "utf8"));
  return true;
}

export type SteadyRead = { meta: SteadyMeta; load(): Steady | { damaged: string } } | { missing: true } | { damaged: string };

/**
 * The record's header, unchecked, for a quick look; load() checks the checksum and reads the users.
 * Opened without following a link; a link or anything but a regular file is no record.
 */
export function readSteady(dir: string): SteadyRead {
  let data: Buffer | null;
  try {
    const dirfd = openDir(dir);
    try {
      data = readFileAt(dirfd, STEADY_FILE, MAX_BYTES);
    } finally {
      closeSync(dirfd);
    }
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return { missing: true };
    return { damaged: `cannot read ${dir}/${STEADY_FILE}: ${(e as Error).message}` };
  }
  if (data === null) return { missing: true };
  const path = `${dir}/${STEADY_FILE}`;
  const nl = data.indexOf(10);
  const m = /^ddum steady pass 1 ([0-9a-f]{64})$/.exec(nl < 0 ? "" : data.subarray(0, nl).toString("latin1"));
  if (!m) return { damaged: `${path} is not a ddum steady record of this format` };
  const rest = data.subarray(nl + 1);
  const headEnd = rest.indexOf(10);
  let meta: SteadyMeta;
  try {
    meta = JSON.parse(rest.subarray(0, headEnd < 0 ? rest.length : headEnd).toString("utf8")) as SteadyMeta;
  } catch {
    return { damaged: `${path}: its header is not JSON` };
  }
  const r = meta?.report;
  const lists = r && [r.rejections, r.warnings, r.refusals, r.notices, r.unlisted, r.localIssues].every(Array.isArray);
  if (
    typeof meta !== "object" ||
    meta === null ||
    typeof meta.snapshot?.sha256 !== "string" ||
    typeof meta.snapshot?.identity !== "string" ||
    !Number.isSafeInteger(meta.version) ||
    !Number.isSafeInteger(meta.scannedAt) ||
    typeof meta.inputs !== "string" ||
    !Array.isArray(meta.shells) ||
    !Array.isArray(meta.shellHomes) ||
    !lists ||
    typeof r.counts !== "object" ||
    typeof r.rejected !== "number" ||
    !Number.isSafeInteger(meta.accepted) ||
    !Number.isSafeInteger(meta.keysOnly)
  ) {
    return { damaged: `${path}: its header is not in the expected form` };
  }
  return {
    meta,
    load: () => {
      if (hex(rest) !== m[1]) return { damaged: `${path} does not match its checksum (truncated or damaged)` };
      const text = rest.subarray(headEnd + 1).toString("utf8");
      const rows = text === "" ? [] : text.slice(0, -1).split("\n");
      if (rows.length !== meta.accepted + meta.keysOnly) return { damaged: `${path}: it lists ${rows.length} users, its header ${meta.accepted + meta.keysOnly}` };
      const users: HomeUser[] = [];
      for (const row of rows) {
        const f = row.split("\t");
        const uid = Number(f[1]);
        const gid = Number(f[2]);
        if (f.length < 4 || !Number.isSafeInteger(uid) || !Number.isSafeInteger(gid)) return { damaged: `${path}: a user's line is not in the expected form` };
        users.push({ name: f[0]!, uid, gid, home: f[3]!, sshKeys: f.slice(4) });
      }
      return { meta, accepted: users.slice(0, meta.accepted), keysOnly: users.slice(meta.accepted) };
    },
  };
}

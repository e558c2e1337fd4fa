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
// The users come in two forms. The check list holds, per accepted user, only what the key-file
// ledger needs to confirm its key file unchanged (the ledger's key for it, its UID and GID, name
// and home): when every file is confirmed, a steady pass has nothing else to read. The user list
// (name, UID, GID, home and keys, one user a line, the accepted users then those whose keys alone
// apply) is read only when something is not confirmed, and converged in full as every pass does.
//
// Layout: a first line "ddum steady pass 2 <SHA-256 of the second line, hex>", a line of JSON
// (SteadyMeta, holding the length and SHA-256 of each section), then the check list (binary: see
// encodeCheck) and the user list. A file that is missing, damaged or foreign is no record: the
// pass plans from the snapshot.
import { constants as C, closeSync, fstatSync, readSync } from "node:fs";
import { writeCacheFile } from "./cachefile.ts";
import { AT_FDCWD, ELOOP, ENOENT, openAt, SysError } from "./fsat.ts";
import type { HomeUser } from "./homes.ts";
import type { ParseIssue } from "./localdb/index.ts";
import type { Rejection } from "./model.ts";
import type { Counts } from "./state.ts";

export const STEADY_FILE = "scan.steady";
const MAGIC = "ddum steady pass 2";

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
  report: SteadyReport;
  /** How many users of each kind the user list holds. */
  accepted: number;
  keysOnly: number;
  /** The sections after the header, in order: their lengths in bytes and SHA-256 (hex). */
  sections: { check: { bytes: number; sha256: string }; users: { bytes: number; sha256: string } };
}

/** One accepted user, as the check list keeps it. */
export interface CheckEntry {
  name: string;
  home: string;
  uid: number;
  gid: number;
  /**
   * The ledger's key for its key file as two 32-bit words; null: it has no keys, so no key file
   * may be there (keys outside homes).
   */
  key: readonly [number, number] | null;
}

/**
 * The check list. Per accepted user: the ledger's key (low and high word; both 0 for no keys),
 * with keys in homes also UID and GID; names and (with keys in homes) homes, UTF-8, each ended by
 * a line break; and the 64-bit hashes (wyhash) of every home of the valid records, in normal form,
 * sorted, which is all the shell rule asks of homes (whether a path is one).
 */
export interface SteadyCheck {
  count: number;
  /** Words per user: 2, or 4 with keys in homes. */
  stride: number;
  words: Uint32Array;
  names: Buffer;
  homes: Buffer;
  homeHashes: BigUint64Array;
}

export interface Steady {
  meta: SteadyMeta;
  check: SteadyCheck;
  /** The user list, read (and its checksum checked) when asked. */
  users(): { accepted: HomeUser[]; keysOnly: HomeUser[] } | { damaged: string };
}

/** length bytes of an open file from offset (fewer at its end). */
function readAt(fd: number, offset: number, length: number): Buffer {
  const b = Buffer.allocUnsafe(Math.max(length, 0));
  let got = 0;
  while (got < length) {
    const n = readSync(fd, b, got, length - got, offset + got);
    if (n <= 0) break;
    got += n;
  }
  return b.subarray(0, got);
}

/** The check list's length from a header, read before the header is checked (only to know how much to read). */
function headerSections(head: Buffer): { check: number } | undefined {
  try {
    const n = (JSON.parse(utf8.decode(head)) as SteadyMeta).sections?.check?.bytes;
    return Number.isSafeInteger(n) && n >= 0 ? { check: n } : undefined;
  } catch {
    return undefined;
  }
}

/** UTF-8 to text (invalid sequences replaced, as Buffer's toString does), many times faster here than toString. */
const utf8 = new TextDecoder();

const hex = (data: Uint8Array | string) => new Bun.CryptoHasher("sha256").update(data).digest("hex");
const UNSAFE = /[\t\n\r]/;

function line(u: HomeUser): string | null {
  if (UNSAFE.test(u.name) || UNSAFE.test(u.home) || u.sshKeys.some((k) => UNSAFE.test(k))) return null;
  let s = `${u.name}\t${u.uid}\t${u.gid}\t${u.home}`;
  for (const k of u.sshKeys) s += `\t${k}`;
  return s;
}

const CHECK_HEAD = 6; // words: count, stride, names' bytes, homes' bytes, home hashes, 0

/** The check list's bytes: its head, the home hashes, the words, the names, the homes (see SteadyCheck). */
function encodeCheck(entries: readonly CheckEntry[], inHomes: boolean, homes: Iterable<string>): Buffer | null {
  if (entries.some((e) => e.name.includes("\n") || e.home.includes("\n"))) return null;
  const stride = inHomes ? 4 : 2;
  const words = new Uint32Array(entries.length * stride);
  entries.forEach((e, i) => {
    words[i * stride] = e.key?.[0] ?? 0;
    words[i * stride + 1] = e.key?.[1] ?? 0;
    if (inHomes) {
      words[i * stride + 2] = e.uid >>> 0;
      words[i * stride + 3] = e.gid >>> 0;
    }
  });
  const hashes = BigUint64Array.from([...homes].map((h) => Bun.hash.wyhash(h))).sort();
  const names = Buffer.from(entries.map((e) => `${e.name}\n`).join(""), "utf8");
  const homeBytes = inHomes ? Buffer.from(entries.map((e) => `${e.home}\n`).join(""), "utf8") : Buffer.alloc(0);
  const head = new Uint32Array([entries.length, stride, names.length, homeBytes.length, hashes.length, 0]);
  return Buffer.concat([Buffer.from(head.buffer), Buffer.from(hashes.buffer), Buffer.from(words.buffer), names, homeBytes]);
}

/** The check list from its bytes (a buffer of its own, as readAt makes it: aligned). */
function decodeCheck(b: Buffer): SteadyCheck | null {
  if (b.length < CHECK_HEAD * 4) return null;
  const [count, stride, namesLen, homesLen, hashCount] = [0, 1, 2, 3, 4].map((i) => b.readUInt32LE(i * 4)) as [number, number, number, number, number];
  const hashesAt = CHECK_HEAD * 4;
  const wordsAt = hashesAt + hashCount * 8;
  const namesAt = wordsAt + count * stride * 4;
  if ((stride !== 2 && stride !== 4) || namesAt + namesLen + homesLen !== b.length) return null;
  // Views where the bytes are aligned (a buffer of its own is), else copies.
  const aligned = (b.byteOffset & 7) === 0;
  const homeHashes = aligned ? new BigUint64Array(b.buffer, b.byteOffset + hashesAt, hashCount) : new BigUint64Array(new Uint8Array(b.subarray(hashesAt, wordsAt)).buffer);
  const words = aligned ? new Uint32Array(b.buffer, b.byteOffset + wordsAt, count * stride) : new Uint32Array(new Uint8Array(b.subarray(wordsAt, namesAt)).buffer);
  return { count, stride, words, names: b.subarray(namesAt, namesAt + namesLen), homes: b.subarray(namesAt + namesLen), homeHashes };
}

/** Whether a path (in normal form) is one of the homes the check list hashed. */
export function isHome(check: SteadyCheck, path: string): boolean {
  const h = Bun.hash.wyhash(path);
  const a = check.homeHashes;
  let lo = 0;
  let hi = a.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    const v = a[mid]!;
    if (v === h) return true;
    if (v < h) lo = mid + 1;
    else hi = mid - 1;
  }
  return false;
}

/**
 * Write the record (root-only, through the safe-write helper). False, with nothing written, when
 * a value holds a tab or a line break (no valid record does; the pass then plans every time).
 */
export function writeSteady(
  dir: string,
  meta: Omit<SteadyMeta, "accepted" | "keysOnly" | "sections">,
  check: { entries: readonly CheckEntry[]; inHomes: boolean; homes: Iterable<string> },
  accepted: readonly HomeUser[],
  keysOnly: readonly HomeUser[],
): boolean {
  const lines: string[] = [];
  for (const u of [...accepted, ...keysOnly]) {
    const l = line(u);
    if (l === null) return false;
    lines.push(l);
  }
  const users = Buffer.from(lines.length > 0 ? `${lines.join("\n")}\n` : "", "utf8");
  const checkBytes = encodeCheck(check.entries, check.inHomes, check.homes);
  if (checkBytes === null) return false;
  const sections = { check: { bytes: checkBytes.length, sha256: hex(checkBytes) }, users: { bytes: users.length, sha256: hex(users) } };
  const head = `${JSON.stringify({ ...meta, accepted: accepted.length, keysOnly: keysOnly.length, sections })}\n`;
  writeCacheFile(`${dir}/${STEADY_FILE}`, Buffer.concat([Buffer.from(`${MAGIC} ${hex(head)}\n${head}`, "utf8"), checkBytes, users]));
  return true;
}

/**
 * The record: its header and check list checked against their checksums; the user list when
 * asked. Opened without following a link; a link or anything but a regular file is no record.
 */
export function readSteady(dir: string): Steady | { missing: true } | { damaged: string } {
  const path = `${dir}/${STEADY_FILE}`;
  // Only the header and the check list are read (at 100,000 users the user list is 20 MB that a
  // steady pass does not need); the user list is read when asked, from the same file.
  let fd: number;
  try {
    fd = openAt(AT_FDCWD, path, C.O_RDONLY | C.O_NOFOLLOW | C.O_NONBLOCK);
  } catch (e) {
    if (e instanceof SysError && (e.errno === ENOENT || e.errno === ELOOP)) return { missing: true };
    return { damaged: `cannot read ${path}: ${(e as Error).message}` };
  }
  let st: ReturnType<typeof fstatSync>;
  let data: Buffer;
  let checkBytes: Buffer | null = null;
  try {
    st = fstatSync(fd);
    if (!st.isFile()) return { missing: true };
    data = readAt(fd, 0, Math.min(st.size, 65536));
    // The header line may be long (a pass with many rejections): read on until it ends.
    let second = data.indexOf(10, data.indexOf(10) + 1);
    while (second < 0 && data.length < st.size) {
      data = Buffer.concat([data, readAt(fd, data.length, Math.min(st.size - data.length, 1 << 20))]);
      second = data.indexOf(10, data.indexOf(10) + 1);
    }
    const sec = second < 0 ? undefined : headerSections(data.subarray(data.indexOf(10) + 1, second));
    // The check list in a buffer of its own (aligned: its words are read in place).
    if (sec && second + 1 + sec.check <= st.size) checkBytes = readAt(fd, second + 1, sec.check);
  } catch (e) {
    return { damaged: `cannot read ${path}: ${(e as Error).message}` };
  } finally {
    closeSync(fd);
  }
  const identity = `${st.dev}:${st.ino}:${st.size}:${st.mtimeMs}:${st.ctimeMs}`;
  const rest = (from: number): Buffer | null => {
    let fd2: number;
    try {
      fd2 = openAt(AT_FDCWD, path, C.O_RDONLY | C.O_NOFOLLOW | C.O_NONBLOCK);
    } catch {
      return null;
    }
    try {
      const s2 = fstatSync(fd2);
      if (`${s2.dev}:${s2.ino}:${s2.size}:${s2.mtimeMs}:${s2.ctimeMs}` !== identity) return null;
      return readAt(fd2, from, s2.size - from);
    } finally {
      closeSync(fd2);
    }
  };
  const nl = data.indexOf(10);
  const m = /^ddum steady pass 2 ([0-9a-f]{64})$/.exec(nl < 0 ? "" : data.subarray(0, nl).toString("latin1"));
  if (!m) return { damaged: `${path} is not a ddum steady record of this format` };
  const headEnd = data.indexOf(10, nl + 1);
  if (headEnd < 0 || hex(data.subarray(nl + 1, headEnd + 1)) !== m[1]) return { damaged: `${path} does not match its checksum (truncated or damaged)` };
  let meta: SteadyMeta;
  try {
    meta = JSON.parse(utf8.decode(data.subarray(nl + 1, headEnd))) as SteadyMeta;
  } catch {
    return { damaged: `${path}: its header is not JSON` };
  }
  const r = meta?.report;
  const lists = r && [r.rejections, r.warnings, r.refusals, r.notices, r.unlisted, r.localIssues].every(Array.isArray);
  const sec = meta?.sections;
  const sectionOk = (x: { bytes?: unknown; sha256?: unknown } | undefined) => Number.isSafeInteger(x?.bytes) && (x!.bytes as number) >= 0 && typeof x?.sha256 === "string";
  if (
    typeof meta !== "object" ||
    meta === null ||
    typeof meta.snapshot?.sha256 !== "string" ||
    typeof meta.snapshot?.identity !== "string" ||
    !Number.isSafeInteger(meta.version) ||
    !Number.isSafeInteger(meta.scannedAt) ||
    typeof meta.inputs !== "string" ||
    !Array.isArray(meta.shells) ||
    !lists ||
    typeof r.counts !== "object" ||
    typeof r.rejected !== "number" ||
    !Number.isSafeInteger(meta.accepted) ||
    !Number.isSafeInteger(meta.keysOnly) ||
    !sectionOk(sec?.check) ||
    !sectionOk(sec?.users) ||
    headEnd + 1 + sec.check.bytes + sec.users.bytes !== st.size ||
    checkBytes === null ||
    checkBytes.length !== sec.check.bytes
  ) {
    return { damaged: `${path}: its header is not in the expected form` };
  }
  if (hex(checkBytes) !== sec.check.sha256) return { damaged: `${path} does not match its checksum (truncated or damaged)` };
  const check = decodeCheck(checkBytes);
  if (check === null || check.count !== meta.accepted) return { damaged: `${path}: its check list is not in the expected form` };
  return {
    meta,
    check,
    users: () => {
      const usersBytes = rest(headEnd + 1 + sec.check.bytes);
      if (usersBytes === null) return { damaged: `${path} changed while it was read` };
      if (hex(usersBytes) !== sec.users.sha256) return { damaged: `${path} does not match its checksum (truncated or damaged)` };
      const text = utf8.decode(usersBytes);
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
      return { accepted: users.slice(0, meta.accepted), keysOnly: users.slice(meta.accepted) };
    },
  };
}

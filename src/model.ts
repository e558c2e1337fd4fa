// Records from the tables become Users and Groups, or Rejections that name the table, the
// record and the field. Nothing that fails here can reach a local file.
import * as v from "valibot";
import { quoted } from "./escape.ts";
import type { RawItem } from "./source/dynamo.ts";

export interface User {
  name: string;
  uid: number;
  gid: number;
  realName: string;
  home: string;
  shell: string;
  /** A crypt hash or a lock marker; null when the record has none (the account gets "!"). */
  password: string | null;
  /** Shadow fields in days (dates as days since 1970-01-01); null when absent. */
  lastChange: number | null;
  minDays: number | null;
  maxDays: number | null;
  warnDays: number | null;
  inactiveDays: number | null;
  expire: number | null;
  sshKeys: string[];
}

export interface Group {
  name: string;
  gid: number;
  password: string | null;
  administrators: string[];
  members: string[];
}

export interface Rejection {
  table: string;
  /** The record's Name, printable (escaped) even when the name itself is hostile. */
  name: string;
  field: string;
  reason: string;
}

export function rejectionMessage(r: Rejection): string {
  return `${r.table} record ${r.name}: ${r.field}: ${r.reason}`;
}

/** A value safe to print in one log line: JSON-quoted, control characters escaped, cut at 64. */
export function printable(value: unknown): string {
  const s = typeof value === "string" ? value : JSON.stringify(value) ?? String(value);
  const cut = s.length > 64 ? `${s.slice(0, 61)}...` : s;
  return quoted(cut);
}


// ---- field rules --------------------------------------------------------------------------

const NAME_RE = /^[A-Za-z0-9._][A-Za-z0-9._-]{0,255}$/;
export const MAX_ID = 4294967294;

export const nameSchema = v.pipe(
  v.string(),
  v.minLength(1, "must not be empty"),
  v.maxLength(256, "must be at most 256 characters"),
  v.regex(NAME_RE, "may hold only letters, digits, '.', '_' and '-', and must not start with '-'"),
  v.check((s) => s !== "." && s !== "..", "must not be '.' or '..'"),
  v.check((s) => !/^[0-9]+$/.test(s), "must not be all digits (it would read as a numeric ID)"),
);

export const gecosSchema = v.pipe(
  v.string(),
  v.maxLength(256, "must be at most 256 characters"),
  v.check((s) => !/[:\n\r\v\f\0]/.test(s), "must not contain ':', newline, carriage return, vertical tab, form feed or NUL"),
  v.check((s) => !/[\u0000-\u001f\u007f]/.test(s), "must not contain control characters"),
);

export const pathSchema = v.pipe(
  v.string(),
  v.minLength(1, "must not be empty"),
  v.maxLength(4096, "must be at most 4096 characters"),
  v.startsWith("/", "must be an absolute path"),
  v.check((s) => !/[:\u0000-\u001f\u007f]/.test(s), "must not contain ':' or control characters"),
  v.check((s) => !s.split("/").includes(".."), "must not contain '..' segments"),
);

/**
 * Crypt hashes of the schemes glibc/libxcrypt accept, or lock markers ("!", "*", "!" before a
 * hash). Anything else is taken for a plaintext password: refused, and never echoed.
 */
const HASH_RE = /^\$(y|gy|7|6|5|2b|2y|2a|1)\$[./A-Za-z0-9$=,]{4,}$/;
export function isPasswordField(s: string): boolean {
  if (s === "*" || s === "!*") return true;
  if (s.charCodeAt(0) === 36 /* $ */) return HASH_RE.test(s);
  const unlocked = s.replace(/^!+/, "");
  return unlocked === "" ? s !== "" : HASH_RE.test(unlocked);
}
export const passwordSchema = v.pipe(
  v.string(),
  v.check(
    isPasswordField,
    "is not a crypt hash ($y$, $gy$, $7$, $6$, $5$, $2b$, $2y$, $1$) or a lock marker ('!', '*'); a plaintext password is never written (value not shown)",
  ),
);

const DATE_RE = /^([0-9]{4})-([0-9]{2})-([0-9]{2})$/;
/** Days since 1970-01-01 for an ISO date that exists on the calendar, else null. */
export function isoDateToDays(s: string): number | null {
  // A table holds few distinct dates and each is checked, then converted: remember them.
  const known = dateCache.get(s);
  if (known !== undefined) return known;
  const days = dateToDays(s);
  if (dateCache.size >= 100_000) dateCache.clear();
  dateCache.set(s, days);
  return days;
}
const dateCache = new Map<string, number | null>();
function dateToDays(s: string): number | null {
  const m = DATE_RE.exec(s);
  if (!m) return null;
  const [y, mo, d] = [Number(m[1]), Number(m[2]), Number(m[3])];
  const t = Date.UTC(y, mo - 1, d);
  const back = new Date(t);
  if (back.getUTCFullYear() !== y || back.getUTCMonth() !== mo - 1 || back.getUTCDate() !== d) return null;
  return Math.floor(t / 86_400_000);
}
export function daysToIsoDate(days: number): string {
  return new Date(days * 86_400_000).toISOString().slice(0, 10);
}
export const dateSchema = v.pipe(
  v.string(),
  v.check((s) => isoDateToDays(s) !== null, "must be a date in YYYY-MM-DD form that exists on the calendar"),
  v.check((s) => (isoDateToDays(s) ?? 0) >= 0, "must not be before 1970-01-01"),
);

const KEY_TYPES = new Set([
  "ssh-ed25519",
  "ssh-rsa",
  "ecdsa-sha2-nistp256",
  "ecdsa-sha2-nistp384",
  "ecdsa-sha2-nistp521",
  "sk-ssh-ed25519@openssh.com",
  "sk-ecdsa-sha2-nistp256@openssh.com",
  "ssh-dss",
  "ssh-ed25519-cert-v01@openssh.com",
  "ssh-rsa-cert-v01@openssh.com",
  "ecdsa-sha2-nistp256-cert-v01@openssh.com",
  "ecdsa-sha2-nistp384-cert-v01@openssh.com",
  "ecdsa-sha2-nistp521-cert-v01@openssh.com",
  "sk-ssh-ed25519-cert-v01@openssh.com",
  "sk-ecdsa-sha2-nistp256-cert-v01@openssh.com",
]);

/** Why an authorized_keys line is not acceptable, or null. Options before the key type are not accepted. */
export function sshKeyProblem(key: string): string | null {
  return canonicalKeyIsValid(key) ? null : sshKeyProblemReference(key);
}

/** The complete check, in the plainest form: what the fast path below must agree with. */
export function sshKeyProblemReference(key: string): string | null {
  if (/[\u0000-\u001f\u007f]/.test(key)) return "must be a single line without control characters";
  if (key.length > 16384) return "is longer than 16384 characters";
  const parts = key.trim().split(/ +/);
  const [type, blob] = parts;
  if (!type || !KEY_TYPES.has(type)) {
    return `must start with a known key type (ssh-ed25519, ssh-rsa, ecdsa-sha2-*, sk-*), found ${printable(type ?? "")}; options before the key are not accepted`;
  }
  if (!blob || !/^[A-Za-z0-9+/]+={0,2}$/.test(blob) || blob.length % 4 !== 0) return "key data is not base64";
  const bytes = Buffer.from(blob, "base64");
  if (bytes.length < 4) return "key data is too short";
  const len = bytes.readUInt32BE(0);
  if (len > bytes.length - 4 || bytes.subarray(4, 4 + len).toString("latin1") !== type) {
    return `key data does not encode a ${type} key`;
  }
  return null;
}

const B64 = new Int8Array(128).fill(-1);
for (const [i, c] of [..."ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"].entries()) B64[c.charCodeAt(0)] = i;
const BLOB = /[A-Za-z0-9+/]+={0,2}/y;
const CONTROL = /[\u0000-\u001f\u007f]/;
/** True when a key is in canonical form (single spaces, nothing around it: what normalizeKey leaves as is). */
function isCanonical(key: string): boolean {
  const first = key.charCodeAt(0);
  const last = key.charCodeAt(key.length - 1);
  return first > 32 && first < 127 && last > 32 && last < 127 && !key.includes("  ");
}

/**
 * The common case, decided without splitting the key or decoding its base64: a canonical key of a
 * known type whose blob is base64 and starts with that type's name. False means "ask the
 * reference check", which also says what is wrong.
 */
function canonicalKeyIsValid(key: string): boolean {
  if (key.length > 16384 || !isCanonical(key) || CONTROL.test(key)) return false;
  const sp = key.indexOf(" ");
  if (sp <= 0) return false;
  const type = key.slice(0, sp);
  if (!KEY_TYPES.has(type)) return false;
  const next = key.indexOf(" ", sp + 1);
  const end = next === -1 ? key.length : next;
  BLOB.lastIndex = sp + 1;
  if (!BLOB.test(key) || BLOB.lastIndex !== end || (end - sp - 1) % 4 !== 0) return false;
  const at = sp + 1;
  const pad = (key.charCodeAt(end - 1) === 61 ? 1 : 0) + (key.charCodeAt(end - 2) === 61 ? 1 : 0);
  const total = ((end - at) / 4) * 3 - pad;
  if (total < 4) return false;
  const len = ((b64Byte(key, at, 0) << 24) >>> 0) + (b64Byte(key, at, 1) << 16) + (b64Byte(key, at, 2) << 8) + b64Byte(key, at, 3);
  if (len !== type.length || len > total - 4) return false;
  for (let j = 0; j < len; j++) if (b64Byte(key, at, 4 + j) !== type.charCodeAt(j)) return false;
  return true;
}

/** Byte i of the base64 text that starts at offset at in s, read from its group ('=' counts as zero bits). */
function b64Byte(s: string, at: number, i: number): number {
  const g = at + Math.floor(i / 3) * 4;
  let n = 0;
  for (let k = 0; k < 4; k++) n = (n << 6) | Math.max(0, B64[s.charCodeAt(g + k)] ?? 0);
  return (n >> (16 - 8 * (i % 3))) & 255;
}

/** The canonical line written to authorized_keys: type, blob and comment, single spaces. */
export function normalizeKey(key: string): string {
  return isCanonical(key) ? key : key.trim().split(/ +/).join(" ");
}

// ---- record decoding ------------------------------------------------------------------------

type Kind = "S" | "N" | "SS";
const TYPE_NAMES: Record<string, string> = {
  S: "a string (S)",
  N: "a number (N)",
  SS: "a string set (SS)",
  NS: "a number set (NS)",
  BS: "a binary set (BS)",
  B: "binary (B)",
  BOOL: "a boolean (BOOL)",
  L: "a list (L)",
  M: "a map (M)",
  NULL: "NULL",
};

class FieldError extends Error {
  constructor(
    readonly field: string,
    message: string,
  ) {
    super(message);
  }
}

function attr(item: RawItem, field: string, kind: Kind, required: boolean): string | string[] | undefined {
  const a = item[field] as Record<string, unknown> | undefined;
  // An AttributeValue has exactly one member, its type: the expected one is the usual case.
  const v = a?.[kind];
  if (v !== undefined && v !== null) return v as string | string[];
  let type: string | undefined;
  for (const k in a) {
    type = k;
    break;
  }
  if (a === undefined || type === "NULL") {
    if (required) throw new FieldError(field, `is required and missing`);
    return undefined;
  }
  if (type !== kind) {
    throw new FieldError(field, `must be stored as ${TYPE_NAMES[kind]}, found ${TYPE_NAMES[type ?? ""] ?? printable(type)}`);
  }
  return a[kind] as string | string[];
}

/**
 * Plain predicates that accept exactly what each schema accepts, so the common (valid) case
 * costs a regex or two; valibot runs only to explain a value that fails.
 */
const GECOS_BAD = /[:\u0000-\u001f\u007f]/;
const PATH_BAD = /[:\u0000-\u001f\u007f]|(^|\/)\.\.(\/|$)/;
const ALL_DIGITS = /^[0-9]+$/;
export const FAST = new Map<unknown, (s: string) => boolean>([
  [nameSchema, (s) => NAME_RE.test(s) && s !== "." && s !== ".." && !ALL_DIGITS.test(s)],
  [gecosSchema, (s) => s.length <= 256 && !GECOS_BAD.test(s)],
  [pathSchema, (s) => s.length >= 1 && s.length <= 4096 && s[0] === "/" && !PATH_BAD.test(s)],
  [passwordSchema, isPasswordField],
  [dateSchema, (s) => (isoDateToDays(s) ?? -1) >= 0],
]);

function check<T>(field: string, schema: v.GenericSchema<T>, value: T): void {
  const fast = FAST.get(schema);
  if (fast?.(value as string)) return;
  const r = v.safeParse(schema, value);
  if (!r.success) throw new FieldError(field, r.issues[0]!.message);
}

function str(item: RawItem, field: string, schema: v.GenericSchema<string>, required: true): string;
function str(item: RawItem, field: string, schema: v.GenericSchema<string>, required: false): string | undefined;
function str(item: RawItem, field: string, schema: v.GenericSchema<string>, required: boolean): string | undefined {
  const s = attr(item, field, "S", required) as string | undefined;
  if (s !== undefined) check(field, schema, s);
  return s;
}

/** str for a known-valid item: the same value, its rule not run again (see decodeKnownUserItem). */
const knownStr = ((item: RawItem, field: string, _schema: unknown, required: boolean) => attr(item, field, "S", required)) as typeof str;

function num(item: RawItem, field: string, max: number, required: true): number;
function num(item: RawItem, field: string, max: number, required: false): number | null;
function num(item: RawItem, field: string, max: number, required: boolean): number | null {
  const s = attr(item, field, "N", required) as string | undefined;
  if (s === undefined) return null;
  // Plain digits (the usual case) are read here; anything else goes through the regex.
  let n = 0;
  let i = 0;
  for (; i < s.length && i < 15; i++) {
    const c = s.charCodeAt(i);
    if (c < 48 || c > 57) break;
    n = n * 10 + (c - 48);
  }
  if (i === 0 || i !== s.length) {
    if (!WHOLE.test(s)) throw new FieldError(field, `must be a whole number, found ${printable(s)}`);
    n = Number(s);
  }
  if (n < 0 || n > max) throw new FieldError(field, `must be from 0 to ${max}, found ${printable(s)}`);
  return n;
}

const WHOLE = /^-?[0-9]+$/;

function strSet(item: RawItem, field: string, each: ((s: string) => string | null) | null): string[] {
  const list = (attr(item, field, "SS", false) as string[] | undefined) ?? [];
  if (each) {
    for (const s of list) {
      const problem = each(s);
      if (problem) throw new FieldError(field, `entry ${printable(s)} ${problem}`);
    }
  }
  if (list.length === 2) return list[0]! < list[1]! ? [list[0]!, list[1]!] : [list[1]!, list[0]!];
  return list.length < 2 ? [...list] : [...list].sort();
}

/** Keys in canonical form, each once, sorted (the input is sorted: a one-key list needs nothing). */
function sshKeySet(keys: string[]): string[] {
  if (keys.length === 1 && isCanonical(keys[0]!)) return keys;
  if (keys.length === 2 && keys[0]! < keys[1]! && isCanonical(keys[0]!) && isCanonical(keys[1]!)) return keys;
  return [...new Set(keys.map(normalizeKey))].sort();
}

const nameProblem = (s: string) => {
  if (FAST.get(nameSchema)!(s)) return null;
  const r = v.safeParse(nameSchema, s);
  return r.success ? null : r.issues[0]!.message;
};

const DAYS_MAX = 2147483647;

class RecordErrors extends Error {
  constructor(readonly errors: FieldError[]) {
    super(errors.map((e) => e.message).join("; "));
  }
}

/** Read every field, collecting each field's problem, so one pass reports all of a record's faults. */
function reader(item: RawItem) {
  const errors: FieldError[] = [];
  const get = <T>(read: () => T, fallback: T): T => {
    try {
      return read();
    } catch (e) {
      if (!(e instanceof FieldError)) throw e;
      errors.push(e);
      return fallback;
    }
  };
  const done = <T>(value: T): T => {
    if (errors.length > 0) throw new RecordErrors(errors);
    return value;
  };
  return { get, done, item };
}

/**
 * A record is read field by field straight into the result, throwing at the first fault; only a
 * record with a fault is read again, field by field through `reader`, to report every fault it
 * has. The valid record (all but a few of 100,000) costs no closure per field.
 */
function decodeUser(item: RawItem, known = false): User {
  // A known item's string rules are not run again: they only ever refuse, never change a value.
  const S = known ? knownStr : str;
  try {
    return {
      name: S(item, "Name", nameSchema, true),
      uid: num(item, "UID", MAX_ID, true),
      gid: num(item, "GID", MAX_ID, true),
      realName: S(item, "RealName", gecosSchema, true),
      home: S(item, "Home", pathSchema, true),
      shell: S(item, "Shell", pathSchema, true),
      password: S(item, "Password", passwordSchema, false) ?? null,
      lastChange: dateDays(S(item, "LastPasswordChangeDate", dateSchema, false)),
      minDays: num(item, "PasswordAgeMinDays", DAYS_MAX, false),
      maxDays: num(item, "PasswordAgeMaxDays", DAYS_MAX, false),
      warnDays: num(item, "PasswordWarnDays", DAYS_MAX, false),
      inactiveDays: num(item, "PasswordDisableDays", DAYS_MAX, false),
      expire: dateDays(S(item, "AccountExpireDate", dateSchema, false)),
      sshKeys: sshKeySet(strSet(item, "SSHPublicKeys", known ? null : sshKeyProblem)),
    };
  } catch (e) {
    if (!(e instanceof FieldError)) throw e;
    return decodeUserCollecting(item);
  }
}

function decodeUserCollecting(item: RawItem): User {
  const { get, done } = reader(item);
  return done({
    name: get(() => str(item, "Name", nameSchema, true), ""),
    uid: get(() => num(item, "UID", MAX_ID, true), 0),
    gid: get(() => num(item, "GID", MAX_ID, true), 0),
    realName: get(() => str(item, "RealName", gecosSchema, true), ""),
    home: get(() => str(item, "Home", pathSchema, true), ""),
    shell: get(() => str(item, "Shell", pathSchema, true), ""),
    password: get(() => str(item, "Password", passwordSchema, false) ?? null, null),
    lastChange: get(() => dateDays(str(item, "LastPasswordChangeDate", dateSchema, false)), null),
    minDays: get(() => num(item, "PasswordAgeMinDays", DAYS_MAX, false), null),
    maxDays: get(() => num(item, "PasswordAgeMaxDays", DAYS_MAX, false), null),
    warnDays: get(() => num(item, "PasswordWarnDays", DAYS_MAX, false), null),
    inactiveDays: get(() => num(item, "PasswordDisableDays", DAYS_MAX, false), null),
    expire: get(() => dateDays(str(item, "AccountExpireDate", dateSchema, false)), null),
    sshKeys: get(() => sshKeySet(strSet(item, "SSHPublicKeys", sshKeyProblem)), []),
  });
}

function decodeGroup(item: RawItem): Group {
  try {
    return {
      name: str(item, "Name", nameSchema, true),
      gid: num(item, "GID", MAX_ID, true),
      password: str(item, "Password", passwordSchema, false) ?? null,
      administrators: strSet(item, "Administrators", nameProblem),
      members: strSet(item, "Members", nameProblem),
    };
  } catch (e) {
    if (!(e instanceof FieldError)) throw e;
    return decodeGroupCollecting(item);
  }
}

function decodeGroupCollecting(item: RawItem): Group {
  const { get, done } = reader(item);
  return done({
    name: get(() => str(item, "Name", nameSchema, true), ""),
    gid: get(() => num(item, "GID", MAX_ID, true), 0),
    password: get(() => str(item, "Password", passwordSchema, false) ?? null, null),
    administrators: get(() => strSet(item, "Administrators", nameProblem), []),
    members: get(() => strSet(item, "Members", nameProblem), []),
  });
}

function dateDays(s: string | undefined): number | null {
  return s === undefined ? null : isoDateToDays(s);
}

function recordName(item: RawItem): string {
  const n = item.Name as { S?: unknown } | undefined;
  return typeof n?.S === "string" ? printable(n.S) : "(no Name)";
}

export interface Decoded<T> {
  records: T[];
  rejections: Rejection[];
  /** How many records were refused (a record may have several rejections). */
  rejected: number;
}

/**
 * ID reservations: items named "#uid:N" (Users table) or "#gid:N" (Groups table) that the admin
 * commands write, with a condition, before they give an ID to a record, so that two admins can
 * never hand out one ID. No account name can start with "#": a pass skips these items silently.
 */
export const RESERVATION_RE = /^#(uid|gid):([0-9]+)$/;
export const reservationName = (kind: "uid" | "gid", id: number) => `#${kind}:${id}`;

/** One item decoded: a record, its rejections, or an ID reservation (not an account). */
export type Decoding<T> =
  | { kind: "ok"; ok: T; rawName: string }
  | { kind: "rejected"; rawName: string | undefined; rejections: Rejection[] }
  | { kind: "reserved"; rawName: undefined };

function decodeItem<T>(table: string, item: RawItem, decode: (i: RawItem) => T): Decoding<T> {
  const n = (item.Name as { S?: unknown } | undefined)?.S;
  const rawName = typeof n === "string" ? n : undefined;
  if (rawName !== undefined && rawName.charCodeAt(0) === 35 /* # */ && RESERVATION_RE.test(rawName)) {
    return { kind: "reserved", rawName: undefined };
  }
  try {
    return { kind: "ok", ok: decode(item), rawName: rawName! };
  } catch (e) {
    if (!(e instanceof RecordErrors)) throw e;
    const name = recordName(item);
    return { kind: "rejected", rawName, rejections: e.errors.map((f) => ({ table, name, field: f.field, reason: f.message })) };
  }
}

export const decodeUserItem = (table: string) => (item: RawItem) => decodeItem(table, item, decodeUser);
/**
 * For an item this very build of ddum decoded as valid before, byte for byte (a page of the Users
 * table whose SHA-256 a pass recorded: see pagememo.ts): the same User, without running the
 * string rules (names, paths, GECOS, password, dates, key syntax) again, as they can only refuse.
 * Types, presence and numbers are still read the same way. Never for any other item.
 */
export const decodeKnownUserItem = (table: string) => (item: RawItem) => decodeItem(table, item, knownUser);
const knownUser = (item: RawItem) => decodeUser(item, true);
export const decodeGroupItem = (table: string) => (item: RawItem) => decodeItem(table, item, decodeGroup);

/** All items decoded: the cross-record checks (two records with one ID are both refused). */
export function finishDecoding<T extends { name: string }>(
  table: string,
  decoded: Decoding<T>[],
  idField: "UID" | "GID",
  idOf: (t: T) => number,
): Decoded<T> {
  const rejections: Rejection[] = [];
  const ok: T[] = [];
  let rejected = 0;
  for (const d of decoded) {
    if (d.kind === "ok") ok.push(d.ok);
    else if (d.kind === "rejected") {
      rejected++;
      rejections.push(...d.rejections);
    }
  }
  // Two records with one ID would make two names for one account: refuse both. The usual case,
  // no two alike, is told from one native sort of the IDs; only then are they grouped by ID.
  if (!hasDuplicate(ok.map(idOf))) return { records: ok, rejections, rejected };
  const byId = new Map<number, T[]>();
  for (const r of ok) {
    const list = byId.get(idOf(r));
    if (list) list.push(r);
    else byId.set(idOf(r), [r]);
  }
  const records: T[] = [];
  for (const r of ok) {
    const same = byId.get(idOf(r))!;
    if (same.length === 1) {
      records.push(r);
      continue;
    }
    const others = same.filter((o) => o !== r).map((o) => printable(o.name));
    rejected++;
    rejections.push({
      table,
      name: printable(r.name),
      field: idField,
      reason: `${idOf(r)} is also used by ${others.join(", ")}; both are refused until one is changed`,
    });
  }
  return { records, rejections, rejected };
}

/** Whether two of the IDs (whole numbers from 0 to 2^32) are equal. */
export function hasDuplicate(ids: readonly number[]): boolean {
  const sorted = Float64Array.from(ids).sort();
  for (let i = 1; i < sorted.length; i++) if (sorted[i] === sorted[i - 1]) return true;
  return false;
}

export function decodeUsers(table: string, items: RawItem[]): Decoded<User> {
  return finishDecoding(table, items.map(decodeUserItem(table)), "UID", (u) => u.uid);
}

export function decodeGroups(table: string, items: RawItem[]): Decoded<Group> {
  return finishDecoding(table, items.map(decodeGroupItem(table)), "GID", (g) => g.gid);
}

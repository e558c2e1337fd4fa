// Records from the tables become Users and Groups, or Rejections that name the table, the
// record and the field. Nothing that fails here can reach a local file.
import { createHash } from "node:crypto";
import * as v from "valibot";
import { quoted } from "./escape.ts";
import { MAX_ID } from "./localdb/table.ts";
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

const NAME_RE = /^[A-Za-z0-9._][A-Za-z0-9._-]{0,31}$/;
/** The longest user or group name: the hosts' useradd, pwck/grpck and utmp (UT_NAMESIZE) stop at 32. */
export const NAME_MAX = 32;
/** The highest UID or GID, the same bound the local files are read with. */
export { MAX_ID };
/** A name the old daemon accepted that is only too long for the hosts (33 to 256 characters). */
const OLD_LONG_NAME = /^[A-Za-z0-9._][A-Za-z0-9._-]{32,255}$/;

export const nameSchema = v.pipe(
  v.string(),
  v.minLength(1, "must not be empty"),
  v.maxLength(NAME_MAX, "must be at most 32 characters: longer names are refused by useradd, reported by pwck and grpck, and cut by utmp on the hosts"),
  v.regex(NAME_RE, "may hold only letters, digits, '.', '_' and '-', and must not start with '-'"),
  v.check((s) => s !== "." && s !== "..", "must not be '.' or '..'"),
  v.check((s) => !/^[0-9]+$/.test(s), "must not be all digits (it would read as a numeric ID)"),
);

export const gecosSchema = v.pipe(
  v.string(),
  v.maxLength(256, "must be at most 256 characters"),
  v.check((s) => !/[:\n\r\v\f\0]/.test(s), "must not contain ':', newline, carriage return, vertical tab, form feed or NUL"),
  // C1 controls (U+0080-U+009F: a terminal reads U+009B as CSI) and the line and paragraph
  // separators too: whoever reads passwd on a terminal (finger, getent) would get them raw.
  v.check((s) => !/[\u0000-\u001f\u007f-\u009f\u2028\u2029]/.test(s), "must not contain control characters"),
);

export const pathSchema = v.pipe(
  v.string(),
  v.minLength(1, "must not be empty"),
  v.maxLength(4096, "must be at most 4096 characters"),
  v.startsWith("/", "must be an absolute path"),
  v.check((s) => !/[:\u0000-\u001f\u007f-\u009f\u2028\u2029]/.test(s), "must not contain ':' or control characters"),
  v.check((s) => !s.split("/").includes(".."), "must not contain '..' segments"),
);

/** Directories others can write (see shells.ts): a shell there runs whoever writes it. */
const OPEN_SHELL_DIR = /^\/+(?:\.\/+)*(tmp|var\/+(?:\.\/+)*tmp|dev\/+(?:\.\/+)*shm|run\/+(?:\.\/+)*user|home|var\/+(?:\.\/+)*(mail|crash|spool\/+(?:\.\/+)*mail))(\/|$)/;

export const shellSchema = v.pipe(
  pathSchema,
  v.check((s) => !OPEN_SHELL_DIR.test(s), "must not be in a directory others can write (/tmp, /var/tmp, /dev/shm, /home, ...)"),
);

/**
 * Crypt hashes, as this host's libcrypt (libxcrypt) writes and checks them, or lock markers ("!",
 * "*", "!" before a hash). Each scheme's shape follows libxcrypt: the characters it allows in a
 * salt (never a byte below 0x21 or above 0x7e, nor ! * : ; \ anywhere, which crypt() itself
 * refuses), the salt lengths it uses, the rounds it takes and the length of the digest it writes.
 * Anything else (a plaintext password, a hash of a scheme the host cannot check, a hash whose
 * salt crypt() would cut) is refused, and never echoed.
 */
const B = "[./0-9A-Za-z]";
/** A salt byte libxcrypt keeps for $6$, $5$, $1$ and $md5: printable ASCII but ! $ * : ; \. */
const S = "[\\x22\\x23\\x25-\\x29\\x2b-\\x39\\x3c-\\x5b\\x5d-\\x7e]";
/** The last character of a DES block: its two low bits are unused, so always zero. */
const DES_END = "[.26AEIMQUYcgkosw]";
/** A bcrypt salt: 22 characters whose last one has its four unused bits zero, as crypt() writes it. */
const BF_SALT = `${B}{21}[.Oeu]`;
const ROUNDS = "(?:rounds=([1-9][0-9]{3,8})\\$)?";
interface Scheme {
  re: RegExp;
  /** libxcrypt's name for it; weak: not one of the methods libxcrypt counts as strong. */
  name: string;
  weak: boolean;
}
const SCHEMES: Scheme[] = [
  { name: "yescrypt", weak: false, re: new RegExp(`^\\$y\\$${B}+\\$${B}*\\$${B}{43}$`) },
  { name: "sha512crypt", weak: false, re: new RegExp(`^\\$6\\$${ROUNDS}${S}{0,16}\\$${B}{86}$`) },
  { name: "bcrypt", weak: false, re: new RegExp(`^\\$2[aby]\\$(?:0[4-9]|[12][0-9]|3[01])\\$${BF_SALT}${B}{31}$`) },
  { name: "gost-yescrypt", weak: false, re: new RegExp(`^\\$gy\\$${B}+\\$${B}*\\$${B}{43}$`) },
  { name: "scrypt", weak: false, re: new RegExp(`^\\$7\\$${B}{11}${B}*\\$${B}{43}$`) },
  { name: "sha256crypt", weak: true, re: new RegExp(`^\\$5\\$${ROUNDS}${S}{0,16}\\$${B}{43}$`) },
  { name: "bcrypt_x", weak: true, re: new RegExp(`^\\$2x\\$(?:0[4-9]|[12][0-9]|3[01])\\$${BF_SALT}${B}{31}$`) },
  { name: "md5crypt", weak: true, re: new RegExp(`^\\$1\\$${S}{0,8}\\$${B}{22}$`) },
  { name: "sha1crypt", weak: true, re: new RegExp(`^\\$sha1\\$(?:0|[1-9][0-9]{0,9})\\$${B}{1,64}\\$${B}{28}$`) },
  { name: "sunmd5", weak: true, re: new RegExp(`^\\$md5(?:,rounds=[1-9][0-9]{0,9})?\\$${S}{0,24}\\$\\$?${B}{22}$`) },
  { name: "nt", weak: true, re: /^\$3\$\$[0-9a-f]{32}$/ },
  { name: "bsdicrypt", weak: true, re: new RegExp(`^_${B}{18}${DES_END}$`) },
  { name: "descrypt", weak: true, re: new RegExp(`^${B}{12}${DES_END}$`) },
  { name: "bigcrypt", weak: true, re: new RegExp(`^${B}{2}(?:${B}{10}${DES_END}){2,16}$`) },
];

/** The scheme of a hash (no lock marker before it), or null when it is not one this host checks. */
export function hashScheme(s: string): Scheme | null {
  for (const sc of SCHEMES) if (sc.re.test(s)) return sc;
  return null;
}

export function isPasswordField(s: string): boolean {
  if (s === "*" || s === "!*") return true;
  if (s.charCodeAt(0) === 36 /* $ */) return hashScheme(s) !== null;
  const unlocked = s.replace(/^!+/, "");
  return unlocked === "" ? s !== "" : hashScheme(unlocked) !== null;
}

/** Why a valid password field deserves a warning (a legacy method), or null. */
export function passwordWarning(s: string): string | null {
  // The usual hashes, told by their prefix (the whole form was checked already).
  if (s.startsWith("$y$") || s.startsWith("$6$")) return null;
  const sc = hashScheme(s.replace(/^!+/, ""));
  if (sc === null || !sc.weak) return null;
  return `uses ${sc.name}, a legacy method that libxcrypt does not count as strong; applied, but set a new password soon (ddum user passwd)`;
}
export const passwordSchema = v.pipe(
  v.string(),
  v.check(
    isPasswordField,
    "is not a crypt hash this host's libcrypt can check (yescrypt, sha512crypt, bcrypt, ... in the form crypt() writes) or a lock marker ('!', '*'); a plaintext password is never written (value not shown)",
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
const GECOS_BAD = /[:\u0000-\u001f\u007f-\u009f\u2028\u2029]/;
const PATH_BAD = /[:\u0000-\u001f\u007f-\u009f\u2028\u2029]|(^|\/)\.\.(\/|$)/;
const ALL_DIGITS = /^[0-9]+$/;
export const FAST = new Map<unknown, (s: string) => boolean>([
  [nameSchema, (s) => NAME_RE.test(s) && s !== "." && s !== ".." && !ALL_DIGITS.test(s)],
  [gecosSchema, (s) => s.length <= 256 && !GECOS_BAD.test(s)],
  [pathSchema, (s) => s.length >= 1 && s.length <= 4096 && s[0] === "/" && !PATH_BAD.test(s)],
  [shellSchema, (s) => s.length >= 1 && s.length <= 4096 && s[0] === "/" && !PATH_BAD.test(s) && !OPEN_SHELL_DIR.test(s)],
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

/** A problem a record has that does not stop it from being applied (a default, a key left out, a weak hash). */
export interface Note {
  field: string;
  reason: string;
}

/**
 * The record's keys, judged one by one: a key that does not parse or carries options is left
 * out and noted (its position in the set, its fingerprint when it has one); the others apply.
 */
function judgedKeys(item: RawItem, notes: Note[]): string[] {
  const list = (attr(item, "SSHPublicKeys", "SS", false) as string[] | undefined) ?? [];
  let good = list;
  for (let i = 0; i < list.length; i++) {
    const problem = sshKeyProblem(list[i]!);
    if (problem === null) {
      if (good !== list) good.push(list[i]!);
      continue;
    }
    if (good === list) good = list.slice(0, i);
    const fp = keyFingerprint(list[i]!);
    notes.push({
      field: "SSHPublicKeys",
      reason: `key ${i + 1} of ${list.length} (${fp ?? "no fingerprint: no key data decodes"}) is left out: ${problem}; the account and the other keys apply`,
    });
  }
  if (good.length === 2) return good[0]! < good[1]! ? [good[0]!, good[1]!] : [good[1]!, good[0]!];
  return good.length < 2 ? [...good] : [...good].sort();
}

/**
 * OpenSSH's fingerprint (SHA256:, unpadded base64) of the first word of a key line that decodes
 * as key data naming a known key type (after options, if any), or null.
 */
export function keyFingerprint(key: string): string | null {
  for (const word of key.split(/[ \t]+/)) {
    if (word.length < 8 || word.length % 4 !== 0 || !/^[A-Za-z0-9+/]+={0,2}$/.test(word)) continue;
    const bytes = Buffer.from(word, "base64");
    if (bytes.length < 4) continue;
    const len = bytes.readUInt32BE(0);
    if (len > bytes.length - 4 || !KEY_TYPES.has(bytes.subarray(4, 4 + len).toString("latin1"))) continue;
    return `SHA256:${createHash("sha256").update(bytes).digest("base64").replace(/=+$/, "")}`;
  }
  return null;
}

const MISSING_NOTE: Record<string, string> = {
  RealName: "read as empty",
  Home: "read as empty, as the old daemon did: no home directory is made and no SSH key is written into a home for this user (login uses /)",
  Shell: "read as empty, as the old daemon did (login uses /bin/sh)",
};

/** RealName, Home or Shell: missing (or, for Home and Shell, empty) reads as empty, with a note. */
function defaulted(item: RawItem, field: "RealName" | "Home" | "Shell", schema: v.GenericSchema<string>, known: boolean, notes: Note[]): string {
  const s = attr(item, field, "S", false) as string | undefined;
  if (s === undefined || (s === "" && field !== "RealName")) {
    notes.push({ field, reason: `is ${s === undefined ? "missing" : "empty"}; ${MISSING_NOTE[field]}` });
    return "";
  }
  if (!known) check(field, schema, s);
  return s;
}

/** The Password field, checked in every reading (a known page too), with a note for a legacy method. */
function password(item: RawItem, notes: Note[]): string | null {
  const p = str(item, "Password", passwordSchema, false);
  if (p === undefined) return null;
  const weak = passwordWarning(p);
  if (weak) notes.push({ field: "Password", reason: weak });
  return p;
}

const nameProblem = (s: string) => {
  if (FAST.get(nameSchema)!(s)) return null;
  const r = v.safeParse(nameSchema, s);
  return r.success ? null : r.issues[0]!.message;
};

/**
 * Members or Administrators: a name refused only for its length (one the old daemon accepted) is
 * left out with a note, so the group and its other members still apply; any other bad name
 * refuses the record.
 */
function memberSet(item: RawItem, field: string, notes: Note[]): string[] {
  const list = strSet(item, field, (s) => (OLD_LONG_NAME.test(s) && !ALL_DIGITS.test(s) ? null : nameProblem(s)));
  if (!list.some((s) => s.length > NAME_MAX)) return list;
  return list.filter((s) => {
    if (s.length <= NAME_MAX) return true;
    notes.push({ field, reason: `entry ${printable(s)} is longer than 32 characters (as is any user record under that name, refused too); left out, the other entries apply` });
    return false;
  });
}

const DAYS_MAX = 2147483647;

class RecordErrors extends Error {
  constructor(
    readonly errors: FieldError[],
    /** The record as far as it could be read (each faulty field at its fallback). */
    readonly partial: unknown,
  ) {
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
    if (errors.length > 0) throw new RecordErrors(errors, value);
    return value;
  };
  return { get, done, item };
}

/**
 * A record is read field by field straight into the result, throwing at the first fault; only a
 * record with a fault is read again, field by field through `reader`, to report every fault it
 * has. The valid record (all but a few of 100,000) costs no closure per field.
 */
function decodeUser(item: RawItem, known = false, notes: Note[] = []): User {
  // A known item's name, GECOS, path and date rules are not run again: they only ever refuse,
  // never change a value. The password, the name's length, the defaults for missing fields and
  // the judgement of each key are, so they hold for users already in place too.
  const S = known ? knownStr : str;
  try {
    const name = S(item, "Name", nameSchema, true);
    if (name.length > NAME_MAX) throw new FieldError("Name", "is too long");
    return {
      name,
      uid: num(item, "UID", MAX_ID, true),
      gid: num(item, "GID", MAX_ID, true),
      realName: defaulted(item, "RealName", gecosSchema, known, notes),
      home: defaulted(item, "Home", pathSchema, known, notes),
      shell: defaulted(item, "Shell", shellSchema, known, notes),
      password: password(item, notes),
      lastChange: dateDays(S(item, "LastPasswordChangeDate", dateSchema, false)),
      minDays: num(item, "PasswordAgeMinDays", DAYS_MAX, false),
      maxDays: num(item, "PasswordAgeMaxDays", DAYS_MAX, false),
      warnDays: num(item, "PasswordWarnDays", DAYS_MAX, false),
      inactiveDays: num(item, "PasswordDisableDays", DAYS_MAX, false),
      expire: dateDays(S(item, "AccountExpireDate", dateSchema, false)),
      sshKeys: sshKeySet(judgedKeys(item, notes)),
    };
  } catch (e) {
    if (!(e instanceof FieldError)) throw e;
    notes.length = 0;
    return decodeUserCollecting(item, notes);
  }
}

function decodeUserCollecting(item: RawItem, notes: Note[]): User {
  const { get, done } = reader(item);
  return done({
    name: get(() => str(item, "Name", nameSchema, true), ""),
    uid: get(() => num(item, "UID", MAX_ID, true), 0),
    gid: get(() => num(item, "GID", MAX_ID, true), 0),
    realName: get(() => defaulted(item, "RealName", gecosSchema, false, notes), ""),
    home: get(() => defaulted(item, "Home", pathSchema, false, notes), ""),
    shell: get(() => defaulted(item, "Shell", shellSchema, false, notes), ""),
    password: get(() => password(item, notes), null),
    lastChange: get(() => dateDays(str(item, "LastPasswordChangeDate", dateSchema, false)), null),
    minDays: get(() => num(item, "PasswordAgeMinDays", DAYS_MAX, false), null),
    maxDays: get(() => num(item, "PasswordAgeMaxDays", DAYS_MAX, false), null),
    warnDays: get(() => num(item, "PasswordWarnDays", DAYS_MAX, false), null),
    inactiveDays: get(() => num(item, "PasswordDisableDays", DAYS_MAX, false), null),
    expire: get(() => dateDays(str(item, "AccountExpireDate", dateSchema, false)), null),
    sshKeys: get(() => sshKeySet(judgedKeys(item, notes)), []),
  });
}

function decodeGroup(item: RawItem, notes: Note[] = []): Group {
  try {
    return {
      name: str(item, "Name", nameSchema, true),
      gid: num(item, "GID", MAX_ID, true),
      password: password(item, notes),
      administrators: memberSet(item, "Administrators", notes),
      members: memberSet(item, "Members", notes),
    };
  } catch (e) {
    if (!(e instanceof FieldError)) throw e;
    notes.length = 0;
    return decodeGroupCollecting(item, notes);
  }
}

function decodeGroupCollecting(item: RawItem, notes: Note[]): Group {
  const { get, done } = reader(item);
  return done({
    name: get(() => str(item, "Name", nameSchema, true), ""),
    gid: get(() => num(item, "GID", MAX_ID, true), 0),
    password: get(() => password(item, notes), null),
    administrators: get(() => memberSet(item, "Administrators", notes), []),
    members: get(() => memberSet(item, "Members", notes), []),
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
  /** What records are applied despite (a default for a missing field, a key left out, a weak hash). */
  warnings: Rejection[];
  /**
   * Users whose record is refused for some field while its SSHPublicKeys (each key judged) could
   * be read: their keys still apply to the account ddum manages under that name, so a revocation
   * never waits for the rest of the record to be fixed.
   */
  keysOnly: { name: string; keys: string[] }[];
}

/**
 * ID reservations: items named "#uid:N" (Users table) or "#gid:N" (Groups table) that the admin
 * commands write, with a condition, before they give an ID to a record, so that two admins can
 * never hand out one ID. No account name can start with "#": a pass skips these items silently.
 */
export const RESERVATION_RE = /^#(uid|gid):([0-9]+)$/;
export const reservationName = (kind: "uid" | "gid", id: number) => `#${kind}:${id}`;
/**
 * The Users item holding the tables' version, a number every writer raises after a change (see
 * source/version.ts). Not an account either: a pass skips it like a reservation.
 */
export const VERSION_KEY = "#version";
/** Whether a Name is one of ddum's own items (an ID reservation or #version), never an account. */
export const isOwnItem = (name: string): boolean => name === VERSION_KEY || RESERVATION_RE.test(name);

/** One item decoded: a record, its rejections, or one of ddum's own items (an ID reservation, #version: not an account). */
export type Decoding<T> =
  | { kind: "ok"; ok: T; rawName: string; warnings?: Rejection[] }
  | { kind: "rejected"; rawName: string | undefined; rejections: Rejection[]; warnings?: Rejection[]; keys?: string[] }
  | { kind: "reserved"; rawName: undefined };

function warningsOf(table: string, item: RawItem, notes: Note[]): Rejection[] {
  const name = recordName(item);
  return notes.map((f) => ({ table, name, field: f.field, reason: f.reason }));
}

function decodeItem<T>(table: string, item: RawItem, decode: (i: RawItem, notes: Note[]) => T): Decoding<T> {
  const n = (item.Name as { S?: unknown } | undefined)?.S;
  const rawName = typeof n === "string" ? n : undefined;
  if (rawName !== undefined && rawName.charCodeAt(0) === 35 /* # */ && isOwnItem(rawName)) {
    return { kind: "reserved", rawName: undefined };
  }
  const notes: Note[] = [];
  try {
    const ok = decode(item, notes);
    return notes.length === 0 ? { kind: "ok", ok, rawName: rawName! } : { kind: "ok", ok, rawName: rawName!, warnings: warningsOf(table, item, notes) };
  } catch (e) {
    if (!(e instanceof RecordErrors)) throw e;
    const name = recordName(item);
    const d: Decoding<T> = { kind: "rejected", rawName, rejections: e.errors.map((f) => ({ table, name, field: f.field, reason: f.message })) };
    if (notes.length > 0) d.warnings = warningsOf(table, item, notes);
    // A refused user whose name and key set could be read: those keys still apply (see Decoded).
    // A name refused only for its length (one the old daemon made) still names its account.
    const keys = (e.partial as { sshKeys?: unknown }).sshKeys;
    const nameOk = (f: FieldError) => f.field !== "Name" || (rawName !== undefined && OLD_LONG_NAME.test(rawName) && !ALL_DIGITS.test(rawName));
    if (Array.isArray(keys) && e.errors.every((f) => f.field !== "SSHPublicKeys" && nameOk(f))) d.keys = keys as string[];
    return d;
  }
}

export const decodeUserItem = (table: string) => (item: RawItem) => decodeItem(table, item, (i, notes) => decodeUser(i, false, notes));
/**
 * For an item this very build of ddum decoded as valid before, byte for byte (a page of the Users
 * table whose SHA-256 a pass recorded: see pagememo.ts): the same User, without running the
 * name, GECOS, path and date rules again, as they can only refuse. Types, presence, numbers, the
 * name's length, the password's form, the defaults for missing fields and the judgement of each
 * SSH key are still applied, with the same warnings. Never for any other item.
 */
export const decodeKnownUserItem = (table: string) => (item: RawItem) => decodeItem(table, item, knownUser);
const knownUser = (item: RawItem, notes: Note[]) => decodeUser(item, true, notes);
export const decodeGroupItem = (table: string) => (item: RawItem) => decodeItem(table, item, decodeGroup);

/** All items decoded: the cross-record checks (two records with one ID are both refused). */
export function finishDecoding<T extends { name: string }>(
  table: string,
  decoded: Decoding<T>[],
  idField: "UID" | "GID",
  idOf: (t: T) => number,
): Decoded<T> {
  const rejections: Rejection[] = [];
  const warnings: Rejection[] = [];
  const keysOnly: { name: string; keys: string[] }[] = [];
  const ok: T[] = [];
  let rejected = 0;
  for (const d of decoded) {
    if (d.kind === "ok") {
      ok.push(d.ok);
      if (d.warnings) warnings.push(...d.warnings);
    } else if (d.kind === "rejected") {
      rejected++;
      rejections.push(...d.rejections);
      if (d.warnings) warnings.push(...d.warnings);
      if (d.keys && d.rawName !== undefined) keysOnly.push({ name: d.rawName, keys: d.keys });
    }
  }
  // Two records with one ID would make two names for one account: refuse both. The usual case,
  // no two alike, is told from one native sort of the IDs; only then are they grouped by ID.
  if (!hasDuplicate(ok.map(idOf))) return { records: ok, rejections, rejected, warnings, keysOnly };
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
    const keys = (r as { sshKeys?: unknown }).sshKeys;
    if (Array.isArray(keys)) keysOnly.push({ name: r.name, keys: keys as string[] });
    rejections.push({
      table,
      name: printable(r.name),
      field: idField,
      reason: `${idOf(r)} is also used by ${others.join(", ")}; both are refused until one is changed`,
    });
  }
  return { records, rejections, rejected, warnings, keysOnly };
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

// Pure parts of the admin commands: records built from options, checked with the very decoder
// every host uses, and the smallest conditional update that turns one stored record into another.
import { createHash } from "node:crypto";
import type { AttributeValue } from "@aws-sdk/client-dynamodb";
import {
  daysToIsoDate,
  decodeGroupItem,
  decodeUserItem,
  type Group,
  hashScheme,
  isoDateToDays,
  normalizeKey,
  printable,
  rejectionMessage,
  sshKeyProblem,
  type User,
} from "../model.ts";
import type { RawItem } from "../source/dynamo.ts";

export interface Ranges {
  uidMin: number;
  uidMax: number;
  gidMin: number;
  gidMax: number;
}

/** Set (or, with null/undefined/empty, remove) one attribute of a record; returns the record. */
export function setAttr(item: RawItem, field: string, value: string | number | string[] | null | undefined): RawItem {
  if (value === null || value === undefined || (Array.isArray(value) && value.length === 0)) delete item[field];
  else if (typeof value === "number") item[field] = { N: String(value) };
  else if (Array.isArray(value)) item[field] = { SS: [...new Set(value)].sort() };
  else item[field] = { S: value };
  return item;
}

export const strAttr = (item: RawItem, field: string): string | undefined => (item[field] as { S?: string } | undefined)?.S;
export const numAttr = (item: RawItem, field: string): number | undefined => {
  const n = (item[field] as { N?: string } | undefined)?.N;
  return n === undefined ? undefined : Number(n);
};
export const setAttrValues = (item: RawItem, field: string): string[] => [...((item[field] as { SS?: string[] } | undefined)?.SS ?? [])];

/**
 * Every reason the record would be refused: by the hosts' decoder (table, record, field), or by
 * the managed ID ranges every host applies. Empty when the record is good.
 */
export function userProblems(table: string, item: RawItem, ranges: Ranges): string[] {
  const d = decodeUserItem(table)(item);
  if (d.kind === "rejected") return d.rejections.map(rejectionMessage);
  if (d.kind !== "ok") return [`${table} record ${printable(strAttr(item, "Name"))}: Name: is the name of one of ddum's own items (an ID reservation or #version), never a record`];
  return rangeProblems(table, d.ok, ranges);
}

export function groupProblems(table: string, item: RawItem, ranges: Ranges): string[] {
  const d = decodeGroupItem(table)(item);
  if (d.kind === "rejected") return d.rejections.map(rejectionMessage);
  if (d.kind !== "ok") return [`${table} record ${printable(strAttr(item, "Name"))}: Name: is the name of one of ddum's own items (an ID reservation or #version), never a record`];
  // Hosts leave out a member name over 32 characters; an admin does not write one.
  const longNames = (d.warnings ?? []).filter((w) => w.field === "Members" || w.field === "Administrators");
  return [...longNames.map(rejectionMessage), ...rangeProblems(table, d.ok, ranges)];
}

function rangeProblems(table: string, r: User | Group, ranges: Ranges): string[] {
  const out: string[] = [];
  const at = `${table} record ${printable(r.name)}`;
  if ("uid" in r && (r.uid < ranges.uidMin || r.uid > ranges.uidMax)) {
    out.push(`${at}: UID: ${r.uid} is outside the managed range ${ranges.uidMin}-${ranges.uidMax}; every host would refuse it`);
  }
  if (r.gid < ranges.gidMin || r.gid > ranges.gidMax) {
    out.push(`${at}: GID: ${r.gid} is outside the managed range ${ranges.gidMin}-${ranges.gidMax}; every host would refuse it`);
  }
  return out;
}

/** An ISO date, or "today" (UTC, as every host counts days), checked on the calendar. */
export function parseDate(s: string, today: number, option: string): string {
  if (s === "today") return daysToIsoDate(today);
  if (isoDateToDays(s) === null) throw new Error(`${option}: expected a date in YYYY-MM-DD form (or "today"), got ${printable(s)}`);
  return s;
}

/** A whole number for an option, or null for "none"/"never". */
export function parseCount(v: unknown, option: string, max = 2147483647): number | null {
  const s = String(v);
  if (s === "none" || s === "never") return null;
  if (!/^[0-9]+$/.test(s) || Number(s) > max) throw new Error(`${option}: expected a whole number from 0 to ${max} (or "none"), got ${printable(s)}`);
  return Number(s);
}

/** An ID option: a number, or "auto". */
export function parseId(v: unknown, option: string): number | "auto" {
  const s = String(v);
  if (s === "auto") return "auto";
  if (!/^[0-9]+$/.test(s) || Number(s) > 4294967294) throw new Error(`${option}: expected a number or "auto", got ${printable(s)}`);
  return Number(s);
}

/** Keys from authorized_keys-style text: one per line, blank lines and comments skipped; each checked. */
export function parseKeys(text: string, source: string): string[] {
  const out: string[] = [];
  const lines = text.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.trim();
    if (line === "" || line.startsWith("#")) continue;
    const problem = sshKeyProblem(line);
    if (problem) throw new Error(`${source}:${i + 1}: SSH key ${problem}`);
    out.push(normalizeKey(line));
  }
  return out;
}

export const normalizeKeys = (keys: string[]): string[] => [...new Set(keys.map(normalizeKey))];

/** OpenSSH's fingerprint of a key line: SHA256:base64(sha256(blob)), unpadded. */
export function fingerprint(key: string): string {
  const blob = key.trim().split(/ +/)[1] ?? "";
  return `SHA256:${createHash("sha256").update(Buffer.from(blob, "base64")).digest("base64").replace(/=+$/, "")}`;
}

/** Which stored keys a removal argument names: the whole key, its data, or its SHA256 fingerprint. */
export function keysMatching(stored: string[], arg: string): string[] {
  const a = arg.trim();
  if (a.startsWith("SHA256:")) return stored.filter((k) => fingerprint(k) === a);
  const parts = a.split(/ +/);
  const blob = parts.length >= 2 ? parts[1] : parts[0];
  return stored.filter((k) => k.split(" ")[1] === blob);
}

/** The smallest ID in [min, max] that no one uses, or null. */
export function firstFree(min: number, max: number, taken: (id: number) => boolean, after = min - 1): number | null {
  for (let id = Math.max(min, after + 1); id <= max; id++) if (!taken(id)) return id;
  return null;
}

function canonical(a: AttributeValue | undefined): string {
  if (a === undefined) return "";
  if ("SS" in a && a.SS) return JSON.stringify({ SS: [...a.SS].sort() });
  return JSON.stringify(a);
}

export interface Update {
  UpdateExpression: string;
  ConditionExpression: string;
  ExpressionAttributeNames: Record<string, string>;
  ExpressionAttributeValues?: Record<string, AttributeValue>;
  changed: string[];
}

/**
 * The update that turns `before` into `after`: SET or REMOVE for each changed attribute, each on
 * the condition that the attribute still holds what was read (optimistic concurrency: two admins
 * changing different fields both succeed; changing the same field, the second one retries).
 * null when nothing changes.
 */
export function diffUpdate(before: RawItem, after: RawItem): Update | null {
  const names: Record<string, string> = { "#k": "Name" };
  const values: Record<string, AttributeValue> = {};
  const set: string[] = [];
  const remove: string[] = [];
  const cond: string[] = ["attribute_exists(#k)"];
  const changed: string[] = [];
  const fields = [...new Set([...Object.keys(before), ...Object.keys(after)])].filter((f) => f !== "Name").sort();
  fields.forEach((f, i) => {
    if (canonical(before[f]) === canonical(after[f])) return;
    changed.push(f);
    names[`#a${i}`] = f;
    if (before[f] === undefined) cond.push(`attribute_not_exists(#a${i})`);
    else {
      values[`:o${i}`] = before[f]!;
      cond.push(`#a${i} = :o${i}`);
    }
    if (after[f] === undefined) remove.push(`#a${i}`);
    else {
      values[`:n${i}`] = after[f]!;
      set.push(`#a${i} = :n${i}`);
    }
  });
  if (changed.length === 0) return null;
  const parts = [set.length ? `SET ${set.join(", ")}` : "", remove.length ? `REMOVE ${remove.join(", ")}` : ""].filter(Boolean);
  return {
    UpdateExpression: parts.join(" "),
    ConditionExpression: cond.join(" AND "),
    ExpressionAttributeNames: names,
    ...(Object.keys(values).length ? { ExpressionAttributeValues: values } : {}),
    changed,
  };
}

/** The shadow fields of a local account as Users attributes (days become ISO dates). */
export function shadowAttrs(item: RawItem, sp: readonly string[]): void {
  const days = (s: string | undefined) => (s !== undefined && /^[0-9]+$/.test(s) ? Number(s) : null);
  const date = (s: string | undefined) => {
    const d = days(s);
    return d === null ? null : daysToIsoDate(d);
  };
  if (sp[1] !== undefined && sp[1] !== "") setAttr(item, "Password", sp[1]);
  setAttr(item, "LastPasswordChangeDate", date(sp[2]));
  setAttr(item, "PasswordAgeMinDays", days(sp[3]));
  setAttr(item, "PasswordAgeMaxDays", days(sp[4]));
  setAttr(item, "PasswordWarnDays", days(sp[5]));
  setAttr(item, "PasswordDisableDays", days(sp[6]));
  setAttr(item, "AccountExpireDate", date(sp[7]));
}

/** A human view of a password field that never shows the hash. */
export function describePassword(p: string | undefined): string {
  if (p === undefined) return "none (login by SSH key only)";
  if (p === "*" || /^!+$/.test(p) || p === "!*") return `locked (${p})`;
  const locked = p.startsWith("!");
  const id = /^!*\$([^$]+)\$/.exec(p)?.[1];
  const scheme = hashScheme(p.replace(/^!+/, ""))?.name ?? { y: "yescrypt", gy: "gost-yescrypt", "7": "scrypt", "6": "sha512crypt", "5": "sha256crypt", "2b": "bcrypt", "2y": "bcrypt", "2a": "bcrypt", "1": "md5crypt" }[id ?? ""] ?? "unknown";
  return `${scheme} hash${locked ? ", locked" : ""}`;
}

// What a pass tells the operator: the plan, grouped by user and group, and one summary line.
import type { Counts, PassDetection, PassKind } from "./state.ts";
import { JSON_VERSION } from "./errors.ts";
import { escapeControls, terminalSafe } from "./escape.ts";
import { rejectionMessage } from "./model.ts";
import type { HomesResult, KeyChange } from "./homes.ts";
import type { Plan } from "./plan.ts";
import type { SyncResult } from "./sync.ts";

/**
 * What a pass did, users and groups apart, counted the same way on every pass: a user private
 * group made by the first pass is a group created there, and a group unchanged on the next.
 */
export function passCounts(
  p: Plan,
  o: { usersRejected: number; groupsRejected: number; groupTable: string; tableGroups: ReadonlySet<string>; localGroup: (name: string) => boolean; homes: HomesResult },
): Counts {
  const users = { created: 0, updated: 0, disabled: 0, unchanged: 0, refused: 0, rejected: o.usersRejected };
  const groups = { created: 0, updated: 0, unchanged: 0, refused: 0, rejected: o.groupsRejected };
  const actedOn = new Set<string>();
  for (const a of p.actions) {
    if (a.kind === "create-user") users.created++;
    else if (a.kind === "update-user") users.updated++;
    else if (a.kind === "disable-user") users.disabled++;
    else {
      actedOn.add(a.name);
      if (a.kind === "create-group") groups.created++;
      else groups.updated++;
    }
  }
  // Every accepted user is created, updated or unchanged; the rest of the plan's unchanged are groups.
  users.unchanged = p.accepted.length - users.created - users.updated;
  groups.unchanged = p.unchanged - users.unchanged;
  // ddum's own groups that no record names (user private groups, groups whose record left), as they are here.
  for (const g of p.ownership.groups) if (!o.tableGroups.has(g) && !actedOn.has(g) && o.localGroup(g)) groups.unchanged++;
  for (const r of p.refusals) {
    if (r.table === o.groupTable) groups.refused++;
    else users.refused++;
  }
  return {
    created: users.created + groups.created,
    updated: users.updated + users.disabled + groups.updated,
    unchanged: users.unchanged + groups.unchanged,
    refused: users.refused + groups.refused,
    rejected: users.rejected + groups.rejected,
    users,
    groups,
    homes: o.homes.homesCreated.length,
    keyFilesWritten: o.homes.keysWritten.length,
    keyFilesRemoved: o.homes.keysRemoved.length,
  };
}

/** Seconds, rounded to what a person reads: 0.04 s, 1.3 s, 42 s. */
export function seconds(ms: number): string {
  const s = ms / 1000;
  return s >= 10 ? `${Math.round(s)} s` : s >= 1 ? `${s.toFixed(1)} s` : `${s.toFixed(2)} s`;
}

/** The summary of a pass, in the same shape on every pass; totals only for records kept before the split. */
export function summaryLine(c: Counts, ms?: number): string {
  const time = ms === undefined ? "" : `; ${seconds(ms)}`;
  if (!c.users || !c.groups) {
    return `${c.created} created, ${c.updated} updated, ${c.unchanged} unchanged, ${c.refused} refused, ${c.rejected} rejected${time}`;
  }
  const u = c.users;
  const g = c.groups;
  return (
    `users: ${u.created} created, ${u.updated} updated, ${u.disabled} disabled, ${u.unchanged} unchanged, ${u.refused} refused, ${u.rejected} rejected; ` +
    `groups: ${g.created} created, ${g.updated} updated, ${g.unchanged} unchanged, ${g.refused} refused, ${g.rejected} rejected; ` +
    `homes: ${c.homes ?? 0} created; key files: ${c.keyFilesWritten ?? 0} written, ${c.keyFilesRemoved ?? 0} removed${time}`
  );
}

type Action = Plan["actions"][number];

export interface HumanOptions {
  /** ANSI colour on the markers: only for a terminal, and never with NO_COLOR set. */
  color?: boolean;
  /** The summary line alone. */
  summaryOnly?: boolean;
}

/** Colour for a report written to stdout: a terminal, and NO_COLOR unset or empty (no-color.org). */
export function wantColor(): boolean {
  return process.stdout.isTTY === true && !process.env.NO_COLOR;
}

const COLOURS: Record<string, string> = { "+": "32", "~": "33", "!": "31", refused: "31", rejected: "31", warning: "33" };
const paint = (mark: string, color: boolean) => (color && COLOURS[mark] ? `\x1b[${COLOURS[mark]}m${mark}\x1b[0m` : mark);
const MARK: Record<Action["kind"], string> = { "create-user": "+", "update-user": "~", "disable-user": "!", "create-group": "+", "update-group": "~" };

/** One action as one line: a creation lists what the account gets, an update what changes. */
export function actionLine(a: Action): string {
  const what = a.kind.endsWith("user") ? "user" : "group";
  const note =
    a.kind === "disable-user" ? " (no longer in the table: disabled)" : a.kind === "create-group" && a.privateGroup ? " (user private group)" : a.kind === "update-group" && a.local ? " (local group: membership merge)" : "";
  const parts: string[] = [];
  for (const c of a.changes) {
    if (c.field === "Password") parts.push("password changed");
    else if (a.kind.startsWith("create")) {
      if (c.to !== "(none)") parts.push(c.field === "password" ? `password ${c.to}` : `${c.field} ${terminalSafe(c.to)}`);
    } else parts.push(`${c.field}: ${terminalSafe(c.from)} → ${terminalSafe(c.to)}`);
  }
  return `${what} ${a.name}${note}${parts.length ? `: ${parts.join("; ")}` : ""}`;
}

/** A key file written or removed, with the fingerprints that came and went. */
export function keyLine(k: KeyChange, removed: boolean): string {
  // A key file a user filled with thousands of keys is not a thousand-word line: 20 of each, and a count.
  const some = (list: string[], mark: string) => [...list.slice(0, 20).map((f) => `${mark}${f}`), ...(list.length > 20 ? [`(${mark}${list.length - 20} more)`] : [])];
  const diff = [...some(k.added, "+"), ...some(k.removed, "-")];
  const what = removed ? `${k.file} removed (no keys left)` : k.file;
  return `keys ${k.name}: ${what}${diff.length ? `: ${diff.join(" ")}` : ": rewritten (same keys; owner, mode or layout fixed)"}`;
}

const byName = (x: string, y: string) => (x < y ? -1 : x > y ? 1 : 0);

/**
 * One line per change, with its marker (+ create, ~ update, ! disable), sorted by name: a name's
 * user, group, home and key file together. Escaped; coloured only when asked.
 */
export function* changeLines(r: SyncResult, color = false): Generator<string> {
  // Values are escaped where they are printed (names, fields); any other control character too.
  // The colour goes on after, so that no value can bring its own.
  const line = (mark: string, text: string) => `${paint(mark, color)} ${escapeControls(text)}`;
  const actions = r.plan.actions;
  const rank = (a: Action) => (a.kind.endsWith("user") ? 0 : 1);
  const order = actions.map((_, i) => i).sort((i, j) => byName(actions[i]!.name, actions[j]!.name) || rank(actions[i]!) - rank(actions[j]!));
  const homes = [...r.homes.homesCreated].sort(byName);
  const homeOf = homes.length > 0 ? new Map(r.plan.accepted.map((u) => [u.name, u.home])) : new Map<string, string>();
  const removedKeys = new Set(r.homes.keysRemoved);
  const keys = [...(r.homes.keyChanges ?? [])].sort((x, y) => byName(x.name, y.name));
  let ai = 0;
  let hi = 0;
  let ki = 0;
  while (ai < order.length || hi < homes.length || ki < keys.length) {
    const an = ai < order.length ? actions[order[ai]!]!.name : undefined;
    const hn = hi < homes.length ? homes[hi] : undefined;
    const kn = ki < keys.length ? keys[ki]!.name : undefined;
    const next = [an, hn, kn].filter((x): x is string => x !== undefined).sort(byName)[0]!;
    if (an === next) {
      const a = actions[order[ai++]!]!;
      yield line(MARK[a.kind], actionLine(a));
    } else if (hn === next) {
      hi++;
      const home = homeOf.get(next);
      yield line("+", home ? `home ${next}: ${home}` : `home ${next}`);
    } else {
      const k = keys[ki++]!;
      yield line("~", keyLine(k, removedKeys.has(k.name)));
    }
  }
}

/** The human report, in pieces of up to 1,000 lines: a first pass of 100,000 users is never one string. */
export function* humanChunks(r: SyncResult, o: HumanOptions = {}): Generator<string> {
  let out: string[] = [];
  const color = o.color === true;
  const flush = function* () {
    if (out.length > 0) yield `${out.join("\n")}\n`;
    out = [];
  };
  const put = (mark: string, text: string) => out.push(`${paint(mark, color)} ${escapeControls(text)}`);
  if (!o.summaryOnly) {
    for (const l of changeLines(r, color)) {
      out.push(l);
      if (out.length >= 1000) yield* flush();
    }
    for (const x of r.plan.refusals) put("refused:", rejectionMessage(x));
    for (const x of r.rejections) put("rejected:", rejectionMessage(x));
    for (const x of r.warnings) put("warning:", rejectionMessage(x));
    for (const n of r.plan.notices) out.push(escapeControls(`notice: ${n}`));
    for (const i of r.localIssues) out.push(escapeControls(`local: ${i.file}:${i.line}: ${i.message}`));
  }
  if (r.plan.brake) out.push(escapeControls(r.plan.brake));
  const head = r.dryRun ? "dry run, nothing written; a pass would do: " : r.plan.brake ? "not applied: " : "";
  out.push(`${head}${summaryLine(r.counts, r.timings.totalMs)}`);
  if (!o.summaryOnly && !r.dryRun && !r.plan.brake) out.push(escapeControls(r.written.length ? `wrote ${r.written.join(", ")}` : "no file changed"));
  if (!o.summaryOnly && r.detection?.mode === "version") out.push(escapeControls(detectionLine(r.detection, r.readUnits)));
  yield* flush();
}

const KIND_WORDS: Record<PassKind, string> = {
  scan: "scanned the tables in full",
  snapshot: "no scan: planned from the scan snapshot",
  steady: "no scan: nothing changed since the last pass that changed nothing",
};

/** One line on how the pass learnt what the tables hold (change_detection "version"). */
export function detectionLine(d: PassDetection, readUnits?: number): string {
  const version = d.version === null ? "version unknown" : `version ${d.version}`;
  const units = readUnits === undefined ? "" : `; ${readUnits} read units`;
  return `tables: ${version}; ${KIND_WORDS[d.kind]} (${d.reason}); last full scan ${d.lastFullScan ?? "never"}${units}`;
}

export function formatHuman(r: SyncResult, o: HumanOptions = {}): string {
  return [...humanChunks(r, o)].join("");
}

// JSON.stringify of a string, skipped when nothing in it needs escaping (quote, backslash,
// control characters, lone surrogates): the report's strings almost never do.
const NEEDS_ESCAPE = /["\\\u0000-\u001f\ud800-\udfff]/;
const q = (s: string): string => (NEEDS_ESCAPE.test(s) ? JSON.stringify(s) : `"${s}"`);


/** A change's old or new value in JSON: null where the text report says "(none)" or "(missing)". */
const NO_VALUE = new Set(["(none)", "(missing)"]);
export const jsonValue = (s: string): string | null => (NO_VALUE.has(s) ? null : s);
const qv = (s: string): string => (NO_VALUE.has(s) ? "null" : q(s));

/**
 * A record's name as the JSON reports give it: the name itself (the text reports print it
 * JSON-quoted, with control characters escaped, cut at 64 characters), not its quoted form.
 */
export function plainName(n: string): string {
  if (!n.startsWith('"')) return n;
  try {
    const v = JSON.parse(n) as unknown;
    return typeof v === "string" ? v : n;
  } catch {
    return n;
  }
}

/** A rejection, refusal or warning for a JSON report: its name plain. */
export const problemJson = <T extends { name: string }>(x: T): T => ({ ...x, name: plainName(x.name) });

/** Timings in whole milliseconds. */
export function roundedTimings<T extends Record<string, number>>(t: T): T {
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(t)) out[k] = Math.round(v);
  return out as T;
}

/**
 * One action as `JSON.stringify({kind, name, privateGroup | localGroup, changes}, null, 2)` writes it, indented four more spaces (its
 * depth in the document): built from its known shape, with JSON.stringify escaping the strings
 * only. A first pass of 100,000 users writes a million of these lines.
 */
export function actionJson(a: SyncResult["plan"]["actions"][number]): string {
  let out = `    {\n      "kind": ${q(a.kind)},\n      "name": ${q(a.name)},\n`;
  if (a.kind === "create-group") out += `      "privateGroup": ${a.privateGroup},\n`;
  else if (a.kind === "update-group") out += `      "localGroup": ${a.local},\n`;
  const changes = a.changes;
  if (changes.length === 0) return `${out}      "changes": []\n    }`;
  out += `      "changes": [\n`;
  for (let i = 0; i < changes.length; i++) {
    const c = changes[i]!;
    out += `        {\n          "field": ${q(c.field)},\n          "from": ${qv(c.from)},\n          "to": ${qv(c.to)}\n        }${i + 1 < changes.length ? ",\n" : "\n"}`;
  }
  return `${out}      ]\n    }`;
}

/**
 * The --json document, byte for byte what JSON.stringify(document, null, 2) writes, in pieces:
 * the actions are stringified 500 at a time and indented to their depth in the document.
 */
export function* jsonChunks(r: SyncResult): Generator<string> {
  const MARK = "\u0000actions\u0000";
  const doc = JSON.stringify(
    {
      version: JSON_VERSION,
      dryRun: r.dryRun,
      actions: MARK,
      homes: r.homes,
      refusals: r.plan.refusals.map(problemJson),
      rejections: r.rejections.map(problemJson),
      warnings: r.warnings.map(problemJson),
      notices: r.plan.notices,
      localIssues: r.localIssues,
      brake: r.plan.brake,
      summary: r.counts,
      written: r.written,
      timings: roundedTimings(r.timings),
      readUnits: r.readUnits,
      detection: r.detection,
      exitCode: r.exitCode,
    },
    null,
    2,
  );
  const [head, tail] = doc.split(JSON.stringify(MARK)) as [string, string];
  const actions = r.plan.actions;
  if (actions.length === 0) {
    yield `${head}[]${tail}\n`;
    return;
  }
  yield `${head}[\n`;
  for (let i = 0; i < actions.length; i += 500) {
    const part = actions.slice(i, i + 500).map(actionJson);
    yield part.join(",\n") + (i + 500 < actions.length ? ",\n" : "\n");
  }
  yield `  ]${tail}\n`;
}

export function toJson(r: SyncResult): string {
  return [...jsonChunks(r)].join("");
}

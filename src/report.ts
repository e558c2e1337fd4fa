// What a pass tells the operator: the plan, grouped by user and group, and one summary line.
import type { Counts } from "./state.ts";
import { escapeControls, terminalSafe } from "./escape.ts";
import { rejectionMessage } from "./model.ts";
import type { SyncResult } from "./sync.ts";

const VERBS: Record<string, [string, string]> = {
  "create-user": ["user", "create"],
  "update-user": ["user", "update"],
  "disable-user": ["user", "disable (no longer in the table)"],
  "create-group": ["group", "create"],
  "update-group": ["group", "update"],
};

export function summaryLine(c: Counts): string {
  return `${c.created} created, ${c.updated} updated, ${c.unchanged} unchanged, ${c.refused} refused, ${c.rejected} rejected`;
}

/** The human report, in pieces of up to 1,000 actions: a first pass of 100,000 users is never one string. */
export function* humanChunks(r: SyncResult): Generator<string> {
  let out: string[] = [];
  const flush = function* () {
    // Values are escaped where they are printed (names, fields); any other control character too.
    if (out.length > 0) yield `${out.map(escapeControls).join("\n")}\n`;
    out = [];
  };
  const would = r.dryRun ? "would " : "";
  let n = 0;
  for (const a of r.plan.actions) {
    const [what, verb] = VERBS[a.kind]!;
    const extra = a.kind === "create-group" && a.privateGroup ? " (user private group)" : a.kind === "update-group" && a.local ? " (local group: membership merge)" : "";
    out.push(`${what} ${a.name}: ${would}${verb}${extra}`);
    for (const c of a.changes) {
      out.push(c.field === "Password" ? "  password changed" : `  ${c.field}: ${terminalSafe(c.from)} → ${terminalSafe(c.to)}`);
    }
    if (++n % 1000 === 0) yield* flush();
  }
  for (const n of r.homes.homesCreated) out.push(`user ${n}: ${would}create home directory`);
  for (const n of r.homes.keysWritten) out.push(`user ${n}: ${would}write SSH keys`);
  for (const n of r.homes.keysRemoved) out.push(`user ${n}: ${would}remove SSH key file (no keys left)`);
  for (const x of r.plan.refusals) out.push(`refused: ${rejectionMessage(x)}`);
  for (const x of r.rejections) out.push(`rejected: ${rejectionMessage(x)}`);
  for (const x of r.warnings) out.push(`warning: ${rejectionMessage(x)}`);
  for (const n of r.plan.notices) out.push(`notice: ${n}`);
  for (const i of r.localIssues) out.push(`local: ${i.file}:${i.line}: ${i.message}`);
  if (r.plan.brake) out.push(r.plan.brake);
  const head = r.dryRun ? "dry run, nothing written: " : r.plan.brake ? "not applied: " : "";
  out.push(`${head}${summaryLine(r.counts)}`);
  if (!r.dryRun && !r.plan.brake) out.push(r.written.length ? `wrote ${r.written.join(", ")}` : "no file changed");
  yield* flush();
}

export function formatHuman(r: SyncResult): string {
  return [...humanChunks(r)].join("");
}

// JSON.stringify of a string, skipped when nothing in it needs escaping (quote, backslash,
// control characters, lone surrogates): the report's strings almost never do.
const NEEDS_ESCAPE = /["\\\u0000-\u001f\ud800-\udfff]/;
const q = (s: string): string => (NEEDS_ESCAPE.test(s) ? JSON.stringify(s) : `"${s}"`);

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
    out += `        {\n          "field": ${q(c.field)},\n          "from": ${q(c.from)},\n          "to": ${q(c.to)}\n        }${i + 1 < changes.length ? ",\n" : "\n"}`;
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
      dryRun: r.dryRun,
      actions: MARK,
      homes: r.homes,
      refusals: r.plan.refusals,
      rejections: r.rejections,
      warnings: r.warnings,
      notices: r.plan.notices,
      localIssues: r.localIssues,
      brake: r.plan.brake,
      summary: r.counts,
      written: r.written,
      timings: r.timings,
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

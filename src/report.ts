// What a pass tells the operator: the plan, grouped by user and group, and one summary line.
import type { Counts } from "./state.ts";
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
    if (out.length > 0) yield `${out.join("\n")}\n`;
    out = [];
  };
  const would = r.dryRun ? "would " : "";
  let n = 0;
  for (const a of r.plan.actions) {
    const [what, verb] = VERBS[a.kind]!;
    const extra = a.kind === "create-group" && a.privateGroup ? " (user private group)" : a.kind === "update-group" && a.local ? " (local group: membership merge)" : "";
    out.push(`${what} ${a.name}: ${would}${verb}${extra}`);
    for (const c of a.changes) {
      out.push(c.field === "Password" ? "  password changed" : `  ${c.field}: ${c.from} → ${c.to}`);
    }
    if (++n % 1000 === 0) yield* flush();
  }
  for (const n of r.homes.homesCreated) out.push(`user ${n}: ${would}create home directory`);
  for (const n of r.homes.keysWritten) out.push(`user ${n}: ${would}write SSH keys`);
  for (const n of r.homes.keysRemoved) out.push(`user ${n}: ${would}remove SSH key file (no keys left)`);
  for (const x of r.plan.refusals) out.push(`refused: ${rejectionMessage(x)}`);
  for (const x of r.rejections) out.push(`rejected: ${rejectionMessage(x)}`);
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

function jsonAction(a: SyncResult["plan"]["actions"][number]) {
  return {
    kind: a.kind,
    name: a.name,
    ...(a.kind === "create-group" ? { privateGroup: a.privateGroup } : {}),
    ...(a.kind === "update-group" ? { localGroup: a.local } : {}),
    changes: a.changes,
  };
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
    const part = actions.slice(i, i + 500).map((a) => `    ${JSON.stringify(jsonAction(a), null, 2).replaceAll("\n", "\n    ")}`);
    yield part.join(",\n") + (i + 500 < actions.length ? ",\n" : "\n");
  }
  yield `  ]${tail}\n`;
}

export function toJson(r: SyncResult): string {
  return [...jsonChunks(r)].join("");
}

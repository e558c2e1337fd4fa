// ddum import --from-local: a host's own accounts (those in the managed ID ranges) become records,
// with their shadow fields and SSH keys, so that a fleet can move onto ddum without retyping it.
// Each record is checked as every host will check it; one that would collide is refused alone.
import { EXIT } from "../errors.ts";
import { LocalDb } from "../localdb/index.ts";
import { escapeControls } from "../escape.ts";
import { isPasswordField, printable, sshKeyProblem } from "../model.ts";
import type { Root } from "../paths.ts";
import type { RawItem } from "../source/dynamo.ts";
import { authorizedKeys } from "../sshkeys.ts";
import type { Admin } from "./commands.ts";
import { groupProblems, normalizeKeys, setAttr, shadowAttrs, userProblems } from "./records.ts";
import { othersThan } from "./store.ts";

interface Candidate {
  kind: "user" | "group";
  name: string;
  id: number;
  item: RawItem;
  problems: string[];
}

/** A count with its noun: 1 user, 2 users. */
const n = (count: number, word: string) => `${count} ${count === 1 ? word : `${word}s`}`;

/** The records a host's files describe, each with its problems (empty when it can be written). */
export function localCandidates(admin: Admin, root: Root): { candidates: Candidate[]; skipped: { users: number; groups: number }; warnings: string[] } {
  const db = LocalDb.load(root);
  const { uidMin, uidMax, gidMin, gidMax } = admin.ranges;
  const out: Candidate[] = [];
  const skipped = { users: 0, groups: 0 };
  const warnings = db.issues.map((i) => `${i.file}:${i.line}: ${i.message} (not imported)`);
  for (const g of db.group.entries()) {
    const [name, , gidText, members] = g as string[];
    const gid = Number(gidText);
    if (!(gid >= gidMin && gid <= gidMax)) {
      skipped.groups++;
      continue;
    }
    const item: RawItem = { Name: { S: name! } };
    setAttr(item, "GID", gid);
    const gs = db.gshadow.get(name!);
    const problems: string[] = [];
    const members_ = (members ?? "").split(",").filter((m) => m !== "");
    setAttr(item, "Members", members_);
    if (gs) {
      setAttr(item, "Administrators", (gs[2] ?? "").split(",").filter((m) => m !== ""));
      const pw = gs[1] ?? "";
      if (pw !== "" && isPasswordField(pw)) setAttr(item, "Password", pw);
    }
    problems.push(...groupProblems(admin.groups, item, admin.ranges));
    out.push({ kind: "group", name: name!, id: gid, item, problems });
  }
  for (const p of db.passwd.entries()) {
    const [name, pwField, uidText, gidText, gecos, home, shell] = p as string[];
    const uid = Number(uidText);
    if (!(uid >= uidMin && uid <= uidMax)) {
      skipped.users++;
      continue;
    }
    const item: RawItem = { Name: { S: name! } };
    setAttr(item, "UID", uid);
    setAttr(item, "GID", Number(gidText));
    setAttr(item, "RealName", gecos ?? "");
    setAttr(item, "Home", home);
    setAttr(item, "Shell", shell);
    const problems: string[] = [];
    const at = `${admin.users} record ${printable(name)}`;
    const sp = db.shadow.get(name!);
    if (pwField !== "x") {
      if (pwField === "") problems.push(`${at}: Password: the local account has an empty password (no password needed); lock it or set one first`);
      else if (isPasswordField(pwField!)) setAttr(item, "Password", pwField);
    } else if (sp) {
      if (sp[1] === "") problems.push(`${at}: Password: the local account has an empty password (no password needed); lock it or set one first`);
      shadowAttrs(item, sp);
    }
    let keys: string[] = [];
    try {
      keys = authorizedKeys(root, admin.config.ssh_key_location, name!);
    } catch (e) {
      problems.push(`${at}: SSHPublicKeys: ${(e as Error).message}`);
    }
    const bad = keys.map((k) => [k, sshKeyProblem(k)] as const).filter(([, why]) => why !== null);
    for (const [k, why] of bad) problems.push(`${at}: SSHPublicKeys: local key ${printable(k)} ${why}`);
    if (bad.length === 0) setAttr(item, "SSHPublicKeys", normalizeKeys(keys));
    if (problems.length === 0) problems.push(...userProblems(admin.users, item, admin.ranges));
    out.push({ kind: "user", name: name!, id: uid, item, problems });
  }
  return { candidates: out, skipped, warnings };
}

export async function importLocal(admin: Admin, root: Root, dryRun: boolean): Promise<number> {
  const { candidates, skipped, warnings } = localCandidates(admin, root);
  for (const w of warnings) admin.log.warn(w);
  const ids = await admin.store.ids();
  const say = (s: string) => process.stdout.write(`${s.split("\n").map(escapeControls).join("\n")}\n`);
  let refused = 0;
  const counts = { user: 0, group: 0 };
  for (const c of candidates) {
    const table = c.kind === "user" ? admin.users : admin.groups;
    const idKind = c.kind === "user" ? "uid" : "gid";
    const names = c.kind === "user" ? ids.userNames : ids.groupNames;
    const use = ids[idKind];
    const problems = [...c.problems];
    if (names.has(c.name)) problems.push(`${table} record ${printable(c.name)}: Name: already in the table; not overwritten`);
    const holders = othersThan(use.held.get(c.id), c.name);
    if (holders.length > 0) problems.push(`${table} record ${printable(c.name)}: ${idKind.toUpperCase()}: ${c.id} is already used by ${holders.map((h) => printable(h)).join(", ")}`);
    const owner = use.reserved.get(c.id);
    if (owner !== undefined && owner !== c.name) problems.push(`${table} record ${printable(c.name)}: ${idKind.toUpperCase()}: ${c.id} is reserved for ${printable(owner)}`);
    if (problems.length === 0 && !dryRun) {
      if (!(await admin.store.reserve(idKind, c.id, c.name))) {
        problems.push(`${table} record ${printable(c.name)}: ${idKind.toUpperCase()}: ${c.id} was reserved by someone else meanwhile`);
      } else if (!(await admin.store.putNew(table, c.item))) {
        await admin.store.release(idKind, c.id, c.name);
        problems.push(`${table} record ${printable(c.name)}: Name: was added by someone else meanwhile; not overwritten`);
      }
    }
    if (problems.length > 0) {
      refused++;
      say(`refused ${c.kind} ${printable(c.name)}:\n  ${problems.join("\n  ")}`);
      continue;
    }
    counts[c.kind]++;
    say(`${dryRun ? "would import" : "imported"} ${c.kind} ${c.name} (${idKind.toUpperCase()} ${c.id})`);
  }
  say(
    `${dryRun ? "would import" : "imported"} ${n(counts.user, "user")} into ${admin.users} and ${n(counts.group, "group")} into ${admin.groups}; ` +
      `${refused} refused; ${n(skipped.users, "user")} and ${n(skipped.groups, "group")} outside the managed ranges left out` +
      (dryRun ? " (dry run: nothing was written)" : ""),
  );
  return refused > 0 ? EXIT.partial : EXIT.ok;
}

// ddum user … / ddum group …: write the tables with the same rules every host reads them with.
// A record is checked whole before anything is written; IDs are reserved before they are used.
import { readFileSync } from "node:fs";
import type { Config } from "../config.ts";
import { type Scheme, hashPassword } from "../crypt.ts";
import { DdumError, EXIT, errorMessage, JSON_VERSION } from "../errors.ts";
import type { Logger } from "../log.ts";
import { escapeControls, terminalSafe } from "../escape.ts";
import { daysToIsoDate, decodeGroupItem, decodeUserItem, isOwnItem, isoDateToDays, printable } from "../model.ts";
import { Root } from "../paths.ts";
import type { RawItem } from "../source/dynamo.ts";
import { policyFor, todayDays } from "../sync.ts";
import { readNewPassword } from "./password.ts";
import {
  describePassword,
  fingerprint,
  firstFree,
  groupProblems,
  keysMatching,
  numAttr,
  parseCount,
  parseDate,
  parseId,
  parseKeys,
  type Ranges,
  setAttr,
  setAttrValues,
  strAttr,
  userProblems,
} from "./records.ts";
import { gidTaken, type Ids, othersThan, Store, uidTaken } from "./store.ts";

export interface AdminOptions {
  root?: string;
  today?: number;
}

export interface UserOptions {
  uid?: unknown;
  gid?: unknown;
  realName?: unknown;
  home?: unknown;
  shell?: unknown;
  passwordStdin?: boolean;
  sshKey?: unknown;
  hash?: unknown;
  expire?: unknown;
  minDays?: unknown;
  maxDays?: unknown;
  warnDays?: unknown;
  inactiveDays?: unknown;
  json?: boolean;
  on?: unknown;
  file?: unknown;
  stdin?: boolean;
}

export interface GroupOptions {
  gid?: unknown;
  member?: unknown;
  admin?: unknown;
  json?: boolean;
}

const list = (v: unknown): string[] => (v === undefined ? [] : (Array.isArray(v) ? v : [v]).map(String));
const one = (v: unknown, option: string): string | undefined => {
  if (v === undefined) return undefined;
  if (Array.isArray(v)) throw new DdumError(`${option} was given more than once`, EXIT.usage);
  if (v === true || v === false) throw new DdumError(`${option} needs a value`, EXIT.usage);
  return String(v);
};
/** Option parsing errors are usage errors (exit 2). */
function usage<T>(f: () => T): T {
  try {
    return f();
  } catch (e) {
    if (e instanceof DdumError) throw e;
    throw new DdumError(errorMessage(e), EXIT.usage);
  }
}

function scheme(v: unknown): Scheme {
  const s = one(v, "--hash") ?? "yescrypt";
  if (s === "yescrypt" || s === "sha512") return s;
  throw new DdumError(`--hash: expected "yescrypt" or "sha512", got ${printable(s)}`, EXIT.usage);
}

/** The admin's context: the tables' client, the managed ranges, today. */
export class Admin {
  readonly ranges: Ranges;
  readonly today: number;
  private constructor(
    readonly store: Store,
    readonly config: Config,
    readonly log: Logger,
    opts: AdminOptions,
  ) {
    const p = policyFor(config, new Root(opts.root ?? "/"), false);
    this.ranges = { uidMin: p.uidMin, uidMax: p.uidMax, gidMin: p.gidMin, gidMax: p.gidMax };
    this.today = opts.today ?? todayDays();
  }

  static async open(config: Config, log: Logger, opts: AdminOptions = {}): Promise<Admin> {
    const { makeClient } = await import("../source/dynamo.ts");
    return new Admin(new Store(await makeClient(config), config), config, log, opts);
  }

  close(): void {
    this.store.client.destroy();
  }

  get users(): string {
    return this.config.user_table_name;
  }
  get groups(): string {
    return this.config.group_table_name;
  }

  /**
   * When a command has ended: if it wrote either table, raise the tables' version (#version in the
   * Users table) once, so that hosts which detect changes by it see this one. Returns the command's
   * exit code, or 1 when the bump failed: what the command wrote stands, and the message says so.
   */
  async raiseVersion(code: number): Promise<number> {
    if (this.store.writes === 0) return code;
    const { bumpVersion } = await import("../source/version.ts");
    try {
      const v = await bumpVersion(this.store.client, this.users);
      this.log.debug(`#version in table ${this.users} is now ${v}`);
      return code;
    } catch (e) {
      this.log.error(
        `what this command wrote to the tables stands, but the tables' version was not raised: ${errorMessage(e)}. Hosts with change_detection "version" do not see the change until their next full scan, or until "ddum tables bump" succeeds`,
      );
      return code === EXIT.ok || code === EXIT.partial ? EXIT.failed : code;
    }
  }

  private out(line: string): void {
    // Values are escaped where they are printed; this catches any other control character.
    process.stdout.write(`${line.split("\n").map(escapeControls).join("\n")}\n`);
  }

  private refuseIf(problems: string[], what: string): void {
    if (problems.length > 0) {
      throw new DdumError(`${what} refused, nothing was written:\n  ${problems.join("\n  ")}`, EXIT.usage);
    }
  }

  /** Every record of a table, without ddum's own items (ID reservations, #version). */
  private async records(table: string): Promise<RawItem[]> {
    return (await this.store.scan(table)).filter((i) => !isOwnItem(strAttr(i, "Name") ?? ""));
  }

  private validity(problems: string[]): number {
    this.out(problems.length === 0 ? "Valid: yes" : `Valid: NO, every host refuses it:\n  ${problems.join("\n  ")}`);
    return EXIT.ok;
  }

  // ---- IDs ------------------------------------------------------------------------------------

  /**
   * Reserve a UID (and, for a user private group, the same number as GID) for owner: the given
   * one, or the first free one above the managed minimum. Reservations are conditional writes,
   * so two admins racing for one ID cannot both get it: the loser moves to the next.
   */
  async allocateUid(ids: Ids, owner: string, want: number | "auto", privateGid: boolean): Promise<number> {
    const others = (names: string[] | undefined) => othersThan(names, owner);
    const { uidMin, uidMax } = this.ranges;
    // auto starts at auto_id_min (never below the managed range): not at 1000, the default user's ID on stock cloud images.
    let after = Math.max(uidMin, this.config.auto_id_min) - 1;
    for (;;) {
      let id: number;
      if (want === "auto") {
        // A retired ID is not given out again, not even to the name that left it.
        const free = firstFree(uidMin, uidMax, (n) => uidTaken(ids, owner, n) || ids.uid.retired.has(n) || (privateGid && (gidTaken(ids, owner, n) || ids.gid.retired.has(n))), after);
        if (free === null) throw new DdumError(`no free UID left from auto_id_min (${this.config.auto_id_min}) in the managed range ${uidMin}-${uidMax}; give --uid, or lower auto_id_min`);
        id = free;
      } else {
        id = want;
        const holders = others(ids.uid.held.get(id));
        if (holders.length > 0) throw new DdumError(`UID ${id} is already used by ${holders.map((n) => printable(n)).join(", ")} in table ${this.users}`);
        const reservedFor = ids.uid.reserved.get(id);
        if (reservedFor !== undefined && reservedFor !== owner) {
          throw new DdumError(`UID ${id} is ${ids.uid.retired.has(id) ? "retired" : "reserved"} for ${printable(reservedFor)} (item #uid:${id} in table ${this.users}); ddum never gives a used ID to another name`);
        }
        if (privateGid && gidTaken(ids, owner, id)) {
          const by = [...others(ids.gid.held.get(id)), ...others(ids.primary.get(id)), ...(ids.gid.reserved.has(id) ? [`reservation #gid:${id}`] : [])];
          throw new DdumError(`GID ${id} (the user private group) is already used by ${by.join(", ")}; give --gid`);
        }
      }
      if (await this.store.reserve("uid", id, owner)) {
        if (!privateGid || (await this.store.reserve("gid", id, owner))) return id;
        await this.store.release("uid", id, owner);
      }
      if (want !== "auto") throw new DdumError(`UID ${id} was reserved by another admin meanwhile (item #uid:${id} in table ${this.users})`);
      after = id;
    }
  }

  async allocateGid(ids: Ids, owner: string, want: number | "auto"): Promise<number> {
    const others = (names: string[] | undefined) => othersThan(names, owner);
    const taken = (id: number) => gidTaken(ids, owner, id);
    const { gidMin, gidMax } = this.ranges;
    let after = Math.max(gidMin, this.config.auto_id_min) - 1;
    for (;;) {
      let id: number;
      if (want === "auto") {
        const free = firstFree(gidMin, gidMax, (n) => taken(n) || ids.gid.retired.has(n), after);
        if (free === null) throw new DdumError(`no free GID left from auto_id_min (${this.config.auto_id_min}) in the managed range ${gidMin}-${gidMax}; give --gid, or lower auto_id_min`);
        id = free;
      } else {
        id = want;
        if (taken(id)) {
          const by = [
            ...others(ids.gid.held.get(id)).map((g) => `group ${printable(g)} (table ${this.groups})`),
            ...others(ids.primary.get(id)).map((u) => `user ${printable(u)} as primary GID (table ${this.users})`),
          ];
          throw new DdumError(`GID ${id} is already used by ${by.length ? by.join(", ") : `reservation #gid:${id} (table ${this.groups})`}`);
        }
      }
      if (await this.store.reserve("gid", id, owner)) return id;
      if (want !== "auto") throw new DdumError(`GID ${id} was reserved by another admin meanwhile (item #gid:${id} in table ${this.groups})`);
      after = id;
    }
  }

  // ---- users ------------------------------------------------------------------------------------

  /** Apply the field options shared by add and set to a Users record. */
  private applyUserOptions(item: RawItem, o: UserOptions): void {
    usage(() => {
      const text = (opt: string, field: string, v: unknown) => {
        const s = one(v, opt);
        if (s !== undefined) setAttr(item, field, s);
      };
      text("--real-name", "RealName", o.realName);
      text("--home", "Home", o.home);
      text("--shell", "Shell", o.shell);
      const expire = one(o.expire, "--expire");
      if (expire !== undefined) setAttr(item, "AccountExpireDate", expire === "never" ? null : parseDate(expire, this.today, "--expire"));
      for (const [opt, field, v] of [
        ["--min-days", "PasswordAgeMinDays", o.minDays],
        ["--max-days", "PasswordAgeMaxDays", o.maxDays],
        ["--warn-days", "PasswordWarnDays", o.warnDays],
        ["--inactive-days", "PasswordDisableDays", o.inactiveDays],
      ] as const) {
        const s = one(v, opt);
        if (s !== undefined) setAttr(item, field, parseCount(s, opt));
      }
      const gid = one(o.gid, "--gid");
      if (gid !== undefined) {
        const g = parseId(gid, "--gid");
        if (g === "auto") throw new Error(`--gid: "auto" is for groups; a user's GID is a group's GID, or left out for a user private group`);
        setAttr(item, "GID", g);
      }
    });
    const keys = list(o.sshKey);
    if (keys.length > 0) {
      const read = keys.map((f) => this.readKeySource(f));
      setAttr(item, "SSHPublicKeys", [...setAttrValues(item, "SSHPublicKeys"), ...read.flat()]);
    }
  }

  /** Key files are read once per run (stdin cannot be read twice when an update is retried). */
  private readonly keyCache = new Map<string, string[]>();
  private readKeySource(f: string): string[] {
    const cached = this.keyCache.get(f);
    if (cached) return cached;
    const keys = usage(() => {
      let text: string;
      try {
        text = readFileSync(f === "-" ? 0 : f, "utf8");
      } catch (e) {
        throw new Error(`--ssh-key: cannot read ${f}: ${errorMessage(e)}`);
      }
      return parseKeys(text, f === "-" ? "stdin" : f);
    });
    this.keyCache.set(f, keys);
    return keys;
  }

  async userAdd(name: string, o: UserOptions): Promise<number> {
    const uidOpt = usage(() => parseId(one(o.uid, "--uid") ?? "auto", "--uid"));
    if (o.passwordStdin && list(o.sshKey).includes("-")) {
      throw new DdumError("--password-stdin and --ssh-key - cannot both read stdin", EXIT.usage);
    }
    const item: RawItem = { Name: { S: name } };
    setAttr(item, "UID", uidOpt === "auto" ? this.ranges.uidMin : uidOpt);
    setAttr(item, "RealName", "");
    setAttr(item, "Home", `/home/${name}`);
    setAttr(item, "Shell", "/bin/bash");
    this.applyUserOptions(item, o);
    const privateGid = item.GID === undefined;
    if (privateGid) setAttr(item, "GID", numAttr(item, "UID")!);
    const hashWith = scheme(o.hash);
    // The whole record is checked before the password is read or anything is written.
    this.refuseIf(userProblems(this.users, item, this.ranges), `user ${printable(name)}`);
    if (o.passwordStdin) {
      const pw = readNewPassword(name, true);
      try {
        setAttr(item, "Password", hashPassword(pw, hashWith));
      } finally {
        pw.fill(0);
      }
      setAttr(item, "LastPasswordChangeDate", daysToIsoDate(this.today));
    }

    const ids = await this.store.ids();
    if (ids.userNames.has(name)) throw new DdumError(`user ${printable(name)} already exists in table ${this.users}; use ddum user set`);
    const uid = await this.allocateUid(ids, name, uidOpt, privateGid);
    setAttr(item, "UID", uid);
    if (privateGid) setAttr(item, "GID", uid);
    const problems = userProblems(this.users, item, this.ranges);
    if (problems.length > 0 || !(await this.store.putNew(this.users, item))) {
      await this.store.release("uid", uid, name);
      if (privateGid) await this.store.release("gid", uid, name);
      this.refuseIf(problems, `user ${printable(name)}`);
      throw new DdumError(`user ${printable(name)} already exists in table ${this.users} (added by someone else meanwhile)`);
    }
    const gid = numAttr(item, "GID")!;
    this.out(`added user ${name} to table ${this.users}: UID ${uid}, GID ${gid}${privateGid ? " (user private group)" : ""}`);
    return EXIT.ok;
  }

  /** Change a user record: the transform edits it, the whole result is checked, then written. */
  private async changeUser(name: string, edit: (item: RawItem) => void | Promise<void>): Promise<string[]> {
    const { changed } = await this.store.update(this.users, name, "user", async (item) => {
      await edit(item);
      this.refuseIf(userProblems(this.users, item, this.ranges), `change to user ${printable(name)}`);
      return item;
    });
    this.out(changed.length === 0 ? `user ${name}: nothing to change` : `user ${name}: changed ${changed.join(", ")}`);
    return changed;
  }

  async userSet(name: string, o: UserOptions): Promise<number> {
    const uidOpt = o.uid === undefined ? undefined : usage(() => parseId(one(o.uid, "--uid"), "--uid"));
    let newUid: number | undefined;
    let oldUid: number | undefined;
    let privateGid = false;
    if (uidOpt !== undefined) {
      const current = await this.store.get(this.users, name);
      if (!current) throw new DdumError(`no user ${JSON.stringify(name)} in table ${this.users}`);
      oldUid = numAttr(current, "UID");
      // A user whose GID followed the UID (user private group) keeps following it.
      privateGid = o.gid === undefined && numAttr(current, "GID") === oldUid;
      if (uidOpt !== oldUid) {
        const probe = structuredClone(current);
        this.applyUserOptions(probe, o);
        setAttr(probe, "UID", uidOpt === "auto" ? this.ranges.uidMin : uidOpt);
        if (privateGid) setAttr(probe, "GID", numAttr(probe, "UID")!);
        this.refuseIf(userProblems(this.users, probe, this.ranges), `change to user ${printable(name)}`);
        newUid = await this.allocateUid(await this.store.ids(), name, uidOpt, privateGid);
      }
    }
    let changed: string[];
    try {
      changed = await this.changeUser(name, (item) => {
        this.applyUserOptions(item, o);
        if (newUid !== undefined) {
          setAttr(item, "UID", newUid);
          if (privateGid) setAttr(item, "GID", newUid);
        }
      });
    } catch (e) {
      if (newUid !== undefined) {
        await this.store.release("uid", newUid, name);
        if (privateGid) await this.store.release("gid", newUid, name);
      }
      throw e;
    }
    if (newUid !== undefined && oldUid !== undefined && newUid !== oldUid) {
      await this.store.retire("uid", oldUid, name);
      if (privateGid) await this.store.retire("gid", oldUid, name);
      this.log.warn(
        `UID ${oldUid} of ${name} is retired, never to be given out again; hosts where ${name} exists refuse to renumber the account (its files keep UID ${oldUid}): renumber it there by hand (usermod -u), or set --uid ${oldUid} back`,
      );
    } else if (changed.includes("GID")) {
      this.log.warn(`hosts where ${name} exists refuse to change its primary GID (its files keep the old group): change it there by hand (usermod -g), or set the old --gid back`);
    }
    return EXIT.ok;
  }

  async userDisable(name: string, o: UserOptions): Promise<number> {
    const on = usage(() => parseDate(one(o.on, "--on") ?? "today", this.today, "--on"));
    await this.changeUser(name, (item) => {
      setAttr(item, "AccountExpireDate", on);
    });
    const days = isoDateToDays(on)!;
    this.out(days <= this.today ? `user ${name} is disabled on every host at its next pass` : `user ${name} will be disabled on ${on}`);
    return EXIT.ok;
  }

  async userEnable(name: string): Promise<number> {
    await this.changeUser(name, (item) => {
      setAttr(item, "AccountExpireDate", null);
    });
    return EXIT.ok;
  }

  async userPasswd(name: string, o: UserOptions): Promise<number> {
    const hashWith = scheme(o.hash);
    if (!(await this.store.get(this.users, name))) throw new DdumError(`no user ${JSON.stringify(name)} in table ${this.users}`);
    const pw = readNewPassword(name, o.stdin === true || o.passwordStdin === true);
    let hash: string;
    try {
      hash = hashPassword(pw, hashWith);
    } finally {
      pw.fill(0);
    }
    await this.changeUser(name, (item) => {
      setAttr(item, "Password", hash);
      setAttr(item, "LastPasswordChangeDate", daysToIsoDate(this.today));
    });
    return EXIT.ok;
  }

  async userKey(action: "add" | "remove", name: string, args: string[], o: UserOptions): Promise<number> {
    if (action === "add") {
      const keys = usage(() => [
        ...args.flatMap((k, i) => parseKeys(k, `key ${i + 1}`)),
        ...[...list(o.sshKey), ...list(o.file)].flatMap((f) => this.readKeySource(f)),
      ]);
      if (keys.length === 0) throw new DdumError("give the keys to add as arguments, or --ssh-key FILE|-", EXIT.usage);
      await this.changeUser(name, (item) => {
        setAttr(item, "SSHPublicKeys", [...setAttrValues(item, "SSHPublicKeys"), ...keys]);
      });
      return EXIT.ok;
    }
    if (args.length === 0) throw new DdumError("give the keys to remove: the key, its base64 data, or its SHA256: fingerprint", EXIT.usage);
    await this.changeUser(name, (item) => {
      const stored = setAttrValues(item, "SSHPublicKeys");
      const gone = new Set<string>();
      for (const a of args) {
        const m = keysMatching(stored, a);
        if (m.length === 0) throw new DdumError(`user ${name} has no key matching ${printable(a)}; nothing was changed`);
        for (const k of m) gone.add(k);
      }
      setAttr(item, "SSHPublicKeys", stored.filter((k) => !gone.has(k)));
    });
    return EXIT.ok;
  }

  async userShow(name: string, o: UserOptions): Promise<number> {
    const item = await this.store.get(this.users, name);
    if (!item || isOwnItem(name)) throw new DdumError(`no user ${JSON.stringify(name)} in table ${this.users}`);
    const problems = userProblems(this.users, item, this.ranges);
    const keys = setAttrValues(item, "SSHPublicKeys");
    // What hosts apply the record despite (a default, a key left out, a legacy hash).
    const decoded = decodeUserItem(this.users)(item);
    const warnings = (decoded.kind === "reserved" ? [] : (decoded.warnings ?? [])).map((w) => `${w.field}: ${w.reason}`);
    if (o.json) return printRecordJson(item, problems, warnings);
    const row = (k: string, v: string) => this.out(`${`${k}:`.padEnd(24)}${terminalSafe(v)}`);
    row("Name", name);
    for (const f of ["UID", "GID", "RealName", "Home", "Shell"]) row(f, String(Object.values(item[f] ?? { S: "(missing)" })[0]));
    row("Password", describePassword(strAttr(item, "Password")));
    for (const f of ["LastPasswordChangeDate", "PasswordAgeMinDays", "PasswordAgeMaxDays", "PasswordWarnDays", "PasswordDisableDays"]) {
      if (item[f]) row(f, String(Object.values(item[f]!)[0]));
    }
    const exp = strAttr(item, "AccountExpireDate");
    const expDays = exp === undefined ? null : isoDateToDays(exp);
    row("AccountExpireDate", exp === undefined ? "(none): enabled" : `${exp}${expDays !== null && expDays <= this.today ? ": disabled" : ""}`);
    row("SSHPublicKeys", String(keys.length));
    for (const k of keys) this.out(`  ${terminalSafe(k.split(" ")[0]!)} ${fingerprint(k)} ${terminalSafe(k.split(" ").slice(2).join(" "))}`.trimEnd());
    const code = this.validity(problems);
    if (warnings.length > 0) this.out(`Warnings (hosts apply it anyway):\n  ${warnings.map(terminalSafe).join("\n  ")}`);
    return code;
  }

  async userList(o: UserOptions): Promise<number> {
    const items = await this.records(this.users);
    const decode = decodeUserItem(this.users);
    const rows = items
      .map((item) => {
        const d = decode(item);
        const name = strAttr(item, "Name") ?? "(no Name)";
        const exp = strAttr(item, "AccountExpireDate");
        const expDays = exp === undefined ? null : isoDateToDays(exp);
        const state =
          d.kind !== "ok"
            ? `rejected: ${d.kind === "rejected" ? d.rejections.map((r) => r.field).join(",") : "Name"}`
            : expDays !== null && expDays <= this.today
              ? `disabled since ${exp}`
              : exp !== undefined
                ? `enabled until ${exp}`
                : "enabled";
        return {
          name,
          uid: numAttr(item, "UID") ?? null,
          gid: numAttr(item, "GID") ?? null,
          realName: strAttr(item, "RealName") ?? "",
          keys: setAttrValues(item, "SSHPublicKeys").length,
          state,
        };
      })
      .sort(byName);
    if (o.json) {
      process.stdout.write(`${JSON.stringify({ version: JSON_VERSION, users: rows }, null, 2)}\n`);
      return EXIT.ok;
    }
    const table = [["NAME", "UID", "GID", "KEYS", "STATE", "REALNAME"], ...rows.map((r) => [printableCell(r.name), String(r.uid ?? "-"), String(r.gid ?? "-"), String(r.keys), r.state, printableCell(r.realName)])];
    printTable(table);
    return EXIT.ok;
  }

  // ---- groups -----------------------------------------------------------------------------------

  private async checkMembers(names: string[]): Promise<void> {
    if (names.length === 0) return;
    const missing: string[] = [];
    for (const n of names) if (!(await this.store.get(this.users, n))) missing.push(n);
    if (missing.length > 0) {
      this.log.warn(`not in table ${this.users} (hosts add them only where they exist locally): ${missing.join(", ")}`);
    }
  }

  async groupAdd(name: string, o: GroupOptions): Promise<number> {
    const gidOpt = usage(() => parseId(one(o.gid, "--gid") ?? "auto", "--gid"));
    const item: RawItem = { Name: { S: name } };
    setAttr(item, "GID", gidOpt === "auto" ? this.ranges.gidMin : gidOpt);
    setAttr(item, "Members", list(o.member));
    setAttr(item, "Administrators", list(o.admin));
    this.refuseIf(groupProblems(this.groups, item, this.ranges), `group ${printable(name)}`);
    await this.checkMembers([...list(o.member), ...list(o.admin)]);
    const ids = await this.store.ids();
    if (ids.groupNames.has(name)) throw new DdumError(`group ${printable(name)} already exists in table ${this.groups}; use ddum group set`);
    const gid = await this.allocateGid(ids, name, gidOpt);
    setAttr(item, "GID", gid);
    if (!(await this.store.putNew(this.groups, item))) {
      await this.store.release("gid", gid, name);
      throw new DdumError(`group ${printable(name)} already exists in table ${this.groups} (added by someone else meanwhile)`);
    }
    this.out(`added group ${name} to table ${this.groups}: GID ${gid}`);
    return EXIT.ok;
  }

  private async changeGroup(name: string, edit: (item: RawItem) => void): Promise<string[]> {
    const { changed } = await this.store.update(this.groups, name, "group", (item) => {
      edit(item);
      this.refuseIf(groupProblems(this.groups, item, this.ranges), `change to group ${printable(name)}`);
      return item;
    });
    this.out(changed.length === 0 ? `group ${name}: nothing to change` : `group ${name}: changed ${changed.join(", ")}`);
    return changed;
  }

  async groupSet(name: string, o: GroupOptions): Promise<number> {
    const gidOpt = o.gid === undefined ? undefined : usage(() => parseId(one(o.gid, "--gid"), "--gid"));
    if (gidOpt === undefined && o.member === undefined && o.admin === undefined) {
      throw new DdumError("nothing to set: give --gid, --member or --admin", EXIT.usage);
    }
    const current = await this.store.get(this.groups, name);
    if (!current || isOwnItem(name)) throw new DdumError(`no group ${JSON.stringify(name)} in table ${this.groups}`);
    const oldGid = numAttr(current, "GID");
    let newGid: number | undefined;
    if (gidOpt !== undefined && gidOpt !== oldGid) {
      const probe = structuredClone(current);
      setAttr(probe, "GID", gidOpt === "auto" ? this.ranges.gidMin : gidOpt);
      this.refuseIf(groupProblems(this.groups, probe, this.ranges), `change to group ${printable(name)}`);
      newGid = await this.allocateGid(await this.store.ids(), name, gidOpt);
    }
    try {
      await this.changeGroup(name, (item) => {
        if (newGid !== undefined) setAttr(item, "GID", newGid);
        if (o.member !== undefined) setAttr(item, "Members", list(o.member).filter((m) => m !== ""));
        if (o.admin !== undefined) setAttr(item, "Administrators", list(o.admin).filter((m) => m !== ""));
      });
    } catch (e) {
      if (newGid !== undefined) await this.store.release("gid", newGid, name);
      throw e;
    }
    if (newGid !== undefined && oldGid !== undefined && newGid !== oldGid) await this.store.retire("gid", oldGid, name);
    return EXIT.ok;
  }

  async groupList(field: "Members" | "Administrators", action: "add" | "remove", group: string, users: string[]): Promise<number> {
    if (users.length === 0) throw new DdumError("give at least one user name", EXIT.usage);
    if (action === "add") await this.checkMembers(users);
    await this.changeGroup(group, (item) => {
      const cur = new Set(setAttrValues(item, field));
      for (const u of users) {
        if (action === "add") cur.add(u);
        else if (!cur.delete(u)) this.log.warn(`${u} is not in ${field} of group ${group}`);
      }
      setAttr(item, field, [...cur]);
    });
    return EXIT.ok;
  }

  async groupShow(name: string, o: GroupOptions): Promise<number> {
    const item = await this.store.get(this.groups, name);
    if (!item || isOwnItem(name)) throw new DdumError(`no group ${JSON.stringify(name)} in table ${this.groups}`);
    const problems = groupProblems(this.groups, item, this.ranges);
    if (o.json) return printRecordJson(item, problems);
    const row = (k: string, v: string) => this.out(`${`${k}:`.padEnd(16)}${terminalSafe(v)}`);
    row("Name", name);
    row("GID", String(Object.values(item.GID ?? { S: "(missing)" })[0]));
    if (item.Password) row("Password", describePassword(strAttr(item, "Password")));
    row("Administrators", setAttrValues(item, "Administrators").map(terminalSafe).join(", "));
    row("Members", setAttrValues(item, "Members").map(terminalSafe).join(", "));
    return this.validity(problems);
  }

  async groupListAll(o: GroupOptions): Promise<number> {
    const items = await this.records(this.groups);
    const decode = decodeGroupItem(this.groups);
    const rows = items
      .map((item) => {
        const d = decode(item);
        return {
          name: strAttr(item, "Name") ?? "(no Name)",
          gid: numAttr(item, "GID") ?? null,
          members: setAttrValues(item, "Members"),
          administrators: setAttrValues(item, "Administrators"),
          state: d.kind === "ok" ? "valid" : `rejected: ${d.kind === "rejected" ? d.rejections.map((r) => r.field).join(",") : "Name"}`,
        };
      })
      .sort(byName);
    if (o.json) {
      process.stdout.write(`${JSON.stringify({ version: JSON_VERSION, groups: rows }, null, 2)}\n`);
      return EXIT.ok;
    }
    printTable([["NAME", "GID", "STATE", "MEMBERS"], ...rows.map((r) => [printableCell(r.name), String(r.gid ?? "-"), r.state, r.members.map(printableCell).join(",")])]);
    return EXIT.ok;
  }
}

const byName = (a: { name: string }, b: { name: string }) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);

/** A record as JSON: attribute values unwrapped, the password hash replaced by its kind. */
function printRecordJson(item: RawItem, problems: string[], warnings: string[] = []): number {
  const plain: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(item)) plain[k] = k === "Password" ? describePassword(strAttr(item, "Password")) : Object.values(v)[0];
  process.stdout.write(`${JSON.stringify({ version: JSON_VERSION, record: plain, valid: problems.length === 0, problems, ...(warnings.length > 0 ? { warnings } : {}) }, null, 2)}\n`);
  return EXIT.ok;
}

/** A cell for a terminal table: control characters escaped so no record can forge output. */
function printableCell(s: string): string {
  return terminalSafe(s);
}

function printTable(rows: string[][]): void {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  for (const r of rows) process.stdout.write(`${r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join("  ")}\n`);
}

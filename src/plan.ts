// The pure heart of a pass: desired state × current state × policy × today → actions and
// refusals. No I/O here; apply carries the plan out, --dry-run prints it.
import type { AccountTable, IdOwners } from "./localdb/index.ts";
import { splitList } from "./localdb/index.ts";
import { daysToIsoDate, type Group, printable, type Rejection, type User } from "./model.ts";

export interface Policy {
  uidMin: number;
  uidMax: number;
  gidMin: number;
  gidMax: number;
  adoptUsers: readonly string[];
  adoptGroups: readonly string[];
  /** Local groups (not ddum's) the host lets records add members to and users have as primary group. */
  mergeGroups?: readonly string[];
  missingUsers: "keep" | "disable";
  maxDisablePercent: number;
  force: boolean;
}

/** What ddum remembers between passes (ROOT/var/lib/ddum/state.json, the ownership part). */
export interface Ownership {
  /** Users and groups ddum created or adopted. */
  users: string[];
  groups: string[];
  /** Per group: the members and administrators ddum itself put there. */
  members: Record<string, string[]>;
  admins: Record<string, string[]>;
}

export const EMPTY_OWNERSHIP: Ownership = { users: [], groups: [], members: {}, admins: {} };

export interface Current {
  passwd: AccountTable;
  shadow: AccountTable;
  group: AccountTable;
  gshadow: AccountTable;
}

export interface Change {
  field: string;
  from: string;
  to: string;
}

export type Action =
  | { kind: "create-user"; name: string; passwd: string[]; shadow: string[]; changes: Change[] }
  | { kind: "update-user"; name: string; passwd: string[]; shadow: string[]; changes: Change[]; addShadow: boolean }
  | { kind: "disable-user"; name: string; shadow: string[]; changes: Change[] }
  | { kind: "create-group"; name: string; group: string[]; gshadow: string[]; changes: Change[]; privateGroup: boolean }
  | { kind: "update-group"; name: string; group: string[]; gshadow: string[] | null; changes: Change[]; local: boolean };

export interface Plan {
  actions: Action[];
  /** Records that are valid but may not be applied here (ownership, ranges, collisions). */
  refusals: Rejection[];
  /** Things an operator should know that refuse nothing (unknown members, missing groups). */
  notices: string[];
  unchanged: number;
  ownership: Ownership;
  /** Set when the safety brake stops the pass. */
  brake: string | null;
  /** Users whose account this plan takes from enabled to disabled. */
  disables: number;
  /** Table users that are ddum's and exist locally once the plan is applied. */
  accepted: User[];
  /** Whether ownership differs from what the pass started with (else it is that very object). */
  ownershipChanged: boolean;
}

const SECRET = "(hidden)";
const opt = (n: number | null) => (n === null ? "" : String(n));
const dateOrEmpty = (d: string) => (d === "" ? "(none)" : /^-?[0-9]+$/.test(d) ? daysToIsoDate(Number(d)) : d);

/**
 * Whether pam_unix's account check (acct_mgmt) lets the account in on day `today` without more
 * ado, read from its shadow fields as pam_unix reads them (an empty field is -1, "none"). Not when
 * the account has expired (its expiry day is today or earlier, day 0 included: "Your account has
 * expired"), nor when its password has expired or must be changed first (last change day 0, or
 * more than PasswordAgeMaxDays ago): such an account cannot log in until someone sets a password,
 * which a user who logs in with a key and has none cannot do. Checked against pamtester in the
 * system tests. No shadow entry: nothing to refuse.
 */
export function pamAccepts(shadow: readonly string[] | undefined, today: number): boolean {
  if (shadow === undefined) return true;
  const day = (i: number) => {
    const f = shadow[i] ?? "";
    return f === "" ? -1 : Number(f);
  };
  if ((shadow[7] ?? "") !== "" && !(today < day(7))) return false;
  const last = day(2);
  if (last === 0) return false;
  if (today < last) return true;
  const max = day(4);
  return max === -1 || !(today - last > max);
}

function isEnabled(shadow: readonly string[] | undefined, today: number): boolean {
  return pamAccepts(shadow, today);
}

/**
 * Group names that grant privileges on common distributions (sudoers' %admin, %sudo and %wheel,
 * the docker, lxd and libvirt sockets, raw disks, the journal, shadow): a record may not create
 * one the host does not have, unless the host consents in merge_groups. Such a group made ahead of
 * the package that would own it would hand its members root when the package is installed.
 */
const PRIVILEGED_GROUPS = new Set(["root", "wheel", "sudo", "admin", "adm", "staff", "docker", "lxd", "libvirt", "kvm", "disk", "shadow", "systemd-journal", "sys"]);

/**
 * Days ahead the brake looks: an expiry or ageing change that locks an account out within this
 * many days counts as a disable now, so that dating every expiry tomorrow cannot pass under it.
 */
export const BRAKE_HORIZON_DAYS = 7;

/** Whether a change of an account's shadow line locks it out now or within the brake's horizon. */
function disablesSoon(before: readonly string[] | undefined, after: readonly string[], today: number): boolean {
  if (!isEnabled(before, today)) return false;
  if (!isEnabled(after, today)) return true;
  const later = today + BRAKE_HORIZON_DAYS;
  return isEnabled(before, later) && !isEnabled(after, later);
}

/** isEnabled for a shadow line's text. */
function expiresAfter(text: string | undefined, today: number): boolean {
  return text === undefined || pamAccepts(text.split(":"), today);
}

/** The passwd line a record makes, for AccountTable.lineReads. */
function passwdText(u: User): string {
  return `${u.name}:x:${u.uid}:${u.gid}:${u.realName}:${u.home}:${u.shell}`;
}
/** The shadow line a record makes, up to its last field (reserved: not the table's, any value). */
function shadowHead(u: User): string {
  return `${u.name}:${u.password ?? "!"}:${opt(u.lastChange)}:${opt(u.minDays)}:${opt(u.maxDays)}:${opt(u.warnDays)}:${opt(u.inactiveDays)}:${opt(u.expire)}:`;
}
/** Both of a record's lines are already in the files, exactly. */
function linesInPlace(cur: Current, u: User): boolean {
  return cur.passwd.lineReads(u.name, passwdText(u)) && cur.shadow.lineReads(u.name, shadowHead(u), true);
}

/**
 * Users in UID order, sorted through one Float64Array of uid * 2^20 + input index: a native numeric
 * sort instead of a JS comparator called 1.7 million times at 100,000 users. UIDs are unique after
 * decoding; if two were equal they would keep their input order.
 */
export function byUid(users: readonly User[]): User[] {
  if (users.length >= 1 << 20) return [...users].sort((a, b) => a.uid - b.uid);
  const keys = new Float64Array(users.length);
  for (let i = 0; i < users.length; i++) keys[i] = users[i]!.uid * 1048576 + i;
  keys.sort();
  const out = new Array<User>(users.length);
  for (let i = 0; i < keys.length; i++) out[i] = users[keys[i]! % 1048576]!;
  return out;
}

function userLines(u: User, reserved: string): { passwd: string[]; shadow: string[] } {
  return {
    passwd: [u.name, "x", String(u.uid), String(u.gid), u.realName, u.home, u.shell],
    shadow: [
      u.name,
      // A user without a Password gets a locked field, never an empty (password-less) one.
      u.password ?? "!",
      opt(u.lastChange),
      opt(u.minDays),
      opt(u.maxDays),
      opt(u.warnDays),
      opt(u.inactiveDays),
      opt(u.expire),
      reserved,
    ],
  };
}

const PASSWD_FIELDS = ["Name", "", "UID", "GID", "RealName", "Home", "Shell"];
const SHADOW_FIELDS = [
  "Name",
  "Password",
  "LastPasswordChangeDate",
  "PasswordAgeMinDays",
  "PasswordAgeMaxDays",
  "PasswordWarnDays",
  "PasswordDisableDays",
  "AccountExpireDate",
  "",
];
const DATE_FIELDS = new Set([2, 7]);

function diffFields(names: string[], from: readonly string[] | undefined, to: string[], secret: Set<number>): Change[] {
  const out: Change[] = [];
  for (let i = 1; i < to.length; i++) {
    const a = from?.[i] ?? "";
    const b = to[i]!;
    if (a === b || names[i] === "") continue;
    if (secret.has(i)) out.push({ field: names[i]!, from: SECRET, to: SECRET });
    else if (names === SHADOW_FIELDS && DATE_FIELDS.has(i)) out.push({ field: names[i]!, from: dateOrEmpty(a), to: dateOrEmpty(b) });
    else out.push({ field: names[i]!, from: a === "" ? "(none)" : a, to: b === "" ? "(none)" : b });
  }
  return out;
}

/** Members after a pass: keep what others put there, drop what ddum put there and the table no longer lists, add the table's. */
function mergeList(current: string[], ours: string[], wanted: string[]): string[] {
  // The usual case: nothing ddum put there changed, and it is all there.
  if (ours.length === wanted.length && ours.every((m, i) => m === wanted[i]) && wanted.every((m) => current.includes(m))) {
    return current;
  }
  const want = new Set(wanted);
  const dropped = new Set(ours.filter((m) => !want.has(m)));
  const kept = current.filter((m) => !dropped.has(m));
  const have = new Set(kept);
  for (const m of wanted) if (!have.has(m)) kept.push(m);
  return kept;
}

/** The names of wanted that ddum adds or added: those it had already, and those not there before it. */
function addedByUs(wanted: string[], ours: readonly string[] | undefined, current: readonly string[]): string[] {
  if (current.length === 0) return wanted;
  const had = new Set(ours ?? []);
  const there = new Set(current);
  const out = wanted.filter((m) => had.has(m) || !there.has(m));
  return out.length === wanted.length ? wanted : out;
}

function sameList(a: readonly string[] | undefined, b: readonly string[]): boolean {
  return a !== undefined && a.length === b.length && a.every((x, i) => x === b[i]);
}

export interface Desired {
  users: User[];
  groups: Group[];
  /** Every Name present in the Users table, valid or not: a rejected record has not vanished. */
  userNames: Set<string>;
  /** The same for the Groups table; without it, no group counts as gone from the table. */
  groupNames?: Set<string>;
  userTable: string;
  groupTable: string;
}

/**
 * Why a user may not have u.gid as primary group, or null. A local group may be a user's primary
 * group only when ddum owns it, the host consents (merge_groups, or adopt_groups), or it is the
 * private group (same name) of a local user ddum already manages: else a record could join any
 * local admin group in range, and read what that group may read.
 */
function primaryGidProblem(u: User, localGids: IdOwners, ownedGroups: ReadonlySet<string>, consented: ReadonlySet<string>, managedLocal: boolean): string | null {
  if (managedLocal && localGids.owns(u.gid, u.name)) return null;
  const holder = localGids.get(u.gid);
  if (holder === undefined || ownedGroups.has(holder) || consented.has(holder)) return null;
  return `${u.gid} is the GID of the local group ${printable(holder)}, which ddum does not manage; a user may have it as primary group only if the host lists it in merge_groups`;
}

/**
 * The users a plan will find exactly as their records want them, recognised one at a time while
 * the scan delivers them, against the local files and ownership as read at the first page. Only
 * valid for that very `cur` and `prev`: a pass that reads the files again drops it. A user it
 * holds is one the plan's loop would have counted unchanged after every check it makes (same
 * ranges, ownership, parse state, UID holder, primary group's consent, both lines in place); the
 * plan then only counts it.
 */
export class InPlaceUsers {
  readonly users = new Set<User>();
  /** Users held that are in place through adopt_users only, not owned yet: the plan owns them. */
  readonly adopted = new Set<User>();
  private ownedSet: Set<string> | null = null;
  private readonly adopt: Set<string>;
  private readonly localUids: IdOwners;
  private readonly localGids: IdOwners;
  private readonly ownedGroups: Set<string>;
  private readonly consented: Set<string>;

  constructor(
    private readonly cur: Current,
    readonly prev: Ownership,
    private readonly policy: Policy,
  ) {
    this.adopt = new Set(policy.adoptUsers);
    this.localUids = cur.passwd.idOwners(2);
    this.localGids = cur.group.idOwners(2);
    this.ownedGroups = new Set(prev.groups);
    this.consented = new Set([...(policy.mergeGroups ?? []), ...policy.adoptGroups]);
  }

  /** The ownership set the plan starts from, made when first asked for; the plan adds to it. */
  get owned(): Set<string> {
    this.ownedSet ??= new Set(this.prev.users);
    return this.ownedSet;
  }

  /**
   * A user known to pass check, from the page memo (see pagememo.ts); owned already, as the pass
   * that recorded its page owned every user on it, and what ddum owns is part of the memo's digest.
   */
  add(u: User): boolean {
    // The memo's digest does not cover /etc/group: the primary group's consent is checked again.
    if (primaryGidProblem(u, this.localGids, this.ownedGroups, this.consented, true) !== null) return false;
    this.users.add(u);
    return true;
  }

  /** Whether u is in place; if so, it is held. */
  check(u: User): boolean {
    const p = this.policy;
    const cur = this.cur;
    if (u.uid === 0 || u.uid < p.uidMin || u.uid > p.uidMax || u.gid === 0 || u.gid < p.gidMin || u.gid > p.gidMax) return false;
    // Both lines exactly as the record makes them (so the user is local) come first: the
    // cheapest test that fails for a user with something to do.
    if (!linesInPlace(cur, u)) return false;
    const owned = this.owned.has(u.name);
    if (!owned && !(this.adopt.size > 0 && this.adopt.has(u.name))) return false;
    if ((cur.passwd.unparsedNames.size > 0 && cur.passwd.unparsedNames.has(u.name)) || (cur.shadow.unparsedNames.size > 0 && cur.shadow.unparsedNames.has(u.name))) return false;
    if (!this.localUids.owns(u.uid, u.name)) return false;
    if (primaryGidProblem(u, this.localGids, this.ownedGroups, this.consented, true) !== null) return false;
    this.users.add(u);
    if (!owned) this.adopted.add(u);
    return true;
  }
}

export function plan(desired: Desired, cur: Current, prev: Ownership, policy: Policy, today: number, seen?: InPlaceUsers): Plan {
  if (seen && seen.prev !== prev) throw new Error("plan: the users seen in place were checked against another ownership");
  const actions: Action[] = [];
  const refusals: Rejection[] = [];
  const notices: string[] = [];
  let unchanged = 0;
  // Made when first needed: a pass whose users were all seen in place may never need it.
  let ownedSet: Set<string> | null = null;
  const ownedUsers = () => {
    ownedSet ??= seen ? seen.owned : new Set(prev.users);
    return ownedSet;
  };
  const ownedGroups = new Set(prev.groups);
  // Ownership is rebuilt (sorted, written) only when something in it changes.
  let ownershipChanged = false;
  const ownUser = (n: string) => {
    const owned = ownedUsers();
    if (owned.has(n)) return;
    owned.add(n);
    ownershipChanged = true;
  };
  const ownGroup = (n: string) => {
    if (ownedGroups.has(n)) return;
    ownedGroups.add(n);
    ownershipChanged = true;
  };
  const adoptUsers = new Set(policy.adoptUsers);
  const adoptGroups = new Set(policy.adoptGroups);
  const mergeGroups = new Set(policy.mergeGroups ?? []);
  const consented = new Set([...mergeGroups, ...adoptGroups]);
  // Copied when a list first changes: most passes change none (10,000 groups are not free to copy).
  let members = prev.members;
  let admins = prev.admins;

  // Who holds each ID locally, plus what this plan gives out.
  const localUids = cur.passwd.idOwners(2);
  const localGids = cur.group.idOwners(2);
  const newUids = new Map<number, string>();
  const newGids = new Map<number, string>();
  const uidOwner = { get: (id: number) => localUids.get(id) ?? newUids.get(id), set: (id: number, n: string) => newUids.set(id, n) };
  const gidOwner = {
    get: (id: number) => localGids.get(id) ?? newGids.get(id),
    has: (id: number) => localGids.has(id) || newGids.has(id),
    set: (id: number, n: string) => newGids.set(id, n),
  };

  const refuse = (table: string, name: string, field: string, reason: string) =>
    refusals.push({ table, name: printable(name), field, reason });

  // ---- users ----
  const present = new Set<string>(); // table users that exist locally after this plan
  const accepted: User[] = [];
  // Enabled managed users before this pass, for the brake; counted only when something is disabled.
  const countEnabledBefore = () => [...new Set(prev.users)].filter((n) => cur.passwd.has(n) && expiresAfter(cur.shadow.text(n), today)).length;
  let disables = 0;

  // Users seen in place during the scan are only counted (in scan order: nothing they do depends
  // on order, as they take no new ID); the others go through every check in UID order.
  let rest = desired.users;
  if (seen && seen.users.size > 0) {
    rest = [];
    for (const u of desired.users) {
      if (!seen.users.has(u)) {
        rest.push(u);
        continue;
      }
      accepted.push(u);
      if (seen.adopted.size > 0 && seen.adopted.has(u)) ownUser(u.name);
      unchanged++;
    }
  }
  for (const u of byUid(rest)) {
    const T = desired.userTable;
    if (u.uid === 0) {
      refuse(T, u.name, "UID", "UID 0 is root's; ddum never creates or changes a UID 0 account");
      continue;
    }
    if (u.uid < policy.uidMin || u.uid > policy.uidMax) {
      refuse(T, u.name, "UID", `${u.uid} is outside the managed range ${policy.uidMin}-${policy.uidMax}`);
      continue;
    }
    if (u.gid === 0) {
      refuse(T, u.name, "GID", "GID 0 is root's group; refused");
      continue;
    }
    if (u.gid < policy.gidMin || u.gid > policy.gidMax) {
      refuse(T, u.name, "GID", `${u.gid} is outside the managed range ${policy.gidMin}-${policy.gidMax}`);
      continue;
    }
    const local = cur.passwd.has(u.name);
    const owned = ownedUsers().has(u.name) || (local && adoptUsers.has(u.name));
    if (cur.passwd.unparsedNames.has(u.name) || cur.shadow.unparsedNames.has(u.name)) {
      refuse(T, u.name, "Name", "a local line for this name cannot be parsed; fix it by hand first");
      continue;
    }
    if (local && !owned) {
      refuse(T, u.name, "Name", `a local account "${u.name}" exists that ddum does not manage (list it in adopt_users to take it over)`);
      continue;
    }
    const holder = uidOwner.get(u.uid);
    if (holder !== undefined && holder !== u.name) {
      refuse(T, u.name, "UID", `${u.uid} already belongs to the local account "${holder}"`);
      continue;
    }
    if (!local && cur.shadow.has(u.name)) {
      refuse(T, u.name, "Name", "a shadow entry with this name exists without a passwd entry; fix it by hand first");
      continue;
    }
    const gidProblem = primaryGidProblem(u, localGids, ownedGroups, consented, local);
    if (gidProblem !== null) {
      refuse(T, u.name, "GID", gidProblem);
      continue;
    }
    // The common case at scale: both lines already read exactly as the record would write them,
    // compared in place in the files' text (the shadow "reserved" field is not the table's).
    const inPlace = local && linesInPlace(cur, u);
    if (local && !inPlace) {
      // Files the account owns (its home, key files, mail, anything it made) keep the old IDs:
      // renumbering would hand them to whoever is given the old ID next.
      const was = cur.passwd.get(u.name)!;
      const moved = was[2] !== String(u.uid) ? ["UID", was[2]!, u.uid] : was[3] !== String(u.gid) ? ["GID", was[3]!, u.gid] : null;
      if (moved) {
        refuse(T, u.name, String(moved[0]), `the record changes the ${moved[0]} of the existing account from ${moved[1]} to ${moved[2]}; ddum does not renumber an account (its files would keep the old ID); renumber it on the host by hand (usermod), or give the record its old ${moved[0]} back`);
        continue;
      }
    }
    present.add(u.name);
    accepted.push(u);
    if (inPlace) {
      ownUser(u.name);
      unchanged++;
      continue;
    }
    const shadowText = cur.shadow.text(u.name);
    const reserved = shadowText === undefined ? "" : shadowText.slice(shadowText.lastIndexOf(":") + 1);
    const lines = userLines(u, reserved);
    if (!local) {
      // What a new account gets follows from its lines: worked out when a report asks, one
      // action at a time, not held for 100,000 new users at once.
      const locked = u.password === null;
      actions.push({
        kind: "create-user",
        name: u.name,
        ...lines,
        get changes() {
          return [
            ...diffFields(PASSWD_FIELDS, undefined, lines.passwd, new Set()),
            { field: "password", from: "(none)", to: locked ? "locked (no Password in the record)" : "set" },
            ...diffFields(SHADOW_FIELDS, undefined, lines.shadow, new Set([1])).filter((c) => c.field !== "Password"),
          ];
        },
      });
      uidOwner.set(u.uid, u.name);
      ownUser(u.name);
      continue;
    }
    ownUser(u.name);
    const curPasswd = cur.passwd.get(u.name)!;
    const curShadow = cur.shadow.get(u.name);
    const changes = [
      ...diffFields(PASSWD_FIELDS, curPasswd, lines.passwd, new Set()),
      ...(curShadow
        ? diffFields(SHADOW_FIELDS, curShadow, lines.shadow, new Set([1]))
        : [{ field: "shadow entry", from: "(missing)", to: "(created)" }]),
    ];
    if (changes.length === 0) {
      unchanged++;
      continue;
    }
    if (disablesSoon(curShadow, lines.shadow, today)) disables++;
    actions.push({ kind: "update-user", name: u.name, ...lines, changes, addShadow: !curShadow });
  }

  // Managed users that are no longer in the table: kept as they are, or disabled by policy.
  if (policy.missingUsers === "disable") {
    for (const name of [...ownedUsers()].filter((n) => !desired.userNames.has(n)).sort()) {
      if (!cur.passwd.has(name)) continue;
      const sh = cur.shadow.get(name);
      if (!sh) continue;
      const next = [...sh];
      if (isEnabled(sh, today)) disables++;
      // Expired by its own date, not only by password ageing a local admin could reset.
      if (pamAccepts(["", "", "", "", "", "", "", sh[7]!], today)) next[7] = "1";
      if (!next[1]!.startsWith("!")) next[1] = `!${next[1]}`;
      const changes = diffFields(SHADOW_FIELDS, sh, next, new Set([1]));
      if (changes.length === 0) continue;
      actions.push({ kind: "disable-user", name, shadow: next, changes });
    }
  }

  let brake: string | null = null;
  if (disables > 0 && !policy.force) {
    const enabledBefore = countEnabledBefore();
    const allowed = policy.maxDisablePercent === 0 ? 0 : Math.max(1, Math.floor((enabledBefore * policy.maxDisablePercent) / 100));
    if (disables > allowed) {
      brake =
        `safety brake: this pass would disable ${disables} of ${enabledBefore} enabled managed users, ` +
        `more than max_disable_percent (${policy.maxDisablePercent}%) allows; nothing was applied. ` +
        "Check the tables, then run with --force to apply it.";
    }
  }

  // ---- groups ----
  const knownUser = (n: string) => present.has(n) || cur.passwd.has(n);
  // Only users ddum manages join groups through a record: never root or a system account.
  const managedSeen = new Map<string, boolean>();
  const managedUser = (n: string) => {
    if (present.has(n)) return true;
    if (!ownedUsers().has(n)) return false;
    let ok = managedSeen.get(n);
    if (ok === undefined) {
      const uid = Number(cur.passwd.get(n)?.[2] ?? 0);
      ok = uid !== 0 && uid >= policy.uidMin && uid <= policy.uidMax;
      managedSeen.set(n, ok);
    }
    return ok;
  };
  // A user's primary GID: the local account's (a pass never renumbers one), or its record's
  // (accepted or not: a refused user may be accepted later, and its private group is still its).
  let recordGids: Map<string, number> | null = null;
  const userGid = (n: string): number | undefined => {
    const pw = cur.passwd.get(n);
    if (pw) return Number(pw[3]);
    if (recordGids === null) {
      recordGids = new Map();
      const names = new Set(desired.groups.map((g) => g.name));
      for (const u of desired.users) if (names.has(u.name)) recordGids.set(u.name, u.gid);
    }
    return recordGids.get(n);
  };
  const tableGids = new Set<number>();
  let primaryGids: ReturnType<typeof cur.passwd.idOwners> | undefined;
  const wantedGroupNames = new Set(desired.groups.map((g) => g.name));
  // Local groups whose record the host no longer consents to: what ddum added there is taken back.
  const withdrawn = new Set<string>();
  // Records refused for naming a user's private group with another GID: the name stays the user's.
  const notPrivate = new Set<string>();

  for (const g of [...desired.groups].sort((a, b) => a.gid - b.gid || a.name.localeCompare(b.name))) {
    const T = desired.groupTable;
    if (g.gid === 0) {
      refuse(T, g.name, "GID", "GID 0 is root's group; refused");
      continue;
    }
    if (cur.group.unparsedNames.has(g.name) || cur.gshadow.unparsedNames.has(g.name)) {
      refuse(T, g.name, "Name", "a local line for this name cannot be parsed; fix it by hand first");
      continue;
    }
    const privateGid = userGid(g.name);
    if (privateGid !== undefined && privateGid !== g.gid) {
      refuse(T, g.name, "GID", `a group named after the user ${printable(g.name)} is that user's private group, with the user's GID ${privateGid}; the record's ${g.gid} is refused`);
      notPrivate.add(g.name);
      continue;
    }
    const local = cur.group.get(g.name);
    const owned = ownedGroups.has(g.name) || (local !== undefined && adoptGroups.has(g.name));
    const localGid = local ? Number(local[2]) : undefined;
    const merge = local !== undefined && !owned;
    if (merge && !mergeGroups.has(g.name)) {
      refuse(T, g.name, "Name", `${printable(g.name)} is a local group that ddum does not manage; a record may add members to it only if the host lists it in merge_groups`);
      withdrawn.add(g.name);
      continue;
    }
    if (merge && localGid !== g.gid) {
      refuse(T, g.name, "GID", `the local group "${g.name}" has GID ${localGid}, the record ${g.gid}; refused (ddum merges only a group with the same name and GID)`);
      continue;
    }
    if (!merge && (g.gid < policy.gidMin || g.gid > policy.gidMax)) {
      refuse(T, g.name, "GID", `${g.gid} is outside the managed range ${policy.gidMin}-${policy.gidMax}`);
      continue;
    }
    const gidHolder = gidOwner.get(g.gid);
    if (gidHolder !== undefined && gidHolder !== g.name) {
      refuse(T, g.name, "GID", `${g.gid} already belongs to the local group "${gidHolder}"`);
      continue;
    }
    if (!local && !mergeGroups.has(g.name) && PRIVILEGED_GROUPS.has(g.name)) {
      refuse(T, g.name, "Name", `a group named ${printable(g.name)} grants privileges on many systems (sudoers rules, sockets, devices); ddum creates it only if the host lists it in merge_groups`);
      continue;
    }
    if (gidHolder === undefined && !merge) {
      // A GID no group line holds may still be a local account's primary group: a record would
      // hand its files to the record's members.
      primaryGids ??= cur.passwd.idOwners(3);
      const holder = primaryGids.get(g.gid);
      if (holder !== undefined && holder !== g.name && !ownedUsers().has(holder) && !present.has(holder)) {
        refuse(T, g.name, "GID", `${g.gid} is the primary group of the local account "${holder}"`);
        continue;
      }
    }
    tableGids.add(g.gid);
    const curMembers = local ? splitList(local[3]!) : [];
    const gsh = cur.gshadow.get(g.name);
    const curAdmins = gsh ? splitList(gsh[2]!) : [];
    const wantMembers = g.members.filter(managedUser);
    // A group administrator (gshadow) may add any local account to the group with gpasswd: in a
    // local group the host consented to, that is more than a record may give, so none are set.
    const wantAdmins = merge ? [] : g.administrators.filter(managedUser);
    if (merge && g.administrators.length > 0) {
      notices.push(`${T} record ${printable(g.name)}: Administrators of a local group are not taken from the table (gpasswd would let them add any local account); left out`);
    }
    if (wantMembers.length < g.members.length || wantAdmins.length < g.administrators.length) {
      // In a consented local group, a name that is there already stays (ddum did not add it).
      const left = [
        ...g.members.filter((m) => !managedUser(m) && !(merge && curMembers.includes(m))),
        ...g.administrators.filter((m) => !managedUser(m) && !(merge && curAdmins.includes(m))),
      ];
      for (const m of new Set(left)) {
        notices.push(`${T} record ${printable(g.name)}: member ${printable(m)} ${knownUser(m) ? "is a local account ddum does not manage" : "is not a known user"}; left out`);
      }
    }
    const newMembers = mergeList(curMembers, prev.members[g.name] ?? [], wantMembers);
    const newAdmins = mergeList(curAdmins, prev.admins[g.name] ?? [], wantAdmins);
    // What ddum added (and so may take back): a name the record lists is ddum's only if ddum had
    // it already or it was not there before; one an admin put there by hand stays theirs.
    const ourMembers = addedByUs(wantMembers, prev.members[g.name], curMembers);
    const ourAdmins = addedByUs(wantAdmins, prev.admins[g.name], curAdmins);
    if (!sameList(prev.members[g.name], ourMembers)) {
      if (members === prev.members) members = { ...prev.members };
      members[g.name] = ourMembers;
      ownershipChanged = true;
    }
    if (!sameList(prev.admins[g.name], ourAdmins)) {
      if (admins === prev.admins) admins = { ...prev.admins };
      admins[g.name] = ourAdmins;
      ownershipChanged = true;
    }
    const groupLine = [g.name, local?.[1] ?? "x", String(g.gid), newMembers.join(",")];
    const gshadowLine = [g.name, merge ? (gsh?.[1] ?? "!") : (g.password ?? "!"), newAdmins.join(","), newMembers.join(",")];
    if (!local) {
      if (cur.gshadow.has(g.name)) {
        refuse(T, g.name, "Name", "a gshadow entry with this name exists without a group entry; fix it by hand first");
        continue;
      }
      ownGroup(g.name);
      gidOwner.set(g.gid, g.name);
      actions.push({
        kind: "create-group",
        name: g.name,
        group: groupLine,
        gshadow: gshadowLine,
        privateGroup: false,
        changes: [
          { field: "GID", from: "(none)", to: String(g.gid) },
          ...(newMembers.length ? [{ field: "Members", from: "(none)", to: newMembers.join(",") }] : []),
          ...(newAdmins.length ? [{ field: "Administrators", from: "(none)", to: newAdmins.join(",") }] : []),
        ],
      });
      continue;
    }
    if (owned) ownGroup(g.name);
    const changes: Change[] = [];
    if (local[2] !== groupLine[2]) changes.push({ field: "GID", from: local[2]!, to: groupLine[2]! });
    if (local[3] !== groupLine[3]) changes.push({ field: "Members", from: local[3] || "(none)", to: groupLine[3] || "(none)" });
    if (gsh && gsh[2] !== gshadowLine[2]) changes.push({ field: "Administrators", from: gsh[2] || "(none)", to: gshadowLine[2] || "(none)" });
    if (gsh && gsh[1] !== gshadowLine[1]) changes.push({ field: "Password", from: SECRET, to: SECRET });
    if (gsh && gsh[3] !== gshadowLine[3] && local[3] === groupLine[3]) changes.push({ field: "gshadow members", from: gsh[3] || "(none)", to: gshadowLine[3] || "(none)" });
    if (!gsh && cur.gshadow.existed) changes.push({ field: "gshadow entry", from: "(missing)", to: "(created)" });
    if (changes.length === 0) {
      unchanged++;
      continue;
    }
    actions.push({ kind: "update-group", name: g.name, group: groupLine, gshadow: cur.gshadow.existed ? gshadowLine : null, changes, local: merge });
  }

  // A group record gone from the table (or no longer consented to) is read as one without
  // Members and Administrators: ddum takes back what it added. The group itself stays.
  const groupNames = desired.groupNames ?? wantedGroupNames;
  // Groups ddum had added someone to, and those of them whose record left the table: the second
  // is braked like disables, so an emptied or wrong Groups table cannot strip every membership
  // (sudo included) across a fleet in one pass.
  let groupsFed = 0;
  let groupsLeft = 0;
  for (const name of new Set([...Object.keys(prev.members), ...Object.keys(prev.admins)])) {
    const ourMembers = prev.members[name] ?? [];
    const ourAdmins = prev.admins[name] ?? [];
    if (ourMembers.length === 0 && ourAdmins.length === 0) continue;
    groupsFed++;
    if (!withdrawn.has(name) && (wantedGroupNames.has(name) || groupNames.has(name))) continue;
    if (!withdrawn.has(name)) groupsLeft++;
    if (cur.group.unparsedNames.has(name) || cur.gshadow.unparsedNames.has(name)) continue;
    if (members === prev.members) members = { ...prev.members };
    if (admins === prev.admins) admins = { ...prev.admins };
    delete members[name];
    delete admins[name];
    ownershipChanged = true;
    const local = cur.group.get(name);
    if (!local) continue;
    const gsh = cur.gshadow.get(name);
    const newMembers = mergeList(splitList(local[3]!), ourMembers, []);
    const newAdmins = gsh ? mergeList(splitList(gsh[2]!), ourAdmins, []) : [];
    const groupLine = [name, local[1]!, local[2]!, newMembers.join(",")];
    const gshadowLine = [name, gsh?.[1] ?? "!", newAdmins.join(","), newMembers.join(",")];
    const changes: Change[] = [];
    if (local[3] !== groupLine[3]) changes.push({ field: "Members", from: local[3] || "(none)", to: groupLine[3] || "(none)" });
    if (gsh && gsh[2] !== gshadowLine[2]) changes.push({ field: "Administrators", from: gsh[2] || "(none)", to: gshadowLine[2] || "(none)" });
    if (gsh && gsh[3] !== gshadowLine[3] && local[3] === groupLine[3]) changes.push({ field: "gshadow members", from: gsh[3] || "(none)", to: gshadowLine[3] || "(none)" });
    if (changes.length === 0) continue;
    actions.push({ kind: "update-group", name, group: groupLine, gshadow: gsh ? gshadowLine : null, changes, local: !ownedGroups.has(name) });
  }

  if (groupsLeft > 0 && !policy.force) {
    const allowed = policy.maxDisablePercent === 0 ? 0 : Math.max(1, Math.floor((groupsFed * policy.maxDisablePercent) / 100));
    if (groupsLeft > allowed) {
      const stop =
        `safety brake: the records of ${groupsLeft} of the ${groupsFed} groups ddum added members to have left the Groups table, ` +
        `and taking those members back is more than max_disable_percent (${policy.maxDisablePercent}%) allows; nothing was applied. ` +
        "Check the tables, then run with --force to apply it.";
      brake = brake ? `${brake}\n${stop}` : stop;
    }
  }

  // A user whose primary GID has no group gets a user private group, so pwck stays clean.
  const madeHere = new Set<string>();
  // A name is taken by any local line for it, in group or gshadow, parsed or not: a stray
  // gshadow line must cost this one group, not fail the commit of every pass.
  const taken = (n: string) =>
    cur.group.has(n) ||
    cur.gshadow.has(n) ||
    cur.group.unparsedNames.has(n) ||
    cur.gshadow.unparsedNames.has(n) ||
    (wantedGroupNames.has(n) && !notPrivate.has(n)) ||
    madeHere.has(n);
  for (const a of actions) {
    if (a.kind !== "create-user" && a.kind !== "update-user") continue;
    const gid = Number(a.passwd[3]);
    if (gidOwner.has(gid) || tableGids.has(gid)) continue;
    if (taken(a.name)) {
      notices.push(`user ${printable(a.name)}: no group has GID ${gid}, and the name is taken by another group line, so none was made`);
      continue;
    }
    madeHere.add(a.name);
    gidOwner.set(gid, a.name);
    ownGroup(a.name);
    actions.push({
      kind: "create-group",
      name: a.name,
      group: [a.name, "x", String(gid), ""],
      gshadow: [a.name, "!", "", ""],
      privateGroup: true,
      get changes() {
        return [{ field: "GID", from: "(none)", to: String(gid) }];
      },
    });
  }

  return {
    actions,
    refusals,
    notices,
    unchanged,
    brake,
    disables,
    accepted,
    ownershipChanged,
    ownership: ownershipChanged ? { users: [...ownedUsers()].sort(), groups: [...ownedGroups].sort(), members, admins } : prev,
  };
}

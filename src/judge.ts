// The rule book: what a pass does with one record, decided from the record, the local files as
// read, what ddum owns and the policy. Pure: no I/O, no state kept between calls. Every path that
// decides about a user asks judgeUser (the plan's loop, and the check of users already in place
// while the scan runs), and every path that decides about a group asks judgeGroup: a rule is
// written once, in USER_RULES or GROUP_RULES, and no fast path can pass by it.
import type { IdOwners } from "./localdb/index.ts";
import { daysToIsoDate, type Group, printable, type User } from "./model.ts";
import type { Change, Current, Policy } from "./plan.ts";

/** The local side a verdict reads. */
export interface LocalView {
  cur: Current;
  /**
   * Who else than `name` holds a UID: the local files, plus what the plan gave out before this
   * record (undefined: nobody, or `name` itself).
   */
  uidHolder(id: number, name: string): string | undefined;
  /** Who holds a GID in /etc/group as read. */
  localGids: IdOwners;
}

/** What ddum owns as the verdict is asked (the plan adds to it as it goes). */
export interface Owned {
  readonly users: ReadonlySet<string>;
  readonly groups: ReadonlySet<string>;
}

/** The policy with the sets the rules look names up in, made once per pass. */
export interface Rulebook {
  policy: Policy;
  adoptUsers: ReadonlySet<string>;
  adoptGroups: ReadonlySet<string>;
  mergeGroups: ReadonlySet<string>;
  /** Local groups the host consents to records using: merge_groups and adopt_groups. */
  consented: ReadonlySet<string>;
}

export function rulebook(policy: Policy): Rulebook {
  const mergeGroups = new Set(policy.mergeGroups ?? []);
  const adoptGroups = new Set(policy.adoptGroups);
  return { policy, adoptUsers: new Set(policy.adoptUsers), adoptGroups, mergeGroups, consented: new Set([...mergeGroups, ...adoptGroups]) };
}

export interface Refusal {
  field: string;
  reason: string;
}

export type UserVerdict =
  | ({ kind: "refuse" } & Refusal)
  /** Both lines already as the record makes them. adopt: owned from now on (adopt_users). */
  | { kind: "in-place"; adopt: boolean }
  /** No local account: the plan makes one (a new UID, taken in UID order). */
  | { kind: "create" }
  | { kind: "update"; passwd: string[]; shadow: string[]; changes: Change[]; addShadow: boolean; disables: boolean };

/** What a user rule sees: the record and the facts about it every rule would otherwise look up. */
export interface UserCase {
  u: User;
  view: LocalView;
  owned: Owned;
  book: Rulebook;
  /** A local passwd entry with this name exists. */
  local: boolean;
  /** ddum owns the name, or may take it over (adopt_users). */
  mine: boolean;
  /** Both local lines read exactly as the record makes them. */
  inPlace: boolean;
}

export type UserRule = (c: UserCase) => Refusal | null;

/**
 * Why a user may not have u.gid as primary group, or null. A local group may be a user's primary
 * group only when ddum owns it, the host consents (merge_groups, or adopt_groups), or it is the
 * private group (same name) of a local user ddum already manages: else a record could join any
 * local admin group in range, and read what that group may read.
 */
function primaryGidProblem(c: UserCase): string | null {
  const { u, view } = c;
  if (c.local && view.localGids.owns(u.gid, u.name)) return null;
  const holder = view.localGids.get(u.gid);
  if (holder === undefined || c.owned.groups.has(holder) || c.book.consented.has(holder)) return null;
  return `${u.gid} is the GID of the local group ${printable(holder)}, which ddum does not manage; a user may have it as primary group only if the host lists it in merge_groups`;
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
  if (!pamAccepts(before, today)) return false;
  if (!pamAccepts(after, today)) return true;
  const later = today + BRAKE_HORIZON_DAYS;
  return pamAccepts(before, later) && !pamAccepts(after, later);
}

/** The refusals, in the order they are told (the first that applies is the one reported). */
export const USER_RULES: UserRule[] = [
  ({ u }) => (u.uid === 0 ? { field: "UID", reason: "UID 0 is root's; ddum never creates or changes a UID 0 account" } : null),
  ({ u, book: { policy: p } }) => (u.uid < p.uidMin || u.uid > p.uidMax ? { field: "UID", reason: `${u.uid} is outside the managed range ${p.uidMin}-${p.uidMax}` } : null),
  ({ u }) => (u.gid === 0 ? { field: "GID", reason: "GID 0 is root's group; refused" } : null),
  ({ u, book: { policy: p } }) => (u.gid < p.gidMin || u.gid > p.gidMax ? { field: "GID", reason: `${u.gid} is outside the managed range ${p.gidMin}-${p.gidMax}` } : null),
  ({ u, view: { cur } }) =>
    (cur.passwd.unparsedNames.size > 0 && cur.passwd.unparsedNames.has(u.name)) || (cur.shadow.unparsedNames.size > 0 && cur.shadow.unparsedNames.has(u.name))
      ? { field: "Name", reason: "a local line for this name cannot be parsed; fix it by hand first" }
      : null,
  ({ u, local, mine }) => (local && !mine ? { field: "Name", reason: `a local account "${u.name}" exists that ddum does not manage (list it in adopt_users to take it over)` } : null),
  ({ u, view }) => {
    const holder = view.uidHolder(u.uid, u.name);
    return holder !== undefined && holder !== u.name ? { field: "UID", reason: `${u.uid} already belongs to the local account "${holder}"` } : null;
  },
  ({ u, local, view: { cur } }) => (!local && cur.shadow.has(u.name) ? { field: "Name", reason: "a shadow entry with this name exists without a passwd entry; fix it by hand first" } : null),
  (c) => {
    const problem = primaryGidProblem(c);
    return problem === null ? null : { field: "GID", reason: problem };
  },
  // Files the account owns (its home, key files, mail, anything it made) keep the old IDs:
  // renumbering would hand them to whoever is given the old ID next.
  ({ u, local, inPlace, view: { cur } }) => {
    if (!local || inPlace) return null;
    const was = cur.passwd.get(u.name)!;
    const moved = was[2] !== String(u.uid) ? ["UID", was[2]!, u.uid] : was[3] !== String(u.gid) ? ["GID", was[3]!, u.gid] : null;
    if (!moved) return null;
    return {
      field: String(moved[0]),
      reason: `the record changes the ${moved[0]} of the existing account from ${moved[1]} to ${moved[2]}; ddum does not renumber an account (its files would keep the old ID); renumber it on the host by hand (usermod), or give the record its old ${moved[0]} back`,
    };
  },
];

/** What ddum does with one user record. */
export function judgeUser(u: User, view: LocalView, owned: Owned, book: Rulebook, today: number): UserVerdict {
  const cur = view.cur;
  const local = cur.passwd.has(u.name);
  const isOwned = owned.users.has(u.name);
  const mine = isOwned || (local && book.adoptUsers.size > 0 && book.adoptUsers.has(u.name));
  // The common case at scale: both lines already read exactly as the record would write them,
  // compared in place in the files' text (the shadow "reserved" field is not the table's).
  const inPlace = local && linesInPlace(cur, u);
  const c: UserCase = { u, view, owned, book, local, mine, inPlace };
  for (const rule of USER_RULES) {
    const r = rule(c);
    if (r !== null) return { kind: "refuse", ...r };
  }
  if (!local) return { kind: "create" };
  if (inPlace) return { kind: "in-place", adopt: !isOwned };
  const shadowText = cur.shadow.text(u.name);
  const reserved = shadowText === undefined ? "" : shadowText.slice(shadowText.lastIndexOf(":") + 1);
  const lines = userLines(u, reserved);
  const curShadow = cur.shadow.get(u.name);
  const curPasswd = cur.passwd.get(u.name)!;
  const changes = [
    ...diffFields(PASSWD_FIELDS, curPasswd, lines.passwd, NONE),
    // passwd's password field is no record's: ddum writes "x" (the hash is in shadow). Anything
    // else is repaired: empty means no password at all, and a hash there bypasses shadow.
    ...(curPasswd[1] !== "x" ? [{ field: "password field of passwd", from: SECRET, to: "x" }] : []),
    ...(curShadow ? diffFields(SHADOW_FIELDS, curShadow, lines.shadow, PASSWORD) : [{ field: "shadow entry", from: "(missing)", to: "(created)" }]),
  ];
  if (changes.length === 0) return { kind: "in-place", adopt: !isOwned };
  return { kind: "update", ...lines, changes, addShadow: !curShadow, disables: disablesSoon(curShadow, lines.shadow, today) };
}

/**
 * The rule book for users as text: what judgeUser's verdict for a user already in place is made
 * of. The page memo is bound to it, so a memo made under other rules vouches for nothing.
 */
export function userRulesText(): string {
  return [judgeUser, linesInPlace, primaryGidProblem, disablesSoon, ...USER_RULES].map(String).join("\n");
}

// ---- groups ----

export type GroupVerdict =
  | ({ kind: "refuse"; withdrawn?: boolean; notPrivate?: boolean } & Refusal)
  /** merge: a local group ddum does not own, which the host lets records add members to. */
  | { kind: "accept"; local: readonly string[] | undefined; owned: boolean; merge: boolean };

export interface GroupCase {
  g: Group;
  cur: Current;
  owned: Owned;
  book: Rulebook;
  /** The local group entry with this name, if any. */
  local: readonly string[] | undefined;
  /** ddum owns the group, or may take it over (adopt_groups). */
  mine: boolean;
  merge: boolean;
  /** The primary GID of the user with the group's name, if there is one. */
  privateGid: number | undefined;
  /** Who holds a GID: the local files, plus what the plan gave out before this record. */
  gidHolder: string | undefined;
  /** The local account, neither managed by ddum nor about to be, whose primary GID this is. */
  primaryHolder: (gid: number) => string | undefined;
}

export type GroupRule = (c: GroupCase) => (Refusal & { withdrawn?: boolean; notPrivate?: boolean }) | null;

export const GROUP_RULES: GroupRule[] = [
  ({ g }) => (g.gid === 0 ? { field: "GID", reason: "GID 0 is root's group; refused" } : null),
  ({ g, cur }) =>
    cur.group.unparsedNames.has(g.name) || cur.gshadow.unparsedNames.has(g.name) ? { field: "Name", reason: "a local line for this name cannot be parsed; fix it by hand first" } : null,
  ({ g, privateGid }) =>
    privateGid !== undefined && privateGid !== g.gid
      ? {
          field: "GID",
          reason: `a group named after the user ${printable(g.name)} is that user's private group, with the user's GID ${privateGid}; the record's ${g.gid} is refused`,
          notPrivate: true,
        }
      : null,
  ({ g, merge, book }) =>
    merge && !book.mergeGroups.has(g.name)
      ? { field: "Name", reason: `${printable(g.name)} is a local group that ddum does not manage; a record may add members to it only if the host lists it in merge_groups`, withdrawn: true }
      : null,
  ({ g, merge, local }) =>
    merge && Number(local![2]) !== g.gid
      ? { field: "GID", reason: `the local group "${g.name}" has GID ${Number(local![2])}, the record ${g.gid}; refused (ddum merges only a group with the same name and GID)` }
      : null,
  ({ g, merge, book: { policy: p } }) => (!merge && (g.gid < p.gidMin || g.gid > p.gidMax) ? { field: "GID", reason: `${g.gid} is outside the managed range ${p.gidMin}-${p.gidMax}` } : null),
  ({ g, gidHolder }) => (gidHolder !== undefined && gidHolder !== g.name ? { field: "GID", reason: `${g.gid} already belongs to the local group "${gidHolder}"` } : null),
  ({ g, local, book }) =>
    !local && !book.mergeGroups.has(g.name) && PRIVILEGED_GROUPS.has(g.name)
      ? { field: "Name", reason: `a group named ${printable(g.name)} grants privileges on many systems (sudoers rules, sockets, devices); ddum creates it only if the host lists it in merge_groups` }
      : null,
  // A GID no group line holds may still be a local account's primary group: a record would hand
  // its files to the record's members.
  ({ g, gidHolder, merge, primaryHolder }) => {
    if (gidHolder !== undefined || merge) return null;
    const holder = primaryHolder(g.gid);
    return holder !== undefined && holder !== g.name ? { field: "GID", reason: `${g.gid} is the primary group of the local account "${holder}"` } : null;
  },
];

/** The rule for a new group's gshadow line, told after its members are worked out. */
export const orphanGshadow = (g: Group, cur: Current, local: readonly string[] | undefined): Refusal | null =>
  !local && cur.gshadow.has(g.name) ? { field: "Name", reason: "a gshadow entry with this name exists without a group entry; fix it by hand first" } : null;

/** What ddum does with one group record (its members are worked out by the plan). */
export function judgeGroup(
  g: Group,
  cur: Current,
  owned: Owned,
  book: Rulebook,
  privateGid: number | undefined,
  gidHolder: (id: number) => string | undefined,
  primaryHolder: (gid: number) => string | undefined,
): GroupVerdict {
  const local = cur.group.get(g.name);
  const mine = owned.groups.has(g.name) || (local !== undefined && book.adoptGroups.has(g.name));
  const merge = local !== undefined && !mine;
  const c: GroupCase = { g, cur, owned, book, local, mine, merge, privateGid, gidHolder: gidHolder(g.gid), primaryHolder };
  for (const rule of GROUP_RULES) {
    const r = rule(c);
    if (r !== null) return { kind: "refuse", ...r };
  }
  return { kind: "accept", local, owned: mine, merge };
}

// ---- keys of refused records ----

/**
 * The accounts that refused records' keys apply to: owned by ddum, with a local passwd line that
 * parses, a UID in the managed range, and the home that line names (the record's is not trusted).
 */
export function keysOnlyUsers(list: readonly { name: string; keys: string[] }[], cur: Pick<Current, "passwd">, ownership: { users: readonly string[] }, policy: Policy): { name: string; uid: number; gid: number; home: string; sshKeys: string[] }[] {
  if (list.length === 0) return [];
  const owned = new Set(ownership.users);
  const out: { name: string; uid: number; gid: number; home: string; sshKeys: string[] }[] = [];
  for (const { name, keys } of list) {
    if (!owned.has(name) || cur.passwd.unparsedNames.has(name)) continue;
    const pw = cur.passwd.get(name);
    if (!pw || !/^[0-9]+$/.test(pw[2] ?? "") || !/^[0-9]+$/.test(pw[3] ?? "")) continue;
    const uid = Number(pw[2]);
    if (uid === 0 || uid < policy.uidMin || uid > policy.uidMax) continue;
    const home = pw[5] ?? "";
    if (home !== "" && !home.startsWith("/")) continue;
    out.push({ name, uid, gid: Number(pw[3]), home, sshKeys: keys });
  }
  return out;
}

// ---- the lines a record makes ----

const SECRET = "(hidden)";
const opt = (n: number | null) => (n === null ? "" : String(n));
const dateOrEmpty = (d: string) => (d === "" ? "(none)" : /^-?[0-9]+$/.test(d) ? daysToIsoDate(Number(d)) : d);
const NONE = new Set<number>();
const PASSWORD = new Set([1]);

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

export function userLines(u: User, reserved: string): { passwd: string[]; shadow: string[] } {
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

export const PASSWD_FIELDS = ["Name", "", "UID", "GID", "RealName", "Home", "Shell"];
export const SHADOW_FIELDS = [
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

export function diffFields(names: string[], from: readonly string[] | undefined, to: string[], secret: ReadonlySet<number>): Change[] {
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

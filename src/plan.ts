// The pure heart of a pass: desired state × current state × policy × today → actions and
// refusals. What happens to each record is the rule book's verdict (judge.ts); the plan gives out
// new IDs in UID order, merges memberships and applies the brakes. No I/O here; apply.ts carries
// the plan out, --dry-run prints it.
import { diffFields, judgeGroup, judgeUser, type LocalView, orphanGshadow, PASSWD_FIELDS, pamAccepts, type Rulebook, rulebook, SHADOW_FIELDS, userLines } from "./judge.ts";
import type { AccountTable } from "./localdb/index.ts";
import { splitList } from "./localdb/index.ts";
import { type Group, printable, type Rejection, type User } from "./model.ts";

export { BRAKE_HORIZON_DAYS, pamAccepts } from "./judge.ts";

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

function isEnabled(shadow: readonly string[] | undefined, today: number): boolean {
  return pamAccepts(shadow, today);
}

/** isEnabled for a shadow line's text. */
function expiresAfter(text: string | undefined, today: number): boolean {
  return text === undefined || pamAccepts(text.split(":"), today);
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
 * The users a plan will find exactly as their records want them, recognised one at a time while
 * the scan delivers them (the same judgeUser as the plan's loop), against the local files and
 * ownership as read at the first page. Only valid for that very `cur` and `prev`: a pass that
 * reads the files again drops it. The plan only counts the users it holds; every other verdict
 * is worked out again in the plan's loop, in UID order, where new IDs are given out.
 */
export class InPlaceUsers {
  readonly users = new Set<User>();
  /** Users held that are in place through adopt_users only, not owned yet: the plan owns them. */
  readonly adopted = new Set<User>();
  private ownedSet: Set<string> | null = null;
  private readonly view: LocalView;
  readonly book: Rulebook;
  private readonly ownedView: { readonly users: Set<string>; readonly groups: Set<string> };

  constructor(
    cur: Current,
    readonly prev: Ownership,
    policy: Policy,
    private readonly today = 0,
  ) {
    const localUids = cur.passwd.idOwners(2);
    // owns() first: it does not cut the holder's name out of the file, and is the answer for
    // every user in place.
    this.view = { cur, uidHolder: (id, name) => (localUids.owns(id, name) ? undefined : localUids.get(id)), localGids: cur.group.idOwners(2) };
    this.book = rulebook(policy);
    const self = this;
    const groups = new Set(prev.groups);
    this.ownedView = {
      get users() {
        return self.owned;
      },
      groups,
    };
  }

  /** The ownership set the plan starts from, made when first asked for; the plan adds to it. */
  get owned(): Set<string> {
    this.ownedSet ??= new Set(this.prev.users);
    return this.ownedSet;
  }

  /**
   * Holds u as in place on the page memo's word: a page it knows held only users judgeUser found
   * in place, under this very rule book and these files and owners (see pagememo.ts), all owned.
   */
  hold(u: User): void {
    this.users.add(u);
  }

  /** Whether u is in place by judgeUser's verdict; if so, it is held. */
  check(u: User): boolean {
    // Cheap tests that fail for most users with something to do, before the verdict's lookups.
    if (!this.view.cur.passwd.has(u.name)) return false;
    const v = judgeUser(u, this.view, this.ownedView, this.book, this.today);
    if (v.kind !== "in-place") return false;
    this.users.add(u);
    if (v.adopt) this.adopted.add(u);
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
  const book = seen ? seen.book : rulebook(policy);
  const owned = {
    get users() {
      return ownedUsers();
    },
    groups: ownedGroups,
  };
  // Copied when a list first changes: most passes change none (10,000 groups are not free to copy).
  let members = prev.members;
  let admins = prev.admins;

  // Who holds each ID locally, plus what this plan gives out.
  const localUids = cur.passwd.idOwners(2);
  const localGids = cur.group.idOwners(2);
  const view: LocalView = { cur, uidHolder: (id, name) => (localUids.owns(id, name) ? undefined : (localUids.get(id) ?? newUids.get(id))), localGids };
  const newUids = new Map<number, string>();
  const newGids = new Map<number, string>();
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
    const v = judgeUser(u, view, owned, book, today);
    if (v.kind === "refuse") {
      refuse(T, u.name, v.field, v.reason);
      continue;
    }
    present.add(u.name);
    accepted.push(u);
    ownUser(u.name);
    if (v.kind === "in-place") {
      unchanged++;
    } else if (v.kind === "create") {
      // What a new account gets follows from its lines: worked out when a report asks, one
      // action at a time, not held for 100,000 new users at once.
      const lines = userLines(u, "");
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
      newUids.set(u.uid, u.name);
    } else {
      if (v.disables) disables++;
      actions.push({ kind: "update-user", name: u.name, passwd: v.passwd, shadow: v.shadow, changes: v.changes, addShadow: v.addShadow });
    }
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
  // The local account whose primary GID this is, when ddum neither manages it nor is about to.
  const primaryHolder = (gid: number) => {
    primaryGids ??= cur.passwd.idOwners(3);
    const holder = primaryGids.get(gid);
    return holder === undefined || ownedUsers().has(holder) || present.has(holder) ? undefined : holder;
  };
  const wantedGroupNames = new Set(desired.groups.map((g) => g.name));
  // Local groups whose record the host no longer consents to: what ddum added there is taken back.
  const withdrawn = new Set<string>();
  // Records refused for naming a user's private group with another GID: the name stays the user's.
  const notPrivate = new Set<string>();

  for (const g of [...desired.groups].sort((a, b) => a.gid - b.gid || a.name.localeCompare(b.name))) {
    const T = desired.groupTable;
    const v = judgeGroup(g, cur, owned, book, userGid(g.name), gidOwner.get, primaryHolder);
    if (v.kind === "refuse") {
      refuse(T, g.name, v.field, v.reason);
      if (v.withdrawn) withdrawn.add(g.name);
      if (v.notPrivate) notPrivate.add(g.name);
      continue;
    }
    const { local, merge } = v;
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
      const orphan = orphanGshadow(g, cur, local);
      if (orphan) {
        refuse(T, g.name, orphan.field, orphan.reason);
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
    if (v.owned) ownGroup(g.name);
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

import { spawnSync } from "node:child_process";
import { existsSync, readFileSync, statSync } from "node:fs";
import type { Root } from "../paths.ts";
import { commitFiles, type FileWrite } from "./commit.ts";
import { lockAccountFiles, type Locks } from "./lock.ts";
import { AccountTable, type FileKind, type ParseIssue } from "./table.ts";

export { AccountTable, splitList, type FileKind, type IdOwners, type ParseIssue } from "./table.ts";
export { lockAccountFiles, type Locks } from "./lock.ts";

function readOrNull(path: string): string | null {
  try {
    return readFileSync(path, "utf8");
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return null;
    throw e;
  }
}

/** The text of one of the four files under root (null: there is none). */
export function readAccountText(root: Root, kind: FileKind): string | null {
  return readOrNull(root.etc(kind));
}

/**
 * What a file was when it was read: device, inode, size, and the modification and change times in
 * nanoseconds. Taken before the read, so any change after it, in place or by rename, gives
 * another identity; the change time cannot be set back by anyone but the clock.
 */
export function identityOf(path: string): string {
  const st = statSync(path, { bigint: true, throwIfNoEntry: false });
  return st ? `${st.dev}:${st.ino}:${st.size}:${st.mtimeNs}:${st.ctimeNs}` : "absent";
}

/** Mode and owner for a file that has to be created (shadow-utils' defaults on Debian). */
function defaultsFor(kind: FileKind, group: AccountTable): FileWrite["defaults"] {
  if (kind === "passwd" || kind === "group") return { mode: 0o644, uid: 0, gid: 0 };
  const shadowGid = group.get("shadow")?.[2];
  return shadowGid ? { mode: 0o640, uid: 0, gid: Number(shadowGid) } : { mode: 0o600, uid: 0, gid: 0 };
}

export class LocalDb {
  private constructor(
    readonly root: Root,
    readonly passwd: AccountTable,
    readonly shadow: AccountTable,
    readonly group: AccountTable,
    readonly gshadow: AccountTable,
    private readonly original: Record<FileKind, string | null>,
    private readonly identity: Record<FileKind, string>,
  ) {}

  static load(root: Root): LocalDb {
    const text = {} as Record<FileKind, string | null>;
    const identity = {} as Record<FileKind, string>;
    for (const k of ["passwd", "shadow", "group", "gshadow"] as const) {
      identity[k] = identityOf(root.etc(k));
      text[k] = readOrNull(root.etc(k));
    }
    if (text.passwd === null) throw new Error(`${root.etc("passwd")} does not exist: is --root right?`);
    return new LocalDb(
      root,
      new AccountTable("passwd", root.etc("passwd"), text.passwd),
      new AccountTable("shadow", root.etc("shadow"), text.shadow),
      new AccountTable("group", root.etc("group"), text.group),
      new AccountTable("gshadow", root.etc("gshadow"), text.gshadow),
      text,
      identity,
    );
  }

  /** Each file's identity (see identityOf) as it was when it was read. */
  identities(): Readonly<Record<FileKind, string>> {
    return this.identity;
  }

  /** A file's text as it was read (null: there was none). */
  textOf(kind: FileKind): string | null {
    return this.original[kind];
  }

  /**
   * Whether any of the four files changed since they were read. A pass reads them while the scan
   * runs, before it takes the locks; once it holds them it asks this, and reads again if so.
   */
  changedOnDisk(): boolean {
    return (["passwd", "shadow", "group", "gshadow"] as const).some((k) => identityOf(this.root.etc(k)) !== this.identity[k]);
  }

  get tables(): AccountTable[] {
    return [this.group, this.gshadow, this.passwd, this.shadow];
  }

  get issues(): ParseIssue[] {
    return this.tables.flatMap((t) => t.issues);
  }

  get changed(): boolean {
    return this.tables.some((t) => t.changed);
  }

  /** Files with changed entries, in the order they are replaced; each is serialized at its turn. */
  pendingWrites(): FileWrite[] {
    const writes: FileWrite[] = [];
    for (const t of this.tables) {
      if (!t.changed) continue;
      const previous = this.original[t.kind];
      const render = () => {
        const content = t.serialize();
        return content === previous ? null : content;
      };
      writes.push({ path: t.path, render, previous, defaults: defaultsFor(t.kind, this.group) });
    }
    return writes;
  }

  /** Write the changed files as one transaction. The caller holds the locks. Returns the paths written. */
  commit(writes = this.pendingWrites(), collect?: (full: boolean) => void): string[] {
    const written = commitFiles(writes, collect);
    if (written.length > 0 && this.root.isHost) invalidateCaches();
    return written;
  }
}

/** Lock, read, let `edit` change the tables, commit, unlock. */
export async function withLockedDb<T>(
  root: Root,
  timeoutMs: number,
  edit: (db: LocalDb) => T,
): Promise<{ result: T; written: string[] }> {
  const locks: Locks = await lockAccountFiles(root, timeoutMs);
  try {
    const db = LocalDb.load(root);
    const result = edit(db);
    return { result, written: db.commit() };
  } finally {
    locks.release();
  }
}

/** Tell nscd and sssd that the files changed, when they are installed. */
function invalidateCaches(): void {
  for (const [bin, args] of [
    ["/usr/sbin/nscd", ["-i", "passwd"]],
    ["/usr/sbin/nscd", ["-i", "group"]],
    ["/usr/sbin/sss_cache", ["-E"]],
  ] as const) {
    if (existsSync(bin)) spawnSync(bin, args, { stdio: "ignore", timeout: 10_000 });
  }
}

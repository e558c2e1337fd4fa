// Login shells. Whoever can write a user's shell, or the directory it is in, runs code as that
// user at every login: a shell may only be where nobody but root can change it.
import { lstatSync, readFileSync } from "node:fs";
import type { Rejection, User } from "./model.ts";
import { printable } from "./model.ts";
import type { Root } from "./paths.ts";
import { normalPath, PathResolver, within } from "./safepath.ts";

/** Directories others can write on every Linux host (and /home, where users' homes are). */
export const OPEN_DIRS = ["/tmp", "/var/tmp", "/dev/shm", "/run/user", "/var/mail", "/var/spool/mail", "/var/crash", "/home"];

/** The rule that needs no file system: not in a directory others can write by design. */
export function shellPathProblem(shell: string): string | null {
  const n = normalPath(shell);
  if (n === "/") return "/ is not a shell";
  for (const d of OPEN_DIRS) if (within(n, d)) return `${shell} is in ${d}, a directory others can write; refused`;
  return null;
}

/**
 * The shells of a pass's users, judged once per distinct shell: not in a directory others can
 * write (see OPEN_DIRS), not in or under any user's home, and every existing directory on the
 * way root's and not writable by group or others (links resolved inside the root).
 */
export class ShellRules {
  private readonly resolver: PathResolver;
  private readonly verdicts = new Map<string, string | null>();
  private readonly listed: Set<string> | null;

  constructor(
    private readonly root: Root,
    /** Every home of the pass, in normal form (only asked whether it holds a path). */
    private readonly homes: Pick<ReadonlySet<string>, "has">,
  ) {
    this.resolver = new PathResolver(root, true);
    let text: string | null = null;
    try {
      text = readFileSync(root.etc("shells"), "utf8");
    } catch {
      // no /etc/shells: nothing to warn about
    }
    this.listed = text === null ? null : new Set(text.split("\n").map((l) => l.trim()).filter((l) => l !== "" && !l.startsWith("#")));
  }

  problem(shell: string): string | null {
    // An empty shell (a record without Shell) is the system's default, /bin/sh.
    if (shell === "") return null;
    let v = this.verdicts.get(shell);
    if (v === undefined) {
      v = this.judge(shell);
      this.verdicts.set(shell, v);
    }
    return v;
  }

  private judge(shell: string): string | null {
    const fixed = shellPathProblem(shell);
    if (fixed) return fixed;
    const n = normalPath(shell);
    const dir = n.slice(0, n.lastIndexOf("/")) || "/";
    const r = this.resolver.resolve(dir);
    if (r.problem) return `${shell}: ${r.problem}; refused`;
    // The shell itself too, links followed inside the root: whoever can write the file (or the
    // place a link at its name leads to) runs code as the user at every login.
    const f = this.resolver.resolve(n);
    if (f.problem) return `${shell}: ${f.problem}; refused`;
    for (const p of new Set([n, `${r.path}/${n.slice(n.lastIndexOf("/") + 1)}`, f.path])) {
      for (const d of OPEN_DIRS) if (within(p, d)) return `${shell} resolves to ${p}, in ${d}, a directory others can write; refused`;
      for (let a = p; a !== "/"; a = a.slice(0, a.lastIndexOf("/")) || "/") {
        if (this.homes.has(a)) return `${shell} is in the home ${a}; refused`;
      }
    }
    if (f.kind === "file") {
      const st = lstatSync(this.root.path(f.path), { throwIfNoEntry: false });
      if (st && (st.uid !== 0 || (st.mode & 0o022) !== 0)) return `${shell}${f.path !== n ? ` (${f.path})` : ""} is not owned by root or is writable by others; refused`;
    }
    return null;
  }

  /** Users whose shell may be used, and a rejection for each of the others. */
  filter(users: readonly User[], table: string): { users: User[]; rejections: Rejection[] } {
    const ok: User[] = [];
    const rejections: Rejection[] = [];
    for (const u of users) {
      const why = this.problem(u.shell);
      if (why === null) ok.push(u);
      else rejections.push({ table, name: printable(u.name), field: "Shell", reason: why });
    }
    return { users: rejections.length === 0 ? (users as User[]) : ok, rejections };
  }

  /** A notice for each shell in use that ROOT/etc/shells does not list (when there is one). */
  unlisted(users: readonly User[]): string[] {
    if (this.listed === null) return [];
    const count = new Map<string, number>();
    for (const u of users) if (u.shell !== "" && !this.listed.has(u.shell)) count.set(u.shell, (count.get(u.shell) ?? 0) + 1);
    return [...count].map(([s, n]) => `Shell ${printable(s)} of ${n} user${n === 1 ? "" : "s"} is not listed in /etc/shells`);
  }
}

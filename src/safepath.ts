// One spelling per path, and the path as the system resolves it. `/./etc`, `//etc`, `/etc/.` and
// a link to /etc are all /etc: every rule about where a home or a key file may be is applied to
// the normal form and again to the resolved form, never to the raw string alone.
import { lstatSync, readlinkSync } from "node:fs";
import type { Root } from "./paths.ts";

/** An absolute path's normal spelling: no empty or "." segment, ".." applied, no trailing slash. */
export function normalPath(p: string): string {
  if (!NOT_NORMAL.test(p)) return p;
  const out: string[] = [];
  for (const seg of p.split("/")) {
    if (seg === "" || seg === ".") continue;
    if (seg === "..") out.pop();
    else out.push(seg);
  }
  return `/${out.join("/")}`;
}
const NOT_NORMAL = /\/\/|\/\.\.?(\/|$)|.\/$|^[^/]/;

/** Whether p (normal) is dir (normal) or lies inside it. */
export function within(p: string, dir: string): boolean {
  return dir === "/" || p === dir || (p.startsWith(dir) && p.charCodeAt(dir.length) === 47);
}

/** One of the two is the other or lies inside it. */
export function overlaps(a: string, b: string): boolean {
  return within(a, b) || within(b, a);
}

export interface Resolved {
  /** The path (inside the root) with every link on the way followed. */
  path: string;
  /** What stands in the way: a directory on the way others can write (when asked), a loop, a file. */
  problem: string | null;
  /** How many of its last components do not exist. */
  missing: number;
  kind: "dir" | "file" | "missing" | "other";
  /** Missing because a symbolic link on the way points where nothing is. */
  dangling?: boolean;
}

const ROOT_DIR: Resolved = { path: "/", problem: null, missing: 0, kind: "dir" };

/**
 * Resolves paths inside a root as the kernel would inside a chroot of it (an absolute link target
 * is a path in the root), caching every directory it passes. With rootOnly, each existing
 * directory on the way must be owned by root and not writable by group or others: only then can
 * nobody but root change where the path leads.
 */
export class PathResolver {
  private readonly cache = new Map<string, Resolved>();

  constructor(
    private readonly root: Root,
    private readonly rootOnly: boolean,
  ) {}

  resolve(p: string, depth = 0): Resolved {
    const n = normalPath(p);
    if (n === "/") return ROOT_DIR;
    const hit = this.cache.get(n);
    if (hit) return hit;
    const slash = n.lastIndexOf("/");
    const parent = this.resolve(slash === 0 ? "/" : n.slice(0, slash), depth);
    const joined = parent.path === "/" ? `/${n.slice(slash + 1)}` : `${parent.path}/${n.slice(slash + 1)}`;
    let r: Resolved;
    if (parent.problem) r = { ...parent, path: joined };
    else if (parent.kind === "missing") r = { path: joined, problem: null, missing: parent.missing + 1, kind: "missing", dangling: parent.dangling };
    else if (parent.kind !== "dir") r = { path: joined, problem: `${parent.path} is not a directory`, missing: 0, kind: "other" };
    else r = this.look(joined, parent.path, depth);
    this.cache.set(n, r);
    return r;
  }

  private look(path: string, parentPath: string, depth: number): Resolved {
    let st: ReturnType<typeof lstatSync>;
    try {
      st = lstatSync(this.root.path(path));
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === "ENOENT") return { path, problem: null, missing: 1, kind: "missing" };
      return { path, problem: `cannot inspect ${path}: ${code ?? (e as Error).message}`, missing: 0, kind: "other" };
    }
    if (st.isSymbolicLink()) {
      if (depth >= 40) return { path, problem: `${path}: too many levels of symbolic links`, missing: 0, kind: "other" };
      const target = readlinkSync(this.root.path(path));
      const r = this.resolve(target.startsWith("/") ? target : `${parentPath}/${target}`, depth + 1);
      return r.kind === "missing" ? { ...r, dangling: true } : r;
    }
    if (st.isDirectory()) {
      const open = this.rootOnly && (st.uid !== 0 || (st.mode & 0o022) !== 0);
      return { path, problem: open ? `${path} is not owned by root or is writable by others` : null, missing: 0, kind: "dir" };
    }
    return { path, problem: null, missing: 0, kind: st.isFile() ? "file" : "other" };
  }
}

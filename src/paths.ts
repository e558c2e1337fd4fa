import { isAbsolute, join, resolve } from "node:path";

const NEEDS_JOIN = /\/\/|\/\.\.?(\/|$)/;

/** Every file ddum touches is addressed through the root prefix (`--root DIR`, default `/`). */
export class Root {
  readonly dir: string;
  constructor(dir = "/") {
    this.dir = resolve(dir);
  }
  get isHost(): boolean {
    return this.dir === "/";
  }
  /** Map an absolute path inside the managed system to a path on this machine. */
  path(p: string): string {
    if (!isAbsolute(p)) throw new Error(`internal: path must be absolute: ${p}`);
    if (this.isHost) return p;
    // A path with nothing for join to clean up (no "//", "." or ".." segment) is simply appended:
    // a pass asks this for every user's key file.
    return NEEDS_JOIN.test(p) ? join(this.dir, p) : this.dir + p;
  }
  etc(name: string): string {
    return this.path(`/etc/${name}`);
  }
}

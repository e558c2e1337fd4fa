import { isAbsolute, join, resolve } from "node:path";

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
    return this.isHost ? p : join(this.dir, p);
  }
  etc(name: string): string {
    return this.path(`/etc/${name}`);
  }
}

// Caches in the state directory (the key-file ledger, the page memo): written whole to a
// temporary file, synced, then renamed over the old one, root-only. A reader never sees half a
// file, and a cache that cannot be read is simply empty.
import { constants as C, closeSync, fsyncSync, mkdirSync, openSync, renameSync, rmSync, writeSync } from "node:fs";
import { dirname } from "node:path";

export function writeCacheFile(path: string, data: Uint8Array): void {
  mkdirSync(dirname(path), { recursive: true, mode: 0o755 });
  const tmp = `${path}.tmp-${process.pid}`;
  try {
    const fd = openSync(tmp, C.O_WRONLY | C.O_CREAT | C.O_TRUNC, 0o600);
    try {
      let off = 0;
      while (off < data.length) off += writeSync(fd, data, off, data.length - off);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, path);
  } catch (e) {
    // A full disk: no temp left behind.
    rmSync(tmp, { force: true });
    throw e;
  }
}

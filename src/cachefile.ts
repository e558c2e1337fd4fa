// Caches in the state directory (the key-file ledger, the page memo): written whole to a
// temporary file, synced, then renamed over the old one, root-only. A reader never sees half a
// file, and a cache that cannot be read is simply empty.
import { writeFileSafely } from "./safefile.ts";

export function writeCacheFile(path: string, data: Uint8Array): void {
  writeFileSafely(path, data, { mode: 0o600, makeDir: 0o755, sync: true });
}

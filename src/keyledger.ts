// The key-file ledger (STATE_DIR/keyfiles.ledger): for each key file that a pass read and found
// holding exactly what it should, the file's signature (inode, device, size, owner, group, mode,
// links, change and modification times) under a 64-bit hash of what was checked (where the file
// is, whose it must be and the text it must hold). A later pass that wants the same text at the
// same place and finds the same signature knows, from one statx, that nothing touched the file
// since it was read: every write, chmod, chown, link or rename moves its change time, which only
// the kernel sets.
//
// A signature is recorded only when the file's change time was already SETTLED_MS in the past
// when it was read. Change times come from a clock that ticks every few milliseconds, so a file
// changed again within the same tick as its last change keeps its change time; a change made
// after the read, though, gets a change time after the read, which a settled one cannot equal.
// Files a pass has just written are therefore confirmed by reading them on a later pass.
//
// The ledger is a cache: a missing, unreadable or foreign file is an empty ledger, and a key the
// ledger does not confirm is read and compared in full, exactly as without it. A changed key
// list changes the hash, so a revoked key is never confirmed by an old entry.
import { constants as C, closeSync, fstatSync, openSync, readSync } from "node:fs";
import { writeCacheFile } from "./cachefile.ts";
import { AT_FDCWD, SIG_WORDS, signatureCtimeMs, statSignatureAt, statSignatureFilled } from "./fsat.ts";

export const LEDGER_FILE = "keyfiles.ledger";
/** How long ago a file's change time must be for its signature to be recorded. */
export const SETTLED_MS = 2000;

const MAGIC = 0x4c4b4444; // "DDKL", little-endian
const VERSION = 1;
const HEADER = 4; // magic, version, words per entry, entries
const ENTRY = 2 + SIG_WORDS; // key (2 words) and signature

export class KeyLedger {
  private readonly slots: Int32Array;
  private readonly mask: number;
  private readonly used: Uint8Array;
  private usedCount = 0;
  private readonly added: number[] = [];
  private readonly sig = new Uint32Array(SIG_WORDS);
  /** Lookups confirmed by a signature, and signatures recorded, in this pass (for tests and traces). */
  confirmed = 0;
  recorded = 0;

  private constructor(
    private readonly words: Uint32Array,
    private readonly count: number,
    /** The wall clock a check reads before it looks at a file (the settle window's "now"). */
    readonly now: () => number = Date.now,
  ) {
    let size = 16;
    while (size < count * 2) size *= 2;
    this.slots = new Int32Array(size).fill(-1);
    this.mask = size - 1;
    this.used = new Uint8Array(count);
    for (let e = 0; e < count; e++) {
      const at = HEADER + e * ENTRY;
      const lo = words[at]!;
      const hi = words[at + 1]!;
      let s = lo & this.mask;
      for (;;) {
        const cur = this.slots[s]!;
        if (cur < 0) {
          this.slots[s] = e;
          break;
        }
        const cat = HEADER + cur * ENTRY;
        if (words[cat] === lo && words[cat + 1] === hi) break; // a duplicate: the first one stands
        s = (s + 1) & this.mask;
      }
    }
  }

  static empty(now: () => number = Date.now): KeyLedger {
    return new KeyLedger(new Uint32Array(HEADER), 0, now);
  }

  /** The ledger in dir; an empty one when it is missing or not a ledger of this version. */
  static load(dir: string, now: () => number = Date.now): KeyLedger {
    // Read straight into the words (host byte order: Linux on x86_64 and aarch64 is
    // little-endian; the file never leaves the host), not through a second 6 MB buffer.
    let words: Uint32Array;
    try {
      const fd = openSync(`${dir}/${LEDGER_FILE}`, C.O_RDONLY);
      try {
        const size = fstatSync(fd).size;
        if (size < HEADER * 4 || size % 4 !== 0) return KeyLedger.empty(now);
        words = new Uint32Array(size / 4);
        const bytes = new Uint8Array(words.buffer);
        let got = 0;
        while (got < size) {
          const n = readSync(fd, bytes, got, size - got, null);
          if (n <= 0) return KeyLedger.empty(now);
          got += n;
        }
      } finally {
        closeSync(fd);
      }
    } catch {
      return KeyLedger.empty(now);
    }
    const count = words[3]!;
    if (words[0] !== MAGIC || words[1] !== VERSION || words[2] !== ENTRY || words.length !== HEADER + count * ENTRY) return KeyLedger.empty(now);
    return new KeyLedger(words, count, now);
  }

  /**
   * The ledger's key for a check: where the file is, whose it must be, and the text it must hold
   * (its header and keys, one per line), hashed piece by piece without building the text.
   */
  static key(kind: string, path: string, owner: string, header: string, keys: readonly string[]): bigint {
    let h = Bun.hash.wyhash(path, Bun.hash.wyhash(`${kind}\0${owner}\0${header}\0${keys.length}`));
    for (let i = 0; i < keys.length; i++) h = Bun.hash.wyhash(keys[i]!, h);
    return h;
  }

  /**
   * Whether the file at path has, right now, the signature recorded under key (one statx, no
   * link followed), after `before` (when given) said yes. A confirmed entry is kept by the next save; an entry nobody confirms is not.
   */
  confirms(key: bigint, path: string, before?: () => boolean): boolean {
    return this.confirmsWords(Number(key & 0xffffffffn), Number(key >> 32n), path, before);
  }

  /** confirms, with the key as its low and high 32-bit words (as KeyLedger.words gives them). */
  confirmsWords(lo: number, hi: number, path: string, before?: () => boolean): boolean {
    return this.confirmsAt(lo, hi, AT_FDCWD, path, before);
  }

  /** confirmsWords of a name relative to a directory descriptor (AT_FDCWD: a path). */
  confirmsAt(lo: number, hi: number, dirfd: number, name: string, before?: () => boolean): boolean {
    const e = this.entry(lo, hi);
    if (e < 0 || (before && !before()) || statSignatureAt(dirfd, name, this.sig) !== 0) return false;
    return this.matches(e);
  }

  /**
   * confirmsAt of the NUL-terminated name a caller wrote into statxName() (see fsat.ts): for a
   * pass that builds 100,000 names from bytes, without a string for each.
   */
  confirmsFilled(lo: number, hi: number, dirfd: number): boolean {
    const e = this.entry(lo, hi);
    if (e < 0 || statSignatureFilled(dirfd, this.sig) !== 0) return false;
    return this.matches(e);
  }

  /** The entry recorded under a key, or -1. */
  private entry(lo: number, hi: number): number {
    let s = lo & this.mask;
    for (;;) {
      const cur = this.slots[s]!;
      if (cur < 0) return -1;
      const at = HEADER + cur * ENTRY;
      if (this.words[at] === lo && this.words[at + 1] === hi) return cur;
      s = (s + 1) & this.mask;
    }
  }

  /** Whether the signature just taken (this.sig) is entry e's; if so it is kept by the next save. */
  private matches(e: number): boolean {
    const at = HEADER + e * ENTRY + 2;
    for (let i = 0; i < SIG_WORDS; i++) if (this.words[at + i] !== this.sig[i]) return false;
    if (!this.used[e]) {
      this.used[e] = 1;
      this.usedCount++;
    }
    this.confirmed++;
    return true;
  }

  /**
   * Record that the file whose signature is sig held what key stands for, as read by a check that
   * started at startedMs (wall clock). Not recorded unless its change time had settled by then.
   */
  record(key: bigint, sig: Uint32Array, startedMs: number): void {
    if (signatureCtimeMs(sig) > startedMs - SETTLED_MS) return;
    this.added.push(Number(key & 0xffffffffn), Number(key >> 32n), ...sig);
    this.recorded++;
  }

  /** A key's low and high 32-bit words. */
  static words(key: bigint): [number, number] {
    return [Number(key & 0xffffffffn), Number(key >> 32n)];
  }

  /** Whether saving would change the file: something recorded, or an entry not confirmed. */
  get changed(): boolean {
    return this.added.length > 0 || this.usedCount < this.count;
  }

  /** Write the confirmed and recorded entries (temp file, fsync, rename), when anything changed. */
  save(dir: string): void {
    if (!this.changed) return;
    const n = this.usedCount + this.added.length / ENTRY;
    const words = new Uint32Array(HEADER + n * ENTRY);
    words.set([MAGIC, VERSION, ENTRY, n]);
    let w = HEADER;
    for (let e = 0; e < this.count; e++) {
      if (!this.used[e]) continue;
      const at = HEADER + e * ENTRY;
      words.set(this.words.subarray(at, at + ENTRY), w);
      w += ENTRY;
    }
    words.set(this.added, w);
    writeCacheFile(`${dir}/${LEDGER_FILE}`, Buffer.from(words.buffer));
  }
}

// The scan snapshot (STATE_DIR/scan.snapshot): both tables as the last complete scan of a host
// with change_detection "version" received them, page by page and segment by segment, each
// page's text exactly as DynamoDB sent it (compressed, one zstd frame per page). A pass that
// finds the tables' version unchanged replays these pages through the very path a scan takes
// (scanTable: the same decoding, the same page memo, the same rule book, plan, apply and
// converge): only where the pages come from differs.
//
// Layout: a first line "ddum scan snapshot 1 <SHA-256 of everything after it, hex>", a line of
// JSON (what was scanned, where, when, and at which version: see SnapshotMeta), then the frames.
// A file that is missing, truncated, damaged, from another format or of other tables is no
// snapshot: the pass scans in full and says why. Written root-only through the one safe-write
// helper (temp file, O_EXCL|O_NOFOLLOW, fsync, rename), only by a complete successful pass.
import { closeSync } from "node:fs";
import type { ScanCommandOutput } from "@aws-sdk/client-dynamodb";
import { writeCacheFile } from "./cachefile.ts";
import { openDir, readFileAt } from "./safefile.ts";
import { pageFromText, type PageSource } from "./source/dynamo.ts";

export const SNAPSHOT_FILE = "scan.snapshot";
const MAGIC = "ddum scan snapshot 1";
/** A snapshot larger than this is not read (a table of millions of users would need a scan anyway). */
const MAX_BYTES = 2 * 1024 * 1024 * 1024 - 1;

export interface SnapshotMeta {
  /** The tables' version read before the scan began (null: the table had no #version item). */
  version: number | null;
  /** When the scan began (ms since the epoch). */
  scannedAt: number;
  usersTable: string;
  groupsTable: string;
  endpoint: string;
  region: string;
  /** Per table, per segment, the compressed length of each page, in order. */
  pages: Record<string, number[][]>;
}

export interface ScanSnapshot {
  meta: SnapshotMeta;
  /** The file's checksum (hex): what a steady record names its snapshot by. */
  sha256: string;
  /** The pages, as a scan would deliver them (see scanTable's source). */
  source: PageSource;
  /** Bytes on disk. */
  bytes: number;
}

/** UTF-8 to text (invalid sequences replaced, as Buffer's toString does), many times faster here than toString. */
const utf8 = new TextDecoder();

const hex = (data: Uint8Array | string) => new Bun.CryptoHasher("sha256").update(data).digest("hex");

/**
 * Collects the pages of a scan as they arrive (compressed at once, so a scan of 100,000 users
 * holds 15 MB rather than 60), in the order of each segment.
 */
export class SnapshotRecorder {
  private readonly frames: Record<string, Uint8Array[][]> = {};
  bytes = 0;

  keep = (table: string, segment: number, text: string): void => {
    this.frames[table] ??= [];
    const segs = this.frames[table];
    segs[segment] ??= [];
    const frame = Bun.zstdCompressSync(Buffer.from(text, "utf8"), { level: 1 });
    segs[segment].push(frame);
    this.bytes += frame.length;
  };

  /** Write the snapshot (root-only, through the safe-write helper). Returns its checksum and size. */
  save(dir: string, meta: Omit<SnapshotMeta, "pages">): { sha256: string; bytes: number } {
    const pages: Record<string, number[][]> = {};
    const body: Uint8Array[] = [];
    for (const table of [meta.usersTable, meta.groupsTable]) {
      const segs = this.frames[table] ?? [];
      pages[table] = Array.from({ length: Math.max(segs.length, 1) }, (_, s) => (segs[s] ?? []).map((f) => f.length));
      for (const seg of segs) for (const f of seg ?? []) body.push(f);
    }
    const head = Buffer.from(`${JSON.stringify({ ...meta, pages })}\n`, "utf8");
    const rest = Buffer.concat([head, ...body]);
    const sha256 = hex(rest);
    const data = Buffer.concat([Buffer.from(`${MAGIC} ${sha256}\n`, "utf8"), rest]);
    writeCacheFile(`${dir}/${SNAPSHOT_FILE}`, data);
    return { sha256, bytes: data.length };
  }
}

/** Why a file is no usable snapshot, or the snapshot. A missing file is { missing: true }. */
export function readSnapshot(dir: string): ScanSnapshot | { missing: true } | { damaged: string } {
  let data: Buffer | null;
  try {
    const dirfd = openDir(dir);
    try {
      data = readFileAt(dirfd, SNAPSHOT_FILE, MAX_BYTES);
    } finally {
      closeSync(dirfd);
    }
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return { missing: true };
    return { damaged: `cannot read ${dir}/${SNAPSHOT_FILE}: ${(e as Error).message}` };
  }
  if (data === null) return { missing: true };
  const path = `${dir}/${SNAPSHOT_FILE}`;
  const nl = data.indexOf(10);
  const first = nl < 0 ? "" : data.subarray(0, nl).toString("latin1");
  const m = /^ddum scan snapshot ([0-9]+) ([0-9a-f]{64})$/.exec(first);
  if (!m) return { damaged: `${path} is not a ddum scan snapshot (its first line is not "${MAGIC} <checksum>")` };
  if (`ddum scan snapshot ${m[1]}` !== MAGIC) return { damaged: `${path} is a scan snapshot of another format (${m[1]})` };
  const rest = data.subarray(nl + 1);
  if (hex(rest) !== m[2]) return { damaged: `${path} does not match its checksum (truncated or damaged)` };
  const headEnd = rest.indexOf(10);
  let meta: SnapshotMeta;
  try {
    meta = JSON.parse(utf8.decode(rest.subarray(0, headEnd))) as SnapshotMeta;
  } catch {
    return { damaged: `${path}: its header is not JSON` };
  }
  const okNumber = (x: unknown) => typeof x === "number" && Number.isSafeInteger(x) && x >= 0;
  const pagesOk = (t: string) => Array.isArray(meta.pages?.[t]) && meta.pages[t]!.length > 0 && meta.pages[t]!.every((s) => Array.isArray(s) && s.every(okNumber));
  if (
    !(meta.version === null || Number.isSafeInteger(meta.version)) ||
    !okNumber(meta.scannedAt) ||
    typeof meta.usersTable !== "string" ||
    typeof meta.groupsTable !== "string" ||
    typeof meta.endpoint !== "string" ||
    typeof meta.region !== "string" ||
    !pagesOk(meta.usersTable) ||
    !pagesOk(meta.groupsTable)
  ) {
    return { damaged: `${path}: its header is not in the expected form` };
  }
  // Where each page's frame lies in the body.
  const at: Record<string, { start: number; end: number }[][]> = {};
  let off = headEnd + 1;
  for (const table of [meta.usersTable, meta.groupsTable]) {
    at[table] = meta.pages[table]!.map((seg) =>
      seg.map((len) => {
        const r = { start: off, end: off + len };
        off += len;
        return r;
      }),
    );
  }
  if (off !== rest.length) return { damaged: `${path}: its pages do not add up to its size` };
  const source: PageSource = (table) => {
    const segs = at[table];
    if (!segs) throw new Error(`${path} holds no table ${table}`);
    return {
      segments: segs.length,
      async *pages(segment: number): AsyncIterable<ScanCommandOutput> {
        for (const { start, end } of segs[segment]!) {
          const bytes = Bun.zstdDecompressSync(rest.subarray(start, end));
          yield pageFromText(utf8.decode(bytes), bytes);
        }
      },
    };
  };
  return { meta, sha256: m[2]!, source, bytes: data.length };
}

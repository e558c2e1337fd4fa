// The page memo (STATE_DIR/scan-pages.memo): a cache of the rule book's verdicts. It holds the
// SHA-256 of each page of the Users table on which a pass found every item a valid record that
// judgeUser (judge.ts) found in place, together with a digest of everything else that verdict
// reads: this build, the rule book's own text, the configuration, the policy, the texts of
// /etc/passwd, /etc/shadow and /etc/group, and the users and groups ddum owns. A later pass that
// receives a page with a recorded digest, under the same digest of everything else, takes its
// users as in place without decoding their strings or asking the rule book again: the answer
// would be the same, as it is a pure function of exactly these inputs. A rule added to the rule
// book changes its text, so no memo made without it vouches for anything (a test adds one). Key
// files are still checked (one statx), duplicate IDs across the table refused, homes converged.
//
// Why this is exact: the verdict is a pure function of the record and the inputs above (a rule
// sees no clock: UserCase has no today); the record is a pure function of the page's bytes and
// this build. A page differs by one byte: another SHA-256. A pass that changed the accounts
// records the digest of the files it wrote (read back under the locks): its actions touch no user
// it found in place (they are counted, not acted on), new entries take no name or ID that exists,
// and a page whose other users it created or updated is recorded as well, as those now have
// exactly their record's lines, are owned and hold their UID (a test holds passes with and
// without the memo to the same outcome).
//
// Scan pages end at 1 MB, so a record that changes size moves the boundaries of the pages after
// it in its segment: those are checked in full once, then recorded again.
//
// The memo is a cache: missing, unreadable or foreign means empty, and a pass without it does
// everything itself. It is written only when its content changes, root-only.
import { readFileSync, statSync } from "node:fs";
import { writeCacheFile } from "./cachefile.ts";
import { VERSION } from "./version.ts";

export const MEMO_FILE = "scan-pages.memo";
const FORMAT = "ddum page memo 2";

const sha256 = (s: string) => new Bun.CryptoHasher("sha256").update(s).digest("base64");

let buildIdCache: string | undefined;

/**
 * This build: the compiled executable's identity, or, run from sources (`bun src/cli.ts`, where
 * process.execPath is Bun itself), a digest of every source file: edited sources never trust an
 * old memo.
 */
export function buildId(): string {
  if (buildIdCache !== undefined) return buildIdCache;
  if (import.meta.path.startsWith("/$bunfs/")) {
    const st = statSync(process.execPath, { bigint: true, throwIfNoEntry: false });
    buildIdCache = st ? `${process.execPath}:${st.dev}:${st.ino}:${st.size}:${st.mtimeNs}:${st.ctimeNs}` : `${process.execPath}:?`;
  } else {
    const h = new Bun.CryptoHasher("sha256");
    for (const f of [...new Bun.Glob("**/*.ts").scanSync(import.meta.dir)].sort()) h.update(`${f}\0`).update(readFileSync(`${import.meta.dir}/${f}`)).update("\0");
    buildIdCache = `sources:${h.digest("base64")}`;
  }
  return buildIdCache;
}

export interface MemoInputs {
  /** The configuration and policy, as the pass uses them. */
  config: unknown;
  policy: unknown;
  /** The texts of /etc/passwd and /etc/shadow the check reads (null: no such file). */
  passwd: string | null;
  shadow: string | null;
  /** The text of /etc/group (a user's primary GID is judged against it). */
  group: string | null;
  /** The users ddum owns (state.json). */
  owned: readonly string[];
  /** The groups ddum owns (state.json). */
  ownedGroups: readonly string[];
  /** The rule book's own text (judge.ts, userRulesText): a rule added or changed, another digest. */
  rules: string;
}

/** One digest of everything but the record that the in-place check depends on. */
export function memoEnvironment(m: MemoInputs): string {
  const parts = [
    FORMAT,
    VERSION,
    buildId(),
    JSON.stringify(m.config),
    JSON.stringify(m.policy),
    m.passwd === null ? "absent" : `text:${m.passwd}`,
    m.shadow === null ? "absent" : `text:${m.shadow}`,
    JSON.stringify(m.owned),
    m.group === null ? "absent" : `text:${m.group}`,
    JSON.stringify(m.ownedGroups),
    m.rules,
  ];
  // Each part hashed on its own, then the fixed-length digests: no two lists of parts meet.
  return sha256(parts.map(sha256).join(","));
}

export class PageMemo {
  private readonly fresh = new Set<string>();
  /** Pages answered from the memo in this pass (for tests and traces). */
  hits = 0;

  private constructor(
    private readonly env: string | null,
    private readonly pages: ReadonlySet<string>,
  ) {}

  static empty(): PageMemo {
    return new PageMemo(null, new Set());
  }

  static load(dir: string): PageMemo {
    try {
      const j = JSON.parse(readFileSync(`${dir}/${MEMO_FILE}`, "utf8")) as { format?: unknown; env?: unknown; pages?: unknown };
      if (j.format !== FORMAT || typeof j.env !== "string" || !Array.isArray(j.pages) || !j.pages.every((p) => typeof p === "string")) {
        return PageMemo.empty();
      }
      return new PageMemo(j.env, new Set(j.pages as string[]));
    } catch {
      return PageMemo.empty();
    }
  }

  /** Whether the page with this digest was recorded under exactly this environment. */
  knows(env: string, page: string): boolean {
    if (env !== this.env || !this.pages.has(page)) return false;
    this.hits++;
    return true;
  }

  /** A page of this pass on which every item was a valid record found in place. */
  record(page: string): void {
    this.fresh.add(page);
  }

  /** The pages recorded in this pass, under env (the environment they hold for now). */
  save(dir: string, env: string): void {
    if (env === this.env && this.fresh.size === this.pages.size && [...this.fresh].every((p) => this.pages.has(p))) return;
    const doc = { format: FORMAT, env, pages: [...this.fresh].sort() };
    writeCacheFile(`${dir}/${MEMO_FILE}`, Buffer.from(`${JSON.stringify(doc)}\n`));
  }
}

/**
 * One pass's books on the pages of the Users table as the scan delivers them: which the memo
 * knows, which end up valid and in place throughout (recorded), and which wait only for users
 * this pass's commit may put in place (recorded if it does, see mendedBy).
 */
export class PageBook {
  /** Pages of the Users table seen. */
  pages = 0;
  private page = { digest: undefined as string | undefined, known: false, valid: false, pending: [] as string[] };
  private readonly mended: { digest: string; pending: string[] }[] = [];

  constructor(readonly memo: PageMemo) {}

  /** A page begins; true when the memo knows it under env. */
  begin(env: string, digest: string | undefined): boolean {
    this.pages++;
    const known = digest !== undefined && this.memo.knows(env, digest);
    this.page = { digest, known, valid: digest !== undefined, pending: [] };
    return known;
  }

  /** Whether the memo vouches for the page being read: its users are in place as they stand. */
  get known(): boolean {
    return this.page.known;
  }

  /** An item of the page that is not a valid record. */
  rejected(): void {
    this.page.valid = false;
  }

  /** A valid user of the page, and whether the rule book found it in place. */
  user(name: string, inPlace: boolean): void {
    if (!inPlace && this.page.valid) this.page.pending.push(name);
  }

  end(): void {
    const p = this.page;
    if (!p.valid) return;
    if (p.pending.length === 0) this.memo.record(p.digest!);
    else this.mended.push({ digest: p.digest!, pending: p.pending });
  }

  /**
   * After a commit: a user it created or updated now has exactly its record's lines, is owned, and
   * holds its UID (the rule book refuses a UID someone else holds), in place as the next pass
   * would find it; a page whose every other user was in place is recorded too.
   */
  mendedBy(madeRight: ReadonlySet<string>): void {
    for (const m of this.mended) if (m.pending.every((n) => madeRight.has(n))) this.memo.record(m.digest);
  }

  get mendable(): boolean {
    return this.mended.length > 0;
  }
}

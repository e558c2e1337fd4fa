// A table of lines for one of the four account files. The file's text is kept as it was read,
// with the offset of each line and an index from name to line: no object per line. Only entries
// that ddum changes or adds are serialized from fields, so everything else (NIS lines, comments,
// blank and unparseable lines, other tools' formatting) is written back byte for byte.

export type FileKind = "passwd" | "shadow" | "group" | "gshadow";

export interface ParseIssue {
  file: string;
  line: number;
  message: string;
}

interface Format {
  fields: number;
  /** Indexes of fields that must be decimal IDs. */
  ids: number[];
  /** Indexes of fields that must be empty or a (possibly negative) integer. */
  optionalInts: number[];
}

const FORMATS: Record<FileKind, Format> = {
  passwd: { fields: 7, ids: [2, 3], optionalInts: [] },
  shadow: { fields: 9, ids: [], optionalInts: [2, 3, 4, 5, 6, 7] },
  group: { fields: 4, ids: [2], optionalInts: [] },
  gshadow: { fields: 4, ids: [], optionalInts: [] },
};

const ID_RE = /^(0|[1-9][0-9]{0,9})$/;
const BAD_FIELD = /[:\n\r\0]/;
const INT_RE = /^-?[0-9]{1,10}$/;
export const MAX_ID = 4294967294; // (uid_t)-1 is "no user"

/**
 * One sticky regex per format that accepts only a well-formed entry (IDs of at most 9 digits, so
 * never above MAX_ID), run on the file's text at a line's offset: the common line is classified
 * without being cut out or split. Anything else takes the slow path below, which says what is wrong.
 */
const ID9 = "(?:0|[1-9][0-9]{0,8})";
const INT9 = "(?:-?[0-9]{1,9})?";
const F = "[^:\\n\\r\\0]*";
const NAME = "[^:+\\-#\\n\\r\\0][^:\\n\\r\\0]*";
const END = "(?=\\n|$)";
const WELL_FORMED: Record<FileKind, RegExp> = {
  passwd: new RegExp(`${NAME}:${F}:${ID9}:${ID9}:${F}:${F}:${F}${END}`, "y"),
  shadow: new RegExp(`${NAME}:${F}:${INT9}:${INT9}:${INT9}:${INT9}:${INT9}:${INT9}:${F}${END}`, "y"),
  group: new RegExp(`${NAME}:${F}:${ID9}:${F}${END}`, "y"),
  gshadow: new RegExp(`${NAME}:${F}:${F}:${F}${END}`, "y"),
};

/** What is wrong with a line that is not a well-formed entry; null for blank, comment and NIS lines. */
function problemOf(kind: FileKind, raw: string): string | null {
  if (raw === "") return null;
  const c = raw[0];
  if (c === "+" || c === "-" || c === "#") return null;
  if (raw.includes("\r")) return "carriage return in line";
  if (raw.includes("\0")) return "NUL byte in line";
  const fmt = FORMATS[kind];
  const fields = raw.split(":");
  if (fields.length !== fmt.fields) return `expected ${fmt.fields} colon-separated fields, found ${fields.length}`;
  if (fields[0] === "") return "empty name";
  for (const i of fmt.ids) {
    const v = fields[i]!;
    if (!ID_RE.test(v) || Number(v) > MAX_ID) return `field ${i + 1} is not a valid ID: "${v}"`;
  }
  for (const i of fmt.optionalInts) {
    const v = fields[i]!;
    if (v !== "" && !INT_RE.test(v)) return `field ${i + 1} is not empty or an integer: "${v}"`;
  }
  return null; // well formed after all (an ID of ten digits, say)
}

/** FNV-1a over the UTF-16 code units of s[from, to). */
function hashRange(s: string, from: number, to: number): number {
  let h = 0x811c9dc5;
  for (let i = from; i < to; i++) h = Math.imul(h ^ s.charCodeAt(i), 16777619);
  return h >>> 0;
}

/**
 * Name -> first entry line, with no string and no map entry per line: an open-addressing table
 * of entry numbers keyed by a hash of the name's characters, each entry its line and the offset
 * of its line in the file's text, where names are compared in place. At 100,000 entries a file,
 * a tenth of the memory of a Map of sliced names (45 MB for the four files), and no slicing.
 */
class LineIndex {
  private slots: Int32Array<ArrayBuffer>; // entry + 1; 0: empty
  private lines: Int32Array<ArrayBuffer>;
  private starts: Int32Array<ArrayBuffer>;
  size = 0;

  /** capacity: the most entries it will hold (the file's line count); the table never grows. */
  constructor(
    private readonly body: string,
    capacity: number,
  ) {
    let slots = 64;
    while (slots < capacity * 2 + 2) slots *= 2;
    this.slots = new Int32Array(slots);
    this.lines = new Int32Array(capacity);
    this.starts = new Int32Array(capacity);
  }

  /** Index the entry on `line`, whose text starts at `start` and whose name ends at `nameEnd`; false when the name is indexed already. */
  insert(line: number, start: number, nameEnd: number): boolean {
    const len = nameEnd - start;
    const mask = this.slots.length - 1;
    let s = hashRange(this.body, start, nameEnd) & mask;
    for (let e = this.slots[s]! - 1; e >= 0; e = this.slots[s]! - 1) {
      if (this.sameName(this.starts[e]!, start, len)) return false;
      s = (s + 1) & mask;
    }
    const e = this.size++;
    this.lines[e] = line;
    this.starts[e] = start;
    this.slots[s] = e + 1;
    return true;
  }

  get(name: string): number | undefined {
    const mask = this.slots.length - 1;
    const body = this.body;
    for (let s = hashRange(name, 0, name.length) & mask; ; s = (s + 1) & mask) {
      const e = this.slots[s]! - 1;
      if (e < 0) return undefined;
      const at = this.starts[e]!;
      if (body.charCodeAt(at + name.length) === 58 /* : */ && body.startsWith(name, at)) return this.lines[e];
    }
  }

  /** [name, line] of every entry, in file order (each name sliced out as it is visited). */
  *entries(): IterableIterator<[string, number]> {
    for (let e = 0; e < this.size; e++) {
      const at = this.starts[e]!;
      yield [this.body.slice(at, this.body.indexOf(":", at)), this.lines[e]!];
    }
  }

  /** Line and text offset of entry e (0 <= e < size), in file order. */
  lineOf(e: number): number {
    return this.lines[e]!;
  }
  startOf(e: number): number {
    return this.starts[e]!;
  }

  private sameName(a: number, b: number, len: number): boolean {
    const body = this.body;
    if (body.charCodeAt(a + len) !== 58) return false;
    for (let i = 0; i < len; i++) if (body.charCodeAt(a + i) !== body.charCodeAt(b + i)) return false;
    return true;
  }
}

/** uint32 -> non-zero int32, open addressing; what idOwners keeps per ID (no map entry per ID). */
class IntMap {
  private readonly keys: Uint32Array<ArrayBuffer>;
  private readonly vals: Int32Array<ArrayBuffer>; // 0: empty

  /** capacity: the most keys it will hold; made at twice that once, never grown. */
  constructor(capacity: number) {
    let n = 64;
    while (n < capacity * 2 + 2) n *= 2;
    this.keys = new Uint32Array(n);
    this.vals = new Int32Array(n);
  }

  get(k: number): number | undefined {
    const mask = this.keys.length - 1;
    for (let s = Math.imul(k, 0x9e3779b1) >>> 0 & mask; ; s = (s + 1) & mask) {
      const v = this.vals[s]!;
      if (v === 0) return undefined;
      if (this.keys[s] === k) return v;
    }
  }

  /** Set k to v (non-zero) unless k is there already. */
  setIfAbsent(k: number, v: number): void {
    const mask = this.keys.length - 1;
    let s = Math.imul(k, 0x9e3779b1) >>> 0 & mask;
    for (; this.vals[s] !== 0; s = (s + 1) & mask) if (this.keys[s] === k) return;
    this.keys[s] = k;
    this.vals[s] = v;
  }
}

/** Who holds each ID (a field of the entries), as the C library resolves an ID: the first entry in file order. */
export interface IdOwners {
  get(id: number): string | undefined;
  has(id: number): boolean;
  /** get(id) === name, without cutting the name out of the file. */
  owns(id: number, name: string): boolean;
}

export class AccountTable {
  readonly issues: ParseIssue[] = [];
  /** Names that appear on lines ddum cannot parse: never to be created or claimed. */
  readonly unparsedNames = new Set<string>();
  /** The lines, without the final newline: line i is body[starts[i], ends[i]). */
  private readonly body: string;
  private readonly starts: Int32Array;
  private readonly count: number;
  /** First entry line for each name, as the C library looks names up. */
  private readonly index: LineIndex;
  /** Fields of existing entries that ddum changed, by line. */
  private readonly changedLines = new Map<number, string[]>();
  /** New entries, written just before the first NIS "+" include line (or at the end). */
  private readonly added: string[][] = [];
  private readonly addedIndex = new Map<string, number>();
  private readonly trailingNewline: boolean;
  private nisAt: number;
  /** Whether the file existed when read. */
  readonly existed: boolean;

  constructor(
    readonly kind: FileKind,
    readonly path: string,
    text: string | null,
  ) {
    this.existed = text !== null;
    const whole = text ?? "";
    this.trailingNewline = whole === "" || whole.endsWith("\n");
    const body = this.trailingNewline ? whole.slice(0, -1) : whole;
    this.body = body;
    // Lines counted first, so that the index and the line table are made at their size once
    // (growing them while 100,000 lines go in cost a tenth of loading the files).
    let lines = whole === "" ? 0 : 1;
    for (let nl = body.indexOf("\n"); nl !== -1; nl = body.indexOf("\n", nl + 1)) lines++;
    this.index = new LineIndex(body, lines);
    if (whole === "") {
      this.starts = new Int32Array(1);
      this.count = 0;
      this.nisAt = 0;
      return;
    }
    const starts = new Int32Array(lines + 1);
    let n = 0;
    let nisAt = -1;
    const re = WELL_FORMED[kind];
    for (let at = 0; ; ) {
      starts[n] = at;
      const nl = body.indexOf("\n", at);
      const end = nl === -1 ? body.length : nl;
      re.lastIndex = at;
      if (re.test(body)) {
        this.addEntry(n, at, body.indexOf(":", at));
      } else {
        const raw = body.slice(at, end);
        if (nisAt === -1 && raw[0] === "+") nisAt = n;
        const problem = problemOf(kind, raw);
        if (problem) {
          this.issues.push({ file: path, line: n + 1, message: `unparseable line kept as is: ${problem}` });
          const name = raw.split(":", 1)[0]!;
          if (name !== "") this.unparsedNames.add(name);
        } else if (raw !== "" && !"+-#".includes(raw[0]!)) {
          this.addEntry(n, at, at + raw.indexOf(":"));
        }
      }
      n++;
      if (nl === -1) break;
      at = nl + 1;
    }
    this.starts = starts;
    this.count = n;
    this.nisAt = nisAt === -1 ? n : nisAt;
  }

  private addEntry(line: number, start: number, nameEnd: number): void {
    if (!this.index.insert(line, start, nameEnd)) {
      const name = this.body.slice(start, nameEnd);
      this.issues.push({ file: this.path, line: line + 1, message: `duplicate entry for "${name}" (the first one is used)` });
    }
  }

  private raw(line: number): string {
    return this.body.slice(this.starts[line]!, this.lineEnd(line));
  }

  get(name: string): readonly string[] | undefined {
    const at = this.addedIndex.get(name);
    if (at !== undefined) return this.added[at];
    const line = this.index.get(name);
    if (line === undefined) return undefined;
    return this.changedLines.get(line) ?? this.raw(line).split(":");
  }

  /** The current text of an entry's line (without serializing it from fields when unchanged). */
  text(name: string): string | undefined {
    const line = this.index.get(name);
    if (line === undefined) {
      const at = this.addedIndex.get(name);
      return at === undefined ? undefined : this.added[at]!.join(":");
    }
    const fields = this.changedLines.get(line);
    return fields ? fields.join(":") : this.raw(line);
  }

  /**
   * Whether the entry for name reads exactly `text`, compared in place in the file's text; with
   * anyLastField, `text` runs up to and including the last ":", and the last field may be
   * anything (no ":"). Nothing is cut out or split: at 100,000 users this is most of a no-change
   * plan.
   */
  lineReads(name: string, text: string, anyLastField = false): boolean {
    const line = this.index.get(name);
    if (line === undefined) return false;
    const changed = this.changedLines.size > 0 ? this.changedLines.get(line) : undefined;
    if (changed) {
      const full = changed.join(":");
      return anyLastField ? full.startsWith(text) && !full.includes(":", text.length) : full === text;
    }
    const start = this.starts[line]!;
    const end = this.lineEnd(line);
    if (!anyLastField) return end - start === text.length && this.body.startsWith(text, start);
    if (end - start < text.length || !this.body.startsWith(text, start)) return false;
    const colon = this.body.indexOf(":", start + text.length);
    return colon === -1 || colon >= end;
  }

  private owners: IdOwners | null = null;
  private ownersField = -1;

  /**
   * ID (field i) -> the first entry that has it, in file order, as the C library resolves an ID.
   * Built once and kept until the table changes: a pass builds it while the scan is running. It
   * maps IDs to lines (added entries: -1 - their index), names are cut out only when asked for.
   */
  idOwners(i: number): IdOwners {
    if (this.owners && this.ownersField === i) return this.owners;
    // IDs are 32-bit (checked when the line was parsed); refs: line + 1, or -1 - added index.
    const byId = new IntMap(this.index.size + this.added.length);
    const body = this.body;
    const index = this.index;
    // The field's digits are read in place (no slice per line): a pass does this for 100,000
    // users while the scan runs. Anything but plain digits goes through Number() as before.
    for (let e = 0; e < index.size; e++) {
      const line = index.lineOf(e);
      let id: number;
      const changed = this.changedLines.get(line);
      if (changed) id = Number(changed[i]);
      else {
        let at = index.startOf(e);
        for (let k = 0; k < i; k++) at = body.indexOf(":", at) + 1;
        const lineEnd = this.lineEnd(line);
        let end = body.indexOf(":", at);
        if (end === -1 || end > lineEnd) end = lineEnd;
        let v = 0;
        let p = at;
        for (; p < end; p++) {
          const c = body.charCodeAt(p);
          if (c < 48 || c > 57) break;
          v = v * 10 + (c - 48);
        }
        id = p === end && p > at && p - at <= 15 ? v : Number(body.slice(at, end));
      }
      byId.setIfAbsent(id, line + 1);
    }
    for (let a = 0; a < this.added.length; a++) {
      const id = Number(this.added[a]![i]);
      byId.setIfAbsent(id, -1 - a);
    }
    const nameOf = (ref: number) => (ref < 0 ? this.added[-1 - ref]![0]! : body.slice(this.starts[ref - 1]!, body.indexOf(":", this.starts[ref - 1]!)));
    const valid = (id: number) => Number.isInteger(id) && id >= 0 && id <= 0xffffffff;
    const owners: IdOwners = {
      get: (id) => {
        const ref = valid(id) ? byId.get(id) : undefined;
        return ref === undefined ? undefined : nameOf(ref);
      },
      has: (id) => valid(id) && byId.get(id) !== undefined,
      owns: (id, name) => {
        const ref = valid(id) ? byId.get(id) : undefined;
        if (ref === undefined) return false;
        if (ref < 0) return this.added[-1 - ref]![0] === name;
        const at = this.starts[ref - 1]!;
        return body.charCodeAt(at + name.length) === 58 && body.startsWith(name, at);
      },
    };
    this.owners = owners;
    this.ownersField = i;
    return owners;
  }

  has(name: string): boolean {
    return this.index.get(name) !== undefined || (this.addedIndex.size > 0 && this.addedIndex.has(name));
  }

  /** All parsed entries, in file order, first occurrence of each name only (then the added ones). */
  *entries(): IterableIterator<readonly string[]> {
    for (const [name] of this.index.entries()) yield this.get(name)!;
    yield* this.added;
  }

  /** Replace the fields of an existing entry. Returns true when something changed. */
  update(name: string, fields: string[]): boolean {
    const line = this.index.get(name);
    const added = this.addedIndex.get(name);
    if (line === undefined && added === undefined) throw new Error(`${this.path}: no entry for "${name}" to update`);
    this.check(fields);
    if (fields[0] !== name) throw new Error(`${this.path}: an update may not rename "${name}"`);
    if (fields.join(":") === this.text(name)) return false;
    if (added !== undefined) this.added[added] = fields;
    else this.changedLines.set(line!, fields);
    this.owners = null;
    return true;
  }

  /** Add a new entry before the first NIS "+" include line, as the compat lookup expects. */
  add(fields: string[]): void {
    this.check(fields);
    const name = fields[0]!;
    if (this.has(name) || this.unparsedNames.has(name)) {
      throw new Error(`${this.path}: "${name}" already exists`);
    }
    this.addedIndex.set(name, this.added.length);
    this.added.push(fields);
    this.owners = null;
  }

  get changed(): boolean {
    return this.added.length > 0 || this.changedLines.size > 0;
  }

  /**
   * The file's new text: the unchanged stretches between changed lines are copied as they were
   * read (one slice each), changed lines are joined from their fields, added ones go in before
   * the first NIS "+" line.
   */
  serialize(): string {
    if (this.count + this.added.length === 0) return "";
    const segments: string[] = []; // each one or more whole lines, without the final newline
    let from = 0; // the first line not yet copied
    const copy = (to: number) => {
      if (to > from) segments.push(this.body.slice(this.starts[from]!, this.lineEnd(to - 1)));
      from = to;
    };
    let inserted = this.added.length === 0;
    const insert = () => {
      copy(this.nisAt);
      for (const fields of this.added) segments.push(fields.join(":"));
      inserted = true;
    };
    for (const line of [...this.changedLines.keys()].sort((a, b) => a - b)) {
      if (!inserted && this.nisAt <= line) insert();
      copy(line);
      segments.push(this.changedLines.get(line)!.join(":"));
      from = line + 1;
    }
    if (!inserted) insert();
    copy(this.count);
    const out = segments.join("\n");
    // A file that lacked a final newline gets one once ddum writes an entry at its end.
    const lastWritten = this.changedLines.has(this.count - 1) || (this.added.length > 0 && this.nisAt === this.count);
    return this.trailingNewline || lastWritten ? `${out}\n` : out;
  }

  private lineEnd(line: number): number {
    return line + 1 < this.count ? this.starts[line + 1]! - 1 : this.body.length;
  }

  /** Defence in depth: whatever reaches a file must be one well-formed line. */
  private check(fields: string[]): void {
    const fmt = FORMATS[this.kind];
    if (fields.length !== fmt.fields) {
      throw new Error(`${this.path}: entry needs ${fmt.fields} fields, got ${fields.length}`);
    }
    for (const f of fields) {
      if (BAD_FIELD.test(f)) {
        throw new Error(`${this.path}: refusing to write a field with ':', newline or NUL for "${fields[0]}"`);
      }
    }
    const name = fields[0]!;
    if (name === "" || name[0] === "+" || name[0] === "-" || name[0] === "#") {
      throw new Error(`${this.path}: refusing to write an entry named "${name}"`);
    }
    for (const i of fmt.ids) {
      const v = fields[i]!;
      if (!ID_RE.test(v) || Number(v) > MAX_ID) throw new Error(`${this.path}: "${name}": field ${i + 1} is not a valid ID`);
    }
    for (const i of fmt.optionalInts) {
      const v = fields[i]!;
      if (v !== "" && !INT_RE.test(v)) throw new Error(`${this.path}: "${name}": field ${i + 1} is not an integer`);
    }
  }
}

export function splitList(field: string): string[] {
  return field === "" ? [] : field.split(",");
}

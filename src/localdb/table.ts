// A table of lines for one of the four account files. Every line keeps its raw text; only
// entries that ddum changes or adds are serialized from fields, so everything else (NIS lines,
// comments, blank and unparseable lines, other tools' formatting) is written back byte for byte.

export type FileKind = "passwd" | "shadow" | "group" | "gshadow";

export type LineKind = "entry" | "nis" | "blank" | "comment" | "invalid";

export interface Line {
  raw: string;
  kind: LineKind;
  /**
   * Fields of an entry that ddum changed or added; null otherwise. Unchanged entries keep only
   * their raw text (split again when read): at 100,000 users that is most of the memory saved.
   */
  fields: string[] | null;
  /** True when fields differ from raw and the line must be serialized from fields. */
  dirty: boolean;
}

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
 * One regex per format that accepts only well-formed entries (IDs of at most 9 digits, so never
 * above MAX_ID): the common line is classified without splitting it. Anything else takes the
 * slow path below, which also says what is wrong.
 */
const ID9 = "(?:0|[1-9][0-9]{0,8})";
const INT9 = "(?:-?[0-9]{1,9})?";
const F = "[^:\\r\\0]*";
const NAME = "[^:+\\-#\\r\\0][^:\\r\\0]*";
const WELL_FORMED: Record<FileKind, RegExp> = {
  passwd: new RegExp(`^${NAME}:${F}:${ID9}:${ID9}:${F}:${F}:${F}$`),
  shadow: new RegExp(`^${NAME}:${F}:${INT9}:${INT9}:${INT9}:${INT9}:${INT9}:${INT9}:${F}$`),
  group: new RegExp(`^${NAME}:${F}:${ID9}:${F}$`),
  gshadow: new RegExp(`^${NAME}:${F}:${F}:${F}$`),
};

function classify(kind: FileKind, raw: string): { line: Line; problem?: string } {
  if (WELL_FORMED[kind].test(raw)) return { line: { raw, kind: "entry", fields: null, dirty: false } };
  if (raw === "") return { line: { raw, kind: "blank", fields: null, dirty: false } };
  const c = raw[0];
  if (c === "+" || c === "-") return { line: { raw, kind: "nis", fields: null, dirty: false } };
  if (c === "#") return { line: { raw, kind: "comment", fields: null, dirty: false } };
  const invalid = (problem: string) => ({
    line: { raw, kind: "invalid" as const, fields: null, dirty: false },
    problem,
  });
  if (raw.includes("\r")) return invalid("carriage return in line");
  if (raw.includes("\0")) return invalid("NUL byte in line");
  const fmt = FORMATS[kind];
  const fields = raw.split(":");
  if (fields.length !== fmt.fields) {
    return invalid(`expected ${fmt.fields} colon-separated fields, found ${fields.length}`);
  }
  if (fields[0] === "") return invalid("empty name");
  for (const i of fmt.ids) {
    const v = fields[i]!;
    if (!ID_RE.test(v) || Number(v) > MAX_ID) return invalid(`field ${i + 1} is not a valid ID: "${v}"`);
  }
  for (const i of fmt.optionalInts) {
    const v = fields[i]!;
    if (v !== "" && !INT_RE.test(v)) return invalid(`field ${i + 1} is not empty or an integer: "${v}"`);
  }
  return { line: { raw, kind: "entry", fields: null, dirty: false } };
}

export class AccountTable {
  readonly lines: Line[] = [];
  readonly issues: ParseIssue[] = [];
  /** First entry line for each name, as the C library looks names up. */
  private readonly index = new Map<string, Line>();
  /** Names that appear on lines ddum cannot parse: never to be created or claimed. */
  readonly unparsedNames = new Set<string>();
  private trailingNewline: boolean;
  /** New entries, written just before the first NIS "+" include line (or at the end). */
  private readonly added: Line[] = [];
  private nisAt = -1;
  /** Whether the file existed when read. */
  readonly existed: boolean;

  constructor(
    readonly kind: FileKind,
    readonly path: string,
    text: string | null,
  ) {
    this.existed = text !== null;
    const body = text ?? "";
    this.trailingNewline = body === "" || body.endsWith("\n");
    if (body === "") {
      this.nisAt = 0;
      return;
    }
    const rawLines = (this.trailingNewline ? body.slice(0, -1) : body).split("\n");
    for (let n = 0; n < rawLines.length; n++) {
      const { line, problem } = classify(kind, rawLines[n]!);
      this.lines.push(line);
      if (problem) {
        this.issues.push({ file: path, line: n + 1, message: `unparseable line kept as is: ${problem}` });
        const name = line.raw.split(":", 1)[0]!;
        if (name !== "") this.unparsedNames.add(name);
      } else if (line.kind === "entry") {
        const name = line.raw.slice(0, line.raw.indexOf(":"));
        if (this.index.has(name)) {
          this.issues.push({ file: path, line: n + 1, message: `duplicate entry for "${name}" (the first one is used)` });
        } else {
          this.index.set(name, line);
        }
      }
    }
    const nis = this.lines.findIndex((l) => l.kind === "nis" && l.raw.startsWith("+"));
    this.nisAt = nis === -1 ? this.lines.length : nis;
  }

  get(name: string): readonly string[] | undefined {
    const line = this.index.get(name);
    return line ? fieldsOf(line) : undefined;
  }

  /** The current text of an entry's line (without serializing it from fields when unchanged). */
  text(name: string): string | undefined {
    const line = this.index.get(name);
    if (!line) return undefined;
    return line.dirty ? line.fields!.join(":") : line.raw;
  }

  /** Field i of every entry as a number, with the entry's name, read without splitting lines. */
  *numbers(i: number): IterableIterator<[string, number]> {
    for (const [name, line] of this.index) {
      const text = line.dirty ? line.fields!.join(":") : line.raw;
      let at = 0;
      for (let k = 0; k < i; k++) at = text.indexOf(":", at) + 1;
      const end = text.indexOf(":", at);
      yield [name, Number(text.slice(at, end === -1 ? undefined : end))];
    }
  }

  has(name: string): boolean {
    return this.index.has(name);
  }

  /** All parsed entries, in file order, first occurrence of each name only. */
  *entries(): IterableIterator<readonly string[]> {
    for (const line of this.index.values()) yield fieldsOf(line);
  }

  /** Replace the fields of an existing entry. Returns true when something changed. */
  update(name: string, fields: string[]): boolean {
    const line = this.index.get(name);
    if (!line) throw new Error(`${this.path}: no entry for "${name}" to update`);
    this.check(fields);
    if (fields[0] !== name) throw new Error(`${this.path}: an update may not rename "${name}"`);
    if (fields.join(":") === (line.dirty ? line.fields!.join(":") : line.raw)) return false;
    line.fields = fields;
    line.dirty = true;
    return true;
  }

  /** Add a new entry before the first NIS "+" include line, as the compat lookup expects. */
  add(fields: string[]): void {
    this.check(fields);
    const name = fields[0]!;
    if (this.index.has(name) || this.unparsedNames.has(name)) {
      throw new Error(`${this.path}: "${name}" already exists`);
    }
    const line: Line = { raw: "", kind: "entry", fields, dirty: true };
    this.added.push(line);
    this.index.set(name, line);
  }

  get changed(): boolean {
    return this.added.length > 0 || this.lines.some((l) => l.dirty);
  }

  /** Every line in file order, new entries in place. */
  private allLines(): Line[] {
    if (this.added.length === 0) return this.lines;
    return [...this.lines.slice(0, this.nisAt), ...this.added, ...this.lines.slice(this.nisAt)];
  }

  serialize(): string {
    const lines = this.allLines();
    if (lines.length === 0) return "";
    const out = lines.map((l) => (l.dirty ? l.fields!.join(":") : l.raw)).join("\n");
    // A file that lacked a final newline gets one once ddum writes an entry at its end.
    const last = lines[lines.length - 1]!;
    return this.trailingNewline || last.dirty ? `${out}\n` : out;
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

function fieldsOf(line: Line): string[] {
  return line.fields ?? line.raw.split(":");
}

export function splitList(field: string): string[] {
  return field === "" ? [] : field.split(",");
}

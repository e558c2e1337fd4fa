import { readFileSync, statSync } from "node:fs";
import * as v from "valibot";
import { ConfigError } from "./errors.ts";

export const DEFAULT_CONFIG_PATH = "/etc/dynamodb-user-manager.cfg";

const int = (min: number, max: number) =>
  v.pipe(
    v.number(`expected a whole number from ${min} to ${max}`),
    v.integer(`expected a whole number from ${min} to ${max}`),
    v.minValue(min, `expected a whole number from ${min} to ${max}`),
    v.maxValue(max, `expected a whole number from ${min} to ${max}`),
  );
const str = (what = "expected a string") => v.string(what);
const id = int(1, 4294967294);
/** null (or absent) means: take it from the root's /etc/login.defs. */
const idOrNull = v.nullish(id);
/** DynamoDB's own rule for table names. */
const tableName = v.pipe(v.string(), v.regex(/^[A-Za-z0-9_.-]{3,255}$/, "expected a table name (3-255 of letters, digits, '_', '-', '.')"));
const names = v.array(v.string("expected a list of names"), "expected a list of names");

/** Every key, its type and its default. The old daemon's keys come first, unchanged. */
const ConfigSchema = v.object({
  // The old daemon's keys (same names, same defaults).
  aws_access_key: v.optional(str(), ""),
  aws_secret_key: v.optional(str(), ""),
  aws_session_token: v.optional(str(), ""),
  aws_profile: v.optional(str(), ""),
  aws_region: v.optional(str(), ""),
  full_update_period: v.optional(int(1, 31 * 86400), 3600),
  full_update_jitter: v.optional(int(0, 31 * 86400), 600),
  user_table_name: v.optional(tableName, "Users"),
  group_table_name: v.optional(tableName, "Groups"),
  logging: v.optional(v.record(v.string(), v.unknown(), "expected an object"), {}),
  // ddum's own keys.
  endpoint_url: v.optional(
    v.pipe(str(), v.check((s) => s === "" || URL.canParse(s), "expected a URL such as http://127.0.0.1:8000")),
    "",
  ),
  scan_segments: v.optional(int(1, 64), 1),
  consistent_read: v.optional(v.boolean("expected true or false"), false),
  max_attempts: v.optional(int(1, 20), 8),
  request_timeout: v.optional(int(1, 600), 30),
  // Where `user add --uid auto` and `group add --gid auto` start (inside the managed range): above
  // the 1000 and 1001 that stock cloud images give their default user and group.
  auto_id_min: v.optional(id, 2000),
  uid_min: idOrNull,
  uid_max: idOrNull,
  gid_min: idOrNull,
  gid_max: idOrNull,
  adopt_users: v.optional(names, []),
  adopt_groups: v.optional(names, []),
  // Local groups (not ddum's) whose records may add members, and which users may have as primary group.
  merge_groups: v.optional(names, []),
  missing_users: v.optional(v.picklist(["keep", "disable"], 'expected "keep" or "disable"'), "keep"),
  max_disable_percent: v.optional(int(0, 100), 10),
  create_homes: v.optional(v.boolean("expected true or false"), true),
  ssh_key_location: v.optional(
    v.pipe(
      str(),
      v.check((s) => s === "home" || (s.startsWith("/") && s.includes("%u")), 'expected "home" or an absolute path template with %u'),
    ),
    "home",
  ),
  state_dir: v.optional(v.pipe(str(), v.startsWith("/", "expected an absolute path")), "/var/lib/ddum"),
  lock_timeout: v.optional(int(0, 3600), 15),
  metrics_file: v.optional(v.pipe(str(), v.check((s) => s === "" || s.startsWith("/"), "expected an absolute path")), ""),
  // How a pass learns that the tables changed: "scan" scans both every time; "version" reads the
  // tables' version (#version, one GetItem) and scans only when it moved, or when the last full
  // scan is full_scan_period seconds old (changes written without raising the version).
  change_detection: v.optional(v.picklist(["scan", "version"], 'expected "scan" or "version"'), "scan"),
  full_scan_period: v.optional(int(60, 31 * 86400), 86400),
});

export type Config = Readonly<v.InferOutput<typeof ConfigSchema>>;

export const CONFIG_KEYS = Object.keys(ConfigSchema.entries);

export interface LoadedConfig {
  config: Config;
  /** Where it came from; null when no file was read (all defaults). */
  path: string | null;
  warnings: string[];
}

/** Keys whose values are credentials: an error about them never shows the value. */
const SECRET_KEYS = new Set(["aws_access_key", "aws_secret_key", "aws_session_token"]);

function describe(issue: v.BaseIssue<unknown>): string {
  const key = v.getDotPath(issue) ?? "(top level)";
  const got = issue.received && !SECRET_KEYS.has(key.split(".")[0]!) ? ` (got ${issue.received})` : "";
  return `${key}: ${issue.message}${got}`;
}

export interface JsonFault {
  /** From 1. */
  line: number;
  /** From 1, in characters. */
  column: number;
  /** The key whose value (or whose separator) holds the fault, as a dot path; null at the top level or when not nameable. */
  key: string | null;
  reason: string;
}

/**
 * Where and why text is not JSON, in words that quote none of it: JSON.parse's own message
 * quotes the text it stopped at, which in a config file with an unquoted aws_secret_key is the
 * secret. Keys are named only when they cannot be a credential: a config key at the top level,
 * or a lower-case word below it. Returns null when the text is JSON after all.
 */
export function jsonFault(text: string): JsonFault | null {
  let i = 0;
  const path: string[] = [];
  class Fault {
    constructor(
      readonly at: number,
      readonly reason: string,
    ) {}
  }
  const fail = (reason: string, at = i): never => {
    throw new Fault(at, reason);
  };
  const ws = () => {
    while (i < text.length && (text[i] === " " || text[i] === "\t" || text[i] === "\n" || text[i] === "\r")) i++;
  };
  const str = (): string => {
    const start = i++;
    for (;;) {
      const c = text[i];
      if (c === undefined) return fail("a string is not closed", start);
      if (c === '"') {
        i++;
        return JSON.parse(text.slice(start, i)) as string;
      }
      if (c === "\\") {
        const e = text[i + 1];
        if (e !== undefined && '"\\/bfnrt'.includes(e)) i += 2;
        else if (e === "u" && /^[0-9A-Fa-f]{4}$/.test(text.slice(i + 2, i + 6))) i += 6;
        else fail("a string holds an invalid escape (a backslash must be followed by one of \" \\ / b f n r t u)");
        continue;
      }
      if (c < " ") fail("a string holds a control character (a line break inside quotes?)");
      i++;
    }
  };
  const NUMBER = /-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?/y;
  const value = (): void => {
    ws();
    const c = text[i];
    if (c === "{") {
      object();
      return;
    }
    if (c === "[") {
      list();
      return;
    }
    if (c === '"') {
      str();
      return;
    }
    NUMBER.lastIndex = i;
    if (NUMBER.test(text)) {
      i = NUMBER.lastIndex;
      return;
    }
    for (const lit of ["true", "false", "null"]) {
      if (text.startsWith(lit, i)) {
        i += lit.length;
        return;
      }
    }
    fail(c === undefined ? "the text ends where a value was expected" : "expected a value: a string in double quotes, a number, true, false, null, an object or a list");
  };
  const object = (): void => {
    i++;
    ws();
    if (text[i] === "}") {
      i++;
      return;
    }
    for (;;) {
      ws();
      if (text[i] !== '"') fail(text[i] === undefined ? "the text ends inside an object" : "expected a key in double quotes");
      path.push(str());
      ws();
      if (text[i] !== ":") fail("expected ':' after the key");
      i++;
      value();
      ws();
      const sep = text[i];
      if (sep !== "," && sep !== "}") fail(sep === undefined ? "the text ends inside an object" : "expected ',' or '}' after the value (a missing comma, or an unquoted string?)");
      path.pop();
      i++;
      if (sep === "}") return;
    }
  };
  const list = (): void => {
    i++;
    ws();
    if (text[i] === "]") {
      i++;
      return;
    }
    for (;;) {
      value();
      ws();
      const sep = text[i];
      if (sep !== "," && sep !== "]") fail(sep === undefined ? "the text ends inside a list" : "expected ',' or ']' after a list item");
      i++;
      if (sep === "]") return;
    }
  };
  try {
    value();
    ws();
    if (i < text.length) fail("more text after the end of the top-level value");
    return null;
  } catch (e) {
    if (!(e instanceof Fault)) throw e;
    const before = text.slice(0, e.at);
    const line = before.split("\n").length;
    const column = e.at - (before.lastIndexOf("\n") + 1) + 1;
    const named = path.map((k, depth) => ((depth === 0 ? CONFIG_KEYS.includes(k) : /^[a-z_]{1,32}$/.test(k)) ? k : "(a key)"));
    return { line, column, key: named.length > 0 ? named.join(".") : null, reason: e.reason };
  }
}

/** Levenshtein distance between two short strings. */
function distance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) cur[j] = Math.min(prev[j]! + 1, cur[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    prev = cur;
  }
  return prev[b.length]!;
}

/** The known config key nearest to a misspelt one (case, a letter or two, a word order), or null. */
export function closestKey(key: string): string | null {
  const k = key.toLowerCase().replace(/-/g, "_");
  let best: string | null = null;
  let bestD = Number.POSITIVE_INFINITY;
  for (const known of CONFIG_KEYS) {
    // Words swapped (min_uid) or cut short (aws_secret) count as one edit.
    const swapped = k.split("_").sort().join("_") === known.split("_").sort().join("_");
    const cut = k.length >= 6 && known.startsWith(k);
    const d = swapped || cut ? Math.min(1, distance(k, known)) : distance(k, known);
    if (d < bestD) {
      bestD = d;
      best = known;
    }
  }
  return best !== null && bestD <= Math.max(2, Math.floor(best.length / 4)) ? best : null;
}

/**
 * The managed ranges once login.defs has filled what the config leaves out: a minimum above its
 * maximum would refuse every record, so it is a configuration error, saying where each came from.
 */
export function checkRanges(r: { uidMin: number; uidMax: number; gidMin: number; gidMax: number }, config: Config, loginDefs: string): void {
  for (const [kind, lo, hi] of [
    ["uid", r.uidMin, r.uidMax],
    ["gid", r.gidMin, r.gidMax],
  ] as const) {
    if (lo <= hi) continue;
    const from = (key: "uid_min" | "uid_max" | "gid_min" | "gid_max", def: string) => (config[key] != null ? key : `${def} in ${loginDefs}`);
    throw new ConfigError(
      `the managed ${kind.toUpperCase()} range is empty: ${from(`${kind}_min`, `${kind.toUpperCase()}_MIN`)} is ${lo}, above ${from(`${kind}_max`, `${kind.toUpperCase()}_MAX`)} (${hi}); every record would be refused`,
    );
  }
}

/** Validate a parsed config object. Throws ConfigError naming every bad key. */
export function parseConfig(input: unknown, source = "config"): { config: Config; warnings: string[] } {
  if (typeof input !== "object" || input === null || Array.isArray(input)) {
    throw new ConfigError(`${source}: expected a JSON object at the top level`);
  }
  const warnings: string[] = [];
  // A misspelt key would silently leave its default in force (keys written where they should not
  // be, a range not applied): it is an error, with the key it most likely meant.
  const unknown = Object.keys(input).filter((k) => !CONFIG_KEYS.includes(k));
  if (unknown.length > 0) {
    const say = (k: string) => {
      // A key is named only when it could be a config key, never a secret pasted in the wrong place.
      const name = /^[A-Za-z_][A-Za-z0-9_-]{0,40}$/.test(k) ? `"${k}"` : "(a key that is not a name)";
      const near = closestKey(k);
      return `unknown key ${name}${near ? ` (did you mean "${near}"?)` : ""}`;
    };
    throw new ConfigError(`${source}: ${unknown.map(say).join("; ")}; the known keys are listed in ddum(8) under CONFIGURATION`);
  }
  const r = v.safeParse(ConfigSchema, input);
  if (!r.success) {
    throw new ConfigError(`${source}: invalid configuration:\n  ${r.issues.map(describe).join("\n  ")}`);
  }
  const c = r.output;
  for (const [lo, hi] of [
    ["uid_min", "uid_max"],
    ["gid_min", "gid_max"],
  ] as const) {
    const a = c[lo];
    const b = c[hi];
    if (a != null && b != null && a > b) {
      throw new ConfigError(`${source}: ${lo} (${a}) is greater than ${hi} (${b})`);
    }
  }
  if ((c.aws_access_key === "") !== (c.aws_secret_key === "")) {
    throw new ConfigError(`${source}: aws_access_key and aws_secret_key must be given together`);
  }
  return { config: Object.freeze(c), warnings };
}

/**
 * Load the config file. The default path may be absent (all defaults, as on an EC2 host with an
 * instance role); a path the admin named must exist.
 */
export function loadConfig(path: string | undefined): LoadedConfig {
  const file = path ?? DEFAULT_CONFIG_PATH;
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === "ENOENT" && path === undefined) {
      return { ...parseConfig({}, file), path: null };
    }
    throw new ConfigError(`cannot read config file ${file}: ${(e as Error).message}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    // Never JSON.parse's message: it quotes the text where it stopped, a secret perhaps.
    const f = jsonFault(text);
    const where = f ? ` at line ${f.line}, column ${f.column}${f.key ? `, in ${f.key}` : ""}: ${f.reason}` : "";
    throw new ConfigError(`${file}: not valid JSON${where}`);
  }
  const { config, warnings } = parseConfig(json, file);
  if (config.aws_secret_key !== "" || config.aws_session_token !== "") {
    const st = statSync(file);
    if (st.mode & 0o077) {
      warnings.push(
        `${file} holds a static AWS secret key and is readable by other users (mode ${(st.mode & 0o777).toString(8)}); chmod 600 it`,
      );
    }
  }
  return { config, path: file, warnings };
}

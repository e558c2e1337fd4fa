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
});

export type Config = Readonly<v.InferOutput<typeof ConfigSchema>>;

export const CONFIG_KEYS = Object.keys(ConfigSchema.entries);

export interface LoadedConfig {
  config: Config;
  /** Where it came from; null when no file was read (all defaults). */
  path: string | null;
  warnings: string[];
}

function describe(issue: v.BaseIssue<unknown>): string {
  const key = v.getDotPath(issue) ?? "(top level)";
  const got = issue.received ? ` (got ${issue.received})` : "";
  return `${key}: ${issue.message}${got}`;
}

/** Validate a parsed config object. Throws ConfigError naming every bad key. */
export function parseConfig(input: unknown, source = "config"): { config: Config; warnings: string[] } {
  if (typeof input !== "object" || input === null || Array.isArray(input)) {
    throw new ConfigError(`${source}: expected a JSON object at the top level`);
  }
  const warnings: string[] = [];
  for (const key of Object.keys(input)) {
    if (!CONFIG_KEYS.includes(key)) warnings.push(`${source}: unknown key "${key}" is ignored`);
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
  } catch (e) {
    throw new ConfigError(`${file}: not valid JSON: ${(e as Error).message}`);
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

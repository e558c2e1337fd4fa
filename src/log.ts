import { createConsola, type ConsolaInstance, type LogObject, LogLevels } from "consola/core";
import { format } from "node:util";
import { appendSafely } from "./safefile.ts";
import { escapeControls } from "./escape.ts";

export type Logger = ConsolaInstance;
export type LogFormat = "plain" | "json";
export type LevelName = "error" | "warn" | "info" | "debug";

// A whole crypt hash: its scheme's "$id$" (or "$md5,"), then salt or parameters, then "$" and
// more, up to the next white space, whatever the salt holds; and BSDi extended DES ("_" and 19
// characters). A scheme prefix alone ("$6$" in a list of accepted methods) is no hash.
const HASH_RE = /\$(?:y|gy|7|6|5|2[abxy]|1|3|sha1|md5)[$,][^\s$]*\$\S+|(?<![\w./])_[./0-9A-Za-z]{19}(?![\w./])/g;
const secrets = new Map<string, RegExp>();
// What a secret key or token is made of (base64 and its URL form): a secret is replaced only where
// it stands whole, never inside a longer word.
const TOKEN_CHAR = "A-Za-z0-9+/_";

/**
 * Register a value that must never appear in a log line (static secret keys, tokens). The access
 * key ID is not one: it names the key, like a user name, and says where to look.
 */
export function addSecret(s: string): void {
  if (s.length < 4 || secrets.has(s)) return;
  const body = s.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&");
  secrets.set(s, new RegExp(`(?<![${TOKEN_CHAR}])${body}(?![${TOKEN_CHAR}])`, "g"));
}

/** Strip whole password hashes and whole registered secrets from a log line. */
export function redact(line: string): string {
  let out = line.replace(HASH_RE, "(hash hidden)");
  for (const [s, re] of secrets) if (out.includes(s)) out = out.replace(re, "(secret hidden)");
  return out;
}

export interface LogOptions {
  level?: LevelName;
  format?: LogFormat;
  /** Append to this file instead of stderr. */
  file?: string;
}

const TYPE_LABEL: Record<string, string> = { fatal: "error", error: "error", warn: "warning", info: "info", success: "info", log: "info", debug: "debug", trace: "debug", start: "info", ready: "info", box: "info", fail: "error" };

/**
 * stderr (or a file) only: stdout is kept for plans and --json output. Plain "level: message"
 * lines (journald adds its own timestamps), or JSON lines for log shippers.
 */
export function makeLogger(opts: LogOptions = {}): Logger {
  const fmt = opts.format ?? "plain";
  const write = (line: string) => {
    if (opts.file) {
      try {
        appendSafely(opts.file, `${line}\n`);
      } catch (e) {
        process.stderr.write(`cannot write to ${opts.file} (${(e as Error).message}): ${line}\n`);
      }
    }
    else process.stderr.write(`${line}\n`);
  };
  return createConsola({
    level: LogLevels[opts.level ?? "info"],
    reporters: [
      {
        log(obj: LogObject) {
          // Control characters escaped as in every report; line breaks are kept only in plain form.
          const msg = redact(format(...obj.args)).split("\n").map(escapeControls).join("\n");
          const level = TYPE_LABEL[obj.type] ?? "info";
          if (fmt === "json") write(JSON.stringify({ time: obj.date.toISOString(), level, msg }));
          else if (opts.file) write(`${obj.date.toISOString()} ${level}: ${msg}`);
          else write(`${level}: ${msg}`);
        },
      },
    ],
  });
}

const PY_LEVELS: Record<string, LevelName> = { DEBUG: "debug", INFO: "info", WARNING: "warn", WARN: "warn", ERROR: "error", CRITICAL: "error" };

/**
 * The config's `logging` key: ddum's simple form {level, format, file}, or the old daemon's
 * Python dictConfig (recognised by its "version" key), of which only the root level is used.
 */
export function logOptionsFromConfig(logging: Record<string, unknown>, warn: (msg: string) => void): LogOptions {
  if ("version" in logging) {
    const root = logging.root as { level?: unknown } | undefined;
    const level = typeof root?.level === "string" ? PY_LEVELS[root.level.toUpperCase()] : undefined;
    warn(`logging: a Python dictConfig is not supported; using only its root level (${level ?? "info"})`);
    return { level: level ?? "info" };
  }
  const out: LogOptions = {};
  const { level, format: fmt, file, ...rest } = logging;
  for (const k of Object.keys(rest)) warn(`logging: unknown key "${k}" is ignored`);
  if (level !== undefined) {
    if (typeof level === "string" && ["error", "warn", "info", "debug"].includes(level)) out.level = level as LevelName;
    else warn(`logging.level: expected "error", "warn", "info" or "debug"; using "info"`);
  }
  if (fmt !== undefined) {
    if (fmt === "plain" || fmt === "json") out.format = fmt;
    else warn(`logging.format: expected "plain" or "json"; using "plain"`);
  }
  if (file !== undefined) {
    if (typeof file === "string" && file.startsWith("/")) out.file = file;
    else warn("logging.file: expected an absolute path; logging to stderr");
  }
  return out;
}

/** Point an existing logger at new options (level, format, destination). */
export function reconfigure(log: Logger, opts: LogOptions): void {
  const fresh = makeLogger(opts);
  log.level = fresh.level;
  log.setReporters(fresh.options.reporters);
}

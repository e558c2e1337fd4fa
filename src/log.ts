import { appendFileSync } from "node:fs";
import { createConsola, type ConsolaInstance, type LogObject, LogLevels } from "consola/core";
import { format } from "node:util";

export type Logger = ConsolaInstance;
export type LogFormat = "plain" | "json";
export type LevelName = "error" | "warn" | "info" | "debug";

const HASH_RE = /\$(y|gy|7|6|5|2[aby]|1)\$[./A-Za-z0-9$=,]+/g;
const secrets = new Set<string>();

/** Register a value that must never appear in a log line (static secret keys, tokens). */
export function addSecret(s: string): void {
  if (s.length >= 4) secrets.add(s);
}

/** Strip password hashes and registered secrets from a log line. */
export function redact(line: string): string {
  let out = line.replace(HASH_RE, "(hash hidden)");
  for (const s of secrets) out = out.split(s).join("(secret hidden)");
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
    if (opts.file) appendFileSync(opts.file, `${line}\n`);
    else process.stderr.write(`${line}\n`);
  };
  return createConsola({
    level: LogLevels[opts.level ?? "info"],
    reporters: [
      {
        log(obj: LogObject) {
          const msg = redact(format(...obj.args));
          const level = TYPE_LABEL[obj.type] ?? "info";
          if (fmt === "json") write(JSON.stringify({ time: obj.date.toISOString(), level, msg }));
          else if (opts.file) write(`${obj.date.toISOString()} ${level}: ${msg}`);
          else write(`${level}: ${msg}`);
        },
      },
    ],
  });
}

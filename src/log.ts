import { createConsola, type ConsolaInstance, LogLevels } from "consola";

export type Logger = ConsolaInstance;

/**
 * Messages go to stderr; stdout is kept for the plan and --json output. Plain lines (no colors,
 * no timestamps) when stderr is not a terminal: journald adds its own.
 */
export function makeLogger(level: keyof typeof LogLevels = "info"): Logger {
  return createConsola({
    level: LogLevels[level],
    stdout: process.stderr,
    stderr: process.stderr,
    fancy: process.stderr.isTTY === true,
    formatOptions: { date: false, colors: process.stderr.isTTY === true },
  });
}

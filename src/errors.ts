/** Exit codes, shared by every command. */
export const EXIT = {
  ok: 0,
  failed: 1,
  usage: 2,
  partial: 3,
  /** ddum verify: the host differs from the tables. */
  drift: 4,
} as const;

/** An error an operator can act on: its message says what failed and where. */
export class DdumError extends Error {
  constructor(
    message: string,
    readonly exitCode: number = EXIT.failed,
  ) {
    super(message);
    this.name = "DdumError";
  }
}

export class ConfigError extends DdumError {
  constructor(message: string) {
    super(message, EXIT.usage);
    this.name = "ConfigError";
  }
}

export class LockError extends DdumError {
  constructor(message: string) {
    super(message, EXIT.failed);
    this.name = "LockError";
  }
}

export function errorMessage(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** The layout of every --json document (its "version" field); raised when a field changes meaning or goes. */
export const JSON_VERSION = 1;

/** What a command prints on stdout with --json when it fails: what failed, and its exit code. */
export function jsonError(message: string, exitCode: number): string {
  return `${JSON.stringify({ version: JSON_VERSION, error: { message, exitCode } }, null, 2)}\n`;
}

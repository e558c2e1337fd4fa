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

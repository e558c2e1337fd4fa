// Reading a new password: from the terminal without echo (twice, to catch typos), or as the first
// line of stdin for scripts. The bytes are returned for the caller to hash and wipe.
import { closeSync, openSync, readSync, writeSync } from "node:fs";
import { DdumError, EXIT } from "../errors.ts";

function readLineFromFd(fd: number, raw: boolean): Buffer {
  const out: number[] = [];
  const b = Buffer.alloc(1);
  for (;;) {
    let n: number;
    try {
      n = readSync(fd, b, 0, 1, null);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "EAGAIN") continue;
      throw e;
    }
    if (n === 0) break;
    const c = b[0]!;
    if (c === 0x0a || (raw && c === 0x0d)) break;
    if (raw && c === 0x03) throw new DdumError("interrupted; nothing was changed", 130);
    if (raw && c === 0x04 && out.length === 0) break;
    if (raw && (c === 0x7f || c === 0x08)) {
      // Backspace removes one UTF-8 character.
      while (out.length > 0 && ((out.pop() as number) & 0xc0) === 0x80) {}
      continue;
    }
    if (raw && c === 0x15) {
      out.length = 0; // Ctrl-U
      continue;
    }
    out.push(c);
  }
  if (!raw && out.at(-1) === 0x0d) out.pop();
  const buf = Buffer.from(out);
  out.fill(0);
  return buf;
}

/** The first line of stdin (a trailing CR is dropped); the rest of stdin is not read. */
export function passwordFromStdin(): Buffer {
  const pw = readLineFromFd(0, false);
  if (pw.length === 0) throw new DdumError("no password on stdin (expected it on the first line)", EXIT.usage);
  return pw;
}

/** Ask on the terminal, without echo, twice. */
export function passwordFromTty(prompt: string): Buffer {
  let tty: number;
  try {
    tty = openSync("/dev/tty", "r+");
  } catch {
    throw new DdumError("no terminal to read a password from; pipe it on stdin (--password-stdin)", EXIT.usage);
  }
  const tio = process.stdin.isTTY ? process.stdin : null;
  // Echo is off before the prompt appears: whatever is typed once the prompt shows is never echoed.
  const ask = (text: string) => {
    tio?.setRawMode(true);
    try {
      writeSync(tty, text);
      return readLineFromFd(tty, tio !== null);
    } finally {
      tio?.setRawMode(false);
      writeSync(tty, "\n");
    }
  };
  try {
    const first = ask(prompt);
    if (first.length === 0) throw new DdumError("empty password; nothing was changed", EXIT.usage);
    const again = ask("Retype the new password: ");
    const same = first.equals(again);
    again.fill(0);
    if (!same) {
      first.fill(0);
      throw new DdumError("the passwords do not match; nothing was changed", EXIT.usage);
    }
    return first;
  } finally {
    closeSync(tty);
  }
}

/** A password for NAME: from stdin when asked to or when stdin is not a terminal, else the terminal. */
export function readNewPassword(name: string, fromStdin: boolean): Buffer {
  if (fromStdin || !process.stdin.isTTY) return passwordFromStdin();
  return passwordFromTty(`New password for ${name}: `);
}

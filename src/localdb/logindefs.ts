import { readFileSync } from "node:fs";
import type { Root } from "../paths.ts";

/** Read ROOT/etc/login.defs as KEY → value; a missing file gives an empty map. */
export function readLoginDefs(root: Root): Map<string, string> {
  const out = new Map<string, string>();
  let text: string;
  try {
    text = readFileSync(root.etc("login.defs"), "utf8");
  } catch {
    return out;
  }
  for (const line of text.split("\n")) {
    const m = /^\s*([A-Z_][A-Z0-9_]*)\s+(\S+)/.exec(line);
    if (m) out.set(m[1]!, m[2]!);
  }
  return out;
}

/** A numeric login.defs value (decimal, or octal with a leading 0 as shadow-utils reads it). */
export function defsNumber(defs: Map<string, string>, key: string): number | undefined {
  const v = defs.get(key);
  if (v === undefined) return undefined;
  const n = /^0[0-7]+$/.test(v) ? Number.parseInt(v, 8) : /^[0-9]+$/.test(v) ? Number(v) : Number.NaN;
  return Number.isFinite(n) ? n : undefined;
}

// The JavaScript engine's idea of how much memory the machine has. JavaScriptCore sizes its heap
// from the machine's RAM: on a host with gigabytes free it lets garbage pile up to hundreds of
// megabytes before collecting, which is what a pass's peak resident size was made of (at 100,000
// users, about 160 MB live and 590 MB resident). Told the machine is small, it collects
// earlier and the peak follows the live data; and with a small heap's growth factor at 1.2
// instead of 2, it collects when the heap has grown by a fifth, not doubled (at 10,000 users a
// no-change pass's peak went from ~105 to ~95 MB, at 100,000 a first pass's from ~575 to ~510 MB,
// for no measurable CPU). The options can only be set before the engine starts, from the
// environment (BUN_JSC_*), so a pass that finds them unset replaces itself (execve, same PID,
// same arguments, same descriptors) with a copy that has them set. An administrator who sets
// one of the variables keeps their value.
import { ptr } from "bun:ffi";
import { readFileSync } from "node:fs";
import { errno, libc } from "./localdb/libc.ts";

/** What a pass tells the engine the machine's RAM is: 128 MiB. */
export const ENGINE_RAM_BYTES = 128 * 1024 * 1024;
export const ENGINE_RAM_VAR = "BUN_JSC_forceRAMSize";
/**
 * The engine settings of a pass: the machine's RAM, how far a small heap grows before a
 * collection, and no optimizing (DFG, FTL) compiler: a pass is mostly native work (parsing JSON,
 * system calls), and the optimizing tiers' own code and working memory cost 8-15 MB of a 10,000
 * user pass, for CPU within the noise there and about 6 % more at 100,000 users (README, "Memory").
 */
export const ENGINE_SETTINGS: Readonly<Record<string, string>> = {
  [ENGINE_RAM_VAR]: String(ENGINE_RAM_BYTES),
  BUN_JSC_smallHeapGrowthFactor: "1.2",
  BUN_JSC_useDFGJIT: "0",
};
/** Set in the replaced process to the settings ddum set (comma-separated): the replacement has been made (never tried twice). */
const MARK = "DDUM_ENGINE_RAM";

/** NUL-terminated C strings and the NULL-terminated array of pointers to them (kept alive by the caller). */
function cStrings(list: readonly string[]): { bufs: Buffer[]; array: BigUint64Array } {
  const bufs = list.map((s) => Buffer.from(`${s}\0`, "utf8"));
  const array = new BigUint64Array(list.length + 1);
  bufs.forEach((b, i) => {
    array[i] = BigInt(ptr(b));
  });
  return { bufs, array };
}

/**
 * Before a pass: make sure the engine runs with ENGINE_RAM_BYTES as the machine's RAM. Returns
 * only when it does already (or the variable is the administrator's), or when the replacement
 * cannot be made (then the pass runs as it is, with a larger peak; the reason is returned).
 */
export function smallHeap(env: NodeJS.ProcessEnv = process.env): string | null {
  if (env[MARK] !== undefined) {
    // The replacement: what ddum set for itself is not passed on to the programs it starts.
    for (const name of env[MARK].split(",")) if (name in ENGINE_SETTINGS) delete env[name];
    delete env[MARK];
    return null;
  }
  const mine = Object.keys(ENGINE_SETTINGS).filter((name) => env[name] === undefined);
  if (mine.length === 0) return null;
  let argv: string[];
  try {
    argv = readFileSync("/proc/self/cmdline", "latin1").split("\0");
    argv.pop();
  } catch (e) {
    return `cannot read /proc/self/cmdline: ${(e as Error).message}`;
  }
  if (argv.length === 0) return "/proc/self/cmdline is empty";
  const vars = Object.entries(env)
    .filter(([, v]) => v !== undefined)
    .map(([k, v]) => `${k}=${v}`);
  vars.push(...mine.map((name) => `${name}=${ENGINE_SETTINGS[name]}`), `${MARK}=${mine.join(",")}`);
  const path = Buffer.from("/proc/self/exe\0");
  const a = cStrings(argv);
  const e = cStrings(vars);
  libc().execve(ptr(path), ptr(a.array), ptr(e.array));
  // Only reached when execve failed.
  return `execve failed (errno ${errno()})`;
}

// `make mutate`: StrykerJS over the safety modules, in two stages per group of modules, so that
// the hours go where they tell something. Stage 1 runs every mutant against the group's fast
// in-process tests (a second or two each); stage 2 runs only the mutants stage 1 left alive
// against the group's slower tests (real files, the executable, dynalite). The score is the two
// stages merged: a mutant counts as killed when either stage killed it. Writes
// reports/mutation/<group>.stage1.json, .stage2.json and survivors.txt; prints the score per
// group and in all. Usage: bun tests/mutate.ts [group ...] (default: every group).
import { spawnSync } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";

const REPO = join(import.meta.dir, "..");
const OUT = join(REPO, "reports", "mutation");

interface Group {
  /** Files to mutate (StrykerJS patterns). */
  files: string[];
  /** In-process tests, fastest first: every mutant. */
  fast: string[];
  /** The rest of the tests that guard these files: only the mutants the fast ones missed. */
  slow: string[];
}

export const GROUPS: Record<string, Group> = {
  rules: {
    files: ["src/judge.ts", "src/plan.ts", "src/model.ts"],
    fast: ["tests/rulebook.test.ts", "tests/model.test.ts", "tests/decode.test.ts", "tests/plan.test.ts", "tests/plangroups.test.ts", "tests/planusers.test.ts", "tests/keyledger.test.ts", "tests/state.test.ts", "tests/apply.test.ts", "tests/judge.test.ts", "tests/compat-tables.test.ts"],
    slow: ["tests/escapes.test.ts", "tests/sync.test.ts", "tests/pagememo.test.ts", "tests/compat-hashes.test.ts", "tests/rules.test.ts"],
  },
  keys: {
    files: ["src/sshkeys.ts", "src/homes.ts"],
    fast: ["tests/keyledger.test.ts", "tests/compat-tables.test.ts", "tests/keyfiles.test.ts"],
    slow: ["tests/homepaths.test.ts", "tests/homes.test.ts", "tests/homebuild.test.ts"],
  },
  localdb: {
    files: ["src/localdb/*.ts"],
    fast: ["tests/rulebook.test.ts", "tests/plan.test.ts", "tests/plangroups.test.ts", "tests/planusers.test.ts", "tests/apply.test.ts", "tests/judge.test.ts"],
    slow: ["tests/localdb.test.ts", "tests/sync.test.ts", "tests/locks.test.ts"],
  },
};

interface Mutant {
  id: string;
  mutatorName: string;
  replacement?: string;
  status: string;
  location: { start: { line: number; column: number }; end: { line: number; column: number } };
}
interface Report {
  files: Record<string, { mutants: Mutant[] }>;
}

const DETECTED = new Set(["Killed", "Timeout"]);
const UNDETECTED = new Set(["Survived", "NoCoverage"]);
const key = (file: string, m: Mutant) => `${file}:${m.location.start.line}:${m.location.start.column}-${m.location.end.line}:${m.location.end.column}:${m.mutatorName}:${m.replacement ?? ""}`;

/** One StrykerJS run over these mutate patterns with these tests; its JSON report, kept as `save`. */
function stryker(mutate: string[], tests: string[], save: string): Report {
  rmSync(join(REPO, ".stryker-tmp"), { recursive: true, force: true });
  const r = spawnSync("node_modules/.bin/bun", ["node_modules/@stryker-mutator/core/bin/stryker.js", "run", "--mutate", mutate.join(","), "--reporters", "progress,json,html"], {
    cwd: REPO,
    stdio: "inherit",
    env: { ...process.env, MUTATE_TESTS: tests.join(" "), PATH: `${join(REPO, "node_modules", ".bin")}:${process.env.PATH}` },
  });
  if (r.status !== 0) throw new Error(`StrykerJS exited with ${r.status ?? r.signal}`);
  copyFileSync(join(OUT, "mutation.json"), save);
  return JSON.parse(readFileSync(save, "utf8")) as Report;
}

/** A mutant's range as a StrykerJS mutate pattern (report columns are 1-based, the pattern's 0-based). */
const range = (file: string, m: Mutant) => `${file}:${m.location.start.line}:${m.location.start.column - 1}-${m.location.end.line}:${m.location.end.column - 1}`;

function runGroup(name: string, g: Group): { total: number; detected: number; survivors: string[] } {
  mkdirSync(OUT, { recursive: true });
  const s1File = join(OUT, `${name}.stage1.json`);
  // MUTATE_RESUME=1: a group whose stage 1 ran already starts at stage 2.
  // MUTATE_FILES="src/judge.ts:170-180,...": only these patterns of the group (a quick look).
  const files = process.env.MUTATE_FILES ? process.env.MUTATE_FILES.split(",") : g.files;
  const s1 = process.env.MUTATE_RESUME && existsSync(s1File) ? (JSON.parse(readFileSync(s1File, "utf8")) as Report) : stryker(files, g.fast, s1File);
  const alive: string[] = [];
  for (const [file, f] of Object.entries(s1.files)) for (const m of f.mutants) if (UNDETECTED.has(m.status)) alive.push(range(file, m));
  const final = new Map<string, { file: string; m: Mutant }>();
  for (const [file, f] of Object.entries(s1.files)) for (const m of f.mutants) final.set(key(file, m), { file, m });
  // MUTATE_STAGE=1: stop after stage 1 (the score then counts only the fast tests' kills).
  if (alive.length > 0 && process.env.MUTATE_STAGE !== "1") {
    console.log(`\n${name}: stage 2, ${alive.length} mutants left alive by the fast tests, against ${g.slow.join(" ")}`);
    const s2 = stryker(alive, [...g.fast, ...g.slow], join(OUT, `${name}.stage2.json`));
    // A range also takes in the mutants nested inside it: only the ones stage 1 left alive count.
    for (const [file, f] of Object.entries(s2.files)) {
      for (const m of f.mutants) {
        const k = key(file, m);
        const was = final.get(k);
        if (was && UNDETECTED.has(was.m.status)) final.set(k, { file, m });
      }
    }
  }
  let total = 0;
  let detected = 0;
  const survivors: string[] = [];
  for (const { file, m } of final.values()) {
    if (!DETECTED.has(m.status) && !UNDETECTED.has(m.status)) continue; // compile errors, ignored
    total++;
    if (DETECTED.has(m.status)) detected++;
    else survivors.push(`${file}:${m.location.start.line}:${m.location.start.column} #${m.id} ${m.mutatorName} ${m.status}: ${JSON.stringify(m.replacement ?? "")}`);
  }
  return { total, detected, survivors };
}

if (import.meta.main) {
  const names = process.argv.slice(2).length ? process.argv.slice(2) : Object.keys(GROUPS);
  let total = 0;
  let detected = 0;
  const lines: string[] = [];
  for (const name of names) {
    const g = GROUPS[name];
    if (!g) throw new Error(`no mutation group "${name}"; groups: ${Object.keys(GROUPS).join(", ")}`);
    const r = runGroup(name, g);
    total += r.total;
    detected += r.detected;
    lines.push(`${name}: ${r.detected}/${r.total} killed (${((100 * r.detected) / Math.max(1, r.total)).toFixed(2)}%), ${r.survivors.length} survived`, ...r.survivors.map((s) => `  ${s}`));
  }
  lines.push(`mutation score: ${detected}/${total} (${((100 * detected) / Math.max(1, total)).toFixed(2)}%)`);
  writeFileSync(join(OUT, "survivors.txt"), `${lines.join("\n")}\n`);
  console.log(`\n${lines.join("\n")}`);
}

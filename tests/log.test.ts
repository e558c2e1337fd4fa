import { expect, test } from "bun:test";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { addSecret, logOptionsFromConfig, makeLogger, redact } from "../src/log.ts";

test("password hashes and registered secrets never reach a log line", () => {
  addSecret("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY");
  const line = redact("bad $6$salt$abcdefghijkl and $y$j9T$a$b key wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY");
  expect(line).toBe("bad (hash hidden) and (hash hidden) key (secret hidden)");
  const file = join(mkdtempSync(join(tmpdir(), "ddum-log-")), "log");
  const log = makeLogger({ format: "json", file });
  log.warn("record alice has Password $6$salt$abcdefghijkl");
  const rec = JSON.parse(readFileSync(file, "utf8").trim());
  expect(rec.level).toBe("warning");
  expect(rec.msg).toBe("record alice has Password (hash hidden)");
  expect(typeof rec.time).toBe("string");
});

test.each([
  [{ level: "debug", format: "json" }, { level: "debug", format: "json" }, 0],
  [{ version: 1, root: { level: "WARNING", handlers: ["h"] } }, { level: "warn" }, 1],
  [{ version: 1 }, { level: "info" }, 1],
  [{ level: "loud" }, {}, 1],
  [{ file: "relative.log" }, {}, 1],
])("logging %p → %p with %p warnings", (input, out, warnings) => {
  const seen: string[] = [];
  expect(logOptionsFromConfig(input, (w) => seen.push(w)) as object).toEqual(out);
  expect(seen.length).toBe(warnings);
});

test("levels filter", () => {
  const file = join(mkdtempSync(join(tmpdir(), "ddum-log-")), "log");
  const log = makeLogger({ level: "warn", file });
  log.info("hidden");
  log.debug("hidden too");
  log.error("shown");
  expect(readFileSync(file, "utf8")).toMatch(/^\S+ error: shown\n$/);
});

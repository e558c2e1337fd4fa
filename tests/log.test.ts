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

test.each([
  ["a short secret inside words stays", "test", "the latest tests passed", "the latest tests passed"],
  ["a short secret standing whole goes", "test", 'aws_secret_key "test" refused', 'aws_secret_key "(secret hidden)" refused'],
  ["a secret after = or : goes", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "key=wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY&x", "key=(secret hidden)&x"],
  ["a longer token holding the secret stays", "K7MDENG", "AKIDK7MDENGX and K7MDENG", "AKIDK7MDENGX and (secret hidden)"],
  ["a secret with regex characters", "a.b*c?", "x a.b*c? y axbbc", "x (secret hidden) y axbbc"],
])("redaction: %s", (_name, secret, line, want) => {
  addSecret(secret);
  expect(redact(line)).toBe(want);
});

test.each([
  ["scheme prefixes in a list are no hash", "accepted methods: $1$, $5$, $6$, $y$, $2b$ and $md5,", "accepted methods: $1$, $5$, $6$, $y$, $2b$ and $md5,"],
  ["a whole hash goes", "Password $6$rounds=5000$salt$abcdefghijkl now", "Password (hash hidden) now"],
  ["an NT hash with an empty salt goes", "Password $3$$8846f7eaee8fb117ad06bdd830b7586c", "Password (hash hidden)"],
  ["a price is no hash", "costs $5 or $6 each", "costs $5 or $6 each"],
])("redaction of hashes: %s", (_name, line, want) => {
  expect(redact(line)).toBe(want);
});

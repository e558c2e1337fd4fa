import { describe, expect, test } from "bun:test";
import { chmodSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CONFIG_KEYS, closestKey, loadConfig, parseConfig } from "../src/config.ts";
import { resolveRegion } from "../src/source/dynamo.ts";

describe("config", () => {
  test("an empty config gives the old daemon's defaults and ddum's", () => {
    const { config, warnings } = parseConfig({});
    expect(warnings).toEqual([]);
    expect(config).toMatchObject({
      full_update_period: 3600,
      full_update_jitter: 600,
      user_table_name: "Users",
      group_table_name: "Groups",
      endpoint_url: "",
      scan_segments: 1,
      ssh_key_location: "home",
      create_homes: true,
      state_dir: "/var/lib/ddum",
      missing_users: "keep",
      max_disable_percent: 10,
    });
    expect(Object.isFrozen(config)).toBe(true);
  });

  test("the old daemon's example config is accepted, logging dictConfig included", () => {
    const old = {
      aws_access_key: "AKIDEXAMPLE",
      aws_profile: "default",
      aws_region: "us-east-1",
      aws_secret_key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
      aws_session_token: "",
      full_update_jitter: 600,
      full_update_period: 3600,
      group_table_name: "Groups",
      user_table_name: "Users",
      logging: { version: 1, root: { level: "INFO", handlers: ["console"] } },
    };
    expect(parseConfig(old).warnings).toEqual([]);
  });

  const bad: [string, Record<string, unknown>, RegExp][] = [
    ["period as a string", { full_update_period: "3600" }, /full_update_period: expected a whole number from 1/],
    ["negative jitter", { full_update_jitter: -1 }, /full_update_jitter: expected a whole number from 0/],
    ["bad endpoint", { endpoint_url: "not a url" }, /endpoint_url: expected a URL/],
    ["bad key location", { ssh_key_location: "/etc/keys" }, /ssh_key_location: expected "home" or an absolute path template with %u/],
    ["bad missing_users", { missing_users: "delete" }, /missing_users: expected "keep" or "disable"/],
    ["uid range reversed", { uid_min: 5000, uid_max: 1000 }, /uid_min \(5000\) is greater than uid_max \(1000\)/],
    ["half a key pair", { aws_access_key: "AKID" }, /must be given together/],
    ["empty table name", { user_table_name: "" }, /user_table_name: expected a table name/],
    ["short table name", { group_table_name: "G2" }, /group_table_name: expected a table name \(3-255/],
  ];
  for (const [name, input, msg] of bad) {
    test(`refuses ${name}, naming the key`, () => {
      expect(() => parseConfig(input, "/etc/x.cfg")).toThrow(msg);
    });
  }

  test.each([
    ["user_tabel_name", "user_table_name"],
    ["ssh_key_locaton", "ssh_key_location"],
    ["SSH_KEY_LOCATION", "ssh_key_location"],
    ["min_uid", "uid_min"],
    ["max-attempts", "max_attempts"],
    ["aws_secret", "aws_secret_key"],
  ])("an unknown key %p is an error that suggests %p", (typo, near) => {
    expect(() => parseConfig({ [typo]: "X" }, "f")).toThrow(`f: unknown key "${typo}" (did you mean "${near}"?)`);
  });

  test("an unknown key far from every known one is an error with no suggestion; a secret pasted as a key is not echoed", () => {
    expect(() => parseConfig({ colour_scheme: 1 }, "f")).toThrow(/^f: unknown key "colour_scheme"; the known keys are listed in ddum\(8\)/);
    expect(() => parseConfig({ "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY": 1 }, "f")).toThrow("unknown key (a key that is not a name)");
  });

  test("the old daemon's keys and the documented ones are all known", () => {
    const old = ["aws_access_key", "aws_secret_key", "aws_session_token", "aws_profile", "aws_region", "full_update_period", "full_update_jitter", "user_table_name", "group_table_name", "logging"];
    const man = readFileSync(join(import.meta.dir, "..", "packaging", "ddum.8"), "utf8");
    const section = man.slice(man.indexOf(".SH CONFIGURATION"), man.indexOf(".SH EXIT STATUS"));
    // Each key is the head of a .TP item: .BR key ", " key2 " (type, default)".
    const documented = [...section.matchAll(/^\.TP\n\.BR? (.*)$/gm)].flatMap((m) => m[1]!.split("(")[0]!.match(/[a-z][a-z_]+/g) ?? []);
    expect(documented.length).toBeGreaterThan(20);
    for (const k of [...old, ...documented]) expect([k, closestKey(k)]).toEqual([k, k]);
    // And every key ddum knows is documented.
    for (const k of CONFIG_KEYS) expect([k, new RegExp(`^\\.BR? (.*\\W)?${k}\\b`, "m").test(section)]).toEqual([k, true]);
    expect(parseConfig({ auto_id_min: 3000 }, "f").config.auto_id_min).toBe(3000);
    expect(parseConfig({}, "f").config.auto_id_min).toBe(2000);
  });

  test("a secret key readable by others warns; the default path may be absent, a named one may not", () => {
    const dir = mkdtempSync(join(tmpdir(), "ddum-cfg-"));
    const p = join(dir, "c.cfg");
    writeFileSync(p, JSON.stringify({ aws_access_key: "AKID", aws_secret_key: "s3cr3t" }));
    chmodSync(p, 0o644);
    expect(loadConfig(p).warnings.join()).toContain("readable by other users (mode 644)");
    chmodSync(p, 0o600);
    expect(loadConfig(p).warnings).toEqual([]);
    expect(() => loadConfig(join(dir, "missing.cfg"))).toThrow(/cannot read config file/);
    writeFileSync(p, "{ not json");
    expect(() => loadConfig(p)).toThrow(/not valid JSON/);
  });

  test("region: config, then AWS_REGION, then AWS_DEFAULT_REGION, then us-east-1", async () => {
    const c = (r: string) => parseConfig({ aws_region: r }).config;
    const off = { AWS_EC2_METADATA_DISABLED: "true" };
    expect(await resolveRegion(c("eu-west-1"), { ...off, AWS_REGION: "x" })).toBe("eu-west-1");
    expect(await resolveRegion(c(""), { ...off, AWS_REGION: "ap-south-1", AWS_DEFAULT_REGION: "y" })).toBe("ap-south-1");
    expect(await resolveRegion(c(""), { ...off, AWS_DEFAULT_REGION: "sa-east-1" })).toBe("sa-east-1");
    expect(await resolveRegion(c(""), off)).toBe("us-east-1");
  });
});

test("the shipped example config lists every key with its default", () => {
  const path = join(import.meta.dir, "..", "packaging", "dynamodb-user-manager.cfg.example");
  const { config, warnings } = loadConfig(path);
  expect(warnings).toEqual([]);
  const { config: defaults } = parseConfig({});
  // merge_groups is empty by default; the example shows the usual consent.
  expect({ ...config, logging: {} }).toEqual({ ...defaults, uid_min: null, uid_max: null, gid_min: null, gid_max: null, merge_groups: ["sudo"] } as never);
  expect(Object.keys(JSON.parse(readFileSync(path, "utf8"))).sort()).toEqual([...CONFIG_KEYS].sort());
});

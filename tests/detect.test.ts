// Change detection by the tables' version (change_detection "version"): a pass reads #version
// with one GetItem, and scans only when it moved or the last full scan is full_scan_period old;
// otherwise it plans from the scan snapshot, or, when nothing the plan reads changed since a pass
// that changed nothing, converges homes and keys from the steady record. Against dynalite, with
// in-process passes and the compiled binary for the admin commands.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import {
  appendFileSync,
  chmodSync,
  existsSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  statSync,
  symlinkSync,
  truncateSync,
  writeFileSync,
} from "node:fs";
import { createServer, request, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { parseConfig } from "../src/config.ts";
import { makeClient } from "../src/source/dynamo.ts";
import { bumpVersion, VERSION_KEY } from "../src/source/version.ts";
import { SNAPSHOT_FILE } from "../src/snapshot.ts";
import { metricsText, readStatus } from "../src/state.ts";
import { STEADY_FILE } from "../src/steady.ts";
import type { SyncResult } from "../src/sync.ts";
import { ddum, pass, testConfig, writeConfig } from "./helpers/ddum.ts";
import { type Dynamo, putOne, startDynalite, userItem } from "./helpers/dynalite.ts";
import { KEY_ALICE, KEY_BOB } from "./helpers/keys.ts";
import { cleanupRoots, makeRoot } from "./helpers/root.ts";

let d: Dynamo;
beforeAll(async () => {
  d = await startDynalite();
});
afterAll(async () => {
  await d.close();
  cleanupRoots();
});

const DAY = 86_400_000;
/** The key ledger's and the steady record's settle window passed: files written by a test count as settled. */
const settled = () => Date.now() + 10_000;
const KEY_EVIL = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKdEDOPmmxJU2KBCKJ/pTvIWb5h9xP2Z8cCxpGr2lVkR mallory@evil";

let tableNo = 0;
interface Tables {
  users: string;
  groups: string;
  /** The pass's config (in-process). */
  config: Record<string, unknown>;
  /** A config file for the binary's admin commands. */
  cfg: string;
}

/** Fresh tables made by ddum tables create (with #version 0), unless bare. */
async function fresh(extra: Record<string, unknown> = {}, opts: { bare?: boolean } = {}): Promise<Tables> {
  tableNo++;
  const users = `DetUsers${tableNo}`;
  const groups = `DetGroups${tableNo}`;
  const config = {
    user_table_name: users,
    group_table_name: groups,
    uid_min: 1000,
    uid_max: 60000,
    gid_min: 1000,
    gid_max: 60000,
    auto_id_min: 2000,
    change_detection: "version",
    ssh_key_location: "/etc/ssh/authorized_keys/%u",
    ...extra,
  };
  const cfg = writeConfig(d, config);
  if (opts.bare) await d.createTables(users, groups);
  else expect((await ddum(["tables", "create", "-c", cfg])).code).toBe(0);
  return { users, groups, config, cfg };
}

type PassOpts = Parameters<typeof pass>[2];
/** One pass in-process, with the tables' config (and more), the settle window passed. */
const run = (t: Tables, root: string, opts: PassOpts & { extra?: Record<string, unknown> } = {}) =>
  pass(d, root, { clock: settled, ...opts, config: { ...t.config, ...opts.extra } });

const stateDir = (root: string) => join(root, "var", "lib", "ddum");
const passwdLine = (root: string, name: string) =>
  readFileSync(join(root, "etc", "passwd"), "utf8")
    .split("\n")
    .find((l) => l.startsWith(`${name}:`))
    ?.split(":");
const lineOf = (root: string, file: string, name: string) =>
  readFileSync(join(root, "etc", file), "utf8")
    .split("\n")
    .find((l) => l.startsWith(`${name}:`))
    ?.split(":");
const keyFile = (root: string, name: string) => join(root, "etc", "ssh", "authorized_keys", name);
const kinds = (rs: SyncResult[]) => rs.map((r) => r.detection.kind);
const show = (r: SyncResult) => `${r.detection.kind} (${r.detection.reason})`;

/** Passes until one is steady (a first pass creates, the next plans from the snapshot and records). */
async function toSteady(t: Tables, root: string, opts: PassOpts & { extra?: Record<string, unknown> } = {}): Promise<SyncResult[]> {
  const out: SyncResult[] = [];
  for (let i = 0; i < 4; i++) {
    const r = await run(t, root, opts);
    out.push(r);
    if (r.detection.kind === "steady") return out;
  }
  throw new Error(`no steady pass: ${out.map(show).join(", ")}`);
}

/**
 * A proxy in front of dynalite that counts the DynamoDB calls (X-Amz-Target) passing through:
 * what a pass asked, seen from outside ddum.
 */
async function countingProxy(target: string): Promise<{ endpoint: string; calls: string[]; close(): Promise<void> }> {
  const t = new URL(target);
  const calls: string[] = [];
  const server: Server = createServer((req, res) => {
    calls.push(String(req.headers["x-amz-target"] ?? "").replace(/^DynamoDB_20120810\./, ""));
    const chunks: Buffer[] = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", () => {
      const up = request({ host: t.hostname, port: t.port, method: req.method, path: req.url, headers: req.headers }, (r) => {
        res.writeHead(r.statusCode ?? 500, r.headers);
        r.pipe(res);
      });
      up.end(Buffer.concat(chunks));
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  return {
    endpoint: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    calls,
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}

// ---- the configuration -------------------------------------------------------------------------

test('change_detection defaults to "scan" and full_scan_period to a day; bad values are named', () => {
  const c = parseConfig({}, "f").config;
  expect([c.change_detection, c.full_scan_period]).toEqual(["scan", 86400]);
  expect(parseConfig({ change_detection: "version", full_scan_period: 3600 }, "f").config.full_scan_period).toBe(3600);
  expect(() => parseConfig({ change_detection: "sometimes" }, "f")).toThrow('change_detection: expected "scan" or "version"');
  expect(() => parseConfig({ full_scan_period: 59 }, "f")).toThrow("full_scan_period: expected a whole number from 60 to 2678400");
  expect(() => parseConfig({ full_scan_period: 600.5 }, "f")).toThrow("full_scan_period: expected a whole number");
  expect(() => parseConfig({ change_detecton: "version" }, "f")).toThrow('did you mean "change_detection"?');
});

// ---- what a pass asks DynamoDB -----------------------------------------------------------------------

test('"scan" (the default) scans every time and never reads the version; "version" without a change makes one GetItem', async () => {
  const proxy = await countingProxy(d.endpoint);
  try {
    const t = await fresh({ endpoint_url: proxy.endpoint });
    await putOne(d, t.users, userItem("alice", 2001, { SSHPublicKeys: { SS: [KEY_ALICE] } }));
    // A #version no pass could read: "scan" never looks at it.
    const root = makeRoot();
    await putOne(d, t.users, { Name: { S: VERSION_KEY }, Version: { S: "not a number" } });
    proxy.calls.length = 0;
    const scanMode = await run(t, root, { extra: { change_detection: "scan" } });
    expect(scanMode.exitCode).toBe(0);
    expect(proxy.calls.filter((c) => c !== "Scan")).toEqual([]);
    expect(proxy.calls.length).toBe(2);
    expect(scanMode.detection).toMatchObject({ mode: "scan", kind: "scan", version: null });
    expect(scanMode.readUnits).toBeGreaterThan(0);
    expect(existsSync(join(stateDir(root), SNAPSHOT_FILE))).toBe(false);
    expect(existsSync(join(stateDir(root), STEADY_FILE))).toBe(false);
    // "version" with that #version: a full scan, with a notice naming table, item and field.
    proxy.calls.length = 0;
    const bad = await run(t, root);
    expect(proxy.calls).toEqual(["GetItem", "Scan", "Scan"]);
    expect(bad.detection).toMatchObject({ mode: "version", kind: "scan", version: null });
    expect(bad.plan.notices.join("\n")).toContain(`scanned the tables in full: the tables' version could not be read: table ${t.users}, item #version, field Version: expected a number (type N)`);
    expect(existsSync(join(stateDir(root), SNAPSHOT_FILE))).toBe(false);

    await putOne(d, t.users, { Name: { S: VERSION_KEY }, Version: { N: "7" } });
    // The accounts are in place already: the scan's plan changes nothing, so it records the
    // steady record at once.
    const passes = await toSteady(t, root);
    expect(kinds(passes)).toEqual(["scan", "steady"]);
    proxy.calls.length = 0;
    const r = await run(t, root);
    expect(r.detection).toMatchObject({ mode: "version", kind: "steady", version: 7 });
    expect(proxy.calls).toEqual(["GetItem"]);
    // Eventually consistent: half a read unit. A consistent read: one.
    expect(r.readUnits).toBe(0.5);
    proxy.calls.length = 0;
    const consistent = await run(t, root, { extra: { consistent_read: true } });
    expect(consistent.readUnits).toBe(1);
    expect(proxy.calls).toEqual(["GetItem"]);
    // A scan's units are DynamoDB's own figure for its pages (ReturnConsumedCapacity TOTAL), plus the GetItem.
    const scanned = passes[0]!;
    expect(scanned.detection.kind).toBe("scan");
    // (dynalite: half a unit per 4 KB begun, eventually consistent; an empty table costs none.)
    expect(scanned.readUnits).toBe(0.5 + 0.5);
  } finally {
    await proxy.close();
  }
});

// ---- changes made through every admin command ---------------------------------------------------

/** A root with one local user and group in the managed range, for import. */
function importRoot(): string {
  const root = makeRoot();
  appendFileSync(join(root, "etc/passwd"), "imp:x:3000:3000:Imported:/home/imp:/bin/bash\n");
  appendFileSync(join(root, "etc/shadow"), "imp:!:19000:0:99999:7:::\n");
  appendFileSync(join(root, "etc/group"), "imp:x:3000:\n");
  appendFileSync(join(root, "etc/gshadow"), "imp:!::\n");
  return root;
}

/** Every command that writes the tables (as in version.test.ts), and what the host shows once a pass applied it. */
function writers(from: string): { command: string; args: string[]; stdin?: string; applied: (root: string, pass?: SyncResult) => unknown; expected: unknown }[] {
  const members = (root: string, file: string, field: number) => lineOf(root, file, "devs")?.[field];
  return [
    { command: "user add", args: ["bob", "--real-name", "Bob"], applied: (r) => passwdLine(r, "bob")?.[4], expected: "Bob" },
    { command: "user set", args: ["bob", "--shell", "/bin/zsh"], applied: (r) => passwdLine(r, "bob")?.[6], expected: "/bin/zsh" },
    // Disabled from today on (AccountExpireDate): the account's expiry day is today.
    { command: "user disable", args: ["bob"], applied: (r) => lineOf(r, "shadow", "bob")?.[7], expected: String(Math.floor(Date.now() / DAY)) },
    { command: "user enable", args: ["bob"], applied: (r) => lineOf(r, "shadow", "bob")?.[7], expected: "" },
    {
      command: "user passwd",
      args: ["bob", "--password-stdin"],
      stdin: "a long enough passphrase\n",
      applied: (r) => lineOf(r, "shadow", "bob")?.[1]?.startsWith("$"),
      expected: true,
    },
    { command: "user key add", args: ["bob", KEY_BOB], applied: (r) => existsSync(keyFile(r, "bob")) && readFileSync(keyFile(r, "bob"), "utf8").includes(KEY_BOB), expected: true },
    { command: "user key remove", args: ["bob", KEY_BOB], applied: (r) => existsSync(keyFile(r, "bob")), expected: false },
    { command: "group add", args: ["devs", "--member", "alice"], applied: (r) => members(r, "group", 3), expected: "alice" },
    { command: "group set", args: ["devs", "--gid", "4000"], applied: (r) => lineOf(r, "group", "devs")?.[2], expected: "4000" },
    { command: "group member add", args: ["devs", "bob"], applied: (r) => members(r, "group", 3), expected: "alice,bob" },
    { command: "group member remove", args: ["devs", "bob"], applied: (r) => members(r, "group", 3), expected: "alice" },
    { command: "group admin add", args: ["devs", "alice"], applied: (r) => members(r, "gshadow", 2), expected: "alice" },
    { command: "group admin remove", args: ["devs", "alice"], applied: (r) => members(r, "gshadow", 2), expected: "" },
    { command: "import", args: ["--from-local", "--root", from], applied: (r) => passwdLine(r, "imp")?.[2], expected: "3000" },
    // Last: a host never renumbers an account it made (its files keep the UID): the pass refuses
    // the record from then on, saying so.
    {
      command: "user set",
      args: ["bob", "--uid", "2500"],
      applied: (r, p) => `${passwdLine(r, "bob")?.[2]} ${p?.plan.refusals.some((x) => x.name.includes("bob") && x.field === "UID")}`,
      expected: "2001 true",
    },
  ];
}

test("a change through each admin command is picked up by the next pass, which scans once and applies it", async () => {
  const t = await fresh();
  const root = makeRoot();
  expect((await ddum(["user", "add", "alice", "--ssh-key", "-", "-c", t.cfg], { stdin: `${KEY_ALICE}\n` })).code).toBe(0);
  expect(kinds(await toSteady(t, root))).toEqual(["scan", "snapshot", "steady"]);
  let version = 1;
  for (const w of writers(importRoot())) {
    const what = `${w.command} ${w.args.join(" ")}`;
    const cmd = await ddum([...w.command.split(" "), ...w.args, "-c", t.cfg], w.stdin !== undefined ? { stdin: w.stdin } : {});
    expect(`${what}: exit ${cmd.code}`).toBe(`${what}: exit 0`);
    // Not applied before a pass: the host is as it was.
    expect(`${what}: ${JSON.stringify(w.applied(root))}`).not.toBe(`${what}: ${JSON.stringify(w.expected)}`);
    const r = await run(t, root);
    version++;
    expect(`${what}: ${show(r)}`).toBe(`${what}: scan (the tables' version moved from ${version - 1} to ${version})`);
    expect(r.detection.version).toBe(version);
    expect(`${what}: ${JSON.stringify(w.applied(root, r))}`).toBe(`${what}: ${JSON.stringify(w.expected)}`);
    // The next pass does not scan again.
    const next = await run(t, root);
    expect(`${what}: next ${next.detection.kind}`).not.toBe(`${what}: next scan`);
    expect(next.readUnits).toBe(0.5);
  }
});

// ---- changes made without raising the version ------------------------------------------------------

describe("a change written directly (no bump)", () => {
  test("is not seen until the full scan after full_scan_period", async () => {
    const t = await fresh({ full_scan_period: 3600 });
    await putOne(d, t.users, userItem("alice", 2001));
    const root = makeRoot();
    const t0 = Date.now();
    await toSteady(t, root, { now: () => t0 });
    await putOne(d, t.users, userItem("alice", 2001, { Shell: { S: "/bin/zsh" } }));
    for (const late of [0, 60_000, 3_599_000]) {
      const r = await run(t, root, { now: () => t0 + late });
      expect(`${late}: ${r.detection.kind}`).toBe(`${late}: steady`);
      expect(passwdLine(root, "alice")?.[6]).toBe("/bin/bash");
    }
    const due = await run(t, root, { now: () => t0 + 3_600_000 });
    expect(due.detection.kind).toBe("scan");
    expect(due.detection.reason).toContain("is not younger than full_scan_period (3600 s)");
    expect(passwdLine(root, "alice")?.[6]).toBe("/bin/zsh");
    // The full scan starts a new period.
    const after = await run(t, root, { now: () => t0 + 3_600_000 + 1000 });
    expect(after.detection.kind).not.toBe("scan");
    expect(after.detection.lastFullScan).toBe(new Date(t0 + 3_600_000).toISOString());
    // A clock set back before the last full scan is no reason to trust it: a full scan.
    const back = await run(t, root, { now: () => t0 - DAY });
    expect(back.detection.kind).toBe("scan");
  });

  test("is seen at the next pass after ddum tables bump", async () => {
    const t = await fresh();
    await putOne(d, t.users, userItem("alice", 2001));
    const root = makeRoot();
    await toSteady(t, root);
    await putOne(d, t.users, userItem("alice", 2001, { RealName: { S: "Alice Liddell" } }));
    expect((await run(t, root)).detection.kind).toBe("steady");
    expect(passwdLine(root, "alice")?.[4]).toBe("alice user");
    expect((await ddum(["tables", "bump", "-c", t.cfg])).stdout).toBe(`#version in table ${t.users} is now 1\n`);
    const r = await run(t, root);
    expect(show(r)).toBe("scan (the tables' version moved from 0 to 1)");
    expect(passwdLine(root, "alice")?.[4]).toBe("Alice Liddell");
  });
});

test("a write (and its bump) during a scan is picked up by the next pass: the version recorded is the one read before the scan", async () => {
  const t = await fresh();
  await putOne(d, t.users, userItem("alice", 2001));
  const root = makeRoot();
  const { config } = parseConfig(testConfig(d, t.config));
  const client = await makeClient(config);
  try {
    let write: Promise<unknown> | null = null;
    const first = await run(t, root, {
      onProgress: (table) => {
        // The Users table's only page is in: what is written now, this pass cannot see.
        if (table === t.users && write === null) write = putOne(d, t.users, userItem("bob", 2002)).then(() => bumpVersion(client, t.users));
      },
    });
    expect(write).not.toBeNull();
    await write;
    expect(first.detection).toMatchObject({ kind: "scan", version: 0 });
    expect(passwdLine(root, "alice")).toBeDefined();
    expect(passwdLine(root, "bob")).toBeUndefined();
    const next = await run(t, root);
    expect(show(next)).toBe("scan (the tables' version moved from 0 to 1)");
    expect(passwdLine(root, "bob")?.[2]).toBe("2002");
  } finally {
    client.destroy();
  }
});

// ---- local drift ---------------------------------------------------------------------------------------

describe("local drift is repaired by a pass that makes no scan", () => {
  test("a hand-edited managed passwd line: planned again from the snapshot", async () => {
    const proxy = await countingProxy(d.endpoint);
    try {
      const t = await fresh({ endpoint_url: proxy.endpoint });
      await putOne(d, t.users, userItem("alice", 2001));
      const root = makeRoot();
      await toSteady(t, root);
      const path = join(root, "etc", "passwd");
      writeFileSync(path, readFileSync(path, "utf8").replace("alice:x:2001:2001:alice user:/home/alice:/bin/bash", "alice:x:2001:2001:alice user:/home/alice:/bin/sh"));
      proxy.calls.length = 0;
      const r = await run(t, root);
      expect(proxy.calls).toEqual(["GetItem"]);
      expect(r.detection.kind).toBe("snapshot");
      expect(r.detection.reason).toContain("planned again: the account files");
      expect(r.plan.actions.map((a) => `${a.kind} ${a.name}`)).toEqual(["update-user alice"]);
      expect(passwdLine(root, "alice")?.[6]).toBe("/bin/bash");
      expect(r.readUnits).toBe(0.5);
      // Mended: the next pass changes nothing and records; the one after is steady.
      expect(kinds([await run(t, root), await run(t, root)])).toEqual(["snapshot", "steady"]);
    } finally {
      await proxy.close();
    }
  });

  test("an edited root-owned key file (ssh_key_location %u): the steady pass rewrites it", async () => {
    const t = await fresh();
    await putOne(d, t.users, userItem("alice", 2001, { SSHPublicKeys: { SS: [KEY_ALICE] } }));
    const root = makeRoot();
    await toSteady(t, root);
    const want = readFileSync(keyFile(root, "alice"), "utf8");
    appendFileSync(keyFile(root, "alice"), `${KEY_EVIL}\n`);
    const r = await run(t, root);
    expect(r.detection.kind).toBe("steady");
    expect(r.homes.keysWritten).toEqual(["alice"]);
    expect(r.counts.keyFilesWritten).toBe(1);
    expect(readFileSync(keyFile(root, "alice"), "utf8")).toBe(want);
    // A key file removed by hand: made again.
    truncateSync(keyFile(root, "alice"), 0);
    const again = await run(t, root);
    expect([again.detection.kind, readFileSync(keyFile(root, "alice"), "utf8")]).toEqual(["steady", want]);
  });

  for (const template of ["/etc/ssh/authorized_keys/%u", "/srv/keys/%u.keys", "/srv/keys/%u/authorized_keys", "/srv/k/key-%u-%u"]) {
    test(`key files at ${template}: an edited one rewritten, one where none may be removed, by steady passes`, async () => {
      const t = await fresh({ ssh_key_location: template });
      await d.put(t.users, [userItem("alice", 2001, { SSHPublicKeys: { SS: [KEY_ALICE] } }), userItem("carol", 2003)]);
      const root = makeRoot();
      await toSteady(t, root);
      const at = (name: string) => join(root, template.replaceAll("%u", name));
      const want = readFileSync(at("alice"), "utf8");
      expect(existsSync(at("carol"))).toBe(false);
      // Unchanged: nothing to do.
      const calm = await run(t, root);
      expect([calm.detection.kind, calm.homes.keysWritten, calm.homes.keysRemoved]).toEqual(["steady", [], []]);
      appendFileSync(at("alice"), `${KEY_EVIL}\n`);
      const r = await run(t, root);
      expect([r.detection.kind, r.homes.keysWritten, readFileSync(at("alice"), "utf8")]).toEqual(["steady", ["alice"], want]);
      // carol has no keys: a key file planted for her is taken away.
      mkdirSync(join(at("carol"), ".."), { recursive: true });
      writeFileSync(at("carol"), `${KEY_EVIL}\n`, { mode: 0o644 });
      const gone = await run(t, root);
      expect([gone.detection.kind, gone.homes.keysRemoved, existsSync(at("carol"))]).toEqual(["steady", ["carol"], false]);
    });
  }

  test("a user's edited ~/.ssh/authorized_keys (keys in homes): the steady pass rewrites it", async () => {
    const t = await fresh({ ssh_key_location: "home", create_homes: true });
    await putOne(d, t.users, userItem("alice", 2001, { SSHPublicKeys: { SS: [KEY_ALICE] } }));
    const root = makeRoot();
    await toSteady(t, root);
    const path = join(root, "home", "alice", ".ssh", "authorized_keys");
    const want = readFileSync(path, "utf8");
    expect(want).toContain(KEY_ALICE);
    writeFileSync(path, `${KEY_EVIL}\n`);
    const r = await run(t, root);
    expect(r.detection.kind).toBe("steady");
    expect(r.homes.keysWritten).toEqual(["alice"]);
    expect(readFileSync(path, "utf8")).toBe(want);
  });

  test("a shell's directory made writable by others: the shell rule is asked again, and refuses", async () => {
    const t = await fresh();
    const root = makeRoot();
    mkdirSync(join(root, "opt", "shells"), { recursive: true, mode: 0o755 });
    writeFileSync(join(root, "opt", "shells", "mysh"), "#!/bin/sh\n", { mode: 0o755 });
    await putOne(d, t.users, userItem("alice", 2001, { Shell: { S: "/opt/shells/mysh" } }));
    await toSteady(t, root);
    chmodSync(join(root, "opt", "shells"), 0o777);
    const r = await run(t, root);
    expect(r.detection.kind).toBe("snapshot");
    expect(r.detection.reason).toContain("the verdict on the shell /opt/shells/mysh changed");
    expect(r.rejections.map((x) => `${x.name.replaceAll('"', "")} ${x.field}`)).toEqual(["alice Shell"]);
  });

  test("the day, the configuration or this pass's options: planned again, never trusted", async () => {
    const t = await fresh();
    await putOne(d, t.users, userItem("alice", 2001));
    const root = makeRoot();
    const passes = await toSteady(t, root);
    const today = Math.floor(Date.now() / DAY);
    expect((await run(t, root, { today: today + 1 })).detection.kind).toBe("snapshot");
    expect((await run(t, root, { extra: { max_disable_percent: 20 } })).detection.kind).toBe("snapshot");
    // Another table: the snapshot is of other tables, so a full scan.
    expect(passes.length).toBe(3);
  });
});

// ---- what a steady pass reports ---------------------------------------------------------------------

test("a steady pass reports what the plan decided: the same rejections, refusals, counts and exit code", async () => {
  const t = await fresh();
  // daemon: a local account ddum did not make (refused); "bad name": rejected; alice: applied.
  await d.put(t.users, [userItem("alice", 2001, { SSHPublicKeys: { SS: [KEY_ALICE] } }), userItem("daemon", 2500), userItem("bad name", 2002)]);
  const root = makeRoot();
  const passes = await toSteady(t, root);
  expect(kinds(passes)).toEqual(["scan", "snapshot", "steady"]);
  const [, planned, steady] = passes as [SyncResult, SyncResult, SyncResult];
  expect(steady.exitCode).toBe(3);
  const view = (r: SyncResult) => ({ rejections: r.rejections, warnings: r.warnings, refusals: r.plan.refusals, notices: r.plan.notices, counts: r.counts, localIssues: r.localIssues, exitCode: r.exitCode, actions: r.plan.actions });
  expect(view(steady)).toEqual(view(planned));
  expect(steady.rejections.length).toBe(1);
  expect(steady.plan.refusals.map((x) => x.name)).toEqual([expect.stringContaining("daemon")]);
  expect(steady.counts.users?.unchanged).toBe(1);
});

// ---- the snapshot and the steady record -----------------------------------------------------------

describe("a damaged snapshot falls back to a full scan", () => {
  const damages: [string, (p: string) => void, string][] = [
    [
      "a byte changed",
      (p) => {
        const b = readFileSync(p);
        b[b.length - 10] = b[b.length - 10]! ^ 0xff;
        writeFileSync(p, b);
      },
      "does not match its checksum",
    ],
    ["truncated", (p) => truncateSync(p, Math.floor(statSync(p).size / 2)), "does not match its checksum"],
    ["not a snapshot", (p) => writeFileSync(p, "hello\n"), "is not a ddum scan snapshot"],
    ["another format", (p) => writeFileSync(p, `ddum scan snapshot 9 ${"0".repeat(64)}\n{}\n`), "a scan snapshot of another format (9)"],
  ];
  for (const [what, damage, why] of damages) {
    test(what, async () => {
      const t = await fresh();
      await putOne(d, t.users, userItem("alice", 2001));
      const root = makeRoot();
      await toSteady(t, root);
      damage(join(stateDir(root), SNAPSHOT_FILE));
      // Local drift too, so that the pass needs the snapshot's records.
      const r = await run(t, root);
      expect(r.detection.kind).toBe("scan");
      expect(r.detection.reason).toContain(why);
      expect(r.plan.notices.join("\n")).toContain("scanned the tables in full: the scan snapshot cannot be used");
      expect(r.exitCode).toBe(0);
      // A new one was written (with a steady record, as the scan changed nothing), and serves the passes after it.
      expect(lstatSync(join(stateDir(root), SNAPSHOT_FILE)).size).toBeGreaterThan(100);
      expect(kinds([await run(t, root), await run(t, root)])).toEqual(["steady", "steady"]);
    });
  }

  test("a damaged steady record: planned from the snapshot, no scan", async () => {
    const t = await fresh();
    await putOne(d, t.users, userItem("alice", 2001, { SSHPublicKeys: { SS: [KEY_ALICE] } }));
    const root = makeRoot();
    await toSteady(t, root);
    const p = join(stateDir(root), STEADY_FILE);
    const flip = (at: (b: Buffer) => number) => {
      const b = readFileSync(p);
      const i = at(b);
      b[i] = b[i]! ^ 0x01;
      writeFileSync(p, b);
    };
    // Its header (the second line), still JSON of the right form (a count changed): not trusted at all.
    flip((b) => b.indexOf('"rejected":0') + 11);
    const r = await run(t, root);
    expect(r.detection.kind).toBe("snapshot");
    expect(r.detection.reason).toContain("the steady record cannot be used:");
    expect((await run(t, root)).detection.kind).toBe("steady");
    // Its user list (read only when a key file is not confirmed): a pass that needs it plans from
    // the snapshot instead, and still puts the key file right.
    flip((b) => b.length - 5);
    expect((await run(t, root)).detection.kind).toBe("steady");
    appendFileSync(keyFile(root, "alice"), `${KEY_EVIL}\n`);
    const fixed = await run(t, root);
    expect(fixed.detection.kind).toBe("snapshot");
    expect(fixed.plan.notices.join("\n")).toContain("the steady record could not be read:");
    expect(fixed.homes.keysWritten).toEqual(["alice"]);
    expect(readFileSync(keyFile(root, "alice"), "utf8")).not.toContain(KEY_EVIL);
    writeFileSync(p, "not a record\n");
    expect((await run(t, root)).detection.kind).toBe("snapshot");
    expect((await run(t, root)).detection.kind).toBe("steady");
  });

});

test("the snapshot and the steady record are root-only regular files, written through the safe-write helper: a link planted at their names is replaced, never followed", async () => {
  const t = await fresh();
  await putOne(d, t.users, userItem("alice", 2001));
  const root = makeRoot();
  const victim = join(root, "etc", "victim");
  writeFileSync(victim, "precious\n", { mode: 0o600 });
  const ino = statSync(victim).ino;
  mkdirSync(stateDir(root), { recursive: true });
  for (const n of [SNAPSHOT_FILE, STEADY_FILE]) symlinkSync("../../../etc/victim", join(stateDir(root), n));
  const passes = await toSteady(t, root);
  // A link is no snapshot (not followed when read either): the first pass scans.
  expect(passes[0]!.detection.reason).toBe("no scan snapshot yet");
  expect([readFileSync(victim, "utf8"), statSync(victim).ino]).toEqual(["precious\n", ino]);
  for (const n of [SNAPSHOT_FILE, STEADY_FILE]) {
    const st = lstatSync(join(stateDir(root), n));
    expect([n, st.isFile(), st.uid, st.mode & 0o7777]).toEqual([n, true, 0, 0o600]);
  }
  expect(readdirSync(stateDir(root)).filter((n) => n.includes("~"))).toEqual([]);
  expect(statSync(stateDir(root)).mode & 0o022).toBe(0);
});

test("a dry run always scans and never records a snapshot or a steady record", async () => {
  const t = await fresh();
  await putOne(d, t.users, userItem("alice", 2001));
  const root = makeRoot();
  const dry = await run(t, root, { dryRun: true });
  expect(show(dry)).toBe("scan (a dry run always scans the tables in full)");
  expect(existsSync(join(stateDir(root), SNAPSHOT_FILE))).toBe(false);
  expect(existsSync(join(stateDir(root), STEADY_FILE))).toBe(false);
  await toSteady(t, root);
  const files = [SNAPSHOT_FILE, STEADY_FILE].map((n) => join(stateDir(root), n));
  const before = files.map((f) => `${statSync(f).ino} ${statSync(f).mtimeMs} ${readFileSync(f).toString("base64")}`);
  await putOne(d, t.users, userItem("bob", 2002));
  await ddum(["tables", "bump", "-c", t.cfg]);
  const again = await run(t, root, { dryRun: true });
  expect(again.detection.kind).toBe("scan");
  expect(again.plan.actions.map((a) => a.name)).toContain("bob");
  expect(files.map((f) => `${statSync(f).ino} ${statSync(f).mtimeMs} ${readFileSync(f).toString("base64")}`)).toEqual(before);
});

test("a braked pass records no snapshot: the next pass scans again", async () => {
  const t = await fresh({ missing_users: "disable", max_disable_percent: 10 });
  await d.put(t.users, ["alice", "bob", "carol"].map((n, i) => userItem(n, 2001 + i)));
  const root = makeRoot();
  await toSteady(t, root);
  const snap = join(stateDir(root), SNAPSHOT_FILE);
  const before = readFileSync(snap).toString("base64");
  for (const n of ["alice", "bob"]) await d.remove(t.users, n);
  await ddum(["tables", "bump", "-c", t.cfg]);
  const braked = await run(t, root);
  expect(braked.plan.brake).not.toBeNull();
  expect(braked.detection.kind).toBe("scan");
  expect(readFileSync(snap).toString("base64")).toBe(before);
  const again = await run(t, root);
  expect(show(again)).toBe("scan (the tables' version moved from 0 to 1)");
  expect(again.plan.brake).not.toBeNull();
  const forced = await run(t, root, { force: true });
  expect(forced.plan.brake).toBeNull();
  expect(forced.detection.kind).toBe("scan");
  expect((await run(t, root)).detection.kind).toBe("snapshot");
});

test("without a #version item every pass scans in full, with a warning naming the table and how to make it", async () => {
  const t = await fresh({}, { bare: true });
  await putOne(d, t.users, userItem("alice", 2001));
  const root = makeRoot();
  for (let i = 0; i < 3; i++) {
    const r = await run(t, root);
    expect(r.detection).toMatchObject({ mode: "version", kind: "scan", version: null, reason: `table ${t.users} holds no #version item` });
    expect(r.plan.notices.join("\n")).toContain(`table ${t.users} holds no #version item, so every pass scans both tables in full; make it with "ddum tables create" (or "ddum tables bump")`);
  }
  expect(existsSync(join(stateDir(root), SNAPSHOT_FILE))).toBe(false);
});

// ---- what status, --json and the metrics show ------------------------------------------------------

test("sync --json, ddum status (text and --json) and the metrics show the version, the last full scan and the kind of pass", async () => {
  const t = await fresh({ metrics_file: "/var/lib/node_exporter/ddum.prom" });
  await putOne(d, t.users, userItem("alice", 2001));
  expect((await ddum(["tables", "bump", "-c", t.cfg])).code).toBe(0);
  const root = makeRoot();
  const sync = async () => JSON.parse((await ddum(["sync", "--json", "--root", root, "-c", t.cfg])).stdout);
  const first = await sync();
  expect(first.detection).toMatchObject({ mode: "version", kind: "scan", version: 1, reason: "no scan snapshot yet" });
  expect(first.readUnits).toBeGreaterThan(0.5);
  const second = await sync();
  expect(second.detection).toMatchObject({ kind: "snapshot", version: 1, lastFullScan: first.detection.lastFullScan });
  expect(second.readUnits).toBe(0.5);
  const human = await ddum(["sync", "--root", root, "-c", t.cfg]);
  expect(human.stdout).toMatch(/^tables: version 1; no scan: (planned from the scan snapshot|nothing changed since the last pass that changed nothing) \(.*\); last full scan \S+; 0\.5 read units$/m);

  const status = await ddum(["status", "--root", root, "-c", t.cfg]);
  expect(status.code).toBe(0);
  expect(status.stdout).toMatch(new RegExp(`^ {2}tables: version 1; last pass: (snapshot|steady); last full scan ${first.detection.lastFullScan.replace(/\./g, "\\.")} \\(\\d+ s ago\\); 0\\.5 read units$`, "m"));
  const sj = JSON.parse((await ddum(["status", "--json", "--root", root, "-c", t.cfg])).stdout);
  expect(sj.tables).toMatchObject({ changeDetection: "version", version: 1, lastFullScan: first.detection.lastFullScan, readUnits: 0.5 });
  expect(["snapshot", "steady"]).toContain(sj.tables.lastPassKind);
  expect(sj.lastPass.detection.version).toBe(1);
  const prom = readFileSync(join(root, "var", "lib", "node_exporter", "ddum.prom"), "utf8");
  expect(prom).toContain("ddum_tables_version 1\n");
  expect(prom).toContain("ddum_last_pass_read_units 0.5\n");
  expect(prom).toContain('ddum_last_pass_kind{kind="scan"} 0\n');
  expect(prom).toMatch(/ddum_last_pass_kind\{kind="(snapshot|steady)"\} 1\n/);
  expect(prom).toContain(`ddum_last_full_scan_timestamp_seconds ${Date.parse(first.detection.lastFullScan) / 1000}\n`);

  // A last full scan older than twice full_scan_period: a warning, exit 1.
  const path = join(stateDir(root), "status.json");
  const st = JSON.parse(readFileSync(path, "utf8"));
  const old = new Date(Date.now() - 2 * DAY - 60_000).toISOString();
  st.lastSuccess.detection.lastFullScan = old;
  writeFileSync(path, JSON.stringify(st));
  const stale = await ddum(["status", "--root", root, "-c", t.cfg]);
  expect(stale.code).toBe(1);
  expect(stale.stdout).toContain(`WARNING: the last full scan of the tables was at ${old} (`);
  expect(stale.stdout).toContain("more than twice full_scan_period (172800 s)");
  const staleJson = JSON.parse((await ddum(["status", "--json", "--root", root, "-c", t.cfg])).stdout);
  expect(staleJson.exitCode).toBe(1);
  expect(staleJson.warnings.join()).toContain("more than twice full_scan_period");
  // Within twice the period: no warning.
  st.lastSuccess.detection.lastFullScan = new Date(Date.now() - 2 * DAY + 60_000).toISOString();
  writeFileSync(path, JSON.stringify(st));
  expect((await ddum(["status", "--root", root, "-c", t.cfg])).code).toBe(0);
  // A host on "scan" prints no tables line and gives no such warning.
  const scanCfg = writeConfig(d, { ...t.config, change_detection: "scan" });
  const plain = await ddum(["status", "--root", root, "-c", scanCfg]);
  expect([plain.code, plain.stdout.trimEnd().split("\n").length]).toEqual([0, 1]);
  expect(metricsText(readStatus(stateDir(root)))).toContain("ddum_last_pass_read_units 0.5\n");
});

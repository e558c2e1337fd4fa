// The tables' version (#version in the Users table): made by tables create, raised once by every
// admin command that writes and by tables bump, skipped by a pass and by the listings, and raised
// by the Lambda function in packaging/aws/ for the changes its streams carry.
import { afterAll, beforeAll, describe, expect, type Mock, spyOn, test } from "bun:test";
import { appendFileSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { GetItemCommand, ScanCommand } from "@aws-sdk/client-dynamodb";
import { buildCli } from "../src/cli.ts";
import { parseConfig } from "../src/config.ts";
import { makeLogger } from "../src/log.ts";
import { decodeUserItem } from "../src/model.ts";
import { makeClient } from "../src/source/dynamo.ts";
import { bumpVersion, ensureVersion, readVersion, VERSION_KEY } from "../src/source/version.ts";
import { ddum, testConfig, writeConfig } from "./helpers/ddum.ts";
import { type Dynamo, putOne, startDynalite, userItem } from "./helpers/dynalite.ts";
import { KEY_ALICE, KEY_BOB } from "./helpers/keys.ts";
import { cleanupRoots, makeRoot, REPO } from "./helpers/root.ts";

let d: Dynamo;
beforeAll(async () => {
  d = await startDynalite();
});
afterAll(async () => {
  await d.close();
  cleanupRoots();
});

let tableNo = 0;
/** Fresh tables (made by ddum tables create unless bare) and a config file naming them. */
async function fresh(opts: { bare?: boolean } = {}) {
  tableNo++;
  const users = `VerUsers${tableNo}`;
  const groups = `VerGroups${tableNo}`;
  const cfg = writeConfig(d, { user_table_name: users, group_table_name: groups, uid_min: 1000, uid_max: 60000, gid_min: 1000, gid_max: 60000, auto_id_min: 2000 });
  if (opts.bare) await d.createTables(users, groups);
  else {
    const r = await ddum(["tables", "create", "-c", cfg]);
    expect(r.stderr).not.toContain("error");
    expect(r.code).toBe(0);
  }
  return { users, groups, cfg };
}

/** The #version item as stored (consistent read), or undefined. */
async function versionItem(users: string): Promise<Record<string, unknown> | undefined> {
  const r = await d.client.send(new GetItemCommand({ TableName: users, Key: { Name: { S: VERSION_KEY } }, ConsistentRead: true }));
  return r.Item && Object.fromEntries(Object.entries(r.Item).map(([k, v]) => [k, Object.values(v)[0]]));
}

/** The number in #version (null: no item). */
async function version(users: string): Promise<number | null> {
  const item = await versionItem(users);
  return item === undefined ? null : Number(item.Version);
}

async function names(table: string): Promise<string[]> {
  const r = await d.client.send(new ScanCommand({ TableName: table, ConsistentRead: true }));
  return (r.Items ?? []).map((i) => i.Name!.S!).sort();
}

const show = (r: { code: number; stdout: string; stderr: string }) => `exit ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`;

// ---- the item ------------------------------------------------------------------------------------

test("tables create makes #version with Version 0, and leaves an existing one as it is", async () => {
  const t = await fresh();
  expect(await versionItem(t.users)).toEqual({ Name: VERSION_KEY, Version: "0" });
  // Groups holds none.
  expect(await names(t.groups)).toEqual([]);
  expect((await ddum(["tables", "bump", "-c", t.cfg])).code).toBe(0);
  expect((await ddum(["tables", "bump", "-c", t.cfg])).code).toBe(0);
  const again = await ddum(["tables", "create", "-c", t.cfg]);
  expect(again.code).toBe(0);
  expect(again.stdout).toContain(`item #version in table ${t.users} already exists (Version 2); left as it is\n`);
  expect(await version(t.users)).toBe(2);
  // Tables made without it (by another tool): tables create adds it, at 0.
  const bare = await fresh({ bare: true });
  expect(await version(bare.users)).toBeNull();
  const made = await ddum(["tables", "create", "-c", bare.cfg]);
  expect(made.code).toBe(0);
  expect(made.stdout).toContain(`table ${bare.users} already exists; left as it is\n`);
  expect(made.stdout).toContain(`created item #version in table ${bare.users} (Version 0): every change to the tables raises it\n`);
  expect(await versionItem(bare.users)).toEqual({ Name: VERSION_KEY, Version: "0" });
});

test("tables bump raises it by one and prints the new number; without the item it makes it, well-formed", async () => {
  const t = await fresh();
  for (const n of [1, 2, 3]) {
    const r = await ddum(["tables", "bump", "-c", t.cfg]);
    expect(r.stderr).toBe("");
    expect(r.stdout).toBe(`#version in table ${t.users} is now ${n}\n`);
    expect(r.code).toBe(0);
  }
  expect(await version(t.users)).toBe(3);
  const bare = await fresh({ bare: true });
  const r = await ddum(["tables", "bump", "-c", bare.cfg]);
  expect(r.stdout).toBe(`#version in table ${bare.users} is now 1\n`);
  expect(await versionItem(bare.users)).toEqual({ Name: VERSION_KEY, Version: "1" });
  // Its help says what it is for.
  const help = await ddum(["tables", "bump", "--help"]);
  expect(help.code).toBe(0);
  expect(help.stdout).toContain("after changing the tables with another tool");
  expect(help.stdout).toContain('change_detection "version"');
  expect(help.stdout).toContain("Exit codes:");
  expect((await ddum(["tables", "--help"])).stdout).toContain("ddum tables bump");
});

test("tables bump against a missing table or endpoint fails (exit 1) naming the table and the endpoint", async () => {
  const cfg = writeConfig(d, { user_table_name: "NoSuchUsers", group_table_name: "NoSuchGroups" });
  const r = await ddum(["tables", "bump", "-c", cfg]);
  expect(r.code).toBe(1);
  expect(r.stderr).toContain("of #version in table NoSuchUsers failed");
  expect(r.stderr).toContain(`(endpoint ${d.endpoint}, region us-east-1)`);
  expect(r.stderr).toContain("table NoSuchUsers does not exist there");
  expect(r.stdout).toBe("");
});

test("readVersion, bumpVersion, ensureVersion: null when missing, read units, a malformed Version named", async () => {
  const t = await fresh({ bare: true });
  const { config } = parseConfig(testConfig(d));
  const client = await makeClient(config);
  try {
    const none = await readVersion(client, t.users);
    expect(none.version).toBeNull();
    expect(none.readUnits).toBeGreaterThan(0);
    expect(await ensureVersion(client, t.users)).toEqual({ created: true, version: 0 });
    expect(await ensureVersion(client, t.users)).toEqual({ created: false, version: 0 });
    expect(await bumpVersion(client, t.users)).toBe(1);
    expect(await bumpVersion(client, t.users)).toBe(2);
    expect(await ensureVersion(client, t.users)).toEqual({ created: false, version: 2 });
    const read = await readVersion(client, t.users, { consistentRead: true });
    expect(read.version).toBe(2);
    expect(read.readUnits).toBeGreaterThan(0);
    for (const [bad, why] of [
      [{ S: "7" }, "expected a number (type N), found type S"],
      [{ N: "1.5" }, 'expected a whole number below 2^53, found "1.5"'],
      [{ N: "90071992547409930" }, "expected a whole number below 2^53"],
    ] as const) {
      await putOne(d, t.users, { Name: { S: VERSION_KEY }, Version: bad });
      const e = await readVersion(client, t.users).catch((x: Error) => x);
      expect(e).toBeInstanceOf(Error);
      expect((e as Error).message).toContain(`table ${t.users}, item #version, field Version: ${why}`);
      expect((e as Error).message).toContain(`(endpoint ${d.endpoint}, region us-east-1)`);
    }
    await putOne(d, t.users, { Name: { S: VERSION_KEY } });
    expect(((await readVersion(client, t.users).catch((x: Error) => x)) as Error).message).toContain("field Version: is missing");
    // ADD to a string: refused by DynamoDB, and said in the same terms.
    await putOne(d, t.users, { Name: { S: VERSION_KEY }, Version: { S: "7" } });
    const e = (await bumpVersion(client, t.users).catch((x: Error) => x)) as Error;
    expect(e.message).toContain(`table ${t.users}, item #version, field Version: is not a number, so it cannot be raised`);
    expect(e.message).toContain(`(endpoint ${d.endpoint}, region us-east-1)`);
    expect(await versionItem(t.users)).toEqual({ Name: VERSION_KEY, Version: "7" });
  } finally {
    client.destroy();
  }
});

test("#version decodes as one of ddum's own items, like an ID reservation; names merely like it do not", () => {
  const decode = decodeUserItem("Users");
  expect(decode({ Name: { S: "#version" }, Version: { N: "12" } }).kind).toBe("reserved");
  // However malformed: a pass never judges it (ddum tables bump and the hosts' version read do).
  expect(decode({ Name: { S: "#version" }, Version: { S: "x" } }).kind).toBe("reserved");
  for (const name of ["#Version", "#version ", "#versions", "#version:1"]) expect(decode(userItem(name, 2000)).kind).toBe("rejected");
  // A user may be called version.
  expect(decode(userItem("version", 2000)).kind).toBe("ok");
});

// ---- the admin commands ----------------------------------------------------------------------------

/** A root with one local user and group in the managed range, for import. */
function importRoot(): string {
  const root = makeRoot();
  appendFileSync(join(root, "etc/passwd"), "imp:x:3000:3000:Imported:/home/imp:/bin/bash\n");
  appendFileSync(join(root, "etc/shadow"), "imp:!:19000:0:99999:7:::\n");
  appendFileSync(join(root, "etc/group"), "imp:x:3000:\n");
  appendFileSync(join(root, "etc/gshadow"), "imp:!::\n");
  return root;
}

/** Every command that writes the tables, with arguments that make it write, in an order that works. */
function writers(root: string): { command: string; args: string[]; stdin?: string }[] {
  return [
    { command: "user add", args: ["bob", "--real-name", "Bob"] },
    { command: "user set", args: ["bob", "--shell", "/bin/zsh"] },
    // A new UID: reservations, the record, the old IDs retired; several writes, one bump.
    { command: "user set", args: ["bob", "--uid", "2500"] },
    { command: "user disable", args: ["bob"] },
    { command: "user enable", args: ["bob"] },
    { command: "user passwd", args: ["bob", "--password-stdin"], stdin: "a long enough passphrase\n" },
    { command: "user key add", args: ["bob", KEY_BOB] },
    { command: "user key remove", args: ["bob", KEY_BOB] },
    { command: "group add", args: ["devs", "--member", "alice"] },
    { command: "group set", args: ["devs", "--gid", "4000"] },
    { command: "group member add", args: ["devs", "bob"] },
    { command: "group member remove", args: ["devs", "bob"] },
    { command: "group admin add", args: ["devs", "alice"] },
    { command: "group admin remove", args: ["devs", "alice"] },
    { command: "import", args: ["--from-local", "--root", root] },
  ];
}

test("every admin command that writes raises the version by exactly one per run", async () => {
  const t = await fresh();
  expect((await ddum(["user", "add", "alice", "--ssh-key", "-", "-c", t.cfg], { stdin: `${KEY_ALICE}\n` })).code).toBe(0);
  let expected = 1;
  expect(await version(t.users)).toBe(expected);
  const root = importRoot();
  for (const w of writers(root)) {
    const r = await ddum([...w.command.split(" "), ...w.args, "-c", t.cfg], w.stdin !== undefined ? { stdin: w.stdin } : {});
    expect(`${w.command}: ${show(r)}`).toStartWith(`${w.command}: exit 0\n`);
    expected++;
    expect(`${w.command} ${w.args.join(" ")}: version ${await version(t.users)}`).toBe(`${w.command} ${w.args.join(" ")}: version ${expected}`);
  }
  // What was written is there, and #version is still just its number.
  expect(await names(t.users)).toContain("imp");
  expect(await versionItem(t.users)).toEqual({ Name: VERSION_KEY, Version: String(expected) });
  // With -v, the new number is said.
  const v = await ddum(["user", "set", "bob", "--shell", "/bin/bash", "-v", "-c", t.cfg]);
  expect(v.stderr).toContain(`debug: #version in table ${t.users} is now ${expected + 1}`);
});

test("the list of writers above is every user, group and import command that is not a read", () => {
  const cli = buildCli(makeLogger(), () => {}, []);
  const reads = new Set(["user show", "user list", "group show", "group list"]);
  const all = cli.commands.map((c) => c.name).filter((n) => /^(user|group) /.test(n) || n === "import");
  expect(all.length).toBeGreaterThan(10);
  const listed = new Set(writers("/").map((w) => w.command));
  expect(all.filter((n) => !reads.has(n)).sort()).toEqual([...listed].sort());
});

test("reads, no-op changes, dry runs and failed or refused writes leave the version as it is", async () => {
  const t = await fresh();
  expect((await ddum(["user", "add", "alice", "-c", t.cfg])).code).toBe(0);
  expect((await ddum(["group", "add", "devs", "-c", t.cfg])).code).toBe(0);
  const v = await version(t.users);
  expect(v).toBe(2);
  const root = importRoot();
  for (const [args, code, stdin] of [
    [["user", "show", "alice"], 0],
    [["user", "list"], 0],
    [["group", "show", "devs"], 0],
    [["group", "list", "--json"], 0],
    // Nothing to change: nothing written.
    [["user", "set", "alice", "--shell", "/bin/bash"], 0],
    [["group", "member", "remove", "devs", "nobody-there"], 0],
    [["import", "--from-local", "--root", root, "--dry-run"], 0],
    // Failed: the name exists, the record does not, the key is not there.
    [["user", "add", "alice"], 1],
    [["group", "add", "devs"], 1],
    [["user", "enable", "ghost"], 1],
    [["user", "key", "remove", "alice", KEY_BOB], 1],
    [["user", "passwd", "ghost", "--password-stdin"], 1, "a long enough passphrase\n"],
    // Refused before anything is written.
    [["user", "add", "carol", "--shell", "bin/sh"], 2],
    [["user", "add", "#version"], 2],
  ] as [string[], number, string?][]) {
    const r = await ddum([...args, "-c", t.cfg], stdin !== undefined ? { stdin } : {});
    expect(`${args.join(" ")}: exit ${r.code}`).toBe(`${args.join(" ")}: exit ${code}`);
    expect(`${args.join(" ")}: version ${await version(t.users)}`).toBe(`${args.join(" ")}: version ${v}`);
  }
});

test("a bump that fails after a write: the write stands, the command says so and exits 1", async () => {
  const t = await fresh();
  expect((await ddum(["user", "add", "alice", "-c", t.cfg])).code).toBe(0);
  await putOne(d, t.users, { Name: { S: VERSION_KEY }, Version: { S: "not a number" } });
  const r = await ddum(["user", "set", "alice", "--shell", "/bin/zsh", "-c", t.cfg]);
  expect(r.code).toBe(1);
  expect(r.stdout).toBe("user alice: changed Shell\n");
  expect(r.stderr).toContain("what this command wrote to the tables stands, but the tables' version was not raised");
  expect(r.stderr).toContain(`table ${t.users}, item #version, field Version: is not a number, so it cannot be raised`);
  expect(r.stderr).toContain(`(endpoint ${d.endpoint}, region us-east-1)`);
  expect(r.stderr).toContain('until their next full scan, or until "ddum tables bump" succeeds');
  const alice = await d.client.send(new GetItemCommand({ TableName: t.users, Key: { Name: { S: "alice" } }, ConsistentRead: true }));
  expect(alice.Item?.Shell?.S).toBe("/bin/zsh");
  // tables bump and tables create say the same, and change nothing.
  const bump = await ddum(["tables", "bump", "-c", t.cfg]);
  expect(bump.code).toBe(1);
  expect(bump.stderr).toContain(`table ${t.users}, item #version, field Version: is not a number`);
  const create = await ddum(["tables", "create", "-c", t.cfg]);
  expect(create.code).toBe(1);
  expect(create.stderr).toContain(`table ${t.users}, item #version, field Version: expected a number (type N), found type S`);
  // Mended, bumping works again.
  await putOne(d, t.users, { Name: { S: VERSION_KEY }, Version: { N: "41" } });
  expect((await ddum(["tables", "bump", "-c", t.cfg])).stdout).toBe(`#version in table ${t.users} is now 42\n`);
});

test("admin writes on tables without #version make it, as { Name, Version: 1 }", async () => {
  const t = await fresh({ bare: true });
  expect((await ddum(["user", "add", "alice", "-c", t.cfg])).code).toBe(0);
  expect(await versionItem(t.users)).toEqual({ Name: VERSION_KEY, Version: "1" });
});

// ---- what reads the tables ---------------------------------------------------------------------------

test("listings, show, ID allocation, check and a pass pass over #version", async () => {
  const t = await fresh();
  for (let i = 0; i < 3; i++) expect((await ddum(["tables", "bump", "-c", t.cfg])).code).toBe(0);
  expect((await ddum(["user", "add", "alice", "-c", t.cfg])).stdout).toContain("UID 2000");
  expect((await ddum(["group", "add", "devs", "--member", "alice", "-c", t.cfg])).code).toBe(0);
  const list = await ddum(["user", "list", "-c", t.cfg]);
  expect(list.code).toBe(0);
  expect(list.stdout).not.toContain("#version");
  expect(list.stdout.trim().split("\n").length).toBe(2);
  const json = JSON.parse((await ddum(["user", "list", "--json", "-c", t.cfg])).stdout) as { users: { name: string }[] };
  expect(json.users.map((u) => u.name)).toEqual(["alice"]);
  const showIt = await ddum(["user", "show", "#version", "-c", t.cfg]);
  expect(showIt.code).toBe(1);
  expect(showIt.stderr).toContain(`no user "#version" in table ${t.users}`);
  const setIt = await ddum(["user", "set", "#version", "--shell", "/bin/sh", "-c", t.cfg]);
  expect(setIt.code).toBe(2);
  expect(setIt.stderr).toContain("Name: is the name of one of ddum's own items (an ID reservation or #version), never a record");
  expect(await versionItem(t.users)).toEqual({ Name: VERSION_KEY, Version: "5" });

  const check = await ddum(["check", "-c", t.cfg]);
  expect(check.code).toBe(0);
  expect(check.stdout).not.toContain("#version");
  expect(check.stdout).toContain("1 user and 1 group read: 2 valid, 0 rejected");

  const root = makeRoot();
  const pass = await ddum(["sync", "--root", root, "--json", "-c", t.cfg]);
  expect(pass.stderr).toBe("");
  expect(pass.code).toBe(0);
  expect(pass.stdout).not.toContain("#version");
  const passwd = readFileSync(join(root, "etc/passwd"), "utf8");
  expect(passwd).toContain("\nalice:x:2000:2000:");
  expect(passwd).not.toContain("#version");
  expect(readFileSync(join(root, "etc/shadow"), "utf8")).not.toContain("#version");
  const verify = await ddum(["verify", "--root", root, "-c", t.cfg]);
  expect(show(verify)).toStartWith("exit 0\n");
});

// ---- the Lambda function ------------------------------------------------------------------------------

const AWS_DIR = join(REPO, "packaging", "aws");
const EVENTS = join(REPO, "tests", "fixtures", "streams");
const event = (name: string) => JSON.parse(readFileSync(join(EVENTS, `${name}.json`), "utf8")) as { Records: unknown[] };

type Handler = (e: unknown) => Promise<{ bumped: boolean; changes: number; version?: number }>;

/** version-bump.mjs in the CommonJS form the template carries (see packaging/aws/README.md). */
function asCommonJs(mjs: string): string {
  const imports = mjs.match(/^import (.*) from (.*);$/gm) ?? [];
  expect(imports.length).toBe(1);
  expect(mjs.match(/^export const handler = /gm)?.length).toBe(1);
  expect(mjs.match(/^export /gm)?.length).toBe(1);
  return mjs.replace(/^import (.*) from (.*);$/m, "const $1 = require($2);").replace(/^export const handler = /m, "exports.handler = ");
}

describe("packaging/aws/version-bump.mjs against dynalite, with recorded stream events", () => {
  const saved: Record<string, string | undefined> = {};
  const env = (): Record<string, string> => ({
    AWS_ENDPOINT_URL_DYNAMODB: d.endpoint,
    AWS_REGION: "us-east-1",
    AWS_ACCESS_KEY_ID: "test",
    AWS_SECRET_ACCESS_KEY: "test",
  });
  let handler: Handler;
  // The function's log lines (one per bump), kept out of the test output and looked at.
  let logged: Mock<typeof console.log>;
  beforeAll(async () => {
    logged = spyOn(console, "log").mockImplementation(() => {});
    for (const [k, v] of Object.entries(env())) {
      saved[k] = process.env[k];
      process.env[k] = v;
    }
    const path = join(AWS_DIR, "version-bump.mjs");
    handler = ((await import(path)) as { handler: Handler }).handler;
  });
  afterAll(() => {
    logged.mockRestore();
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
    delete process.env.USERS_TABLE;
  });

  test("it imports nothing but the SDK the Lambda runtime provides", () => {
    const src = readFileSync(join(AWS_DIR, "version-bump.mjs"), "utf8");
    expect([...src.matchAll(/^import .* from "(.*)";$/gm)].map((m) => m[1])).toEqual(["@aws-sdk/client-dynamodb"]);
    expect(src).not.toMatch(/require\(|import\(/);
  });

  test("INSERT, MODIFY and REMOVE each raise the version by one; a batch by one; #version's own change by none", async () => {
    const t = await fresh();
    process.env.USERS_TABLE = t.users;
    expect(await handler(event("insert"))).toEqual({ bumped: true, changes: 1, version: 1 });
    expect(await version(t.users)).toBe(1);
    expect(await handler(event("modify"))).toEqual({ bumped: true, changes: 1, version: 2 });
    expect(await handler(event("remove"))).toEqual({ bumped: true, changes: 1, version: 3 });
    expect(await handler(event("groups-insert"))).toEqual({ bumped: true, changes: 1, version: 4 });
    // Five records, one of them the bump's own MODIFY of #version: four changes, one bump.
    expect(await handler(event("batch"))).toEqual({ bumped: true, changes: 4, version: 5 });
    expect(await version(t.users)).toBe(5);
    expect(JSON.parse(String(logged.mock.lastCall?.[0]))).toEqual({ table: t.users, item: "#version", version: 5, changes: 4 });
    const calls = logged.mock.calls.length;
    // Only #version's own changes (what each bump puts on the Users stream): nothing written.
    expect(await handler(event("version-only"))).toEqual({ bumped: false, changes: 0 });
    expect(await handler({ Records: [] })).toEqual({ bumped: false, changes: 0 });
    expect(await versionItem(t.users)).toEqual({ Name: VERSION_KEY, Version: "5" });
    expect(logged.mock.calls.length).toBe(calls);
  });

  test("without the item, the first bump makes it well-formed; ddum reads it", async () => {
    const t = await fresh({ bare: true });
    process.env.USERS_TABLE = t.users;
    expect(await handler(event("version-only"))).toEqual({ bumped: false, changes: 0 });
    expect(await versionItem(t.users)).toBeUndefined();
    expect(await handler(event("insert"))).toEqual({ bumped: true, changes: 1, version: 1 });
    expect(await versionItem(t.users)).toEqual({ Name: VERSION_KEY, Version: "1" });
    expect((await ddum(["tables", "bump", "-c", t.cfg])).stdout).toBe(`#version in table ${t.users} is now 2\n`);
  });

  test("a failed bump throws (Lambda retries the batch), naming the table, the endpoint and the records", async () => {
    process.env.USERS_TABLE = "NoSuchTable";
    const e = (await handler(event("batch")).catch((x: Error) => x)) as Error;
    expect(e).toBeInstanceOf(Error);
    expect(e.message).toContain(`UpdateItem (ADD Version) of #version in table NoSuchTable at ${d.endpoint} failed, for 4 changes from sequence number 100000000000000000005 on: ResourceNotFoundException`);
    delete process.env.USERS_TABLE;
    expect(((await handler(event("insert")).catch((x: Error) => x)) as Error).message).toContain("USERS_TABLE is not set");
    expect(((await handler({ not: "a stream event" }).catch((x: Error) => x)) as Error).message).toContain("not a DynamoDB Streams event");
  });

  test("the template's inline copy is the handler as CommonJS, and runs under Node.js", async () => {
    const template = Bun.YAML.parse(readFileSync(join(AWS_DIR, "version-bump.yaml"), "utf8")) as Template;
    const fn = template.Resources.Function!.Properties;
    const inline = (fn.Code as { ZipFile: string }).ZipFile;
    expect(inline).toBe(asCommonJs(readFileSync(join(AWS_DIR, "version-bump.mjs"), "utf8")));
    // Inline code is limited to 4 KB.
    expect(Buffer.byteLength(inline)).toBeLessThan(4096);
    expect(fn.Handler).toBe("index.handler");
    const t = await fresh();
    const dir = mkdtempSync(join(tmpdir(), "ddum-lambda-"));
    writeFileSync(join(dir, "index.js"), inline);
    const node = Bun.which("node");
    expect(node, "node (which npm needs) is not on PATH").not.toBeNull();
    const proc = Bun.spawn(
      // --no-warnings: the SDK warns of the Node.js versions its later releases will need.
      [node!, "--no-warnings", "-e", "require('./index.js').handler(JSON.parse(require('fs').readFileSync(0, 'utf8'))).then((r) => console.log(JSON.stringify(r)))"],
      {
        cwd: dir,
        stdin: new TextEncoder().encode(JSON.stringify(event("batch"))),
        stdout: "pipe",
        stderr: "pipe",
        env: { PATH: process.env.PATH ?? "", NODE_PATH: join(REPO, "node_modules"), USERS_TABLE: t.users, ...env() },
      },
    );
    const [out, err, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
    expect(`exit ${code} ${err}`).toBe("exit 0 ");
    const lines = out.trim().split("\n");
    expect(JSON.parse(lines[0]!)).toEqual({ table: t.users, item: "#version", version: 1, changes: 4 });
    expect(JSON.parse(lines[1]!)).toEqual({ bumped: true, changes: 4, version: 1 });
    expect(await version(t.users)).toBe(1);
  });
});

// ---- the CloudFormation template ------------------------------------------------------------------------

/** A CloudFormation Fn::Sub string, written with {X} for its ${X}. */
const cfnSub = (s: string) => s.replace(/\{/g, "$${");

interface Template {
  Parameters: Record<string, { Type: string }>;
  Resources: Record<string, { Type: string; Properties: Record<string, unknown> }>;
}

interface Statement {
  Effect: string;
  Action: string | string[];
  Resource?: unknown;
  Condition?: unknown;
  Principal?: unknown;
}

test("version-bump.yaml parses as plain YAML, wires both streams, and its role grants only what the function needs", () => {
  const text = readFileSync(join(AWS_DIR, "version-bump.yaml"), "utf8");
  // Long-form intrinsic functions only: no YAML tags (!Ref, !Sub, !GetAtt).
  expect(text.split("\n").filter((l) => /^\s*[^#\s].*:\s+!/.test(l) || /^\s*-\s+!/.test(l))).toEqual([]);
  const t = Bun.YAML.parse(text) as Template;
  expect(Object.keys(t.Parameters).sort()).toEqual(["GroupsStreamArn", "GroupsTableName", "Runtime", "UsersStreamArn", "UsersTableName"]);
  const byType = (type: string) => Object.values(t.Resources).filter((r) => r.Type === type);
  expect(Object.values(t.Resources).map((r) => r.Type).sort()).toEqual(
    ["AWS::IAM::Role", "AWS::Lambda::EventSourceMapping", "AWS::Lambda::EventSourceMapping", "AWS::Lambda::Function", "AWS::Logs::LogGroup"].sort(),
  );

  // One mapping per stream, to the function.
  const mappings = byType("AWS::Lambda::EventSourceMapping").map((m) => m.Properties);
  expect(mappings.map((m) => m.EventSourceArn)).toEqual([{ Ref: "UsersStreamArn" }, { Ref: "GroupsStreamArn" }]);
  for (const m of mappings) expect(m.FunctionName).toEqual({ Ref: "Function" });
  // The Users stream does not even deliver #version's own changes.
  const filters = (mappings[0]!.FilterCriteria as { Filters: { Pattern: string }[] }).Filters;
  expect(JSON.parse(filters[0]!.Pattern)).toEqual({ dynamodb: { Keys: { Name: { S: [{ "anything-but": ["#version"] }] } } } });

  const fn = t.Resources.Function!.Properties;
  expect(fn.Role).toEqual({ "Fn::GetAtt": ["Role", "Arn"] });
  expect(fn.Environment).toEqual({ Variables: { USERS_TABLE: { Ref: "UsersTableName" } } });

  const role = byType("AWS::IAM::Role")[0]!.Properties;
  expect(role.ManagedPolicyArns).toBeUndefined();
  expect((role.AssumeRolePolicyDocument as { Statement: Statement[] }).Statement).toEqual([
    { Effect: "Allow", Principal: { Service: "lambda.amazonaws.com" }, Action: "sts:AssumeRole" },
  ]);
  const statements = (role.Policies as { PolicyDocument: { Statement: Statement[] } }[]).flatMap((p) => p.PolicyDocument.Statement);
  const grants = statements.map((s) => ({ effect: s.Effect, actions: [s.Action].flat().sort(), resource: s.Resource, condition: s.Condition }));
  expect(grants).toEqual([
    {
      effect: "Allow",
      actions: ["dynamodb:UpdateItem"],
      resource: { "Fn::Sub": cfnSub("arn:{AWS::Partition}:dynamodb:{AWS::Region}:{AWS::AccountId}:table/{UsersTableName}") },
      condition: { "ForAllValues:StringEquals": { "dynamodb:LeadingKeys": ["#version"] } },
    },
    {
      effect: "Allow",
      actions: ["dynamodb:DescribeStream", "dynamodb:GetRecords", "dynamodb:GetShardIterator", "dynamodb:ListStreams"],
      resource: [{ Ref: "UsersStreamArn" }, { Ref: "GroupsStreamArn" }],
      condition: undefined,
    },
    { effect: "Allow", actions: ["logs:CreateLogStream", "logs:PutLogEvents"], resource: { "Fn::GetAtt": ["LogGroup", "Arn"] }, condition: undefined },
  ]);
  // No wildcard anywhere in the role.
  expect(JSON.stringify(role)).not.toContain('"*"');
  expect(readdirSync(AWS_DIR).sort()).toEqual(["README.md", "version-bump.mjs", "version-bump.yaml"]);
});

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { parseConfig } from "../src/config.ts";
import { makeClient, scanTables } from "../src/source/dynamo.ts";
import { type Dynamo, type Item, startDynalite, userItem, groupItem } from "./helpers/dynalite.ts";
import { startFaultProxy } from "./helpers/faultproxy.ts";
import { KEY_ALICE, KEY_BOB, KEY_CAROL_RSA } from "./helpers/keys.ts";

let db: Dynamo;
const N = 4000;

beforeAll(async () => {
  db = await startDynalite();
  await db.createTables();
  const users = Array.from({ length: N }, (_, i) =>
    userItem(`user${i}`, 10000 + i, { SSHPublicKeys: { SS: [KEY_ALICE, KEY_BOB, KEY_CAROL_RSA] } }),
  );
  await db.put("Users", users);
  await db.put("Groups", Array.from({ length: 300 }, (_, i) => groupItem(`group${i}`, 20000 + i)));
});
afterAll(() => db.close());

function config(extra: Record<string, unknown> = {}) {
  return parseConfig({
    endpoint_url: db.endpoint,
    aws_region: "us-east-1",
    aws_access_key: "test",
    aws_secret_key: "test",
    ...extra,
  }).config;
}

describe("scan", () => {
  test("reads every item across several pages", async () => {
    const pages: number[] = [];
    const c = config();
    const snap = await scanTables(await makeClient(c), c, (t, n) => t === "Users" && pages.push(n));
    expect(snap.users.length).toBe(N);
    expect(snap.groups.length).toBe(300);
    expect(pages.length).toBeGreaterThan(1);
    expect(new Set(snap.users.map((u) => u.Name?.S)).size).toBe(N);
  });

  test("parallel segments return the same set as a sequential scan", async () => {
    const seq = config();
    const par = config({ scan_segments: 4, consistent_read: true });
    const a = await scanTables(await makeClient(seq), seq);
    const b = await scanTables(await makeClient(par), par);
    const names = (items: typeof a.users) => items.map((i) => i.Name!.S!).sort();
    expect(names(b.users)).toEqual(names(a.users));
    expect(names(b.groups)).toEqual(names(a.groups));
  });
});

describe("scan pages parsed by ddum", () => {
  test("give exactly the items the SDK's own deserializer gives, for every attribute type", async () => {
    const odd: Item[] = [
      { Name: { S: "odd1" }, UID: { N: "1e3" }, Flag: { BOOL: false }, Gone: { NULL: true }, Nums: { NS: ["1", "2.5"] } },
      { Name: { S: "odd2" }, L: { L: [{ S: "a" }, { N: "1" }, { M: { k: { S: "v" } } }] }, Text: { S: "tab\tnewline\nquote\"é☃" } },
    ];
    await db.put("Users", odd);
    try {
      const c = config();
      const ours = await makeClient(c);
      expect((ours as unknown as Record<symbol, boolean>)[Symbol.for("ddum.scanParser")]).toBe(true);
      const { DynamoDBClient } = await import("@aws-sdk/client-dynamodb");
      const stock = new DynamoDBClient({ endpoint: db.endpoint, region: "us-east-1", credentials: { accessKeyId: "t", secretAccessKey: "t" } });
      const a = await scanTables(ours, c);
      const b = await scanTables(stock, c);
      const byName = (items: typeof a.users) => [...items].sort((x, y) => (x.Name!.S! < y.Name!.S! ? -1 : 1));
      expect(byName(a.users)).toEqual(byName(b.users));
      expect(byName(a.groups)).toEqual(byName(b.groups));
      expect(a.users.find((i) => i.Name?.S === "odd2")).toEqual(odd[1]);
    } finally {
      for (const n of ["odd1", "odd2"]) await db.remove("Users", n);
    }
  });
});

describe("faults", () => {
  test("throttling, 500s and dropped connections are retried until the scan completes", async () => {
    // Every request fails three times (throttle, 500, drop) before its fourth attempt is let
    // through, whatever the order in which the two tables' requests arrive.
    const proxy = await startFaultProxy(db.endpoint, (_n, attempt) => (["throttle", "500", "drop"] as const)[attempt] ?? null);
    try {
      const c = config({ endpoint_url: proxy.endpoint, max_attempts: 5 });
      const snap = await scanTables(await makeClient(c), c);
      expect(snap.users.length).toBe(N);
      expect(snap.groups.length).toBe(300);
      expect(proxy.counts.throttle).toBeGreaterThan(0);
      expect(proxy.counts["500"]).toBeGreaterThan(0);
      expect(proxy.counts.drop).toBeGreaterThan(0);
    } finally {
      await proxy.close();
    }
  });

  test("a page that keeps failing fails the whole scan with a clear error", async () => {
    // The first page of each table goes through; everything after fails for good.
    const proxy = await startFaultProxy(db.endpoint, (n) => (n < 2 ? null : "500"));
    try {
      const c = config({ endpoint_url: proxy.endpoint, max_attempts: 3 });
      let err: unknown;
      try {
        await scanTables(await makeClient(c), c);
      } catch (e) {
        err = e;
      }
      expect(String(err)).toMatch(/scan of table (Users|Groups) failed after 3 attempts/);
    } finally {
      await proxy.close();
    }
  });

  test("an unreachable endpoint fails clearly", async () => {
    const c = config({ endpoint_url: "http://127.0.0.1:9", max_attempts: 2 });
    await expect(scanTables(await makeClient(c), c)).rejects.toThrow(/scan of table (Users|Groups) failed/);
  });
});

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { parseConfig } from "../src/config.ts";
import { type AttributeValue, DeleteTableCommand, DescribeTableCommand, ScanCommand } from "@aws-sdk/client-dynamodb";
import { createTables, makeClient, scanTables } from "../src/source/dynamo.ts";
import { type Dynamo, ddumClient, type Item, startDynalite, testClient, userItem, groupItem } from "./helpers/dynalite.ts";
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
      const stock = testClient(db.endpoint);
      const sdkScan = async (table: string) => {
        const items: Record<string, AttributeValue>[] = [];
        let start: Record<string, AttributeValue> | undefined;
        do {
          const page = await stock.send(new ScanCommand({ TableName: table, ExclusiveStartKey: start }));
          items.push(...(page.Items ?? []));
          start = page.LastEvaluatedKey;
        } while (start);
        return items;
      };
      const a = await scanTables(ours, c);
      const b = { users: await sdkScan("Users"), groups: await sdkScan("Groups") };
      stock.destroy();
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

describe("tables create", () => {
  // DeleteTable answers while the table is still DELETING; a create in that window gets
  // ResourceInUseException. Taken for "exists", it used to wait for an active table that never came.
  test("a table still being deleted is waited out and created, not taken as existing", async () => {
    const slow = await startDynalite(0, { deleteTableMs: 300 });
    try {
      await createTables(slow.ddum, ["Teams"], "on-demand", 10);
      await slow.client.send(new DeleteTableCommand({ TableName: "Teams" }));
      const t0 = Date.now();
      const r = await createTables(slow.ddum, ["Teams"], "on-demand", 10);
      expect(r).toMatchObject({ created: ["Teams"], existed: [] });
      expect(r.arns.Teams).toMatch(/^arn:aws:dynamodb:us-east-1:\d{12}:table\/Teams$/);
      expect(Date.now() - t0).toBeLessThan(9_000);
      const t = await slow.client.send(new DescribeTableCommand({ TableName: "Teams" }));
      expect(t.Table?.TableStatus).toBe("ACTIVE");
      expect(await createTables(slow.ddum, ["Teams"], "on-demand", 10)).toMatchObject({ created: [], existed: ["Teams"] });
    } finally {
      await slow.close();
    }
  });

  // The other end of that window: the create is refused as "in use" while the table is being
  // deleted, and the deletion ends before the status is asked. Gone is not "exists": create it.
  test("a table that is gone by the time its status is asked, after the create was refused as in use, is created", async () => {
    let refused = 0;
    const proxy = await startFaultProxy(db.endpoint, (_n, _attempt, op) => (op === "CreateTable" && refused++ === 0 ? "in-use" : null));
    const client = ddumClient(proxy.endpoint);
    try {
      const r = await createTables(client, ["Vanished"], "on-demand", 5);
      expect(r).toMatchObject({ created: ["Vanished"], existed: [] });
      expect(proxy.counts["in-use"]).toBe(1);
      const t = await db.client.send(new DescribeTableCommand({ TableName: "Vanished" }));
      expect(t.Table?.TableStatus).toBe("ACTIVE");
    } finally {
      client.destroy();
      await proxy.close();
    }
  });

  test("the test helper's reset leaves no table behind, so the next create starts clean", async () => {
    const slow = await startDynalite(0, { deleteTableMs: 300 });
    try {
      for (let i = 0; i < 3; i++) {
        await slow.createTables();
        await slow.put("Users", [userItem(`u${i}`, 2000 + i)]);
        await slow.reset();
        await expect(slow.client.send(new DescribeTableCommand({ TableName: "Users" }))).rejects.toThrow(/ResourceNotFoundException/);
      }
    } finally {
      await slow.close();
    }
  });

  test("a test client's request that is never answered fails in seconds, naming the call", async () => {
    // A listener that accepts connections and never answers.
    const server = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
    const client = testClient(`http://127.0.0.1:${server.port}`, 1_000);
    try {
      const t0 = Date.now();
      const err = await client.send(new DescribeTableCommand({ TableName: "Users" })).then(() => null, (e: Error) => e);
      expect(err?.message).toContain(`DescribeTableCommand on table Users at http://127.0.0.1:${server.port}`);
      expect(Date.now() - t0).toBeLessThan(2 * 1_000 + 5_000);
    } finally {
      client.destroy();
      server.stop(true);
    }
  }, 60_000);
});

import {
  type AttributeValue,
  BatchWriteItemCommand,
  DeleteItemCommand,
  DeleteTableCommand,
  DescribeTableCommand,
  DynamoDBClient,
  PutItemCommand,
} from "@aws-sdk/client-dynamodb";
import dynalite from "dynalite";
import type { Server } from "node:http";
import type { AddressInfo } from "node:net";
import { clientAt, createTables, type DynamoClient } from "../../src/source/dynamo.ts";

export type Item = Record<string, AttributeValue>;

export interface Dynamo {
  endpoint: string;
  port: number;
  client: DynamoDBClient;
  /** A client of ddum's own (src/source/wire.ts) on the same server, for ddum's functions. */
  ddum: DynamoClient;
  createTables(users?: string, groups?: string): Promise<void>;
  put(table: string, items: Item[]): Promise<void>;
  remove(table: string, name: string): Promise<void>;
  reset(): Promise<void>;
  close(): Promise<void>;
}

/** How long one request of a test client may take before it fails, naming the call. */
export const TEST_REQUEST_TIMEOUT_MS = 10_000;

/**
 * An SDK client for tests: every request is bounded (connect and answer), tried twice at most,
 * and an error names the operation, the table and the endpoint, so a lost request fails the test
 * in seconds with a message that says what was lost instead of hanging a hook until its timeout.
 */
export function testClient(endpoint: string, timeoutMs = TEST_REQUEST_TIMEOUT_MS): DynamoDBClient {
  const client = new DynamoDBClient({
    endpoint,
    region: "us-east-1",
    credentials: { accessKeyId: "test", secretAccessKey: "test" },
    maxAttempts: 2,
    requestHandler: { requestTimeout: timeoutMs, connectionTimeout: timeoutMs, throwOnRequestTimeout: true },
  });
  client.middlewareStack.add(
    (next, context) => async (args) => {
      try {
        return await next(args);
      } catch (e) {
        const table = (args.input as { TableName?: string }).TableName;
        const what = `${context.commandName ?? "request"}${table ? ` on table ${table}` : ""} at ${endpoint}`;
        if (e instanceof Error && !e.message.startsWith(what)) e.message = `${what}: ${e.name}: ${e.message}`;
        throw e;
      }
    },
    { step: "initialize", name: "nameTheCall" },
  );
  return client;
}

/** ddum's own client for tests: bounded and tried twice, like testClient. */
export function ddumClient(endpoint: string, timeoutMs = TEST_REQUEST_TIMEOUT_MS): DynamoClient {
  return clientAt(endpoint, { accessKeyId: "test", secretAccessKey: "test", maxAttempts: 2, requestTimeoutMs: timeoutMs });
}

/** Wait until a deleted table is really gone (DeleteTable answers while it is still DELETING). */
async function untilGone(client: DynamoDBClient, table: string): Promise<void> {
  const deadline = Date.now() + TEST_REQUEST_TIMEOUT_MS;
  for (;;) {
    try {
      await client.send(new DescribeTableCommand({ TableName: table }));
    } catch (e) {
      if ((e as Error).name === "ResourceNotFoundException") return;
      throw e;
    }
    if (Date.now() > deadline) throw new Error(`table ${table} was still being deleted after ${TEST_REQUEST_TIMEOUT_MS} ms`);
    await Bun.sleep(5);
  }
}

/** A real DynamoDB-compatible server (dynalite, in memory) on 127.0.0.1. */
export async function startDynalite(port = 0, opts: { deleteTableMs?: number } = {}): Promise<Dynamo> {
  const server: Server = dynalite({ createTableMs: 0, deleteTableMs: opts.deleteTableMs ?? 0, updateTableMs: 0 });
  await new Promise<void>((resolve) => server.listen(port, "127.0.0.1", () => resolve()));
  const actual = (server.address() as AddressInfo).port;
  const endpoint = `http://127.0.0.1:${actual}`;
  const client = testClient(endpoint);
  const ddum = ddumClient(endpoint);
  const tables = new Set<string>();
  const d: Dynamo = {
    endpoint,
    port: actual,
    client,
    ddum,
    async createTables(users = "Users", groups = "Groups") {
      await createTables(ddum, [users, groups], "on-demand", TEST_REQUEST_TIMEOUT_MS / 1000);
      tables.add(users);
      tables.add(groups);
    },
    async put(table, items) {
      for (let i = 0; i < items.length; i += 25) {
        let req: Record<string, { PutRequest: { Item: Item } }[]> | undefined = {
          [table]: items.slice(i, i + 25).map((Item) => ({ PutRequest: { Item } })),
        };
        while (req && Object.keys(req).length > 0) {
          const r = await client.send(new BatchWriteItemCommand({ RequestItems: req }));
          req = r.UnprocessedItems as typeof req;
        }
      }
    },
    async remove(table, name) {
      await client.send(new DeleteItemCommand({ TableName: table, Key: { Name: { S: name } } }));
    },
    async reset() {
      // Each table is gone before the next test creates it again: a create that meets a table
      // still DELETING would otherwise find it "existing" and wait for it to become active.
      for (const t of tables) {
        await client.send(new DeleteTableCommand({ TableName: t }));
        await untilGone(client, t);
      }
      tables.clear();
    },
    async close() {
      client.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
  return d;
}

export function putOne(d: Dynamo, table: string, item: Item) {
  return d.client.send(new PutItemCommand({ TableName: table, Item: item }));
}

/** A Users item in the tables' wire form. */
export function userItem(
  name: string,
  uid: number,
  extra: Partial<Record<string, AttributeValue>> = {},
): Item {
  return {
    Name: { S: name },
    UID: { N: String(uid) },
    GID: { N: String(uid) },
    RealName: { S: `${name} user` },
    Home: { S: `/home/${name}` },
    Shell: { S: "/bin/bash" },
    ...(extra as Item),
  };
}

export function groupItem(name: string, gid: number, extra: Partial<Record<string, AttributeValue>> = {}): Item {
  return { Name: { S: name }, GID: { N: String(gid) }, ...(extra as Item) };
}

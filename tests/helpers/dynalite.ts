import {
  type AttributeValue,
  BatchWriteItemCommand,
  DeleteItemCommand,
  DeleteTableCommand,
  DynamoDBClient,
  PutItemCommand,
} from "@aws-sdk/client-dynamodb";
import dynalite from "dynalite";
import type { Server } from "node:http";
import type { AddressInfo } from "node:net";
import { createTables } from "../../src/source/dynamo.ts";

export type Item = Record<string, AttributeValue>;

export interface Dynamo {
  endpoint: string;
  port: number;
  client: DynamoDBClient;
  createTables(users?: string, groups?: string): Promise<void>;
  put(table: string, items: Item[]): Promise<void>;
  remove(table: string, name: string): Promise<void>;
  reset(): Promise<void>;
  close(): Promise<void>;
}

/** A real DynamoDB-compatible server (dynalite, in memory) on 127.0.0.1. */
export async function startDynalite(port = 0): Promise<Dynamo> {
  const server: Server = dynalite({ createTableMs: 0, deleteTableMs: 0, updateTableMs: 0 });
  await new Promise<void>((resolve) => server.listen(port, "127.0.0.1", () => resolve()));
  const actual = (server.address() as AddressInfo).port;
  const endpoint = `http://127.0.0.1:${actual}`;
  const client = new DynamoDBClient({
    endpoint,
    region: "us-east-1",
    credentials: { accessKeyId: "test", secretAccessKey: "test" },
  });
  const tables = new Set<string>();
  const d: Dynamo = {
    endpoint,
    port: actual,
    client,
    async createTables(users = "Users", groups = "Groups") {
      await createTables(client, [users, groups]);
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
      for (const t of tables) await client.send(new DeleteTableCommand({ TableName: t }));
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

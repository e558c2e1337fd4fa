// The tables' version: the item "#version" in the Users table, holding a number (Version) that
// every writer of either table raises after its change (ddum's admin commands, `ddum tables
// bump`, the Lambda function in packaging/aws/ for other writers). A host that finds the number
// unchanged knows the tables are too, from one small read instead of a scan.
import type { GetItemCommandOutput } from "@aws-sdk/client-dynamodb";
import { DdumError } from "../errors.ts";
import { VERSION_KEY } from "../model.ts";
import { awsFailure, type DynamoClient, type RawItem } from "./dynamo.ts";

export { VERSION_KEY };

/** The attribute of the #version item that holds the number. */
export const VERSION_FIELD = "Version";

const KEY = { Name: { S: VERSION_KEY } };

/** The read units one GetItem of a small item costs, when the answer does not say. */
const readCost = (consistent: boolean) => (consistent ? 1 : 0.5);

/** An error about the item's Version field: the table, the item, the field and the endpoint. */
function malformed(client: DynamoClient, table: string, why: string): DdumError {
  const where = client.where;
  const at = where ? ` (endpoint ${where.endpoint}, region ${where.region})` : "";
  return new DdumError(
    `table ${table}, item ${VERSION_KEY}, field ${VERSION_FIELD}: ${why}${at}; correct it to a whole number (type N), or delete the item and run "ddum tables bump" to make it anew`,
  );
}

/** The number in an item's Version attribute; an error naming table, item and field when it is not a whole number. */
function versionOf(client: DynamoClient, table: string, item: RawItem): number {
  const v = item[VERSION_FIELD];
  if (v === undefined) throw malformed(client, table, "is missing");
  if (v.N === undefined) throw malformed(client, table, `expected a number (type N), found type ${Object.keys(v)[0] ?? "(none)"}`);
  const n = Number(v.N);
  if (!/^-?[0-9]+$/.test(v.N) || !Number.isSafeInteger(n)) throw malformed(client, table, `expected a whole number below 2^53, found ${JSON.stringify(v.N.slice(0, 40))}`);
  return n;
}

/**
 * The tables' version: null when there is no #version item. One GetItem of one small item;
 * readUnits is what it cost (as DynamoDB reports it: 0.5 eventually consistent, 1 consistent).
 */
export async function readVersion(
  client: DynamoClient,
  usersTable: string,
  opts: { consistentRead?: boolean } = {},
): Promise<{ version: number | null; readUnits: number }> {
  const consistent = opts.consistentRead === true;
  let r: GetItemCommandOutput;
  try {
    r = await client.call("GetItem", { TableName: usersTable, Key: KEY, ConsistentRead: consistent, ReturnConsumedCapacity: "TOTAL" });
  } catch (e) {
    throw awsFailure(`GetItem of ${VERSION_KEY} in table ${usersTable}`, e, client.where, usersTable);
  }
  const readUnits = r.ConsumedCapacity?.CapacityUnits ?? readCost(consistent);
  return { version: r.Item ? versionOf(client, usersTable, r.Item) : null, readUnits };
}

/**
 * Raise the tables' version by one (UpdateItem ADD, atomic however many writers bump at once) and
 * return the new number. A missing item is made by the ADD itself, as { Name, Version: 1 }.
 */
export async function bumpVersion(client: DynamoClient, usersTable: string): Promise<number> {
  let attrs: RawItem | undefined;
  try {
    const r = await client.call("UpdateItem", {
      TableName: usersTable,
      Key: KEY,
      UpdateExpression: "ADD #v :one",
      ExpressionAttributeNames: { "#v": VERSION_FIELD },
      ExpressionAttributeValues: { ":one": { N: "1" } },
      ReturnValues: "UPDATED_NEW",
    });
    attrs = r.Attributes;
  } catch (e) {
    // ADD to an attribute of another type: DynamoDB says only "incorrect data type".
    if ((e as Error).name === "ValidationException" && /data type/i.test((e as Error).message)) {
      throw malformed(client, usersTable, `is not a number, so it cannot be raised (${(e as Error).message})`);
    }
    throw awsFailure(`UpdateItem (ADD ${VERSION_FIELD}) of ${VERSION_KEY} in table ${usersTable}`, e, client.where, usersTable);
  }
  return versionOf(client, usersTable, attrs ?? {});
}

/**
 * Make the #version item, with Version 0, unless it exists (a conditional put: an existing one,
 * and its number, are never touched). Returns whether it was made, and the version now.
 */
export async function ensureVersion(client: DynamoClient, usersTable: string): Promise<{ created: boolean; version: number }> {
  for (let attempt = 1; ; attempt++) {
    try {
      await client.call("PutItem", {
        TableName: usersTable,
        Item: { ...KEY, [VERSION_FIELD]: { N: "0" } },
        ConditionExpression: "attribute_not_exists(#k)",
        ExpressionAttributeNames: { "#k": "Name" },
      });
      return { created: true, version: 0 };
    } catch (e) {
      if ((e as Error).name !== "ConditionalCheckFailedException") {
        throw awsFailure(`PutItem of ${VERSION_KEY} in table ${usersTable}`, e, client.where, usersTable);
      }
    }
    const { version } = await readVersion(client, usersTable, { consistentRead: true });
    if (version !== null) return { created: false, version };
    // Deleted between the put and the read: put it again.
    if (attempt >= 3) throw new DdumError(`table ${usersTable}, item ${VERSION_KEY}: it was there at each put and gone at each read (${attempt} times); something deletes it`);
  }
}

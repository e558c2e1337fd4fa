// ddum: raise the tables' version (the item "#version" in the Users table) for every change that
// the DynamoDB Streams of the Users and Groups tables carry, whoever made it (the AWS CLI, the
// console, a script). Hosts with change_detection "version" scan the tables only when it changes.
// Node.js 20 or later; only the SDK that the Lambda runtime provides. Env: USERS_TABLE.
// version-bump.yaml carries this file inline, as CommonJS (the two import/export lines differ).
import { DynamoDBClient, UpdateItemCommand } from "@aws-sdk/client-dynamodb";

const VERSION_KEY = "#version";
let client;

// One batch, one ADD of 1, however many changes it holds: hosts only ask whether the number
// changed. Records of #version itself are left out: each bump is a change on the Users stream,
// and counting it would bump again, forever. On failure the handler throws: Lambda retries the
// whole batch (one write covers it all) until it succeeds or its records expire (24 hours).
export const handler = async (event) => {
  const records = event?.Records;
  if (!Array.isArray(records)) throw new Error("not a DynamoDB Streams event: no Records");
  const changes = records.filter((r) => r?.dynamodb?.Keys?.Name?.S !== VERSION_KEY);
  if (changes.length === 0) return { bumped: false, changes: 0 };
  const table = process.env.USERS_TABLE;
  if (!table) throw new Error("USERS_TABLE is not set: it names the Users table");
  client ??= new DynamoDBClient({});
  let r;
  try {
    r = await client.send(
      new UpdateItemCommand({
        TableName: table,
        Key: { Name: { S: VERSION_KEY } },
        UpdateExpression: "ADD #v :one",
        ExpressionAttributeNames: { "#v": "Version" },
        ExpressionAttributeValues: { ":one": { N: "1" } },
        ReturnValues: "UPDATED_NEW",
      }),
    );
  } catch (e) {
    const first = changes[0]?.dynamodb?.SequenceNumber;
    const at = process.env.AWS_ENDPOINT_URL_DYNAMODB ?? `region ${process.env.AWS_REGION}`;
    throw new Error(`UpdateItem (ADD Version) of ${VERSION_KEY} in table ${table} at ${at} failed, for ${changes.length} changes from sequence number ${first ?? "?"} on: ${e?.name}: ${e?.message}`, { cause: e });
  }
  const version = Number(r.Attributes?.Version?.N);
  console.log(JSON.stringify({ table, item: VERSION_KEY, version, changes: changes.length }));
  return { bumped: true, changes: changes.length, version };
};

// The floor: a bare paginated scan of both tables with the same SDK, the same client settings
// and the same segment count as ddum, and nothing else. With --stock, the same scan through an
// SDK client with its default settings (node:http handler, the SDK's own deserializer), printed
// beside it for reference.
import { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { loadConfig } from "../src/config.ts";
import { makeClient, scanTables } from "../src/source/dynamo.ts";

const stock = process.argv.includes("--stock");
const { config } = loadConfig(process.argv.filter((a) => a !== "--stock")[2]);
const client = stock
  ? new DynamoDBClient({
      endpoint: config.endpoint_url!,
      region: config.aws_region!,
      credentials: { accessKeyId: config.aws_access_key, secretAccessKey: config.aws_secret_key },
      requestHandler: { requestTimeout: 30_000, connectionTimeout: 10_000, throwOnRequestTimeout: true },
    })
  : await makeClient(config);
const snap = await scanTables(client, config);
client.destroy();
console.log(`${snap.users.length} users, ${snap.groups.length} groups`);

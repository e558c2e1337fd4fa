// The floor: a bare paginated scan of both tables with ddum's own client (src/source/wire.ts), the
// same settings and the same segment count as ddum, and nothing else. With --stock, the same scan
// through the AWS SDK's client at its default settings (node:http handler, the SDK's own
// deserializer), printed beside it for reference.
import { type AttributeValue, DynamoDBClient, ScanCommand } from "@aws-sdk/client-dynamodb";
import { loadConfig } from "../src/config.ts";
import { makeClient, scanTables } from "../src/source/dynamo.ts";

const stock = process.argv.includes("--stock");
const { config } = loadConfig(process.argv.filter((a) => a !== "--stock")[2]);

async function stockScan(): Promise<{ users: unknown[]; groups: unknown[] }> {
  const sdk = new DynamoDBClient({
    endpoint: config.endpoint_url!,
    region: config.aws_region!,
    credentials: { accessKeyId: config.aws_access_key, secretAccessKey: config.aws_secret_key },
    requestHandler: { requestTimeout: 30_000, connectionTimeout: 10_000, throwOnRequestTimeout: true },
  });
  const segments = config.scan_segments;
  const scan = async (table: string, n: number) => {
    const items: unknown[] = [];
    let start: Record<string, AttributeValue> | undefined;
    do {
      const page = await sdk.send(new ScanCommand({ TableName: table, ExclusiveStartKey: start, ...(segments > 1 ? { Segment: n, TotalSegments: segments } : {}) }));
      for (const i of page.Items ?? []) items.push(i);
      start = page.LastEvaluatedKey;
    } while (start);
    return items;
  };
  const all = (table: string) => Promise.all(Array.from({ length: segments }, (_, n) => scan(table, n))).then((p) => p.flat());
  const [users, groups] = await Promise.all([all(config.user_table_name), all(config.group_table_name)]);
  sdk.destroy();
  return { users, groups };
}

let snap: { users: unknown[]; groups: unknown[] };
if (stock) snap = await stockScan();
else {
  const client = await makeClient(config);
  snap = await scanTables(client, config);
  client.destroy();
}
console.log(`${snap.users.length} users, ${snap.groups.length} groups`);

// The floor: a bare paginated scan of both tables with the same SDK, the same client settings
// and the same segment count as ddum, and nothing else.
import { loadConfig } from "../src/config.ts";
import { makeClient, scanTables } from "../src/source/dynamo.ts";

const { config } = loadConfig(process.argv[2]);
const client = await makeClient(config);
const snap = await scanTables(client, config);
client.destroy();
console.log(`${snap.users.length} users, ${snap.groups.length} groups`);

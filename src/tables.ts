// Read both tables and turn them into valid records: the input half of every pass.
import type { Config } from "./config.ts";
import { type Decoded, decodeGroups, decodeUsers, type Group, type User } from "./model.ts";

export interface TableState {
  users: Decoded<User>;
  groups: Decoded<Group>;
  /** Every Name in the Users table, valid or not. */
  userNames: string[];
  scanMs: number;
  decodeMs: number;
}

export type Progress = (table: string, items: number) => void;

export async function readTables(config: Config, onPage?: Progress): Promise<TableState> {
  // Loaded here, not at the top: commands that never talk to DynamoDB do not load the SDK.
  const { makeClient, scanTables } = await import("./source/dynamo.ts");
  const t0 = performance.now();
  const client = await makeClient(config);
  try {
    const snap = await scanTables(client, config, onPage);
    const scanMs = performance.now() - t0;
    return {
      users: decodeUsers(config.user_table_name, snap.users),
      groups: decodeGroups(config.group_table_name, snap.groups),
      userNames: snap.users.flatMap((i) => (typeof i.Name?.S === "string" ? [i.Name.S] : [])),
      scanMs,
      decodeMs: performance.now() - t0 - scanMs,
    };
  } finally {
    client.destroy();
  }
}

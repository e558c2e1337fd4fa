// Read both tables and turn them into valid records: the input half of every pass.
import type { Config } from "./config.ts";
import { type Decoded, decodeGroupItem, decodeUserItem, finishDecoding, type Group, type User } from "./model.ts";

export interface TableState {
  users: Decoded<User>;
  groups: Decoded<Group>;
  /** Every Name in the Users table, valid or not. scanMs includes decoding, done page by page. */
  userNames: string[];
  scanMs: number;
  decodeMs: number;
}

export type Progress = (table: string, items: number) => void;

/**
 * Both tables, decoded page by page. onUser sees each valid user as its page arrives, so that work
 * which needs one record and the local disk only (checking key files) overlaps the scan.
 */
export async function readTables(config: Config, onPage?: Progress, onUser?: (u: User) => void): Promise<TableState> {
  // Loaded here, not at the top: commands that never talk to DynamoDB do not load the SDK.
  const { makeClient, scanTables } = await import("./source/dynamo.ts");
  const t0 = performance.now();
  const client = await makeClient(config);
  try {
    // Items are decoded as their page arrives: the raw pages never pile up in memory.
    const decodeUser = decodeUserItem(config.user_table_name);
    const snap = await scanTables(client, config, onPage, {
      user: onUser
        ? (item) => {
            const d = decodeUser(item);
            if (d.kind === "ok") onUser(d.ok);
            return d;
          }
        : decodeUser,
      group: decodeGroupItem(config.group_table_name),
    });
    const scanMs = performance.now() - t0;
    return {
      users: finishDecoding(config.user_table_name, snap.users, "UID", (u: User) => u.uid),
      groups: finishDecoding(config.group_table_name, snap.groups, "GID", (g: Group) => g.gid),
      userNames: snap.users.flatMap((d) => (d.rawName === undefined ? [] : [d.rawName])),
      scanMs,
      decodeMs: performance.now() - t0 - scanMs,
    };
  } finally {
    client.destroy();
  }
}

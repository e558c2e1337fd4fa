// Read both tables and turn them into valid records: the input half of every pass.
import type { Config } from "./config.ts";
import type { DynamoClient, PageKeeper, PageSource } from "./source/dynamo.ts";
import { type Decoded, type Decoding, decodeGroupItem, decodeKnownUserItem, decodeUserItem, finishDecoding, type Group, type User } from "./model.ts";

export interface TableState {
  users: Decoded<User>;
  groups: Decoded<Group>;
  /** Every Name in the Users table, valid or not. scanMs includes decoding, done page by page. */
  userNames: string[];
  /** Every Name in the Groups table, valid or not. */
  groupNames: string[];
  scanMs: number;
  decodeMs: number;
}

export type Progress = (table: string, items: number) => void;

/** Where the pages come from and who else is told of them (see scanTable's options). */
export interface TableSource {
  /** A client the caller made (and destroys); else one is made for the scan. */
  client?: DynamoClient;
  /** Pages from a scan snapshot instead of DynamoDB. */
  source?: PageSource;
  onCapacity?: (units: number) => void;
  keep?: PageKeeper;
}

/** Told of each page of the Users table, and of each of its items as it is decoded. */
export interface UserPages {
  /**
   * A page begins (digest: its SHA-256, when known). True: its every item is known to decode as a
   * valid record, byte for byte as before (see pagememo.ts), so the string rules are not run again.
   */
  begin(digest: string | undefined): boolean;
  item(d: Decoding<User>): void;
  end(): void;
}

/**
 * Both tables, decoded page by page. userPages sees each page of users as it arrives, so that work
 * which needs one record and the local disk only (checking key files) overlaps the scan.
 */
export async function readTables(config: Config, onPage?: Progress, userPages?: UserPages, from: TableSource = {}): Promise<TableState> {
  // Loaded here, not at the top: commands that never talk to DynamoDB do not load the SDK.
  const { makeClient, scanTables } = await import("./source/dynamo.ts");
  const t0 = performance.now();
  const client = from.client ?? (await makeClient(config));
  try {
    // Items are decoded as their page arrives: the raw pages never pile up in memory.
    const decodeUser = decodeUserItem(config.user_table_name);
    const decodeKnown = decodeKnownUserItem(config.user_table_name);
    let known = false;
    const snap = await scanTables(
      client,
      config,
      onPage,
      {
        user: userPages
          ? (item) => {
              const d = known ? decodeKnown(item) : decodeUser(item);
              userPages.item(d);
              return d;
            }
          : decodeUser,
        group: decodeGroupItem(config.group_table_name),
      },
      userPages && {
        begin: (digest) => {
          known = userPages.begin(digest);
        },
        end: () => {
          known = false;
          userPages.end();
        },
      },
      { onCapacity: from.onCapacity, keep: from.keep, source: from.source },
    );
    const scanMs = performance.now() - t0;
    return {
      users: finishDecoding(config.user_table_name, snap.users, "UID", (u: User) => u.uid),
      groups: finishDecoding(config.group_table_name, snap.groups, "GID", (g: Group) => g.gid),
      userNames: namesOf(snap.users),
      groupNames: namesOf(snap.groups),
      scanMs,
      decodeMs: performance.now() - t0 - scanMs,
    };
  } finally {
    if (!from.client) client.destroy();
  }
}

function namesOf(decoded: readonly Decoding<User | Group>[]): string[] {
  const names: string[] = [];
  for (const d of decoded) if (d.rawName !== undefined) names.push(d.rawName);
  return names;
}

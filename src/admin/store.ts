// The admin commands' reads and writes. Every write is conditional: an add only when the name is
// free, an ID only after its reservation item was written (itself only when absent), an update only
// while the fields it changes still hold what was read.
import type { Config } from "../config.ts";
import { DdumError } from "../errors.ts";
import { RESERVATION_RE, reservationName, VERSION_KEY } from "../model.ts";
import { awsFailure, type DynamoClient, type RawItem, scanTable } from "../source/dynamo.ts";
import { diffUpdate, numAttr, strAttr } from "./records.ts";

export type IdKind = "uid" | "gid";

export interface IdUse {
  /** ID → names of the records that hold it (a UID, or a GID of a group record). */
  held: Map<number, string[]>;
  /** ID → owner named by its reservation item. */
  reserved: Map<number, string>;
  /** IDs whose reservation is marked retired: used once, never given out again. */
  retired: Set<number>;
}

export interface Ids {
  uid: IdUse;
  gid: IdUse;
  /** GID → users whose primary GID it is (their user private group, when no group record has it). */
  primary: Map<number, string[]>;
  userNames: Set<string>;
  groupNames: Set<string>;
}

/** The names in a list other than owner's own. */
export const othersThan = (names: string[] | undefined, owner: string): string[] => (names ?? []).filter((n) => n !== owner);

/** Whether a UID is someone else's: held by another user record, or reserved for another name. */
export function uidTaken(ids: Ids, owner: string, id: number): boolean {
  return othersThan(ids.uid.held.get(id), owner).length > 0 || (ids.uid.reserved.has(id) && ids.uid.reserved.get(id) !== owner);
}

/** Whether a GID is someone else's: another group record, another user's primary GID, or a reservation. */
export function gidTaken(ids: Ids, owner: string, id: number): boolean {
  return (
    othersThan(ids.gid.held.get(id), owner).length > 0 ||
    othersThan(ids.primary.get(id), owner).length > 0 ||
    (ids.gid.reserved.has(id) && ids.gid.reserved.get(id) !== owner)
  );
}

/**
 * Tries of a conditional update before giving up. Each round of racing writers lets one through,
 * so N writers at once need up to N tries: ten covers a team's scripts hitting one record.
 */
const UPDATE_ATTEMPTS = 10;

const conditionFailed = (e: unknown) => (e as Error).name === "ConditionalCheckFailedException";

function fail(what: string, e: unknown, client: DynamoClient, table: string): never {
  throw awsFailure(what, e, client.where, table);
}

export class Store {
  /**
   * Writes that succeeded, to either table (records and ID reservations alike): a command that
   * made any raises the tables' version once when it ends (see Admin.raiseVersion).
   */
  writes = 0;

  constructor(
    readonly client: DynamoClient,
    readonly config: Config,
  ) {}

  tableFor(kind: IdKind | "user" | "group"): string {
    return kind === "uid" || kind === "user" ? this.config.user_table_name : this.config.group_table_name;
  }

  async get(table: string, name: string): Promise<RawItem | undefined> {
    try {
      const r = await this.client.call("GetItem", { TableName: table, Key: { Name: { S: name } }, ConsistentRead: true });
      return r.Item;
    } catch (e) {
      fail(`reading record ${name} from table ${table}`, e, this.client, table);
    }
  }

  /** Every item of a table (all of it, or an error), with consistent reads. */
  scan(table: string, projection?: string[]): Promise<RawItem[]> {
    return scanTable(this.client, table, { segments: 1, consistentRead: true, ...(projection ? { projection } : {}) });
  }

  /** Which IDs and names are taken, in both tables, with consistent reads. */
  async ids(): Promise<Ids> {
    const [users, groups] = await Promise.all([
      this.scan(this.config.user_table_name, ["Name", "UID", "GID", "Owner", "Retired"]),
      this.scan(this.config.group_table_name, ["Name", "GID", "Owner", "Retired"]),
    ]);
    const ids: Ids = {
      uid: { held: new Map(), reserved: new Map(), retired: new Set() },
      gid: { held: new Map(), reserved: new Map(), retired: new Set() },
      primary: new Map(),
      userNames: new Set(),
      groupNames: new Set(),
    };
    const add = (m: Map<number, string[]>, id: number | undefined, name: string) => {
      if (id === undefined || !Number.isInteger(id)) return;
      const l = m.get(id);
      if (l) l.push(name);
      else m.set(id, [name]);
    };
    for (const [items, kind, names] of [
      [users, "uid", ids.userNames],
      [groups, "gid", ids.groupNames],
    ] as const) {
      for (const item of items) {
        const name = strAttr(item, "Name") ?? "";
        // The tables' version (see source/version.ts) is no record and holds no ID.
        if (name === VERSION_KEY) continue;
        const r = RESERVATION_RE.exec(name);
        if (r) {
          ids[r[1] as IdKind].reserved.set(Number(r[2]), strAttr(item, "Owner") ?? "");
          if (item.Retired !== undefined) ids[r[1] as IdKind].retired.add(Number(r[2]));
          continue;
        }
        names.add(name);
        if (kind === "uid") {
          add(ids.uid.held, numAttr(item, "UID"), name);
          add(ids.primary, numAttr(item, "GID"), name);
        } else add(ids.gid.held, numAttr(item, "GID"), name);
      }
    }
    return ids;
  }

  /**
   * Write the reservation of an ID for owner, only if no reservation exists. True when the ID is
   * now owner's (written now, or already owner's from an interrupted earlier run).
   */
  async reserve(kind: IdKind, id: number, owner: string): Promise<boolean> {
    const table = this.tableFor(kind);
    const Name = reservationName(kind, id);
    try {
      await this.client.call("PutItem", {
          TableName: table,
          Item: { Name: { S: Name }, Owner: { S: owner }, Reserved: { S: new Date().toISOString() } },
          ConditionExpression: "attribute_not_exists(#k) OR #o = :o",
          ExpressionAttributeNames: { "#k": "Name", "#o": "Owner" },
          ExpressionAttributeValues: { ":o": { S: owner } },
        },
      );
      this.writes++;
      return true;
    } catch (e) {
      if (conditionFailed(e)) return false;
      fail(`reserving ${kind.toUpperCase()} ${id} in table ${table}`, e, this.client, table);
    }
  }

  /**
   * Mark owner's reservation of an ID it no longer uses as retired. The reservation stays: files
   * on hosts may still carry the ID, and a new name given it would own them.
   */
  async retire(kind: IdKind, id: number, owner: string): Promise<void> {
    const table = this.tableFor(kind);
    try {
      await this.client.call("UpdateItem", {
          TableName: table,
          Key: { Name: { S: reservationName(kind, id) } },
          UpdateExpression: "SET #r = :r",
          ConditionExpression: "#o = :o",
          ExpressionAttributeNames: { "#o": "Owner", "#r": "Retired" },
          ExpressionAttributeValues: { ":o": { S: owner }, ":r": { S: new Date().toISOString() } },
        },
      );
      this.writes++;
    } catch (e) {
      if (!conditionFailed(e)) fail(`retiring ${kind.toUpperCase()} ${id} in table ${table}`, e, this.client, table);
    }
  }

  /** Drop owner's reservation of an ID that was never used (no-op if it is someone else's or gone). */
  async release(kind: IdKind, id: number, owner: string): Promise<void> {
    const table = this.tableFor(kind);
    try {
      await this.client.call("DeleteItem", {
          TableName: table,
          Key: { Name: { S: reservationName(kind, id) } },
          ConditionExpression: "#o = :o",
          ExpressionAttributeNames: { "#o": "Owner" },
          ExpressionAttributeValues: { ":o": { S: owner } },
        },
      );
      this.writes++;
    } catch (e) {
      if (!conditionFailed(e)) fail(`releasing ${kind.toUpperCase()} ${id} in table ${table}`, e, this.client, table);
    }
  }

  /** Put a new record; false (and nothing written) when a record of that name exists. */
  async putNew(table: string, item: RawItem): Promise<boolean> {
    try {
      await this.client.call("PutItem", {
          TableName: table,
          Item: item,
          ConditionExpression: "attribute_not_exists(#k)",
          ExpressionAttributeNames: { "#k": "Name" },
        },
      );
      this.writes++;
      return true;
    } catch (e) {
      if (conditionFailed(e)) return false;
      fail(`writing record ${strAttr(item, "Name")} to table ${table}`, e, this.client, table);
    }
  }

  /**
   * Read a record, transform it (the transform validates the whole result and throws to refuse),
   * and write only what changed, on the condition that those fields still hold what was read;
   * if someone changed them meanwhile, read again and retry. Returns the changed fields.
   */
  async update(
    table: string,
    name: string,
    kind: "user" | "group",
    transform: (current: RawItem) => RawItem | Promise<RawItem>,
  ): Promise<{ before: RawItem; after: RawItem; changed: string[] }> {
    for (let attempt = 1; ; attempt++) {
      const before = await this.get(table, name);
      if (!before) throw new DdumError(`no ${kind} ${JSON.stringify(name)} in table ${table}`);
      const after = await transform(structuredClone(before));
      const u = diffUpdate(before, after);
      if (!u) return { before, after, changed: [] };
      const { changed, ...expr } = u;
      try {
        await this.client.call("UpdateItem", { TableName: table, Key: { Name: { S: name } }, ...expr });
        this.writes++;
        return { before, after, changed };
      } catch (e) {
        if (!conditionFailed(e) || attempt >= UPDATE_ATTEMPTS) {
          if (conditionFailed(e)) throw new DdumError(`${kind} ${name} in table ${table} kept changing while it was updated; try again`);
          fail(`updating record ${name} in table ${table}`, e, this.client, table);
        }
        // Someone else wrote first: wait a random while (growing) so that writers racing for one
        // record spread out instead of colliding again in lockstep.
        await Bun.sleep(Math.random() * Math.min(1000, 25 * 2 ** attempt));
      }
    }
  }
}

// The only module that talks to DynamoDB. Everything it returns is raw AttributeValue maps:
// validation needs to see the stored types (a number stored as a string is an error).
import {
  type AttributeValue,
  CreateTableCommand,
  DynamoDBClient,
  type DynamoDBClientConfig,
  ScanCommand,
  type ScanCommandOutput,
  waitUntilTableExists,
} from "@aws-sdk/client-dynamodb";
import type { Config } from "../config.ts";
import { DdumError } from "../errors.ts";

export type RawItem = Record<string, AttributeValue>;

/** EC2 instance metadata (IMDSv2), asked only when nothing else names a region. */
async function imdsRegion(env: NodeJS.ProcessEnv): Promise<string | undefined> {
  if (env.AWS_EC2_METADATA_DISABLED === "true") return undefined;
  const base = "http://169.254.169.254/latest";
  try {
    const token = await fetch(`${base}/api/token`, {
      method: "PUT",
      headers: { "X-aws-ec2-metadata-token-ttl-seconds": "60" },
      signal: AbortSignal.timeout(1000),
    });
    if (!token.ok) return undefined;
    const r = await fetch(`${base}/meta-data/placement/region`, {
      headers: { "X-aws-ec2-metadata-token": await token.text() },
      signal: AbortSignal.timeout(1000),
    });
    const region = r.ok ? (await r.text()).trim() : "";
    return /^[a-z0-9-]{1,32}$/.test(region) ? region : undefined;
  } catch {
    return undefined;
  }
}

/** Region: the config, then AWS_REGION, AWS_DEFAULT_REGION, EC2 instance metadata, then us-east-1. */
export async function resolveRegion(config: Config, env = process.env): Promise<string> {
  return config.aws_region || env.AWS_REGION || env.AWS_DEFAULT_REGION || (await imdsRegion(env)) || "us-east-1";
}

/**
 * Credentials: static keys when given; else the named profile (the SDK's shared-file provider);
 * else the SDK's default chain (environment, shared files, EC2 instance metadata).
 */
export async function makeClient(config: Config): Promise<DynamoDBClient> {
  const opts: DynamoDBClientConfig = {
    region: await resolveRegion(config),
    maxAttempts: config.max_attempts,
    retryMode: "standard",
    requestHandler: { connectionTimeout: 10_000, requestTimeout: config.request_timeout * 1000 },
  };
  if (config.endpoint_url) opts.endpoint = config.endpoint_url;
  if (config.aws_access_key) {
    opts.credentials = {
      accessKeyId: config.aws_access_key,
      secretAccessKey: config.aws_secret_key,
      ...(config.aws_session_token ? { sessionToken: config.aws_session_token } : {}),
    };
  } else if (config.aws_profile) {
    opts.profile = config.aws_profile;
  }
  return new DynamoDBClient(opts);
}

export interface ScanOptions {
  segments: number;
  consistentRead: boolean;
  /** Called after every page with the number of items read so far in this table. */
  onPage?: (table: string, items: number) => void;
}

/**
 * Scan one table to the end. Any page that still fails after the SDK's retries fails the whole
 * scan. Each item goes through convert as its page arrives, so the raw page can be dropped at once.
 */
export async function scanTable<T = RawItem>(
  client: DynamoDBClient,
  table: string,
  opts: ScanOptions,
  convert: (item: RawItem) => T = (i) => i as T,
): Promise<T[]> {
  let total = 0;
  const segment = async (n: number): Promise<T[]> => {
    const items: T[] = [];
    let start: RawItem | undefined;
    do {
      let page: ScanCommandOutput;
      try {
        page = await client.send(
          new ScanCommand({
            TableName: table,
            ConsistentRead: opts.consistentRead,
            ExclusiveStartKey: start,
            ...(opts.segments > 1 ? { Segment: n, TotalSegments: opts.segments } : {}),
          }),
        );
      } catch (e) {
        const err = e as Error & { $metadata?: { attempts?: number } };
        const attempts = err.$metadata?.attempts ? ` after ${err.$metadata.attempts} attempts` : "";
        throw new DdumError(`scan of table ${table} failed${attempts}: ${err.name}: ${err.message}`);
      }
      for (const item of page.Items ?? []) items.push(convert(item));
      total += page.Items?.length ?? 0;
      opts.onPage?.(table, total);
      start = page.LastEvaluatedKey;
    } while (start);
    return items;
  };
  const parts = await Promise.all(Array.from({ length: opts.segments }, (_, n) => segment(n)));
  return parts.length === 1 ? parts[0]! : parts.flat();
}

export interface Snapshot<U = RawItem, G = RawItem> {
  users: U[];
  groups: G[];
}

/** Both tables, completely, or an error: a pass never acts on part of a table. */
export async function scanTables<U = RawItem, G = RawItem>(
  client: DynamoDBClient,
  config: Config,
  onPage?: ScanOptions["onPage"],
  convert?: { user: (i: RawItem) => U; group: (i: RawItem) => G },
): Promise<Snapshot<U, G>> {
  const opts: ScanOptions = { segments: config.scan_segments, consistentRead: config.consistent_read, onPage };
  const [users, groups] = await Promise.all([
    scanTable(client, config.user_table_name, opts, convert?.user),
    scanTable(client, config.group_table_name, opts, convert?.group),
  ]);
  return { users, groups };
}

export type Billing = "on-demand" | "provisioned";

/**
 * Create the Users and Groups tables (key: Name, a string) when they do not exist, and wait until
 * they are active. Idempotent: an existing table is left as it is and reported.
 */
export async function createTables(
  client: DynamoDBClient,
  names: string[],
  billing: Billing = "on-demand",
  waitSeconds = 300,
): Promise<{ created: string[]; existed: string[] }> {
  const created: string[] = [];
  const existed: string[] = [];
  for (const name of names) {
    try {
      await client.send(
        new CreateTableCommand({
          TableName: name,
          KeySchema: [{ AttributeName: "Name", KeyType: "HASH" }],
          AttributeDefinitions: [{ AttributeName: "Name", AttributeType: "S" }],
          ...(billing === "on-demand"
            ? { BillingMode: "PAY_PER_REQUEST" }
            : { BillingMode: "PROVISIONED", ProvisionedThroughput: { ReadCapacityUnits: 5, WriteCapacityUnits: 5 } }),
        }),
      );
      created.push(name);
    } catch (e) {
      if ((e as Error).name !== "ResourceInUseException") {
        throw new DdumError(`cannot create table ${name}: ${(e as Error).name}: ${(e as Error).message}`);
      }
      existed.push(name);
    }
  }
  for (const name of names) {
    const r = await waitUntilTableExists({ client, maxWaitTime: waitSeconds, minDelay: 1 }, { TableName: name });
    if (r.state !== "SUCCESS") throw new DdumError(`table ${name} did not become active within ${waitSeconds} s`);
  }
  return { created, existed };
}

// The only module that talks to DynamoDB. Everything it returns is raw AttributeValue maps:
// validation needs to see the stored types (a number stored as a string is an error).
import {
  type AttributeValue,
  CreateTableCommand,
  type CreateTableCommandInput,
  DescribeTableCommand,
  DynamoDBClient,
  type DynamoDBClientConfig,
  ScanCommand,
  type ScanCommandOutput,
  waitUntilTableExists,
  waitUntilTableNotExists,
} from "@aws-sdk/client-dynamodb";
import { FetchHttpHandler } from "@smithy/fetch-http-handler";
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
    // Bun's own fetch (native HTTP, pooled connections) instead of the node:http emulation: a
    // third of the client's CPU in a scan at 100,000 users.
    // The handler's own requestTimeout only stops waiting: the fetch would go on, holding its
    // socket and keeping the process alive for minutes after the pass has failed. The signal
    // ends the request itself at the same moment.
    requestHandler: new FetchHttpHandler({
      requestTimeout: config.request_timeout * 1000,
      keepAlive: true,
      requestInit: () => ({ signal: AbortSignal.timeout(config.request_timeout * 1000) }),
    }),
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
  const client = new DynamoDBClient(opts);
  parseScanPagesDirectly(client);
  return client;
}

async function bodyText(body: AsyncIterable<Uint8Array> | ReadableStream<Uint8Array>): Promise<string> {
  if (body instanceof ReadableStream) return new Response(body).text();
  const chunks: Buffer[] = [];
  for await (const chunk of body) chunks.push(Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength));
  return Buffer.concat(chunks).toString("utf8");
}

interface RawResponse {
  statusCode: number;
  headers: Record<string, string | undefined>;
  body: AsyncIterable<Uint8Array> | ReadableStream<Uint8Array>;
}
type Deserialize = (operation: { name?: string }, context: unknown, response: RawResponse) => Promise<unknown>;

/**
 * On a Scan page parsed here: a function giving the SHA-256 of the page's text (base64), which
 * says that two pages hold exactly the same items (see pagememo.ts); computed only when asked, as
 * only the Users pages of a pass need it. Pages parsed by the SDK have none.
 */
export const PAGE_DIGEST = Symbol.for("ddum.pageDigest");

/**
 * A successful Scan page is parsed with one JSON.parse of its body, into the same AttributeValue
 * maps (the tables hold no binary attributes, the one type whose JSON form the SDK would change),
 * instead of the SDK's schema-driven deserializer, which at 100,000 users costs three times the
 * CPU of the parse and most of the memory. The SDK still builds, signs, sends and retries every
 * request, and an error response still goes through its own deserializer, so errors, throttling
 * and retries behave exactly as before. `Symbol.for("ddum.scanParser")` on the client says it is on.
 */
export function parseScanPagesDirectly(client: DynamoDBClient): boolean {
  const protocol = (client.config as unknown as { protocol?: { deserializeResponse?: Deserialize } }).protocol;
  if (typeof protocol?.deserializeResponse !== "function") return false; // another SDK layout: its own path
  const sdk: Deserialize = protocol.deserializeResponse.bind(protocol);
  protocol.deserializeResponse = async (operation, context, response) => {
    if (operation?.name !== "Scan" || response?.statusCode !== 200) return sdk(operation, context, response);
    const text = await bodyText(response.body);
    const output = JSON.parse(text) as Record<string | symbol, unknown>;
    output[PAGE_DIGEST] = () => new Bun.CryptoHasher("sha256").update(text).digest("base64");
    output.$metadata = {
      httpStatusCode: 200,
      requestId: response.headers["x-amzn-requestid"] ?? response.headers["x-amzn-RequestId"],
    };
    return output;
  };
  (client as unknown as Record<symbol, boolean>)[Symbol.for("ddum.scanParser")] = true;
  return true;
}

/** Told of each page of a table, around the conversion of its items (nothing else runs between). */
export interface PageHooks {
  /** A page begins; digest: its PAGE_DIGEST, if it has one. */
  begin(digest: string | undefined): void;
  /** Its items have all been converted. */
  end(): void;
}

export interface ScanOptions {
  segments: number;
  consistentRead: boolean;
  /** Called after every page with the number of items read so far in this table. */
  onPage?: (table: string, items: number) => void;
  pages?: PageHooks;
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
      opts.pages?.begin((page as { [PAGE_DIGEST]?: () => string })[PAGE_DIGEST]?.());
      for (const item of page.Items ?? []) items.push(convert(item));
      opts.pages?.end();
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
  userPages?: PageHooks,
): Promise<Snapshot<U, G>> {
  const opts: ScanOptions = { segments: config.scan_segments, consistentRead: config.consistent_read, onPage };
  const [users, groups] = await Promise.all([
    scanTable(client, config.user_table_name, { ...opts, pages: userPages }, convert?.user),
    scanTable(client, config.group_table_name, opts, convert?.group),
  ]);
  return { users, groups };
}

export type Billing = "on-demand" | "provisioned";

/**
 * Create the Users and Groups tables (key: Name, a string) when they do not exist, and wait until
 * they are active. Idempotent: an existing table is left as it is and reported. A table that is
 * being deleted is not an existing one: DynamoDB answers ResourceInUseException to a create while
 * a delete is still under way, and waiting for such a table to become active would wait for
 * nothing. It is waited out (within the same time budget) and then created.
 */
export async function createTables(
  client: DynamoDBClient,
  names: string[],
  billing: Billing = "on-demand",
  waitSeconds = 300,
): Promise<{ created: string[]; existed: string[] }> {
  const created: string[] = [];
  const existed: string[] = [];
  const deadline = Date.now() + waitSeconds * 1000;
  const spec: Omit<CreateTableCommandInput, "TableName"> = {
    KeySchema: [{ AttributeName: "Name", KeyType: "HASH" }],
    AttributeDefinitions: [{ AttributeName: "Name", AttributeType: "S" }],
    ...(billing === "on-demand"
      ? { BillingMode: "PAY_PER_REQUEST" }
      : { BillingMode: "PROVISIONED", ProvisionedThroughput: { ReadCapacityUnits: 5, WriteCapacityUnits: 5 } }),
  };
  for (const name of names) {
    for (;;) {
      try {
        await client.send(new CreateTableCommand({ ...spec, TableName: name }));
        created.push(name);
        break;
      } catch (e) {
        if ((e as Error).name !== "ResourceInUseException") {
          throw new DdumError(`cannot create table ${name}: ${(e as Error).name}: ${(e as Error).message}`);
        }
      }
      if ((await tableStatus(client, name)) !== "DELETING") {
        existed.push(name);
        break;
      }
      const left = Math.ceil((deadline - Date.now()) / 1000);
      const gone = left > 0 ? await waitUntilTableNotExists({ client, maxWaitTime: left, minDelay: 1, maxDelay: 5 }, { TableName: name }) : null;
      if (gone?.state !== "SUCCESS") {
        throw new DdumError(`table ${name} is being deleted and was still there after ${waitSeconds} s; create it again once it is gone`);
      }
    }
  }
  for (const name of names) {
    const left = Math.max(1, Math.ceil((deadline - Date.now()) / 1000));
    const r = await waitUntilTableExists({ client, maxWaitTime: left, minDelay: 1, maxDelay: 5 }, { TableName: name });
    if (r.state !== "SUCCESS") throw new DdumError(`table ${name} did not become active within ${waitSeconds} s`);
  }
  return { created, existed };
}

/** A table's status (ACTIVE, CREATING, UPDATING, DELETING, ...), or null when there is none. */
async function tableStatus(client: DynamoDBClient, name: string): Promise<string | null> {
  try {
    const r = await client.send(new DescribeTableCommand({ TableName: name }));
    return r.Table?.TableStatus ?? null;
  } catch (e) {
    if ((e as Error).name === "ResourceNotFoundException") return null;
    throw new DdumError(`cannot describe table ${name}: ${(e as Error).name}: ${(e as Error).message}`);
  }
}

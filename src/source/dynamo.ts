// DynamoDB for the rest of ddum: the client (wire.ts underneath), the scan, table creation, and
// what an error means in an operator's terms. Everything it returns is raw AttributeValue maps:
// validation needs to see the stored types (a number stored as a string is an error). Only this
// module, source/version.ts and admin/store.ts make calls (the IAM policy test checks it).
import type { ScanCommandOutput } from "@aws-sdk/client-dynamodb";
import type { Config } from "../config.ts";
import { DdumError } from "../errors.ts";
import { notice } from "../notices.ts";
import { credentialProvider, metadataDisabled } from "./credentials.ts";
import { type AttributeValue, DynamoWire } from "./wire.ts";

export type RawItem = Record<string, AttributeValue>;

/** EC2 instance metadata (IMDSv2), asked only when nothing else names a region. */
async function imdsRegion(env: NodeJS.ProcessEnv): Promise<string | undefined> {
  if (metadataDisabled(env)) return undefined;
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
  return (await regionAndSource(config, env)).region;
}

/** The region and where it came from, for messages that say where a command looked. */
export async function regionAndSource(config: Config, env = process.env): Promise<{ region: string; source: string }> {
  if (config.aws_region) return { region: config.aws_region, source: "aws_region in the config" };
  if (env.AWS_REGION) return { region: env.AWS_REGION, source: "AWS_REGION" };
  if (env.AWS_DEFAULT_REGION) return { region: env.AWS_DEFAULT_REGION, source: "AWS_DEFAULT_REGION" };
  const imds = await imdsRegion(env);
  if (imds) return { region: imds, source: "EC2 instance metadata" };
  return { region: "us-east-1", source: "the default: none of aws_region, AWS_REGION, AWS_DEFAULT_REGION or instance metadata named one" };
}

/** The DNS suffix of each AWS partition, by region prefix (the SDK's partitions), and its dual-stack one. */
const PARTITIONS: readonly { prefix: string; suffix: string; dualStack: string }[] = [
  { prefix: "cn-", suffix: "amazonaws.com.cn", dualStack: "api.amazonwebservices.com.cn" },
  { prefix: "us-isob-", suffix: "sc2s.sgov.gov", dualStack: "api.aws.scloud" },
  { prefix: "us-isof-", suffix: "csp.hci.ic.gov", dualStack: "api.aws.hci.ic.gov" },
  { prefix: "us-iso-", suffix: "c2s.ic.gov", dualStack: "api.aws.ic.gov" },
  { prefix: "eu-isoe-", suffix: "cloud.adc-e.uk", dualStack: "api.cloud-aws.adc-e.uk" },
  { prefix: "eusc-", suffix: "amazonaws.eu", dualStack: "api.amazonwebservices.eu" },
  { prefix: "", suffix: "amazonaws.com", dualStack: "api.aws" },
];

/**
 * Where requests go when the config names no endpoint_url, as the AWS SDK decides it: the
 * AWS_ENDPOINT_URL_DYNAMODB or AWS_ENDPOINT_URL variable, else the region's endpoint in its
 * partition; AWS_USE_FIPS_ENDPOINT=true for the FIPS one (GovCloud's endpoints are FIPS already),
 * AWS_USE_DUALSTACK_ENDPOINT=true for the dual-stack one; the region
 * "local" is DynamoDB Local's http://localhost:8000.
 */
export function endpointFor(config: Pick<Config, "endpoint_url">, region: string, env: NodeJS.ProcessEnv = process.env): string {
  if (config.endpoint_url) return config.endpoint_url;
  const given = env.AWS_ENDPOINT_URL_DYNAMODB || env.AWS_ENDPOINT_URL;
  if (given && env.AWS_IGNORE_CONFIGURED_ENDPOINT_URLS !== "true") return given;
  if (region === "local") return "http://localhost:8000";
  const p = PARTITIONS.find((x) => region.startsWith(x.prefix))!;
  const dual = env.AWS_USE_DUALSTACK_ENDPOINT === "true";
  // GovCloud's IPv4 endpoints are FIPS endpoints already; its dual-stack ones have a FIPS twin.
  const fips = env.AWS_USE_FIPS_ENDPOINT === "true" && (dual || !region.startsWith("us-gov-")) ? "-fips" : "";
  const suffix = dual ? p.dualStack : p.suffix;
  return `https://dynamodb${fips}.${region}.${suffix}`;
}

/** Where a client sends its requests, for error messages. */
export interface Where {
  region: string;
  regionSource: string;
  endpoint: string;
  /** The credential sources in the order they are tried. */
  credentials: string;
  requestTimeoutS: number;
}

/** A client, and where it sends its requests (for messages). */
export class DynamoClient extends DynamoWire {
  readonly where: Where;
  constructor(wire: ConstructorParameters<typeof DynamoWire>[0], where: Where) {
    super(wire);
    this.where = where;
  }
}

function credentialSources(config: Config): string {
  if (config.aws_access_key) return "aws_access_key and aws_secret_key in the config";
  const profile = config.aws_profile || process.env.AWS_PROFILE || "default";
  const files = `the profile "${profile}" in ~/.aws/credentials and ~/.aws/config (of the user running ddum)`;
  if (config.aws_profile) return files;
  return [
    "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY in the environment",
    files,
    "a web identity token (AWS_WEB_IDENTITY_TOKEN_FILE)",
    "ECS container credentials",
    "EC2 instance metadata (an instance role)",
  ].join(", then ");
}

/**
 * What went wrong with a call to DynamoDB, in an operator's terms: what failed (what), after how
 * many attempts, the cause, where (endpoint, region), and a one-line hint.
 */
export function awsFailure(what: string, e: unknown, where: Where | undefined, table?: string): DdumError {
  if (e instanceof DdumError) return e;
  const err = e as Error & { $metadata?: { attempts?: number; httpStatusCode?: number }; code?: string; cause?: { code?: string } };
  const n = err.$metadata?.attempts;
  const attempts = n ? ` after ${n} ${n === 1 ? "attempt" : "attempts"}` : "";
  const text = `${err.name ?? ""} ${err.message ?? ""} ${err.code ?? ""} ${err.cause?.code ?? ""}`;
  const status = err.$metadata?.httpStatusCode;
  let cause = `${err.name}: ${err.message}`;
  let hint = "";
  if (err.name === "ResourceNotFoundException") {
    cause = `${table ? `table ${table}` : "the table"} does not exist there`;
    hint = 'check user_table_name, group_table_name and the region, or create the tables with "ddum tables create"';
  } else if (err.name === "CredentialsProviderError" || /Could not load credentials/.test(text)) {
    cause = "no AWS credentials found";
    hint = `tried, in order: ${where?.credentials ?? "the SDK's default sources"}`;
  } else if (/UnrecognizedClient|InvalidSignature|AccessDenied|ExpiredToken|InvalidClientTokenId|security token/.test(text)) {
    cause = `the credentials were refused (${err.name}: ${err.message})`;
    hint = `check the credentials (${where?.credentials ?? "the SDK's default sources"}) and their IAM policy (see iam-policy.json)`;
  } else if (/TimeoutError|AbortError|RequestTimeout|timed? ?out/i.test(text)) {
    cause = `no answer within request_timeout (${where?.requestTimeoutS ?? "?"} s)`;
    hint = "the endpoint took the connection but did not answer: check endpoint_url, a proxy (HTTPS_PROXY) and the network";
  } else if (/ECONNREFUSED|ConnectionRefused/.test(text)) {
    cause = "connection refused";
    hint = "nothing listens at the endpoint: check endpoint_url and aws_region";
  } else if (/ENOTFOUND|EAI_AGAIN|getaddrinfo|DNS lookup|Unable to connect/.test(text)) {
    cause = `cannot reach the endpoint (${err.message})`;
    hint = "check the host name in endpoint_url or the region, DNS, and the network";
  } else if (err.name === "UnknownError" || err.name === "Unknown" || (status !== undefined && status !== 400 && !/Exception$/.test(err.name ?? ""))) {
    cause = `the endpoint answered HTTP ${status ?? "?"} without a DynamoDB error`;
    hint = "endpoint_url does not point at DynamoDB";
  }
  const at = where ? ` (endpoint ${where.endpoint}, region ${where.region})` : "";
  return new DdumError(`${what} failed${attempts}${at}: ${cause}${hint ? `; hint: ${hint}` : ""}`);
}

/**
 * A client for the config: its region, endpoint, credentials (see credentials.ts), attempts and
 * request bound. The first retry of each call is reported at once (operation, table, endpoint,
 * why), so that a slow or failing endpoint shows on stderr before every attempt has failed.
 */
export async function makeClient(config: Config): Promise<DynamoClient> {
  const { region, source } = await regionAndSource(config);
  const endpoint = endpointFor(config, region);
  const where: Where = {
    region,
    regionSource: source,
    endpoint,
    credentials: credentialSources(config),
    requestTimeoutS: config.request_timeout,
  };
  return new DynamoClient(
    {
      endpoint,
      region,
      credentials: credentialProvider(config),
      maxAttempts: config.max_attempts,
      requestTimeoutMs: config.request_timeout * 1000,
      onRetry: (op, table, why) => notice(`${op}${table ? ` of table ${table}` : ""} at ${endpoint}: trying again (${why})`),
    },
    where,
  );
}

/**
 * A client for an endpoint with fixed keys, bounded and retried like a pass's: for the demo, the
 * benchmark and the tests, which talk to a local server.
 */
export function clientAt(endpoint: string, opts: { accessKeyId?: string; secretAccessKey?: string; region?: string; maxAttempts?: number; requestTimeoutMs?: number } = {}): DynamoClient {
  const region = opts.region ?? "us-east-1";
  const keys = { accessKeyId: opts.accessKeyId ?? "local", secretAccessKey: opts.secretAccessKey ?? "local" };
  const requestTimeoutMs = opts.requestTimeoutMs ?? 30_000;
  return new DynamoClient(
    { endpoint, region, credentials: async () => keys, maxAttempts: opts.maxAttempts ?? 3, requestTimeoutMs },
    { region, regionSource: "given", endpoint, credentials: "given keys", requestTimeoutS: requestTimeoutMs / 1000 },
  );
}

/**
 * On a Scan page: a function giving the SHA-256 of the page's text (base64), which says that two
 * pages hold exactly the same items (see pagememo.ts); computed only when asked, as only the Users
 * pages of a pass need it.
 */
export const PAGE_DIGEST = Symbol.for("ddum.pageDigest");

/** On a Scan page: its text, as DynamoDB sent it (what the scan snapshot keeps). */
export const PAGE_TEXT = Symbol.for("ddum.pageText");

/**
 * One Scan page, parsed with one JSON.parse of its text into AttributeValue maps (the tables hold
 * no binary attributes, the one type whose JSON form the SDK would have changed).
 */
async function scanPage(client: DynamoClient, input: Parameters<DynamoClient["call"]>[1]): Promise<ScanCommandOutput> {
  const { text, requestId } = await client.callText("Scan", input);
  const output = JSON.parse(text) as Record<string | symbol, unknown>;
  output[PAGE_DIGEST] = () => new Bun.CryptoHasher("sha256").update(text).digest("base64");
  output[PAGE_TEXT] = text;
  output.$metadata = { httpStatusCode: 200, requestId };
  return output as unknown as ScanCommandOutput;
}

/** Told of each page of a table, around the conversion of its items (nothing else runs between). */
export interface PageHooks {
  /** A page begins; digest: its PAGE_DIGEST, if it has one. */
  begin(digest: string | undefined): void;
  /** Its items have all been converted. */
  end(): void;
}

/** A page as a scan received it: its text, for the scan snapshot (see snapshot.ts). */
export type PageKeeper = (table: string, segment: number, text: string) => void;

/** A page's text: as DynamoDB sent it when this module parsed it, else its items as JSON. */
export function pageText(page: ScanCommandOutput): string {
  const text = (page as { [PAGE_TEXT]?: string })[PAGE_TEXT];
  return text ?? JSON.stringify({ Items: page.Items ?? [] });
}

/** A page from its text (and the same as UTF-8 bytes, when at hand), as scanPage makes it from an answer. */
export function pageFromText(text: string, bytes?: Uint8Array): ScanCommandOutput {
  const output = JSON.parse(text) as Record<string | symbol, unknown>;
  output[PAGE_DIGEST] = () => new Bun.CryptoHasher("sha256").update(bytes ?? text).digest("base64");
  output.$metadata = {};
  return output as unknown as ScanCommandOutput;
}

/** Where a scan's pages come from: DynamoDB, or the pages a snapshot kept, per segment in order. */
export type PageSource = (table: string, segments: number) => { segments: number; pages(segment: number): AsyncIterable<ScanCommandOutput> };

export interface ScanOptions {
  segments: number;
  consistentRead: boolean;
  /** Called after every page with the number of items read so far in this table. */
  onPage?: (table: string, items: number) => void;
  pages?: PageHooks;
  /** Only these attributes (names, as in the table). */
  projection?: readonly string[];
  /** Told the read units each page consumed, as DynamoDB reports them (ReturnConsumedCapacity TOTAL). */
  onCapacity?: (units: number) => void;
  /** Told each page's text (for the scan snapshot). */
  keep?: PageKeeper;
  /** Pages from elsewhere than DynamoDB (a snapshot's): no request is made. */
  source?: PageSource;
}

/**
 * Scan one table to the end: the one scan loop (a pass's and the admin commands'). Any page that still fails after the SDK's retries fails the whole
 * scan. Each item goes through convert as its page arrives, so the raw page can be dropped at once.
 */
export async function scanTable<T = RawItem>(
  client: DynamoClient,
  table: string,
  opts: ScanOptions,
  convert: (item: RawItem) => T = (i) => i as T,
): Promise<T[]> {
  let total = 0;
  const names = opts.projection ? Object.fromEntries(opts.projection.map((p, i) => [`#p${i}`, p])) : undefined;
  /** Each page of one segment from DynamoDB, until the last. */
  async function* fromDynamo(n: number): AsyncIterable<ScanCommandOutput> {
    let start: RawItem | undefined;
    do {
      let page: ScanCommandOutput;
      try {
        page = await scanPage(client, {
          TableName: table,
          ConsistentRead: opts.consistentRead,
          ...(start ? { ExclusiveStartKey: start } : {}),
          ReturnConsumedCapacity: "TOTAL",
          ...(opts.segments > 1 ? { Segment: n, TotalSegments: opts.segments } : {}),
          ...(names ? { ProjectionExpression: Object.keys(names).join(", "), ExpressionAttributeNames: names } : {}),
        });
      } catch (e) {
        throw awsFailure(`scan of table ${table}`, e, client.where, table);
      }
      opts.onCapacity?.(page.ConsumedCapacity?.CapacityUnits ?? 0);
      yield page;
      start = page.LastEvaluatedKey;
    } while (start);
  }
  const from = opts.source?.(table, opts.segments) ?? { segments: opts.segments, pages: fromDynamo };
  const segment = async (n: number): Promise<T[]> => {
    const items: T[] = [];
    for await (const page of from.pages(n)) {
      opts.keep?.(table, n, pageText(page));
      opts.pages?.begin((page as { [PAGE_DIGEST]?: () => string })[PAGE_DIGEST]?.());
      for (const item of page.Items ?? []) items.push(convert(item));
      opts.pages?.end();
      total += page.Items?.length ?? 0;
      opts.onPage?.(table, total);
    }
    return items;
  };
  const parts = await Promise.all(Array.from({ length: from.segments }, (_, n) => segment(n)));
  return parts.length === 1 ? parts[0]! : parts.flat();
}

export interface Snapshot<U = RawItem, G = RawItem> {
  users: U[];
  groups: G[];
}

/** Both tables, completely, or an error: a pass never acts on part of a table. */
export async function scanTables<U = RawItem, G = RawItem>(
  client: DynamoClient,
  config: Config,
  onPage?: ScanOptions["onPage"],
  convert?: { user: (i: RawItem) => U; group: (i: RawItem) => G },
  userPages?: PageHooks,
  more: Pick<ScanOptions, "onCapacity" | "keep" | "source"> = {},
): Promise<Snapshot<U, G>> {
  const opts: ScanOptions = { segments: config.scan_segments, consistentRead: config.consistent_read, onPage, ...more };
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
  client: DynamoClient,
  names: string[],
  billing: Billing = "on-demand",
  waitSeconds = 300,
): Promise<{ created: string[]; existed: string[]; arns: Record<string, string> }> {
  const arns: Record<string, string> = {};
  const created: string[] = [];
  const existed: string[] = [];
  const deadline = Date.now() + waitSeconds * 1000;
  const spec = {
    KeySchema: [{ AttributeName: "Name", KeyType: "HASH" as const }],
    AttributeDefinitions: [{ AttributeName: "Name", AttributeType: "S" as const }],
    ...(billing === "on-demand"
      ? { BillingMode: "PAY_PER_REQUEST" as const }
      : { BillingMode: "PROVISIONED" as const, ProvisionedThroughput: { ReadCapacityUnits: 5, WriteCapacityUnits: 5 } }),
  };
  for (const name of names) {
    let refusals = 0;
    for (;;) {
      try {
        await client.call("CreateTable", { ...spec, TableName: name });
        created.push(name);
        break;
      } catch (e) {
        if ((e as Error).name !== "ResourceInUseException") {
          throw new DdumError(`cannot create table ${name}: ${(e as Error).name}: ${(e as Error).message}`);
        }
      }
      const status = await tableStatus(client, name);
      // Refused as in use, and gone by now: it was being deleted, and the deletion has ended. Create it.
      if (status === null) {
        if (Date.now() > deadline) throw new DdumError(`cannot create table ${name}: it is refused as in use, yet it does not exist (after ${waitSeconds} s)`);
        // Not at once: the service's control plane throttles a client that asks in a tight loop.
        await Bun.sleep(Math.min(1000 * 2 ** Math.min(refusals++, 3), Math.max(0, deadline - Date.now())));
        continue;
      }
      if (status !== "DELETING") {
        existed.push(name);
        break;
      }
      if (!(await waitFor(client, name, deadline, (status) => status === null))) {
        throw new DdumError(`table ${name} is being deleted and was still there after ${waitSeconds} s; create it again once it is gone`);
      }
    }
  }
  for (const name of names) {
    let arn: string | undefined;
    const active = await waitFor(client, name, Math.max(deadline, Date.now() + 1000), (status, table) => {
      arn = table?.TableArn;
      return status === "ACTIVE";
    });
    if (!active) throw new DdumError(`table ${name} did not become active within ${waitSeconds} s`);
    if (arn) arns[name] = arn;
  }
  return { created, existed, arns };
}

/**
 * Ask for a table's status until done(status) says so (true) or the deadline passes (false): every
 * second at first, then less often, up to every five.
 */
async function waitFor(
  client: DynamoClient,
  name: string,
  deadline: number,
  done: (status: string | null, table: { TableArn?: string } | undefined) => boolean,
): Promise<boolean> {
  for (let wait = 1000; ; wait = Math.min(5000, wait * 1.5)) {
    const { status, table } = await describe(client, name);
    if (done(status, table)) return true;
    if (Date.now() >= deadline) return false;
    await Bun.sleep(Math.min(wait, Math.max(0, deadline - Date.now())));
  }
}

/** A table's status (ACTIVE, CREATING, UPDATING, DELETING, ...), or null when there is none. */
async function tableStatus(client: DynamoClient, name: string): Promise<string | null> {
  return (await describe(client, name)).status;
}

async function describe(client: DynamoClient, name: string): Promise<{ status: string | null; table?: { TableArn?: string } }> {
  try {
    const r = await client.call("DescribeTable", { TableName: name });
    return { status: r.Table?.TableStatus ?? null, table: r.Table };
  } catch (e) {
    if ((e as Error).name === "ResourceNotFoundException") return { status: null };
    throw new DdumError(`cannot describe table ${name}: ${(e as Error).name}: ${(e as Error).message}`);
  }
}

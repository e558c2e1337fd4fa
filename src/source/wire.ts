// DynamoDB's JSON protocol, spoken directly: each call is one signed POST (SigV4), retried as the
// SDK's "standard" mode retries (throttling, 5xx, a dropped or timed-out connection; exponential
// back-off with full jitter; a clock too far from the service's corrected from its Date header),
// each attempt bounded by request_timeout. ddum makes eight kinds of
// call with plain JSON in and out; the SDK's client (its schemas, middleware and node:http layer)
// cost ~24 MB resident and a third of a scan's time at 10,000 users for that, on every host every
// pass. Errors carry what the SDK's carried (name, message, $metadata.attempts, httpStatusCode),
// so awsFailure reads both alike.
import type {
  AttributeValue,
  CreateTableCommandInput,
  CreateTableCommandOutput,
  DeleteItemCommandInput,
  DeleteItemCommandOutput,
  DescribeTableCommandInput,
  DescribeTableCommandOutput,
  GetItemCommandInput,
  GetItemCommandOutput,
  PutItemCommandInput,
  PutItemCommandOutput,
  ScanCommandInput,
  ScanCommandOutput,
  UpdateItemCommandInput,
  UpdateItemCommandOutput,
} from "@aws-sdk/client-dynamodb";
import type { CredentialProvider, Credentials } from "./credentials.ts";
import { signRequest } from "./sigv4.ts";

export type { AttributeValue };

/** The calls ddum makes, with their input and output shapes (the SDK's types, plain JSON). */
export interface Operations {
  Scan: [ScanCommandInput, ScanCommandOutput];
  GetItem: [GetItemCommandInput, GetItemCommandOutput];
  PutItem: [PutItemCommandInput, PutItemCommandOutput];
  UpdateItem: [UpdateItemCommandInput, UpdateItemCommandOutput];
  DeleteItem: [DeleteItemCommandInput, DeleteItemCommandOutput];
  CreateTable: [CreateTableCommandInput, CreateTableCommandOutput];
  DescribeTable: [DescribeTableCommandInput, DescribeTableCommandOutput];
}
export type Operation = keyof Operations;

/** An error as DynamoDB (or the way to it) gave it: name is DynamoDB's error type. */
export class AwsError extends Error {
  $metadata: { httpStatusCode?: number; requestId?: string; attempts?: number; totalRetryDelay?: number };
  code?: string;
  constructor(name: string, message: string, status?: number, requestId?: string, cause?: unknown) {
    super(message, cause === undefined ? undefined : { cause });
    this.name = name;
    this.$metadata = { httpStatusCode: status, requestId };
  }
}

export interface WireOptions {
  endpoint: string;
  region: string;
  credentials: CredentialProvider;
  /** Attempts in all, the first included (max_attempts). */
  maxAttempts: number;
  /** Each attempt's bound, connection and answer (request_timeout). */
  requestTimeoutMs: number;
  /** Told before the second attempt of a call: the operation, its table, why the first failed. */
  onRetry?: (op: Operation, table: string | undefined, why: string) => void;
}

// The error types the SDK's standard mode retries as throttling, and as transient.
const THROTTLING = new Set([
  "BandwidthLimitExceeded",
  "EC2ThrottledException",
  "LimitExceededException",
  "PriorRequestNotComplete",
  "ProvisionedThroughputExceededException",
  "RequestLimitExceeded",
  "RequestThrottled",
  "RequestThrottledException",
  "SlowDown",
  "ThrottledException",
  "Throttling",
  "ThrottlingException",
  "TooManyRequestsException",
  "TransactionInProgressException",
]);
const TRANSIENT = new Set(["TimeoutError", "RequestTimeout", "RequestTimeoutException"]);
/** Connection failures worth another attempt (the SDK's list); a TLS or header error is not one. */
const TRANSIENT_CODES = new Set(["ECONNRESET", "ECONNREFUSED", "EPIPE", "ETIMEDOUT", "EHOSTUNREACH", "ENETUNREACH", "ENOTFOUND", "EAI_AGAIN", "ConnectionRefused", "ConnectionClosed"]);
const TRANSIENT_STATUS = new Set([500, 502, 503, 504]);
// Refusals of a signature made with a clock too far from the service's: tried again once the
// clock's offset is known (from the answer's Date header), as the SDK does.
const CLOCK_SKEW = new Set(["AuthFailure", "InvalidSignatureException", "RequestExpired", "RequestInTheFuture", "RequestTimeTooSkewed", "SignatureDoesNotMatch"]);
/** How far the local clock may be from the service's before requests are signed with the service's time. */
const SKEW_MS = 5 * 60 * 1000;

function retryable(e: AwsError): boolean {
  if (THROTTLING.has(e.name) || TRANSIENT.has(e.name)) return true;
  if (e.name === "NetworkError") return TRANSIENT_CODES.has(e.code ?? "");
  // A signature the service saw as expired (a clock far off, or a request that waited too long).
  if (e.name === "InvalidSignatureException" && /Signature expired/i.test(e.message)) return true;
  const status = e.$metadata.httpStatusCode;
  return status === 429 || (status !== undefined && TRANSIENT_STATUS.has(status));
}

/** Back-off before attempt n+1: full jitter over 100 ms × 2^(n-1), at most 20 s (throttling: 500 ms base). */
function delayMs(e: AwsError, n: number): number {
  const base = THROTTLING.has(e.name) || e.$metadata.httpStatusCode === 429 ? 500 : 100;
  return Math.floor(Math.random() * Math.min(20_000, base * 2 ** (n - 1)));
}

/** What a failed fetch was, as an AwsError: a timeout, a refused or dropped connection, a name lookup. */
function networkError(e: unknown, timeoutMs: number): AwsError {
  const err = e as Error & { code?: string };
  if (err.name === "TimeoutError" || err.name === "AbortError") {
    return new AwsError("TimeoutError", `no answer within ${timeoutMs} ms`, undefined, undefined, e);
  }
  const code = err.code ?? "";
  const out = new AwsError("NetworkError", `${err.message}${code && !err.message.includes(code) ? ` (${code})` : ""}`, undefined, undefined, e);
  out.code = code;
  return out;
}

/** An HTTP error answer as an AwsError: DynamoDB's __type and message, or UnknownError for anything else. */
function answerError(status: number, text: string, requestId: string | undefined, headerType: string | null): AwsError {
  let body: { __type?: unknown; message?: unknown; Message?: unknown } | undefined;
  try {
    body = JSON.parse(text);
  } catch {
    body = undefined;
  }
  const type = typeof body?.__type === "string" ? body.__type : (headerType ?? "");
  const name = type.split("#").pop()?.split(":")[0] ?? "";
  const message = typeof body?.message === "string" ? body.message : typeof body?.Message === "string" ? body.Message : "";
  if (name === "") return new AwsError("UnknownError", `HTTP ${status}${text ? `: ${text.slice(0, 200)}` : ""}`, status, requestId);
  return new AwsError(name, message || name, status, requestId);
}

export class DynamoWire {
  readonly endpoint: URL;
  private readonly opts: WireOptions;
  /** Requests in flight, ended by destroy(). */
  private readonly live = new Set<AbortController>();
  private closed = false;
  /** Aborted by destroy(): ends back-off sleeps and credential waits too. */
  private readonly closing = new AbortController();
  /** The service's clock minus this host's, once an answer showed them more than SKEW_MS apart. */
  private clockOffsetMs = 0;

  constructor(opts: WireOptions) {
    this.opts = opts;
    this.endpoint = new URL(opts.endpoint);
  }

  /** One call, its answer's text as sent (the Scan parser keeps it), retried as described above. */
  async callText(op: Operation, input: object): Promise<{ text: string; requestId: string | undefined }> {
    const body = JSON.stringify(input);
    const table = (input as { TableName?: string }).TableName;
    let slept = 0;
    for (let attempt = 1; ; attempt++) {
      let err: AwsError;
      // No credentials: said as the source said it, not tried again (the sources have their own
      // bounds; this one bounds them too, by request_timeout).
      const keys = await this.bounded(this.opts.credentials(), this.opts.requestTimeoutMs, () =>
        Object.assign(new Error(`Could not load credentials: no answer within ${this.opts.requestTimeoutMs} ms`), { name: "CredentialsProviderError" }),
      ).catch((e: Error) => {
        throw Object.assign(e, { $metadata: { attempts: attempt, totalRetryDelay: slept } });
      });
      try {
        return await this.once(op, body, keys);
      } catch (e) {
        err = e instanceof AwsError ? e : networkError(e, this.opts.requestTimeoutMs);
      }
      const skewed = (err as AwsError & { skewed?: boolean }).skewed === true && CLOCK_SKEW.has(err.name);
      if (attempt >= this.opts.maxAttempts || this.closed || !(retryable(err) || skewed)) {
        err.$metadata.attempts = attempt;
        err.$metadata.totalRetryDelay = slept;
        throw err;
      }
      if (attempt === 1) this.opts.onRetry?.(op, table, `${err.name}: ${err.message}`.slice(0, 200));
      const wait = skewed ? 0 : delayMs(err, attempt);
      slept += wait;
      await this.backOff(wait);
    }
  }

  /**
   * Settles with p; or, whichever comes first, rejects when the client is destroyed, or after ms
   * (with the error timeout() makes). Its own timer and listener go as soon as it settles: a
   * destroyed client holds nothing that keeps the process alive.
   */
  private bounded<T>(p: Promise<T>, ms?: number, timeout?: () => Error): Promise<T> {
    const closing = this.closing.signal;
    if (closing.aborted) return Promise.reject(new AwsError("AbortError", "the client was closed"));
    return new Promise<T>((resolve, reject) => {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const done = () => {
        clearTimeout(timer);
        closing.removeEventListener("abort", closed);
      };
      const closed = () => {
        done();
        reject(new AwsError("AbortError", "the client was closed"));
      };
      closing.addEventListener("abort", closed, { once: true });
      if (ms !== undefined) {
        timer = setTimeout(() => {
          done();
          reject(timeout?.() ?? new AwsError("TimeoutError", `no answer within ${ms} ms`));
        }, ms);
      }
      p.then(
        (v) => {
          done();
          resolve(v);
        },
        (e) => {
          done();
          reject(e);
        },
      );
    });
  }

  /** A back-off: ended at once (rejected) when the client is destroyed, its timer cleared. */
  private backOff(ms: number): Promise<void> {
    return this.bounded(new Promise<never>(() => {}), ms).catch((e: AwsError) => {
      if (e.name !== "TimeoutError") throw e;
    });
  }

  /** One call, its answer parsed. */
  async call<K extends Operation>(op: K, input: Operations[K][0]): Promise<Operations[K][1]> {
    const { text, requestId } = await this.callText(op, input);
    const out = JSON.parse(text) as Operations[K][1];
    out.$metadata = { httpStatusCode: 200, requestId };
    return out;
  }

  private async once(op: Operation, body: string, keys: Credentials): Promise<{ text: string; requestId: string | undefined }> {
    if (this.closed) throw new AwsError("AbortError", "the client was closed");
    const url = this.endpoint;
    const at = new Date(Date.now() + this.clockOffsetMs);
    const headers = signRequest(
      {
        method: "POST",
        host: url.host,
        path: url.pathname || "/",
        headers: { "content-type": "application/x-amz-json-1.0", "x-amz-target": `DynamoDB_20120810.${op}` },
        body,
        region: this.opts.region,
        service: "dynamodb",
        at,
      },
      keys,
    );
    const abort = new AbortController();
    this.live.add(abort);
    const timer = setTimeout(() => abort.abort(new DOMException("request_timeout", "TimeoutError")), this.opts.requestTimeoutMs);
    try {
      const r = await fetch(url, { method: "POST", headers, body, signal: abort.signal });
      const text = await r.text();
      const requestId = r.headers.get("x-amzn-requestid") ?? undefined;
      if (r.status !== 200) {
        const err = answerError(r.status, text, requestId, r.headers.get("x-amzn-errortype"));
        // Skewed: this request's signing time was far from the service's clock (compared with
        // the time it was signed at, so that requests signed together before the offset was
        // learnt are all tried again, not only the first to come back).
        const server = Date.parse(r.headers.get("date") ?? "");
        if (Number.isFinite(server) && Math.abs(server - at.getTime()) > SKEW_MS) {
          this.clockOffsetMs = server - Date.now();
          Object.assign(err, { skewed: true });
        }
        throw err;
      }
      return { text, requestId };
    } finally {
      clearTimeout(timer);
      this.live.delete(abort);
    }
  }

  /** Ends every request still in flight; the client is not used again. */
  destroy(): void {
    this.closed = true;
    this.closing.abort();
    for (const a of this.live) a.abort(new DOMException("the client was closed", "AbortError"));
    this.live.clear();
  }
}

// AWS Signature Version 4 for the one kind of request ddum makes: a POST of a JSON body to the
// endpoint's path, no query string (DynamoDB's JSON protocol). A pure function of its inputs, so
// it is checked against the SDK's own signer and AWS's published example (tests/wire.test.ts).
import { createHash, createHmac } from "node:crypto";

export interface SigningKeys {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
}

export interface SignInput {
  method: string;
  /** The Host header as sent: host name, and the port when it is not the scheme's default. */
  host: string;
  /** The request path, already as sent (DynamoDB: "/"). */
  path: string;
  /** Headers to sign besides host and x-amz-date (names in any case). */
  headers: Record<string, string>;
  body: string;
  region: string;
  service: string;
  /** The signing time. */
  at: Date;
}

const hex = (data: string) => createHash("sha256").update(data, "utf8").digest("hex");
const hmac = (key: string | Buffer, data: string) => createHmac("sha256", key).update(data, "utf8").digest();

/** The time as SigV4 writes it: 20150830T123600Z. */
export function amzDate(at: Date): string {
  return at.toISOString().replace(/[-:]/g, "").replace(/\.\d{3}/, "");
}

/**
 * Canonical URI: the path as sent (already percent-encoded once), "." and ".." segments resolved,
 * empty ones dropped, then encoded once more (every service but S3 signs it so).
 */
function canonicalPath(path: string): string {
  const segs: string[] = [];
  for (const seg of path.split("/")) {
    if (seg === "" || seg === ".") continue;
    if (seg === "..") segs.pop();
    else segs.push(seg);
  }
  const normal = `${path.startsWith("/") ? "/" : ""}${segs.join("/")}${segs.length > 0 && path.endsWith("/") ? "/" : ""}`;
  return encodeURIComponent(normal)
    .replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`)
    .replace(/%2F/g, "/");
}

/**
 * The headers to send: the ones given, x-amz-date, x-amz-security-token when the keys have a
 * session token, and authorization.
 */
export function signRequest(req: SignInput, keys: SigningKeys): Record<string, string> {
  const date = amzDate(req.at);
  const day = date.slice(0, 8);
  const headers: Record<string, string> = {};
  for (const [k, v] of Object.entries(req.headers)) headers[k.toLowerCase()] = v;
  headers.host = req.host;
  headers["x-amz-date"] = date;
  if (keys.sessionToken) headers["x-amz-security-token"] = keys.sessionToken;
  const names = Object.keys(headers).sort();
  const canonicalHeaders = names.map((n) => `${n}:${headers[n]!.trim().replace(/\s+/g, " ")}\n`).join("");
  const signed = names.join(";");
  const canonical = [req.method, canonicalPath(req.path), "", canonicalHeaders, signed, hex(req.body)].join("\n");
  const scope = `${day}/${req.region}/${req.service}/aws4_request`;
  const toSign = ["AWS4-HMAC-SHA256", date, scope, hex(canonical)].join("\n");
  const key = hmac(hmac(hmac(hmac(`AWS4${keys.secretAccessKey}`, day), req.region), req.service), "aws4_request");
  const signature = createHmac("sha256", key).update(toSign, "utf8").digest("hex");
  const { host: _host, ...send } = headers;
  send.authorization = `AWS4-HMAC-SHA256 Credential=${keys.accessKeyId}/${scope}, SignedHeaders=${signed}, Signature=${signature}`;
  return send;
}

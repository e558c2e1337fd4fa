// ddum's own DynamoDB client (src/source/wire.ts, sigv4.ts, credentials.ts): its signatures agree
// with the AWS SDK's signer and AWS's published example; credentials come from the source the SDK's
// chain would pick; an instance role is read from instance metadata (IMDSv2, and IMDSv1 where the
// token is unsupported), and a whole pass runs on it against a real dynalite, its session token sent
// with every request; destroy() ends a request in flight without a retry.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createHash, createHmac } from "node:crypto";
import { chmodSync, mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { SignatureV4 } from "@smithy/signature-v4";
import { parseConfig } from "../src/config.ts";
import { credentialSourceKind, fromInstanceMetadata, memo } from "../src/source/credentials.ts";
import { signRequest } from "../src/source/sigv4.ts";
import { DynamoWire } from "../src/source/wire.ts";
import { clientAt, endpointFor } from "../src/source/dynamo.ts";
import { DDUM } from "./helpers/ddum.ts";
import { type Dynamo, startDynalite, userItem } from "./helpers/dynalite.ts";
import { cleanupRoots, makeRoot } from "./helpers/root.ts";

/** The hash the SDK's signer is given (node:crypto, as the SDK's own Node build uses). */
class Sha256 {
  private h;
  constructor(secret?: string | ArrayBuffer | ArrayBufferView) {
    const bytes = (d: string | ArrayBuffer | ArrayBufferView) => (typeof d === "string" ? d : d instanceof ArrayBuffer ? new Uint8Array(d) : new Uint8Array(d.buffer, d.byteOffset, d.byteLength));
    this.bytes = bytes;
    this.h = secret === undefined ? createHash("sha256") : createHmac("sha256", bytes(secret));
  }
  private bytes;
  update(data: string | ArrayBuffer | ArrayBufferView) {
    this.h.update(this.bytes(data));
  }
  async digest() {
    return new Uint8Array(this.h.digest());
  }
}

describe("SigV4", () => {
  const at = new Date("2015-08-30T12:36:00Z");
  const keys = { accessKeyId: "AKIDEXAMPLE", secretAccessKey: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY" };

  test("AWS's published example (post-vanilla of the SigV4 test suite)", () => {
    const h = signRequest({ method: "POST", host: "example.amazonaws.com", path: "/", headers: {}, body: "", region: "us-east-1", service: "service", at }, keys);
    expect(h.authorization).toBe(
      "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b",
    );
    expect(h["x-amz-date"]).toBe("20150830T123600Z");
  });

  test.each([
    ["a Scan, plain", "dynamodb.us-east-1.amazonaws.com", "/", "us-east-1", '{"TableName":"Users"}', undefined],
    ["a session token", "dynamodb.eu-west-1.amazonaws.com", "/", "eu-west-1", '{"TableName":"Users","Segment":1,"TotalSegments":4}', "IQoJb3JpZ2luX2VjEA//token+/="],
    ["a port in the host", "127.0.0.1:8000", "/", "us-east-1", '{"TableName":"Groups"}', undefined],
    ["a path, UTF-8 and control escapes in the body", "proxy.example.com", "/dynamodb/", "ap-southeast-2", '{"Key":{"Name":{"S":"é☃\\n\\t"}}}', undefined],
    ["an empty body", "dynamodb.us-gov-west-1.amazonaws.com", "/", "us-gov-west-1", "", "tok"],
  ])("%s: the same signature as the AWS SDK's signer", async (_what, host, path, region, body, sessionToken) => {
    const creds = { ...keys, ...(sessionToken ? { sessionToken } : {}) };
    const headers = { "content-type": "application/x-amz-json-1.0", "x-amz-target": "DynamoDB_20120810.Scan" };
    const ours = signRequest({ method: "POST", host, path, headers, body, region, service: "dynamodb", at }, creds);
    // applyChecksum off: the SDK adds x-amz-content-sha256 only for S3-like services, not DynamoDB.
    const sdk = new SignatureV4({ credentials: creds, region, service: "dynamodb", sha256: Sha256, applyChecksum: false });
    const signed = await sdk.sign(
      { method: "POST", protocol: "https:", hostname: host.split(":")[0]!, path, headers: { ...headers, host }, body, query: {} },
      { signingDate: at },
    );
    expect(ours.authorization).toBe(signed.headers.authorization);
    expect(ours["x-amz-security-token"]).toBe(signed.headers["x-amz-security-token"]);
    // A different body or time is a different signature (the signature covers both).
    expect(signRequest({ method: "POST", host, path, headers, body: `${body} `, region, service: "dynamodb", at }, creds).authorization).not.toBe(ours.authorization);
    expect(signRequest({ method: "POST", host, path, headers, body, region, service: "dynamodb", at: new Date(at.getTime() + 1000) }, creds).authorization).not.toBe(ours.authorization);
  });
});

test.each([
  ["the config's endpoint_url first", "http://127.0.0.1:8000", "us-east-1", { AWS_ENDPOINT_URL_DYNAMODB: "http://x" }, "http://127.0.0.1:8000"],
  ["AWS_ENDPOINT_URL_DYNAMODB before AWS_ENDPOINT_URL", "", "us-east-1", { AWS_ENDPOINT_URL_DYNAMODB: "http://ddb", AWS_ENDPOINT_URL: "http://all" }, "http://ddb"],
  ["AWS_ENDPOINT_URL", "", "us-east-1", { AWS_ENDPOINT_URL: "http://all" }, "http://all"],
  ["AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "", "eu-west-1", { AWS_ENDPOINT_URL: "http://all", AWS_IGNORE_CONFIGURED_ENDPOINT_URLS: "true" }, "https://dynamodb.eu-west-1.amazonaws.com"],
  ["a commercial region", "", "ap-southeast-2", {}, "https://dynamodb.ap-southeast-2.amazonaws.com"],
  ["a China region", "", "cn-north-1", {}, "https://dynamodb.cn-north-1.amazonaws.com.cn"],
  ["GovCloud, FIPS: GovCloud's endpoint is FIPS already", "", "us-gov-west-1", { AWS_USE_FIPS_ENDPOINT: "true" }, "https://dynamodb.us-gov-west-1.amazonaws.com"],
  ["a commercial region, FIPS", "", "us-east-1", { AWS_USE_FIPS_ENDPOINT: "true" }, "https://dynamodb-fips.us-east-1.amazonaws.com"],
  ["dual-stack", "", "eu-central-1", { AWS_USE_DUALSTACK_ENDPOINT: "true" }, "https://dynamodb.eu-central-1.api.aws"],
  ["dual-stack in China", "", "cn-northwest-1", { AWS_USE_DUALSTACK_ENDPOINT: "true" }, "https://dynamodb.cn-northwest-1.api.amazonwebservices.com.cn"],
  ["the ISO partition", "", "us-iso-east-1", {}, "https://dynamodb.us-iso-east-1.c2s.ic.gov"],
  ["the ISO-B partition", "", "us-isob-east-1", {}, "https://dynamodb.us-isob-east-1.sc2s.sgov.gov"],
  ["the European sovereign cloud", "", "eusc-de-east-1", {}, "https://dynamodb.eusc-de-east-1.amazonaws.eu"],
  ["DynamoDB Local", "", "local", {}, "http://localhost:8000"],
] as const)("the endpoint: %s", (_what, endpoint_url, region, env, expected) => {
  expect(endpointFor({ endpoint_url }, region, env)).toBe(expected);
});

test("the endpoint is the one the AWS SDK's own resolver gives, in every partition", async () => {
  const { DynamoDBClient } = await import("@aws-sdk/client-dynamodb");
  const regions = ["us-east-1", "eu-west-3", "cn-north-1", "us-gov-west-1", "us-iso-east-1", "us-isob-east-1", "us-isof-south-1", "eu-isoe-west-1", "eusc-de-east-1", "local"];
  for (const region of regions) {
    for (const [fips, dual] of [[false, false], [true, false], [false, true], [true, true]] as const) {
      if (region === "local" && (fips || dual)) continue;
      const c = new DynamoDBClient({ region, credentials: { accessKeyId: "a", secretAccessKey: "b" } });
      let sdk: string;
      try {
        const ep = await (c.config as unknown as { endpointProvider: (p: object) => Promise<{ url: URL }> }).endpointProvider({ Region: region, UseFIPS: fips, UseDualStack: dual });
        sdk = ep.url.href.replace(/\/$/, "");
      } catch {
        continue; // a combination the partition does not offer: the SDK refuses it too
      } finally {
        c.destroy();
      }
      const env = { ...(fips ? { AWS_USE_FIPS_ENDPOINT: "true" } : {}), ...(dual ? { AWS_USE_DUALSTACK_ENDPOINT: "true" } : {}) };
      expect(`${region} fips=${fips} dual=${dual}: ${endpointFor({ endpoint_url: "" }, region, env)}`).toBe(`${region} fips=${fips} dual=${dual}: ${sdk}`);
    }
  }
});

describe("which credentials", () => {
  const none = { aws_access_key: "", aws_profile: "" };
  const emptyHome = () => mkdtempSync(join(tmpdir(), "ddum-home-"));
  const homeWith = (file: string) => {
    const h = emptyHome();
    mkdirSync(join(h, ".aws"));
    writeFileSync(join(h, ".aws", file), "[default]\n");
    return h;
  };
  test.each([
    ["keys in the config win over everything", { aws_access_key: "AK", aws_profile: "p" }, { AWS_ACCESS_KEY_ID: "E", AWS_SECRET_ACCESS_KEY: "S" }, "config"],
    ["a profile in the config: the SDK's chain", { aws_access_key: "", aws_profile: "ops" }, { AWS_ACCESS_KEY_ID: "E", AWS_SECRET_ACCESS_KEY: "S" }, "sdk"],
    ["AWS_PROFILE: the SDK's chain (it skips the environment's keys)", none, { AWS_PROFILE: "ops", AWS_ACCESS_KEY_ID: "E", AWS_SECRET_ACCESS_KEY: "S" }, "sdk"],
    ["keys in the environment", none, { AWS_ACCESS_KEY_ID: "E", AWS_SECRET_ACCESS_KEY: "S", HOME: "HOMEWITHCREDS" }, "environment"],
    ["only half the keys in the environment: not used", none, { AWS_ACCESS_KEY_ID: "E" }, "instance"],
    ["~/.aws/credentials exists: the SDK's chain", none, { HOME: "HOMEWITHCREDS" }, "sdk"],
    ["~/.aws/config exists: the SDK's chain", none, { HOME: "HOMEWITHCONFIG" }, "sdk"],
    ["AWS_SHARED_CREDENTIALS_FILE names a file that exists", none, { AWS_SHARED_CREDENTIALS_FILE: "/etc/hostname" }, "sdk"],
    ["a web identity token", none, { AWS_WEB_IDENTITY_TOKEN_FILE: "/x", AWS_ROLE_ARN: "arn" }, "sdk"],
    ["container credentials", none, { AWS_CONTAINER_CREDENTIALS_RELATIVE_URI: "/v2/credentials/x" }, "sdk"],
    ["nothing at all, metadata off", none, { AWS_EC2_METADATA_DISABLED: "true" }, "none"],
    ["metadata off by any value but false", none, { AWS_EC2_METADATA_DISABLED: "1" }, "none"],
    ["AWS_EC2_METADATA_DISABLED=false: on", none, { AWS_EC2_METADATA_DISABLED: "false" }, "instance"],
    ["nothing at all: the instance role", none, {}, "instance"],
  ] as const)("%s", (_what, config, env, kind) => {
    const e: NodeJS.ProcessEnv = { HOME: emptyHome(), ...env };
    if (e.HOME === "HOMEWITHCREDS") e.HOME = homeWith("credentials");
    if (e.HOME === "HOMEWITHCONFIG") e.HOME = homeWith("config");
    expect(credentialSourceKind(config, e)).toBe(kind);
  });
});

/** An EC2 instance metadata service on 127.0.0.1, as far as credentials go. */
function startImds(opts: { tokens: boolean; role?: string; tokenStatus?: number }) {
  const seen: string[] = [];
  const token = "TOKEN-abc";
  const server = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    fetch(req) {
      const url = new URL(req.url);
      seen.push(`${req.method} ${url.pathname}${req.headers.get("x-aws-ec2-metadata-token") ? " +token" : ""}`);
      if (url.pathname === "/latest/api/token") {
        if (!opts.tokens) return new Response("", { status: opts.tokenStatus ?? 405 });
        if (req.method !== "PUT" || !req.headers.get("x-aws-ec2-metadata-token-ttl-seconds")) return new Response("", { status: 400 });
        return new Response(token);
      }
      if (opts.tokens && req.headers.get("x-aws-ec2-metadata-token") !== token) return new Response("", { status: 401 });
      if (url.pathname === "/latest/meta-data/iam/security-credentials/") {
        return opts.role ? new Response(`${opts.role}\n`) : new Response("", { status: 404 });
      }
      if (opts.role && url.pathname === `/latest/meta-data/iam/security-credentials/${opts.role}`) {
        return Response.json({ Code: "Success", AccessKeyId: "ASIAROLE", SecretAccessKey: "rolesecret", Token: "ROLE-SESSION-TOKEN", Expiration: new Date(Date.now() + 3600_000).toISOString() });
      }
      return new Response("", { status: 404 });
    },
  });
  return { endpoint: `http://127.0.0.1:${server.port}`, seen, stop: () => server.stop(true) };
}

describe("an instance role from instance metadata", () => {
  test("IMDSv2: a session token first, then the role and its credentials, with the token", async () => {
    const imds = startImds({ tokens: true, role: "fleet-host" });
    try {
      const c = await fromInstanceMetadata({ AWS_EC2_METADATA_SERVICE_ENDPOINT: imds.endpoint });
      expect(c).toMatchObject({ accessKeyId: "ASIAROLE", secretAccessKey: "rolesecret", sessionToken: "ROLE-SESSION-TOKEN" });
      expect(c.expiration!.getTime()).toBeGreaterThan(Date.now());
      expect(imds.seen).toEqual(["PUT /latest/api/token", "GET /latest/meta-data/iam/security-credentials/ +token", "GET /latest/meta-data/iam/security-credentials/fleet-host +token"]);
    } finally {
      imds.stop();
    }
  });

  test("IMDSv1 where the token is not supported, unless AWS_EC2_METADATA_V1_DISABLED", async () => {
    const imds = startImds({ tokens: false, role: "old-host" });
    try {
      const c = await fromInstanceMetadata({ AWS_EC2_METADATA_SERVICE_ENDPOINT: imds.endpoint });
      expect(c.accessKeyId).toBe("ASIAROLE");
      await expect(fromInstanceMetadata({ AWS_EC2_METADATA_SERVICE_ENDPOINT: imds.endpoint, AWS_EC2_METADATA_V1_DISABLED: "true" })).rejects.toThrow(/IMDSv1 is disabled/);
    } finally {
      imds.stop();
    }
  });

  test("a token request answered 500: IMDSv1 (as the SDK); answered 400: an error", async () => {
    const broken = startImds({ tokens: false, tokenStatus: 500, role: "flaky" });
    const malformed = startImds({ tokens: false, tokenStatus: 400, role: "strict" });
    try {
      expect((await fromInstanceMetadata({ AWS_EC2_METADATA_SERVICE_ENDPOINT: broken.endpoint })).accessKeyId).toBe("ASIAROLE");
      await expect(fromInstanceMetadata({ AWS_EC2_METADATA_SERVICE_ENDPOINT: malformed.endpoint })).rejects.toThrow(/HTTP 400/);
    } finally {
      broken.stop();
      malformed.stop();
    }
  });

  test("no role: an error that says where it looked", async () => {
    const imds = startImds({ tokens: true });
    try {
      const err = await fromInstanceMetadata({ AWS_EC2_METADATA_SERVICE_ENDPOINT: imds.endpoint }).catch((e) => e as Error);
      expect(err).toBeInstanceOf(Error);
      expect((err as Error).name).toBe("CredentialsProviderError");
      expect((err as Error).message).toContain(`EC2 instance metadata at ${imds.endpoint}: no instance role`);
    } finally {
      imds.stop();
    }
  });

  test("metadata that never answers: an error within seconds", async () => {
    const silent = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
    const t0 = performance.now();
    try {
      await expect(fromInstanceMetadata({ AWS_EC2_METADATA_SERVICE_ENDPOINT: `http://127.0.0.1:${silent.port}` })).rejects.toThrow(/no answer within 1 s/);
      expect(performance.now() - t0).toBeLessThan(5000);
    } finally {
      silent.stop(true);
    }
  });
});

describe("against a real dynalite", () => {
  let d: Dynamo;
  beforeAll(async () => {
    d = await startDynalite();
    await d.createTables();
    await d.put("Users", [userItem("rolly", 30001)]);
  });
  afterAll(async () => {
    await d.close();
    cleanupRoots();
  });

  test("a host clock an hour behind the service's: the refusal's Date header corrects it, and the call goes through", async () => {
    const ahead = 3600_000;
    const seen: string[] = [];
    const front = Bun.serve({
      hostname: "127.0.0.1",
      port: 0,
      async fetch(req) {
        const a = req.headers.get("x-amz-date") ?? "";
        const signedAt = Date.parse(`${a.slice(0, 4)}-${a.slice(4, 6)}-${a.slice(6, 8)}T${a.slice(9, 11)}:${a.slice(11, 13)}:${a.slice(13, 15)}Z`);
        const serviceNow = Date.now() + ahead;
        if (Math.abs(signedAt - serviceNow) > 5 * 60_000) {
          seen.push("refused");
          return new Response(JSON.stringify({ __type: "com.amazon.coral.service#InvalidSignatureException", message: "Signature expired" }), {
            status: 400,
            headers: { "content-type": "application/x-amz-json-1.0", date: new Date(serviceNow).toUTCString() },
          });
        }
        seen.push("passed");
        const headers = new Headers(req.headers);
        headers.delete("host");
        return fetch(d.endpoint, { method: "POST", headers, body: await req.text() });
      },
    });
    const client = clientAt(`http://127.0.0.1:${front.port}`, { maxAttempts: 2 });
    try {
      // Four calls signed at once with the wrong clock: every one is tried again, not only the
      // first refusal to come back (which teaches the offset).
      const rs = await Promise.all(["Users", "Groups", "Users", "Groups"].map((TableName) => client.call("DescribeTable", { TableName })));
      expect(rs.map((r) => r.Table?.TableName)).toEqual(["Users", "Groups", "Users", "Groups"]);
      expect(seen.filter((x) => x === "refused").length).toBe(4);
      expect(seen.filter((x) => x === "passed").length).toBe(4);
      // The offset is kept: the next call is signed right the first time.
      await client.call("DescribeTable", { TableName: "Groups" });
      expect(seen.slice(8)).toEqual(["passed"]);
    } finally {
      front.stop(true);
    }
  });

  test("a pass with no keys configured signs with the instance role's credentials, session token included", async () => {
    const imds = startImds({ tokens: true, role: "fleet-host" });
    // In front of dynalite: records what each request carried.
    const auth: string[] = [];
    const front = Bun.serve({
      hostname: "127.0.0.1",
      port: 0,
      async fetch(req) {
        auth.push(`${req.headers.get("authorization")?.match(/Credential=([^/]+)/)?.[1]} ${req.headers.get("x-amz-security-token")}`);
        const headers = new Headers(req.headers);
        headers.delete("host");
        return fetch(d.endpoint, { method: "POST", headers, body: await req.text() });
      },
    });
    try {
      const dir = mkdtempSync(join(tmpdir(), "ddum-wire-"));
      const cfg = join(dir, "ddum.cfg");
      writeFileSync(cfg, JSON.stringify({ endpoint_url: `http://127.0.0.1:${front.port}`, aws_region: "us-east-1", create_homes: false }));
      chmodSync(cfg, 0o600);
      const env: Record<string, string | undefined> = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("AWS_")));
      env.HOME = mkdtempSync(join(tmpdir(), "ddum-home-"));
      env.AWS_EC2_METADATA_SERVICE_ENDPOINT = imds.endpoint;
      const root = makeRoot();
      // Not spawnSync: the metadata service and the recorder answer from this process.
      const p = Bun.spawn([DDUM, "sync", "--root", root, "-c", cfg], { env, stdout: "pipe", stderr: "pipe" });
      const [stderr, code] = await Promise.all([new Response(p.stderr).text(), p.exited]);
      expect(stderr).not.toContain("error");
      expect(code).toBe(0);
      expect(await Bun.file(join(root, "etc/passwd")).text()).toContain("rolly:x:30001:");
      expect(auth.length).toBeGreaterThan(1);
      expect(new Set(auth)).toEqual(new Set(["ASIAROLE ROLE-SESSION-TOKEN"]));
      // One fetch of the credentials for the whole pass.
      expect(imds.seen.filter((s) => s.startsWith("PUT")).length).toBe(1);
    } finally {
      front.stop(true);
      imds.stop();
    }
  }, 60_000);
});

test("destroy() ends a request in flight at once, without trying again", async () => {
  const silent = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const retries: string[] = [];
  const wire = new DynamoWire({
    endpoint: `http://127.0.0.1:${silent.port}`,
    region: "us-east-1",
    credentials: async () => ({ accessKeyId: "a", secretAccessKey: "b" }),
    maxAttempts: 5,
    requestTimeoutMs: 30_000,
    onRetry: (op) => retries.push(op),
  });
  try {
    const t0 = performance.now();
    const call = wire.call("GetItem", { TableName: "Users", Key: { Name: { S: "x" } } }).catch((e) => e as Error & { $metadata: { attempts?: number } });
    await Bun.sleep(200);
    wire.destroy();
    const err = await call;
    expect(performance.now() - t0).toBeLessThan(5000);
    expect(err).toBeInstanceOf(Error);
    expect(retries).toEqual([]);
  } finally {
    silent.stop(true);
  }
});

describe("a call ends", () => {
  const wire = (endpoint: string, over: Partial<ConstructorParameters<typeof DynamoWire>[0]> = {}) =>
    new DynamoWire({ endpoint, region: "us-east-1", credentials: async () => ({ accessKeyId: "a", secretAccessKey: "b" }), maxAttempts: 20, requestTimeoutMs: 30_000, ...over });

  test("destroy() during the back-off between attempts ends the call at once", async () => {
    let n = 0;
    const throttle = Bun.serve({
      hostname: "127.0.0.1",
      port: 0,
      fetch: () => {
        n++;
        return new Response(JSON.stringify({ __type: "com.amazonaws.dynamodb.v20120810#ThrottlingException", message: "slow down" }), { status: 400 });
      },
    });
    const w = wire(`http://127.0.0.1:${throttle.port}`);
    try {
      const call = w.call("GetItem", { TableName: "Users", Key: { Name: { S: "x" } } }).catch((e) => e as Error);
      await Bun.sleep(1500);
      const t0 = performance.now();
      w.destroy();
      const err = await call;
      expect(performance.now() - t0).toBeLessThan(1000);
      expect((err as Error).name).toBe("AbortError");
      expect(n).toBeGreaterThan(1);
    } finally {
      throttle.stop(true);
    }
  });

  test("credentials that never come: an error at request_timeout, or at once on destroy()", async () => {
    const never = () => new Promise<never>(() => {});
    const t0 = performance.now();
    const err = await wire("http://127.0.0.1:9", { credentials: never, requestTimeoutMs: 300 })
      .call("GetItem", { TableName: "Users", Key: { Name: { S: "x" } } })
      .catch((e) => e as Error);
    expect((err as Error).name).toBe("CredentialsProviderError");
    expect(performance.now() - t0).toBeLessThan(3000);
    const w = wire("http://127.0.0.1:9", { credentials: never });
    const call = w.call("GetItem", { TableName: "Users", Key: { Name: { S: "x" } } }).catch((e) => e as Error);
    await Bun.sleep(100);
    w.destroy();
    expect(((await call) as Error).name).toBe("AbortError");
  });

  test("a destroyed client leaves no timer behind: the process ends at once, not at request_timeout", async () => {
    const dir = mkdtempSync(join(tmpdir(), "ddum-wire-exit-"));
    const script = join(dir, "exit.ts");
    writeFileSync(
      script,
      `import { DynamoWire } from ${JSON.stringify(join(import.meta.dir, "..", "src", "source", "wire.ts"))};
const w = new DynamoWire({ endpoint: "http://127.0.0.1:9", region: "us-east-1", credentials: () => new Promise(() => {}), maxAttempts: 3, requestTimeoutMs: 60000 });
w.call("GetItem", { TableName: "Users", Key: { Name: { S: "x" } } }).catch((e) => console.log(e.name));
setTimeout(() => w.destroy(), 100);
`,
    );
    const t0 = performance.now();
    const p = Bun.spawn([process.execPath, script], { stdout: "pipe", stderr: "pipe" });
    const [out, code] = await Promise.all([new Response(p.stdout).text(), p.exited]);
    expect(out.trim()).toBe("AbortError");
    expect(code).toBe(0);
    expect(performance.now() - t0).toBeLessThan(10_000);
  }, 30_000);

  test("a failure another attempt cannot mend (TLS to a plain-HTTP server) is not tried again", async () => {
    const plain = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: () => new Response("{}") });
    try {
      const err = (await wire(`https://127.0.0.1:${plain.port}`, { maxAttempts: 5 })
        .call("GetItem", { TableName: "Users", Key: { Name: { S: "x" } } })
        .catch((e) => e)) as Error & { $metadata: { attempts?: number } };
      expect(err.name).toBe("NetworkError");
      expect(err.$metadata.attempts).toBe(1);
    } finally {
      plain.stop(true);
    }
  });
});

describe("credentials kept between calls", () => {
  const keys = (id: string, expiresInMs: number) => ({ accessKeyId: id, secretAccessKey: "s", expiration: new Date(Date.now() + expiresInMs) });

  test("one fetch however many calls ask at once; again only near expiry", async () => {
    let fetches = 0;
    const p = memo(async () => {
      fetches++;
      await Bun.sleep(20);
      return keys(`K${fetches}`, 60 * 60_000);
    });
    const got = await Promise.all(Array.from({ length: 64 }, () => p()));
    expect(new Set(got.map((k) => k.accessKeyId))).toEqual(new Set(["K1"]));
    expect(fetches).toBe(1);
    await p();
    expect(fetches).toBe(1);
  });

  test("a failed refresh keeps keys that have not expired; expired ones are not used", async () => {
    let now = Date.now();
    let fail = false;
    let n = 0;
    const p = memo(
      async () => {
        n++;
        if (fail) throw new Error("metadata throttled");
        return { accessKeyId: `K${n}`, secretAccessKey: "s", expiration: new Date(now + 10 * 60_000) };
      },
      () => now,
    );
    expect((await p()).accessKeyId).toBe("K1");
    now += 7 * 60_000; // within five minutes of expiry: refresh
    fail = true;
    expect((await p()).accessKeyId).toBe("K1");
    expect(n).toBe(2);
    now += 4 * 60_000; // expired
    await expect(p()).rejects.toThrow(/throttled/);
    fail = false;
    expect((await p()).accessKeyId).toBe("K4");
  });

  test("keys with an unreadable expiry are fetched again, not kept forever", async () => {
    let n = 0;
    const p = memo(async () => ({ accessKeyId: `K${++n}`, secretAccessKey: "s", expiration: new Date("not a date") }));
    await p();
    await p();
    expect(n).toBe(2);
  });
});

test("a config with keys signs with them (no other source is asked)", () => {
  const { config } = parseConfig({ aws_access_key: "AKCONFIG", aws_secret_key: "s", aws_region: "us-east-1" });
  expect(credentialSourceKind(config, { AWS_ACCESS_KEY_ID: "E", AWS_SECRET_ACCESS_KEY: "S" })).toBe("config");
});

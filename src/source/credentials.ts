// Where a client's AWS credentials come from, in the SDK's order: the config's keys; a named
// profile; the environment; the shared files, a web identity token, container credentials; EC2
// instance metadata (an instance role). The common cases on a host — keys in the config or the
// environment, or an instance role with nothing else configured — are answered here; every other
// source goes to the SDK's own provider chain, loaded only then (it weighs ~15 MB resident).
import { existsSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import type { Config } from "../config.ts";

export interface Credentials {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
  expiration?: Date;
}

export type CredentialProvider = () => Promise<Credentials>;

/** Credentials are fetched again this long before they expire. */
const REFRESH_MS = 5 * 60 * 1000;

function providerError(message: string): Error {
  const e = new Error(message);
  e.name = "CredentialsProviderError";
  return e;
}

/**
 * Remembers what a source gave until shortly before it expires, then fetches again: one fetch at
 * a time, however many calls ask; when a refresh fails and the keys held have not expired yet,
 * they are used meanwhile (the next call tries again). Keys without a readable expiry are kept.
 */
export function memo(source: CredentialProvider, now = () => Date.now()): CredentialProvider {
  let held: Credentials | undefined;
  let pending: Promise<Credentials> | undefined;
  const expires = (c: Credentials) => (c.expiration === undefined ? Number.POSITIVE_INFINITY : c.expiration.getTime());
  const fresh = (c: Credentials) => {
    const t = expires(c);
    return !Number.isNaN(t) && t - now() >= REFRESH_MS;
  };
  const refresh = () => {
    pending ??= source().then(
      (c) => {
        held = c;
        pending = undefined;
        return c;
      },
      (e) => {
        pending = undefined;
        throw e;
      },
    );
    return pending;
  };
  return async () => {
    if (held && fresh(held)) return held;
    const old = held;
    try {
      return await refresh();
    } catch (e) {
      const t = old ? expires(old) : Number.NaN;
      if (old && !Number.isNaN(t) && t > now()) return old;
      throw e;
    }
  };
}

/**
 * Which source a config and an environment lead to: "config", "environment", "instance" (EC2
 * instance metadata, nothing else configured), or "sdk" (a profile, shared files, a web identity
 * token, container credentials: the SDK's chain). Exported for the tests.
 */
export function credentialSourceKind(config: Pick<Config, "aws_access_key" | "aws_profile">, env: NodeJS.ProcessEnv): "config" | "environment" | "instance" | "none" | "sdk" {
  if (config.aws_access_key) return "config";
  if (config.aws_profile || env.AWS_PROFILE) return "sdk";
  if (env.AWS_ACCESS_KEY_ID && env.AWS_SECRET_ACCESS_KEY) return "environment";
  const home = env.HOME || env.USERPROFILE || homedir();
  const files = [env.AWS_SHARED_CREDENTIALS_FILE || join(home, ".aws", "credentials"), env.AWS_CONFIG_FILE || join(home, ".aws", "config")];
  if (files.some((f) => existsSync(f))) return "sdk";
  if (env.AWS_WEB_IDENTITY_TOKEN_FILE || env.AWS_CONTAINER_CREDENTIALS_RELATIVE_URI || env.AWS_CONTAINER_CREDENTIALS_FULL_URI) return "sdk";
  if (metadataDisabled(env)) return "none";
  return "instance";
}

/** AWS_EC2_METADATA_DISABLED: any value but "false" turns instance metadata off (as for the SDK). */
export function metadataDisabled(env: NodeJS.ProcessEnv): boolean {
  const v = env.AWS_EC2_METADATA_DISABLED;
  return v !== undefined && v !== "" && v.toLowerCase() !== "false";
}

/** The credentials a client signs with (fetched when first asked, then kept until near expiry). */
export function credentialProvider(config: Config, env: NodeJS.ProcessEnv = process.env): CredentialProvider {
  switch (credentialSourceKind(config, env)) {
    case "config": {
      const c: Credentials = {
        accessKeyId: config.aws_access_key,
        secretAccessKey: config.aws_secret_key,
        ...(config.aws_session_token ? { sessionToken: config.aws_session_token } : {}),
      };
      return async () => c;
    }
    case "environment": {
      const c: Credentials = {
        accessKeyId: env.AWS_ACCESS_KEY_ID!,
        secretAccessKey: env.AWS_SECRET_ACCESS_KEY!,
        ...(env.AWS_SESSION_TOKEN ? { sessionToken: env.AWS_SESSION_TOKEN } : {}),
      };
      return async () => c;
    }
    case "none":
      return async () => {
        throw providerError("Could not load credentials from any providers");
      };
    case "instance":
      return memo(() => fromInstanceMetadata(env));
    default: {
      // The SDK's provider keeps and refreshes its own credentials: made once, asked each time.
      let provider: Promise<CredentialProvider> | undefined;
      return async () => {
        provider ??= import("@aws-sdk/credential-provider-node").then(({ defaultProvider }) => defaultProvider(config.aws_profile ? { profile: config.aws_profile } : {}));
        return (await provider)();
      };
    }
  }
}

/** One request to instance metadata, bounded by a second as the SDK's own is. */
async function imds(url: string, init: RequestInit = {}): Promise<Response> {
  return fetch(url, { ...init, signal: AbortSignal.timeout(1000) });
}

/**
 * An instance role's credentials from EC2 instance metadata: IMDSv2 (a session token first), and
 * IMDSv1 when the token is not given (any answer but 400, or none), unless
 * AWS_EC2_METADATA_V1_DISABLED says not to. AWS_EC2_METADATA_SERVICE_ENDPOINT moves it, and
 * AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE=IPv6 asks its IPv6 address (as for the SDK).
 */
export async function fromInstanceMetadata(env: NodeJS.ProcessEnv = process.env): Promise<Credentials> {
  const ipv6 = (env.AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE ?? "").toLowerCase() === "ipv6";
  const base = (env.AWS_EC2_METADATA_SERVICE_ENDPOINT || (ipv6 ? "http://[fd00:ec2::254]" : "http://169.254.169.254")).replace(/\/+$/, "");
  const fail = (why: string) => providerError(`Could not load credentials from any providers (EC2 instance metadata at ${base}: ${why})`);
  const headers: Record<string, string> = {};
  // IMDSv2's session token; refused as malformed (400) is an error, any other refusal or failure
  // falls back to IMDSv1 (as the SDK does).
  try {
    const t = await imds(`${base}/latest/api/token`, { method: "PUT", headers: { "x-aws-ec2-metadata-token-ttl-seconds": "21600" } });
    if (t.ok) headers["x-aws-ec2-metadata-token"] = await t.text();
    else if (t.status === 400) throw fail("the session token request was refused as malformed (HTTP 400)");
  } catch (e) {
    if ((e as Error).name === "CredentialsProviderError") throw e;
  }
  if (!headers["x-aws-ec2-metadata-token"] && env.AWS_EC2_METADATA_V1_DISABLED === "true") throw fail("no session token, and IMDSv1 is disabled (AWS_EC2_METADATA_V1_DISABLED)");
  try {
    const list = await imds(`${base}/latest/meta-data/iam/security-credentials/`, { headers });
    if (!list.ok) throw fail(`no instance role (HTTP ${list.status})`);
    const role = (await list.text()).split("\n")[0]?.trim() ?? "";
    if (role === "") throw fail("no instance role");
    const r = await imds(`${base}/latest/meta-data/iam/security-credentials/${encodeURIComponent(role)}`, { headers });
    if (!r.ok) throw fail(`the role ${role}'s credentials: HTTP ${r.status}`);
    const c = (await r.json()) as { Code?: string; AccessKeyId?: string; SecretAccessKey?: string; Token?: string; Expiration?: string };
    if (c.Code && c.Code !== "Success") throw fail(`the role ${role}'s credentials: ${c.Code}`);
    if (typeof c.AccessKeyId !== "string" || typeof c.SecretAccessKey !== "string") throw fail(`the role ${role}'s credentials are incomplete`);
    return {
      accessKeyId: c.AccessKeyId,
      secretAccessKey: c.SecretAccessKey,
      ...(typeof c.Token === "string" ? { sessionToken: c.Token } : {}),
      ...(typeof c.Expiration === "string" ? { expiration: new Date(c.Expiration) } : {}),
    };
  } catch (e) {
    if ((e as Error).name === "CredentialsProviderError") throw e;
    throw fail((e as Error).name === "TimeoutError" ? "no answer within 1 s" : (e as Error).message);
  }
}

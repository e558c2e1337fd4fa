// Every network call ends: a pass or an admin command against an endpoint that accepts
// connections and never answers exits within request_timeout × max_attempts plus a few seconds,
// with its request cancelled, not minutes later. And every failure says what failed and where.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { chmodSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { TCPSocketListener } from "bun";
import { DDUM } from "./helpers/ddum.ts";
import { type Dynamo, startDynalite } from "./helpers/dynalite.ts";
import { cleanupRoots, makeRoot } from "./helpers/root.ts";

let silent: TCPSocketListener;
let notFound: ReturnType<typeof Bun.serve>;
let d: Dynamo;
beforeAll(async () => {
  // Accepts every connection, reads every request, answers none.
  silent = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  // An HTTP server that is not DynamoDB.
  notFound = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: () => new Response("", { status: 404 }) });
  d = await startDynalite();
  await d.createTables();
});
afterAll(async () => {
  silent.stop(true);
  notFound.stop(true);
  await d.close();
  cleanupRoots();
});

function configFile(settings: Record<string, unknown>): string {
  const dir = mkdtempSync(join(tmpdir(), "ddum-net-"));
  const path = join(dir, "ddum.cfg");
  writeFileSync(path, JSON.stringify({ aws_region: "us-east-1", aws_access_key: "test", aws_secret_key: "test", create_homes: false, ...settings }));
  chmodSync(path, 0o600);
  return path;
}

const silentConfig = () => configFile({ endpoint_url: `http://127.0.0.1:${silent.port}`, request_timeout: 2, max_attempts: 3 });

async function timed(args: string[], env: Record<string, string | undefined> = process.env) {
  const t0 = performance.now();
  const proc = Bun.spawn([DDUM, ...args], { stdout: "pipe", stderr: "pipe", stdin: "ignore", env });
  const [stdout, stderr, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  return { code, stdout, stderr, seconds: (performance.now() - t0) / 1000 };
}

const BOUND_S = 2 * 3 + 5; // request_timeout × max_attempts + 5 s

test.each([
  ["sync", (cfg: string) => ["sync", "--root", makeRoot(), "-c", cfg]],
  ["sync --json", (cfg: string) => ["sync", "--json", "--root", makeRoot(), "-c", cfg]],
  ["user list", (cfg: string) => ["user", "list", "-c", cfg]],
] as const)("%s against an endpoint that never answers exits in time and says why", async (_what, args) => {
  const r = await timed(args(silentConfig()));
  expect(r.code).not.toBe(0);
  expect(r.seconds).toBeLessThan(BOUND_S);
  expect(r.stderr + r.stdout).toMatch(/TimeoutError|timed out|did not complete/i);
}, 60_000);

// heapsize.ts: a pass replaces itself (same PID) with a copy whose engine believes the machine
// has 128 MiB, so that garbage is collected before it piles up, and has no optimizing compiler;
// an administrator's value is kept.
test.each([
  ["unset: ddum sets all three", undefined, undefined, undefined, "134217728", "1.2", "0", "BUN_JSC_forceRAMSize,BUN_JSC_smallHeapGrowthFactor,BUN_JSC_useDFGJIT"],
  ["the RAM size set by the administrator: kept, the others set", "268435456", undefined, undefined, "268435456", "1.2", "0", "BUN_JSC_smallHeapGrowthFactor,BUN_JSC_useDFGJIT"],
  ["the compiler switched on by the administrator: kept", undefined, undefined, "1", "134217728", "1.2", "1", "BUN_JSC_forceRAMSize,BUN_JSC_smallHeapGrowthFactor"],
  ["all set by the administrator: kept, no replacement", "268435456", "1.5", "1", "268435456", "1.5", "1", null],
] as const)("the pass's engine settings, %s", async (_what, ram, growth, dfg, expectedRam, expectedGrowth, expectedDfg, mark) => {
  const env = { ...process.env, BUN_JSC_forceRAMSize: ram, BUN_JSC_smallHeapGrowthFactor: growth, BUN_JSC_useDFGJIT: dfg };
  const proc = Bun.spawn([DDUM, "sync", "--root", makeRoot(), "-c", silentConfig()], { stdout: "pipe", stderr: "pipe", stdin: "ignore", env });
  // Waiting on the endpoint that never answers: the process is there to be looked at.
  let seen: string[] = [];
  for (let i = 0; i < (mark ? 50 : 10); i++) {
    await Bun.sleep(100);
    seen = readFileSync(`/proc/${proc.pid}/environ`, "latin1").split("\0");
    if (seen.some((v) => v.startsWith("DDUM_ENGINE_RAM="))) break;
  }
  proc.kill("SIGKILL");
  await proc.exited;
  expect(seen).toContain(`BUN_JSC_forceRAMSize=${expectedRam}`);
  expect(seen).toContain(`BUN_JSC_smallHeapGrowthFactor=${expectedGrowth}`);
  expect(seen).toContain(`BUN_JSC_useDFGJIT=${expectedDfg}`);
  // Replaced, not forked: the PID spawned is the one that runs the pass, with the same arguments;
  // the mark names what ddum set, so that only that is kept from the programs it starts.
  expect(seen.find((v) => v.startsWith("DDUM_ENGINE_RAM="))).toBe(mark ? `DDUM_ENGINE_RAM=${mark}` : undefined);
}, 30_000);

test("the first retry is reported at once, with the operation, table and endpoint", async () => {
  const r = await timed(["sync", "--root", makeRoot(), "-c", configFile({ endpoint_url: `http://127.0.0.1:${silent.port}`, request_timeout: 1, max_attempts: 2 })]);
  expect(r.code).toBe(1);
  expect(r.stderr).toMatch(new RegExp(`warning: Scan of table (Users|Groups) at http://127\\.0\\.0\\.1:${silent.port}: trying again \\(`));
}, 30_000);

// Each failure names what failed, the endpoint and region, the cause and a hint.
const AWS_ENV_OFF = Object.fromEntries(Object.keys(process.env).filter((k) => k.startsWith("AWS_")).map((k) => [k, undefined]));
test.each([
  ["connection refused", () => ({ endpoint_url: "http://127.0.0.1:9", max_attempts: 1 }), {}, /scan of table (Users|Groups) failed after 1 attempt \(endpoint http:\/\/127\.0\.0\.1:9, region us-east-1\): connection refused; hint: /],
  ["not DynamoDB", () => ({ endpoint_url: `http://127.0.0.1:${notFound.port}`, max_attempts: 1 }), {}, /failed after 1 attempt \(endpoint http:\/\/127\.0\.0\.1:\d+, region us-east-1\): the endpoint answered HTTP 404 without a DynamoDB error; hint: endpoint_url does not point at DynamoDB/],
  ["no such table", () => ({ endpoint_url: d.endpoint, user_table_name: "NoSuchUsers" }), {}, /scan of table NoSuchUsers failed.*: table NoSuchUsers does not exist there; hint: .*ddum tables create/],
  [
    "no credentials",
    () => ({ endpoint_url: d.endpoint, aws_access_key: "", aws_secret_key: "", max_attempts: 1 }),
    // Nothing to find anywhere: no AWS_* variables, an empty home, instance metadata off.
    { ...AWS_ENV_OFF, HOME: mkdtempSync(join(tmpdir(), "ddum-home-")), AWS_EC2_METADATA_DISABLED: "true" },
    /failed.*: no AWS credentials found; hint: tried, in order: AWS_ACCESS_KEY_ID\/AWS_SECRET_ACCESS_KEY in the environment, then the profile "default" in ~\/\.aws\/credentials/,
  ],
] as const)("%s: the error names the call, the endpoint and the cause", async (_what, settings, env, message) => {
  const r = await timed(["sync", "--root", makeRoot(), "-c", configFile(settings())], { ...process.env, ...env });
  expect(r.code).toBe(1);
  expect(r.stderr).toMatch(message);
}, 30_000);

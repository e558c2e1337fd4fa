// Every network call ends: a pass or an admin command against an endpoint that accepts
// connections and never answers exits within request_timeout × max_attempts plus a few seconds,
// with its request cancelled, not minutes later.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { chmodSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { TCPSocketListener } from "bun";
import { DDUM } from "./helpers/ddum.ts";
import { cleanupRoots, makeRoot } from "./helpers/root.ts";

let silent: TCPSocketListener;
beforeAll(() => {
  // Accepts every connection, reads every request, answers none.
  silent = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
});
afterAll(() => {
  silent.stop(true);
  cleanupRoots();
});

function silentConfig(): string {
  const dir = mkdtempSync(join(tmpdir(), "ddum-net-"));
  const path = join(dir, "ddum.cfg");
  writeFileSync(
    path,
    JSON.stringify({
      endpoint_url: `http://127.0.0.1:${silent.port}`,
      aws_region: "us-east-1",
      aws_access_key: "test",
      aws_secret_key: "test",
      request_timeout: 2,
      max_attempts: 3,
      create_homes: false,
    }),
  );
  chmodSync(path, 0o600);
  return path;
}

async function timed(args: string[]) {
  const t0 = performance.now();
  const proc = Bun.spawn([DDUM, ...args], { stdout: "pipe", stderr: "pipe", stdin: "ignore" });
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

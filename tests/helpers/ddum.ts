import { chmodSync, mkdtempSync, readdirSync, readFileSync, lstatSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseConfig } from "../../src/config.ts";
import { Root } from "../../src/paths.ts";
import { runPass, type SyncResult } from "../../src/sync.ts";
import type { Dynamo } from "./dynalite.ts";
import { REPO } from "./root.ts";

export const DDUM = join(REPO, "dist", "ddum");

export function testConfig(d: Dynamo, extra: Record<string, unknown> = {}) {
  return {
    endpoint_url: d.endpoint,
    aws_region: "us-east-1",
    aws_access_key: "test",
    aws_secret_key: "test",
    max_attempts: 2,
    create_homes: false,
    ...extra,
  };
}

/** One pass in-process against a root. */
export async function pass(
  d: Dynamo,
  root: string,
  opts: { dryRun?: boolean; force?: boolean; today?: number; clock?: () => number; now?: () => number; config?: Record<string, unknown>; onProgress?: (table: string, items: number) => void } = {},
): Promise<SyncResult> {
  const { config } = parseConfig(testConfig(d, opts.config));
  return runPass(config, {
    root: new Root(root),
    dryRun: opts.dryRun ?? false,
    force: opts.force ?? false,
    ...(opts.today !== undefined ? { today: opts.today } : {}),
    ...(opts.clock ? { clock: opts.clock } : {}),
    ...(opts.now ? { now: opts.now } : {}),
    ...(opts.onProgress ? { onProgress: opts.onProgress } : {}),
  });
}

/** Write a config file for the compiled binary. */
export function writeConfig(d: Dynamo, extra: Record<string, unknown> = {}): string {
  const dir = mkdtempSync(join(tmpdir(), "ddum-cfg-"));
  const path = join(dir, "ddum.cfg");
  writeFileSync(path, JSON.stringify(testConfig(d, extra)));
  chmodSync(path, 0o600);
  return path;
}

/** Run the compiled binary without blocking this process's event loop (dynalite lives here). */
export async function ddum(args: string[], opts: { env?: Record<string, string>; stdin?: string } = {}) {
  const proc = Bun.spawn([DDUM, ...args], {
    stdout: "pipe",
    stderr: "pipe",
    stdin: opts.stdin !== undefined ? new TextEncoder().encode(opts.stdin) : "ignore",
    env: { ...process.env, ...opts.env },
  });
  const [stdout, stderr, code] = await Promise.all([
    new Response(proc.stdout).text(),
    new Response(proc.stderr).text(),
    proc.exited,
  ]);
  return { code, stdout, stderr };
}

/** Every path under dir with its type, mode, owner, size, mtime and (for files) content. */
export function treeSnapshot(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (d: string) => {
    for (const name of readdirSync(d)) {
      const p = join(d, name);
      const st = lstatSync(p);
      const rel = p.slice(dir.length);
      out[rel] = `${st.mode.toString(8)} ${st.uid}:${st.gid} ${st.size} ${st.mtimeMs}`;
      if (st.isDirectory()) walk(p);
      else if (st.isFile()) out[rel] += ` ${readFileSync(p, "utf8")}`;
    }
  };
  walk(dir);
  return out;
}

// `make bench`: ddum at fleet scale against dynalite, with the floor (a bare scan with ddum's own
// client and the same segment count) measured in the same run against the same server. Not a test: it
// prints figures and writes them to bench/results/.
import { spawn } from "node:child_process";
import { generateKeyPairSync, randomBytes } from "node:crypto";
import { cpSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { BatchWriteItemCommand, DynamoDBClient, PutItemCommand, type AttributeValue } from "@aws-sdk/client-dynamodb";
import { clientAt, createTables } from "../src/source/dynamo.ts";
import { ensureVersion } from "../src/source/version.ts";

const REPO = join(import.meta.dir, "..");
const DDUM = join(REPO, "dist", "ddum");
const SIZES = (process.env.BENCH_SIZES ?? "10000,100000").split(",").map(Number);
const SEGMENTS = Number(process.env.BENCH_SEGMENTS ?? 4);
const STARTUP_RUNS = 51;
/** Runs of the steady and the one-change pass (the median is reported). */
const RUNS = Number(process.env.BENCH_RUNS ?? 3);
/**
 * BENCH_BASELINE=/path/to/an/older/ddum measures that build too, in the same run, against the
 * same server and data, each pass run by both builds in turn (which goes first alternates), each build on
 * a root of its own: the side-by-side comparison a change to the pass is judged by.
 */
const BUILDS: { label: string; bin: string }[] = [
  ...(process.env.BENCH_BASELINE ? [{ label: "baseline", bin: process.env.BENCH_BASELINE }] : []),
  { label: "this", bin: DDUM },
];

type Item = Record<string, AttributeValue>;

// ---- data -------------------------------------------------------------------------------------

const CRYPT = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const cryptChars = (n: number) => Array.from(randomBytes(n), (b) => CRYPT[b % 64]).join("");
function ed25519(comment: string): string {
  const der = generateKeyPairSync("ed25519").publicKey.export({ format: "der", type: "spki" });
  const raw = der.subarray(der.length - 32);
  const type = Buffer.from("ssh-ed25519");
  const blob = Buffer.alloc(4 + type.length + 4 + 32);
  blob.writeUInt32BE(type.length, 0);
  type.copy(blob, 4);
  blob.writeUInt32BE(32, 4 + type.length);
  raw.copy(blob, 8 + type.length);
  return `ssh-ed25519 ${blob.toString("base64")} ${comment}`;
}

function user(i: number): Item {
  const name = `user${String(i).padStart(6, "0")}`;
  const keys = [ed25519(`${name}@laptop`)];
  if (i % 2 === 0) keys.push(ed25519(`${name}@desktop`));
  return {
    Name: { S: name },
    // Above 65534 (nobody) and its neighbours: a real directory's IDs start in their own range.
    UID: { N: String(100000 + i) },
    GID: { N: String(100000 + i) },
    RealName: { S: `User Number ${i},Building ${i % 40},+1 555 ${String(i % 10000).padStart(4, "0")}` },
    Home: { S: `/home/${name}` },
    Shell: { S: "/bin/bash" },
    Password: { S: `$6$${cryptChars(16)}$${cryptChars(86)}` },
    LastPasswordChangeDate: { S: `2026-0${1 + (i % 9)}-1${i % 10}` },
    PasswordAgeMaxDays: { N: "365" },
    PasswordWarnDays: { N: "14" },
    SSHPublicKeys: { SS: keys },
  };
}

function group(j: number, n: number): Item {
  const members = Array.from({ length: 10 }, (_, k) => `user${String((j * 10 + k) % n).padStart(6, "0")}`);
  return { Name: { S: `team${String(j).padStart(5, "0")}` }, GID: { N: String(500000 + j) }, Members: { SS: [...new Set(members)] } };
}

// ---- processes --------------------------------------------------------------------------------

interface Measured {
  ms: number;
  /** CPU time, user + system (less swayed than wall time by whatever else the machine runs). */
  cpuMs: number;
  rssKb: number;
  code: number;
  stdout: string;
  stderr: string;
}

/** Run a command under GNU time for its peak RSS; wall time measured here. */
function measure(cmd: string[], env: Record<string, string> = {}): Promise<Measured> {
  return new Promise((resolve) => {
    const t0 = performance.now();
    const p = spawn("/usr/bin/time", ["-f", "__RSS_KB__ %M %U %S", ...cmd], { env: { ...process.env, ...env } });
    let stdout = "";
    let stderr = "";
    p.stdout.on("data", (c) => {
      stdout += c;
    });
    p.stderr.on("data", (c) => {
      stderr += c;
    });
    p.on("exit", (code) => {
      const ms = performance.now() - t0;
      const m = /__RSS_KB__ (\d+) ([0-9.]+) ([0-9.]+)/.exec(stderr);
      const cpuMs = m ? (Number(m[2]) + Number(m[3])) * 1000 : 0;
      resolve({ ms, cpuMs, rssKb: m ? Number(m[1]) : 0, code: code ?? -1, stdout, stderr: stderr.replace(/__RSS_KB__ [^\n]*\n?/, "") });
    });
  });
}

/** Bytes in files under dir whose mtime is newer than since (what a pass wrote), by area. */
function writtenSince(dir: string, since: number): { accounts: number; homes: number; keys: number; state: number } {
  const out = { accounts: 0, homes: 0, keys: 0, state: 0 };
  const walk = (d: string) => {
    for (const name of readdirSync(d)) {
      const p = join(d, name);
      const st = lstatSync(p);
      if (st.isDirectory()) walk(p);
      else if (st.mtimeMs >= since) {
        const rel = p.slice(dir.length);
        const area = rel.startsWith("/home/") ? "homes" : rel.startsWith("/etc/ssh/") ? "keys" : rel.startsWith("/var/lib/ddum/") ? "state" : "accounts";
        out[area] += st.size;
      }
    }
  };
  walk(dir);
  return out;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

// ---- the run ----------------------------------------------------------------------------------

async function startDynalite(): Promise<{ endpoint: string; stop: () => void }> {
  const port = 20000 + Math.floor(Math.random() * 20000);
  const p = spawn("node", [join(REPO, "node_modules", "dynalite", "cli.js"), "--port", String(port), "--createTableMs", "0"], { stdio: "ignore" });
  const endpoint = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 100; i++) {
    try {
      await fetch(endpoint);
      break;
    } catch {
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  return { endpoint, stop: () => p.kill("SIGKILL") };
}

async function seed(client: DynamoDBClient, table: string, items: Item[]) {
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const batch = items.slice(next, next + 25);
      next += 25;
      let req: Record<string, { PutRequest: { Item: Item } }[]> | undefined = { [table]: batch.map((Item) => ({ PutRequest: { Item } })) };
      while (req && Object.keys(req).length) {
        const r = await client.send(new BatchWriteItemCommand({ RequestItems: req }));
        req = r.UnprocessedItems as typeof req;
      }
    }
  };
  await Promise.all(Array.from({ length: 8 }, worker));
}

/** What the benchmark reads of a pass's --json document. */
interface PassDoc {
  timings?: { totalMs: number; scanMs: number; homesMs: number };
  readUnits?: number;
  detection?: { kind: string; version: number | null; reason: string };
  actions?: { kind: string; name: string }[];
}

interface Row {
  n: number;
  scenario: string;
  /** Which build ran it ("this" unless BENCH_BASELINE is set). */
  build?: string;
  ms: number;
  /** CPU time (user + system) of the same run. */
  cpuMs?: number;
  ratio: number;
  rssMb: number;
  written: { accounts: number; homes: number; keys: number; state: number };
  /** After the scan, without homes and key files: validate, plan, serialize, commit. */
  postScanMs: number | null;
  /** Homes and key files, after the accounts. */
  homesMs?: number | null;
  floorSamplesMs?: number[];
  samplesMs?: number[];
  /** DynamoDB read units the pass consumed, as it reported them (ReturnConsumedCapacity TOTAL). */
  readUnits?: number;
  /** What the pass planned from (change detection): scan, snapshot or steady. */
  kind?: string;
  /** Version mode's steady no-change pass: its time over the scanning steady no-change pass's, same run. */
  versionVsScan?: number;
  /** The changes a pass applied (the version mode's one-change pass). */
  applied?: string[];
}

let users: Item[] = [];
const leftovers: string[] = [];

async function benchSize(n: number, results: Row[]) {
  const dyn = await startDynalite();
  const client = new DynamoDBClient({ endpoint: dyn.endpoint, region: "us-east-1", credentials: { accessKeyId: "bench", secretAccessKey: "bench" }, requestHandler: { requestTimeout: 30_000, connectionTimeout: 10_000, throwOnRequestTimeout: true } });
  try {
    const ours = clientAt(dyn.endpoint, { accessKeyId: "bench", secretAccessKey: "bench" });
    await createTables(ours, ["Users", "Groups"]);
    const t0 = performance.now();
    users = Array.from({ length: n }, (_, i) => user(i));
    await seed(client, "Users", users);
    await seed(client, "Groups", Array.from({ length: n / 10 }, (_, j) => group(j, n)));
    console.error(`  seeded ${n} users and ${n / 10} groups in ${((performance.now() - t0) / 1000).toFixed(1)} s`);

    // Not /tmp: on some machines (this one) file creation there is ten times slower than elsewhere
    // on the same disk, which would measure the directory, not ddum.
    const work = mkdtempSync(join(process.env.BENCH_DIR ?? "/var/tmp", "ddum-bench-"));
    const base = { endpoint_url: dyn.endpoint, aws_region: "us-east-1", aws_access_key: "bench", aws_secret_key: "bench", scan_segments: SEGMENTS, max_disable_percent: 100, uid_max: 1000000, gid_max: 1000000 };
    const cfgPath = (name: string, extra: Record<string, unknown>) => {
      const p = join(work, `${name}.cfg`);
      writeFileSync(p, JSON.stringify({ ...base, ...extra }), { mode: 0o600 });
      return p;
    };
    const floorCfg = cfgPath("floor", {});
    // The floor is the median of five scans, three before the passes and two after them: one
    // scan on a shared machine is noisy, and the server can be slower late in the run than early.
    const floors: Measured[] = [];
    const scanFloor = async () => {
      const f = await measure(["node_modules/.bin/bun", join(REPO, "bench", "floor.ts"), floorCfg]);
      if (f.code !== 0) throw new Error(`floor scan failed: ${f.stderr}`);
      floors.push(f);
    };
    for (let i = 0; i < 3; i++) await scanFloor();
    let floor = [...floors].sort((a, b) => a.ms - b.ms)[1]!;
    let floorMs = floor.ms;
    const floorRow: Row = { n, scenario: "floor: bare scan of both tables (ddum's own client)", ms: floorMs, ratio: 1, rssMb: floor.rssKb / 1024, written: { accounts: 0, homes: 0, keys: 0, state: 0 }, postScanMs: null };
    results.push(floorRow);
    console.error(`  floor ${(floorMs / 1000).toFixed(2)} s (${floor.stdout.trim()})`);
    // For reference: the same scan through an SDK client left at its defaults (node:http, the SDK's
    // deserializer). The targets are measured against the floor above, the stricter of the two.
    const stocks: Measured[] = [];
    for (let i = 0; i < 3; i++) stocks.push(await measure(["node_modules/.bin/bun", join(REPO, "bench", "floor.ts"), floorCfg, "--stock"]));
    const stock = stocks.sort((a, b) => a.ms - b.ms)[1]!;
    results.push({ n, scenario: "reference: the same scan, SDK client at its defaults", ms: stock.ms, ratio: stock.ms / floorMs, rssMb: stock.rssKb / 1024, written: { accounts: 0, homes: 0, keys: 0, state: 0 }, postScanMs: null });

    const modes = [
      { label: "keys in /etc/ssh/authorized_keys/%u, no homes", cfg: cfgPath("mode2", { ssh_key_location: "/etc/ssh/authorized_keys/%u", create_homes: false }) },
      { label: "homes and keys in homes (defaults)", cfg: cfgPath("mode1", {}) },
    ];
    // BENCH_MODES=2 (or 1) measures one key mode only, for quicker rounds while optimising.
    const only = process.env.BENCH_MODES;
    for (const mode of modes.filter((_, i) => !only || only.includes(String(2 - i)))) {
      const roots = BUILDS.map((b) => {
        const root = join(work, `root-${results.length}-${b.label}`);
        cpSync(join(REPO, "examples", "debian12-root"), root, { recursive: true });
        return root;
      });
      // A pass measured `runs` times (before(i) makes each run's change): the row is the median
      // run's time, the highest RSS and the most bytes written of all runs, every time kept.
      const pass = async (scenario: string, runs = 1, before?: (i: number) => Promise<void>, env: Record<string, string> = {}, builds = BUILDS) => {
        type Sample = { m: Measured; doc: PassDoc; written: Row["written"] };
        const byBuild: Sample[][] = builds.map(() => []);
        for (let i = 0; i < runs; i++) {
          await before?.(i);
          // Alternate which build goes first, so neither always finds the server or the page cache warm.
          const order = [...builds.entries()];
          if (i % 2 === 1) order.reverse();
          for (const [b, build] of order) {
            const root = roots[BUILDS.indexOf(build)]!;
            const since = Date.now() - 1;
            const m = await measure([build.bin, "sync", "--json", "--root", root, "-c", mode.cfg], env);
            const doc = m.stdout ? JSON.parse(m.stdout) : null;
            if (m.code !== 0) {
              const why = doc ? JSON.stringify([...doc.refusals, ...doc.rejections].slice(0, 5)) : m.stderr.slice(0, 2000);
              throw new Error(`${scenario} (${build.label}): exit ${m.code}: ${why}`);
            }
            byBuild[b]!.push({ m, doc, written: writtenSince(root, since) });
            const who = BUILDS.length > 1 ? ` [${build.label}]` : "";
            console.error(`  ${scenario} #${i + 1}, ${mode.label}${who}: ${(m.ms / 1000).toFixed(2)} s, ${(m.rssKb / 1024).toFixed(0)} MB ${JSON.stringify(doc.timings, (_k, v) => (typeof v === "number" ? Math.round(v) : v))}`);
          }
        }
        for (const [b, build] of builds.entries()) addRow(scenario, build.label, byBuild[b]!, runs);
      };
      const addRow = (scenario: string, build: string, samples: { m: Measured; doc: PassDoc; written: Row["written"] }[], runs: number) => {
        const mid = [...samples].sort((a, b) => a.m.ms - b.m.ms)[Math.floor(runs / 2)]!;
        const most = (k: keyof Row["written"]) => Math.max(...samples.map((x) => x.written[k]));
        const row: Row = {
          n,
          scenario: `${scenario}, ${mode.label}`,
          build,
          ms: mid.m.ms,
          cpuMs: median(samples.map((x) => x.m.cpuMs)),
          ratio: mid.m.ms / floorMs,
          rssMb: Math.max(...samples.map((x) => x.m.rssKb)) / 1024,
          written: { accounts: most("accounts"), homes: most("homes"), keys: most("keys"), state: most("state") },
          postScanMs: mid.doc.timings ? mid.doc.timings.totalMs - mid.doc.timings.scanMs - mid.doc.timings.homesMs : null,
          homesMs: mid.doc.timings ? mid.doc.timings.homesMs : null,
          ...(runs > 1 ? { samplesMs: samples.map((x) => Math.round(x.m.ms)) } : {}),
          ...(typeof mid.doc.readUnits === "number" ? { readUnits: mid.doc.readUnits } : {}),
          ...(mid.doc.detection ? { kind: mid.doc.detection.kind } : {}),
        };
        results.push(row);
        return row;
      };
      await pass("first pass");
      // The second pass reads every key file in full and records its signature in the key-file
      // ledger; from the third on (every hourly pass of a host's life), one statx per file. Both
      // the steady pass and the one-change pass are the median of three runs.
      await pass("no-change pass");
      await pass("steady no-change pass (3rd-5th, median)", RUNS);
      // What each cache buys: the steady pass of this build with it switched off (then on again:
      // a pass without a cache leaves the cache's file as it was).
      const self = BUILDS.filter((b) => b.label === "this");
      for (const off of ["page-memo", "key-ledger", "page-memo,key-ledger"]) {
        await pass(`steady no-change pass, caches off: ${off} (median)`, RUNS, undefined, { DDUM_CACHES_OFF: off }, self);
      }
      const changed = Array.from({ length: RUNS }, (_, i) => users[Math.floor((n * (i + 1)) / (RUNS + 1))]!);
      await pass("one-change pass (median of 3)", RUNS, (i) => client.send(new PutItemCommand({ TableName: "Users", Item: { ...changed[i]!, Shell: { S: "/bin/zsh" } } })).then(() => {}));
      for (const original of changed) await client.send(new PutItemCommand({ TableName: "Users", Item: original }));
      if (mode.label.startsWith("keys in /etc")) {
        const name = "user000001";
        for (const [b, build] of BUILDS.entries()) {
          const times: number[] = [];
          for (let i = 0; i < STARTUP_RUNS; i++) times.push((await measure([build.bin, "authorized-keys", "--root", roots[b]!, "-c", mode.cfg, name])).ms);
          results.push({ n, scenario: "ddum authorized-keys NAME (median start-up)", build: build.label, ms: median(times), ratio: 0, rssMb: 0, written: { accounts: 0, homes: 0, keys: 0, state: 0 }, postScanMs: null });
        }
        // Change detection by the tables' version (change_detection "version"), this build only, on
        // its root as the passes above left it: the no-change pass against the scanning one of this run.
        const root = roots[BUILDS.findIndex((b) => b.label === "this")]!;
        const vcfg = cfgPath("mode2-version", { ssh_key_location: "/etc/ssh/authorized_keys/%u", create_homes: false, change_detection: "version" });
        await ensureVersion(ours, "Users");
        const vpass = async (scenario: string, runs = 1, before?: () => Promise<void>) => {
          const samples: { m: Measured; doc: PassDoc; written: Row["written"] }[] = [];
          for (let i = 0; i < runs; i++) {
            await before?.();
            const since = Date.now() - 1;
            const m = await measure([DDUM, "sync", "--json", "--root", root, "-c", vcfg]);
            const doc = m.stdout ? (JSON.parse(m.stdout) as PassDoc) : null;
            if (m.code !== 0 || !doc) throw new Error(`${scenario}: exit ${m.code}: ${m.stderr.slice(0, 2000)}`);
            samples.push({ m, doc, written: writtenSince(root, since) });
            console.error(`  ${scenario} #${i + 1}: ${(m.ms / 1000).toFixed(3)} s, ${doc.detection?.kind}, ${doc.readUnits} read units (${doc.detection?.reason})`);
          }
          return { row: addRow(scenario, "this", samples, runs), doc: samples[samples.length - 1]!.doc };
        };
        // The first pass scans and records the snapshot; the next ones plan from it until one has
        // nothing to do and records the steady record (files just written must settle first).
        let last = await vpass("version mode: first pass (full scan, records the snapshot)");
        for (let i = 0; i < 4 && last.doc.detection?.kind !== "steady"; i++) {
          last = await vpass(`version mode: no-change pass #${i + 2} (${last.doc.detection?.kind === "scan" ? "after the scan" : "after a pass that planned"})`);
        }
        const steady = await vpass("version mode: steady no-change pass (median of 3)", RUNS);
        const scanning = results.find((r) => r.n === n && (r.build ?? "this") === "this" && r.scenario === `steady no-change pass (3rd-5th, median), ${mode.label}`)!;
        Object.assign(steady.row, { versionVsScan: steady.row.ms / scanning.ms });
        const who = "user000007";
        const changedBy = await vpass("version mode: one-change pass after ddum user set", 1, async () => {
          const r = await measure([DDUM, "user", "set", who, "--shell", "/bin/zsh", "-c", vcfg]);
          if (r.code !== 0) throw new Error(`ddum user set: exit ${r.code}: ${r.stderr}`);
        });
        Object.assign(changedBy.row, { applied: (changedBy.doc.actions ?? []).map((a) => `${a.kind} ${a.name}`) });
        await vpass("version mode: the pass after the change");
      }
    }
    for (let i = 0; i < 2; i++) await scanFloor();
    floor = [...floors].sort((a, b) => a.ms - b.ms)[2]!;
    floorMs = floor.ms;
    Object.assign(floorRow, { ms: floorMs, rssMb: floor.rssKb / 1024, floorSamplesMs: floors.map((f) => Math.round(f.ms)) });
    for (const r of results) if (r.n === n && r.ratio !== 0) r.ratio = r.ms / floorMs;
    console.error(`  floor, median of ${floors.length}: ${(floorMs / 1000).toFixed(2)} s (samples ${floors.map((f) => (f.ms / 1000).toFixed(2)).join(", ")})`);
    // Removed when everything is measured: deleting 100,000 files makes this kind of disk slow
    // for a while (discard), which would be charged to whatever runs next.
    leftovers.push(work);
  } finally {
    client.destroy();
    dyn.stop();
  }
}

async function main() {
  const results: Row[] = [];
  const version: number[] = [];
  for (let i = 0; i < STARTUP_RUNS; i++) version.push((await measure([DDUM, "--version"])).ms);
  results.push({ n: 0, scenario: "ddum --version (median start-up)", ms: median(version), ratio: 0, rssMb: 0, written: { accounts: 0, homes: 0, keys: 0, state: 0 }, postScanMs: null });
  for (const n of SIZES) {
    console.error(`N = ${n}`);
    await benchSize(n, results);
  }

  // ---- report ----
  const pad = (s: string, w: number) => (s.length >= w ? s : s + " ".repeat(w - s.length));
  const kb = (b: number) => (b === 0 ? "0" : `${(b / 1024).toFixed(0)} KiB`);
  console.log(`\n${pad("N", 8)}${pad("scenario", 92)}${pad("wall s", 9)}${pad("x floor", 9)}${pad("RSS MB", 8)}${pad("accounts s", 14)}${pad("homes/keys s", 14)}${pad("read units", 12)}${pad("kind", 10)}written (accounts / homes / keys / state)`);
  for (const r of results) {
    const w = r.written;
    const who = BUILDS.length > 1 && r.build ? ` [${r.build}]` : "";
    console.log(
      `${pad(String(r.n || ""), 8)}${pad(r.scenario + who, 92)}${pad((r.ms / 1000).toFixed(3), 9)}${pad(r.ratio ? r.ratio.toFixed(2) : "", 9)}${pad(r.rssMb ? r.rssMb.toFixed(0) : "", 8)}${pad(r.postScanMs === null ? "" : (r.postScanMs / 1000).toFixed(2), 14)}${pad(r.homesMs == null ? "" : (r.homesMs / 1000).toFixed(2), 14)}${pad(r.readUnits === undefined ? "" : String(r.readUnits), 12)}${pad(r.kind ?? "", 10)}${r.scenario.includes("pass") ? `${kb(w.accounts)} / ${kb(w.homes)} / ${kb(w.keys)} / ${kb(w.state)}` : ""}`,
    );
  }

  const find = (n: number, s: string) => results.find((r) => r.n === n && r.scenario.startsWith(s) && (r.build ?? "this") === "this");
  if (BUILDS.length > 1) {
    // The comparison: each pass of this build against the baseline's, in the same run.
    console.log(`\nThis build against the baseline (${BUILDS[0]!.bin}), same run, same server and data:`);
    console.log(`${pad("N", 8)}${pad("scenario", 92)}${pad("base s", 9)}${pad("this s", 9)}${pad("this/base", 11)}${pad("base cpu s", 12)}${pad("this cpu s", 12)}${pad("cpu t/b", 9)}${pad("base MB", 9)}this MB`);
    for (const r of results) {
      if (r.build !== "this" || r.n === 0) continue;
      const base = results.find((x) => x.n === r.n && x.scenario === r.scenario && x.build === "baseline");
      if (!base) continue;
      const cpu = (x: Row) => (x.cpuMs === undefined ? "" : (x.cpuMs / 1000).toFixed(3));
      const cpuRatio = r.cpuMs && base.cpuMs ? (r.cpuMs / base.cpuMs).toFixed(3) : "";
      console.log(
        `${pad(String(r.n), 8)}${pad(r.scenario, 92)}${pad((base.ms / 1000).toFixed(3), 9)}${pad((r.ms / 1000).toFixed(3), 9)}${pad((r.ms / base.ms).toFixed(3), 11)}${pad(cpu(base), 12)}${pad(cpu(r), 12)}${pad(cpuRatio, 9)}${pad(base.rssMb ? base.rssMb.toFixed(0) : "", 9)}${r.rssMb ? r.rssMb.toFixed(0) : ""}`,
      );
    }
  }
  const targets: { what: string; holds: boolean; figure: string }[] = [];
  for (const n of SIZES) {
    if (process.env.BENCH_MODES) break;
    const m2 = (s: string) => find(n, `${s}, keys in /etc`)!;
    const m1 = (s: string) => find(n, `${s}, homes and keys`)!;
    targets.push({ what: `N=${n} mode 2: first pass <= 1.5x floor`, holds: m2("first pass").ratio <= 1.5, figure: `${m2("first pass").ratio.toFixed(2)}x` });
    const nc = m2("no-change pass");
    targets.push({ what: `N=${n} mode 2: no-change pass <= 1.2x floor and writes 0 bytes to accounts/keys`, holds: nc.ratio <= 1.2 && nc.written.accounts + nc.written.keys + nc.written.homes === 0, figure: `${nc.ratio.toFixed(2)}x, ${nc.written.accounts + nc.written.keys + nc.written.homes} bytes` });
    const steady = m2("steady no-change pass (3rd-5th, median)");
    targets.push({ what: `N=${n} mode 2: steady no-change pass (median of 3) <= 1.2x floor, 0 bytes`, holds: steady.ratio <= 1.2 && steady.written.accounts + steady.written.keys + steady.written.homes === 0, figure: `${steady.ratio.toFixed(2)}x` });
    targets.push({ what: `N=${n} mode 2: one-change pass <= 1.2x floor`, holds: m2("one-change pass (median of 3)").ratio <= 1.2, figure: `${m2("one-change pass (median of 3)").ratio.toFixed(2)}x` });
    targets.push({ what: `N=${n} mode 1: no-change pass <= 1.2x floor, no home touched`, holds: m1("no-change pass").ratio <= 1.2 && m1("no-change pass").written.homes === 0, figure: `${m1("no-change pass").ratio.toFixed(2)}x, ${m1("no-change pass").written.homes} bytes in homes` });
    targets.push({ what: `N=${n} mode 1: steady no-change pass (median of 3) <= 1.2x floor, no home touched`, holds: m1("steady no-change pass (3rd-5th, median)").ratio <= 1.2 && m1("steady no-change pass (3rd-5th, median)").written.homes === 0, figure: `${m1("steady no-change pass (3rd-5th, median)").ratio.toFixed(2)}x` });
    if (n === 100000) targets.push({ what: "N=100000 mode 1: first pass < 20 s", holds: m1("first pass").ms < 20000, figure: `${(m1("first pass").ms / 1000).toFixed(1)} s` });
    // Peak resident size of the first and the no-change pass, each key layout: the old daemon's
    // peak at these sizes was 87-94 MB and 212-228 MB.
    const rssLimit = n <= 10000 ? 90 : n <= 100000 ? 200 : null;
    if (rssLimit !== null) {
      for (const [label, row] of [["mode 2", m2], ["mode 1", m1]] as const) {
        for (const scenario of ["first pass", "no-change pass"]) {
          const r = row(scenario);
          targets.push({ what: `N=${n} ${label}: ${scenario} peak RSS <= ${rssLimit} MB`, holds: r.rssMb <= rssLimit, figure: `${r.rssMb.toFixed(0)} MB` });
        }
      }
    }
  }
  for (const n of SIZES) {
    if (process.env.BENCH_MODES && !process.env.BENCH_MODES.includes("2")) break;
    const steady = find(n, "version mode: steady no-change pass");
    const scanning = find(n, "steady no-change pass (3rd-5th, median), keys in /etc");
    if (steady && scanning) {
      targets.push({
        what: `N=${n} mode 2, change_detection "version": a no-change pass consumes <= 1 read unit and takes < 10% of the scanning no-change pass`,
        holds: steady.kind === "steady" && (steady.readUnits ?? 99) <= 1 && steady.ms < 0.1 * scanning.ms,
        figure: `${steady.kind}, ${steady.readUnits} read units, ${(steady.ms / 1000).toFixed(3)} s vs ${(scanning.ms / 1000).toFixed(3)} s scanning (${((steady.ms / scanning.ms) * 100).toFixed(1)}%; scanning: ${scanning.readUnits} read units)`,
      });
    }
    const one = find(n, "version mode: one-change pass after ddum user set");
    if (one) {
      targets.push({
        what: `N=${n} mode 2, change_detection "version": the pass after ddum user set scans once and applies the change`,
        holds: one.kind === "scan" && (one.applied ?? []).includes("update-user user000007"),
        figure: `${one.kind}, ${one.readUnits} read units, applied ${JSON.stringify(one.applied)}, ${(one.ms / 1000).toFixed(3)} s`,
      });
    }
  }
  const ak = find(SIZES[SIZES.length - 1]!, "ddum authorized-keys")!;
  targets.push({ what: "ddum authorized-keys median <= 100 ms", holds: ak.ms <= 100, figure: `${ak.ms.toFixed(0)} ms` });
  if (SIZES.includes(10000) && SIZES.includes(100000) && !process.env.BENCH_MODES) {
    const post = (n: number) => find(n, "first pass, keys in /etc")!.postScanMs!;
    targets.push({ what: "work after the scan (first pass, mode 2): 100k <= 12x 10k", holds: post(100000) <= 12 * post(10000), figure: `${(post(100000) / post(10000)).toFixed(1)}x` });
  }
  // What each cache buys: the steady no-change pass with the cache switched off, against it on.
  const worth = results.filter((r) => r.scenario.includes("caches off:") && (r.build ?? "this") === "this");
  if (worth.length > 0) {
    console.log("\nWhat each cache buys (steady no-change pass, this build; kept only if it saves >= 15%):");
    for (const r of worth) {
      const mode = r.scenario.slice(r.scenario.lastIndexOf("), ") + 3);
      const on = results.find((x) => x.n === r.n && (x.build ?? "this") === "this" && x.scenario === `steady no-change pass (3rd-5th, median), ${mode}`);
      if (!on) continue;
      const off = /caches off: ([a-z,-]+)/.exec(r.scenario)![1];
      const saved = (s: number, o: number) => `${(((o - s) / o) * 100).toFixed(0)}%`;
      console.log(
        `  N=${r.n} ${mode}: ${off} off ${(r.ms / 1000).toFixed(3)} s (cpu ${((r.cpuMs ?? 0) / 1000).toFixed(3)}), on ${(on.ms / 1000).toFixed(3)} s (cpu ${((on.cpuMs ?? 0) / 1000).toFixed(3)}): saves ${saved(on.ms, r.ms)} wall, ${saved(on.cpuMs ?? 0, r.cpuMs ?? 1)} cpu`,
      );
    }
  }
  console.log("\nTargets:");
  for (const t of targets) console.log(`  ${t.holds ? "HOLDS " : "MISSED"}  ${t.what}: ${t.figure}`);

  mkdirSync(join(REPO, "bench", "results"), { recursive: true });
  const file = join(REPO, "bench", "results", `bench-${new Date().toISOString().replace(/[:.]/g, "-")}.json`);
  writeFileSync(file, JSON.stringify({ date: new Date().toISOString(), segments: SEGMENTS, results, targets }, null, 2));
  console.log(`\nwritten to ${file.slice(REPO.length + 1)}`);
  for (const dir of leftovers) rmSync(dir, { recursive: true, force: true });
}

await main();

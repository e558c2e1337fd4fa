// Profile one pass in-process: bun --cpu-prof-md bench/profile.ts N [mode2|mode1]
// Seeds an in-process dynalite, then runs a first pass and a no-change pass into a temp root.
import { cpSync, mkdtempSync } from "node:fs";
import { join } from "node:path";
import { parseConfig } from "../src/config.ts";
import { Root } from "../src/paths.ts";
import { runPass } from "../src/sync.ts";
import { startDynalite } from "../tests/helpers/dynalite.ts";
import { profileUser } from "./profile-items.ts";

const n = Number(process.argv[2] ?? 10000);
const mode = process.argv[3] ?? "mode2";
const d = await startDynalite();
await d.createTables();
await d.put(
  "Users",
  Array.from({ length: n }, (_, i) => profileUser(i)),
);
const root = mkdtempSync(join(process.env.BENCH_DIR ?? "/var/tmp", "ddum-prof-"));
cpSync(join(import.meta.dir, "..", "examples", "debian12-root"), root, { recursive: true });
const { config } = parseConfig({
  endpoint_url: d.endpoint,
  aws_region: "us-east-1",
  aws_access_key: "x",
  aws_secret_key: "y",
  uid_max: 1000000,
  gid_max: 1000000,
  ...(mode === "mode2" ? { ssh_key_location: "/etc/ssh/authorized_keys/%u", create_homes: false } : {}),
});
for (const label of ["first", "no-change"]) {
  const r = await runPass(config, { root: new Root(root), dryRun: false, force: false });
  console.log(label, JSON.stringify(r.timings, (_k, v) => (typeof v === "number" ? Math.round(v) : v)), JSON.stringify(r.counts), `rss ${Math.round(process.memoryUsage().rss / 1048576)} MB`);
}
await d.close();

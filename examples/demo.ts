// `npm run demo`: sync the example tables from an embedded DynamoDB (dynalite) into a sandbox
// root holding a copy of a stock Debian account database. No AWS account, no change to /etc.
import { spawn } from "node:child_process";
import { cpSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { BatchWriteItemCommand, DynamoDBClient } from "@aws-sdk/client-dynamodb";
import dynalite from "dynalite";
import type { AddressInfo } from "node:net";
import { clientAt, createTables } from "../src/source/dynamo.ts";

const repo = join(import.meta.dir, "..");
const work = join(repo, ".tmp", "demo");
const root = join(work, "root");
rmSync(work, { recursive: true, force: true });
mkdirSync(work, { recursive: true });
cpSync(join(repo, "examples", "debian12-root"), root, { recursive: true });

const server = dynalite({ createTableMs: 0 });
await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
const endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
const client = new DynamoDBClient({ endpoint, region: "us-east-1", credentials: { accessKeyId: "demo", secretAccessKey: "demo" }, requestHandler: { requestTimeout: 30_000, connectionTimeout: 10_000, throwOnRequestTimeout: true } });
const tables = JSON.parse(readFileSync(join(repo, "examples", "tables.json"), "utf8"));
await createTables(clientAt(endpoint, { accessKeyId: "demo", secretAccessKey: "demo" }), ["Users", "Groups"]);
for (const name of ["Users", "Groups"]) {
  const items = tables[name] as Record<string, unknown>[];
  await client.send(new BatchWriteItemCommand({ RequestItems: { [name]: items.map((Item) => ({ PutRequest: { Item } })) } as never }));
}
const cfg = join(work, "ddum.cfg");
writeFileSync(
  cfg,
  JSON.stringify({ endpoint_url: endpoint, aws_region: "us-east-1", aws_access_key: "demo", aws_secret_key: "demo", merge_groups: ["sudo"] }, null, 2),
  { mode: 0o600 },
);

const ddum = join(repo, "dist", "ddum");
const bold = process.stdout.isTTY === true && !process.env.NO_COLOR;
// Children run asynchronously: the embedded DynamoDB answers from this process's event loop.
const show = async (title: string, cmd: string, args: string[]) => {
  // Bold only on a terminal (and not with NO_COLOR): a pipe or a file gets plain text.
  console.log(bold ? `\n\x1b[1m$ ${title}\x1b[0m` : `\n$ ${title}`);
  const child = spawn(cmd, args, { stdio: "inherit" });
  return await new Promise<number | null>((r) => child.on("exit", (code) => r(code)));
};
const rel = (p: string) => p.replace(`${repo}/`, "");
await show(`ddum sync --dry-run --root ${rel(root)} -c ${rel(cfg)}`, ddum, ["sync", "--dry-run", "--root", root, "-c", cfg]);
const code = await show(`ddum sync --root ${rel(root)} -c ${rel(cfg)}`, ddum, ["sync", "--root", root, "-c", cfg]);
console.log(`(exit code ${code}: 3 means applied, with some records rejected or refused)`);
for (const f of ["passwd", "group", "shadow", "gshadow"]) {
  await show(`diff -u ${f}- ${f}`, "diff", ["-u", "--label", `etc/${f} (before)`, "--label", `etc/${f} (after)`, join(root, "etc", `${f}-`), join(root, "etc", f)]);
}
await show(`pwck -qr -R ${rel(root)} && grpck -r -R ${rel(root)}`, "sh", ["-c", `pwck -qr -R '${root}' && grpck -r -R '${root}' && echo "account files check clean"`]);
await show("ddum sync (second pass: nothing to do, nothing written)", ddum, ["sync", "--root", root, "-c", cfg]);
client.destroy();
server.close();

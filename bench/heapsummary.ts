// What a heap snapshot (DDUM_HEAP_SNAPSHOT=PHASE:FILE, see src/perf.ts) holds, by kind, and its
// strings by size: where a pass's live memory is. Usage: bun bench/heapsummary.ts FILE
import { readFileSync } from "node:fs";

const snap = JSON.parse(readFileSync(process.argv[2]!, "utf8")) as { nodes: number[]; nodeClassNames: string[] };
// A node is [id, size, class name index, flags].
const { nodes, nodeClassNames: names } = snap;
const count = new Map<string, number>();
const bytes = new Map<string, number>();
const strings = new Map<string, { n: number; bytes: number }>();
for (let i = 0; i < nodes.length; i += 4) {
  const kind = names[nodes[i + 2]!]!;
  const size = nodes[i + 1]!;
  count.set(kind, (count.get(kind) ?? 0) + 1);
  bytes.set(kind, (bytes.get(kind) ?? 0) + size);
  if (kind === "string") {
    const band = size < 32 ? "< 32 B" : size < 64 ? "32-63 B" : size < 128 ? "64-127 B" : size < 100_000 ? "128 B - 100 kB" : ">= 100 kB";
    const s = strings.get(band) ?? { n: 0, bytes: 0 };
    s.n++;
    s.bytes += size;
    strings.set(band, s);
  }
}
const mb = (n: number) => (n / 1048576).toFixed(1);
const total = [...bytes.values()].reduce((a, b) => a + b, 0);
console.log(`live: ${mb(total)} MB in ${nodes.length / 4} cells`);
for (const [kind, b] of [...bytes].sort((x, y) => y[1] - x[1]).slice(0, 12)) console.log(`  ${kind.padEnd(28)} ${String(count.get(kind)).padStart(9)} ${mb(b).padStart(8)} MB`);
console.log("strings by size:");
for (const [band, s] of strings) console.log(`  ${band.padEnd(28)} ${String(s.n).padStart(9)} ${mb(s.bytes).padStart(8)} MB`);

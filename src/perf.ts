// What a pass tells about its own cost, and when it lets the collector run: one small interface,
// passed in a pass's options. The default does nothing; the ddum executable passes hostHooks().

export interface PassHooks {
  /** A phase of the pass has ended (for the memory trace). */
  phase(name: string): void;
  /**
   * A good moment to collect garbage: full when a large heap just became garbage (a first pass's
   * plan), else a quick collection between pieces of bulk work.
   */
  collect(full: boolean): void;
  /** A line for whoever traces the pass. */
  note(line: string): void;
}

export const NO_HOOKS: PassHooks = { phase() {}, collect() {}, note() {} };

/** The caches a pass may use; each is only a cache, and a pass without it does the work itself. */
export interface Caches {
  /** The page memo (pagememo.ts). */
  pageMemo: boolean;
  /** The key-file ledger (keyledger.ts). */
  keyLedger: boolean;
}

export const ALL_CACHES: Caches = { pageMemo: true, keyLedger: true };

/**
 * The caches as DDUM_CACHES_OFF names them switched off (a comma list of page-memo, key-ledger):
 * for measuring what each buys (make bench), never needed in operation.
 */
export function cachesFromEnv(env: Record<string, string | undefined> = process.env): Caches {
  const off = new Set((env.DDUM_CACHES_OFF ?? "").split(",").map((s) => s.trim()));
  return { pageMemo: !off.has("page-memo"), keyLedger: !off.has("key-ledger") };
}

/**
 * What the executable runs a pass with: collections where bulk work leaves garbage (at 100,000
 * new users, hundreds of megabytes of resident memory otherwise), and with DDUM_TRACE_MEMORY=1
 * the time and resident size after each phase on stderr (for the benchmark); =heap adds the
 * JavaScript heap's size and object count (slow: it walks the heap); DDUM_HEAP_SNAPSHOT=PHASE:FILE
 * writes a heap snapshot after that phase.
 */
export function hostHooks(env: Record<string, string | undefined> = process.env): PassHooks {
  const mode = env.DDUM_TRACE_MEMORY;
  const note = mode ? (line: string) => void process.stderr.write(`${line}\n`) : () => {};
  return {
    phase(name) {
      // DDUM_HEAP_SNAPSHOT=PHASE:FILE: after a full collection, the heap as a JavaScriptCore
      // snapshot (what is live, by kind, for bench/heapsummary.ts).
      const snap = env.DDUM_HEAP_SNAPSHOT;
      if (snap?.startsWith(`${name}:`)) {
        Bun.gc(true);
        require("node:fs").writeFileSync(snap.slice(name.length + 1), JSON.stringify(Bun.generateHeapSnapshot()));
      }
      if (!mode) return;
      let heap = "";
      if (mode === "heap") {
        const jsc = require("bun:jsc");
        const { heapSize, objectCount, extraMemorySize } = jsc.heapStats();
        const { external, arrayBuffers } = process.memoryUsage();
        const mb = (n: number) => Math.round(n / 1048576);
        heap = `, heap at the last collection ${mb(heapSize)} MB (${objectCount} objects, ${mb(extraMemorySize)} MB outside cells), external ${mb(external)} MB (array buffers ${mb(arrayBuffers)} MB)`;
      }
      note(`${Math.round(performance.now())} ms, memory after ${name}: rss ${Math.round(process.memoryUsage().rss / 1048576)} MB${heap}`);
    },
    collect(full) {
      Bun.gc(full);
      if (full) this.phase("gc");
    },
    note,
  };
}

// The second thread of createHomesInParallel (homes.ts): creates each batch of homes it is sent
// and answers, for each, null (made) or why not. Built into the executable as its own entry point.
import { createHomes, type HomeJob, type SkelEntry } from "./homes.ts";
import { setLabelRoot } from "./selinux.ts";

declare const self: Worker;

let skel: SkelEntry[] = [];
let batches = 0;
// Collections between batches only when the pass was given collection hints (see perf.ts).
let collect = false;
self.onmessage = (e: MessageEvent) => {
  const msg = e.data as { jobs: HomeJob[]; mode: number; skel?: SkelEntry[]; labelRoot?: string; collect?: boolean };
  if (msg.skel) skel = msg.skel;
  if (msg.labelRoot) setLabelRoot(msg.labelRoot);
  if (msg.collect !== undefined) collect = msg.collect;
  postMessage(createHomes(msg.jobs, msg.mode, skel));
  if (++batches % 20 === 0 && collect) Bun.gc(false);
};

// The second thread of createHomesInParallel (homes.ts): creates each batch of homes it is sent
// and answers, for each, null (made) or why not. Built into the executable as its own entry point.
import { createHomes, type HomeJob, type SkelEntry } from "./homes.ts";
import { setLabelRoot } from "./selinux.ts";

declare const self: Worker;

let skel: SkelEntry[] = [];
let batches = 0;
// Collections every so many batches, only when the pass was given collection hints (see perf.ts).
let collectEvery = 0;
self.onmessage = (e: MessageEvent) => {
  const msg = e.data as { jobs: HomeJob[]; mode: number; skel?: SkelEntry[]; labelRoot?: string; collectEvery?: number };
  if (msg.skel) skel = msg.skel;
  if (msg.labelRoot) setLabelRoot(msg.labelRoot);
  if (msg.collectEvery !== undefined) collectEvery = msg.collectEvery;
  postMessage(createHomes(msg.jobs, msg.mode, skel));
  if (collectEvery > 0 && ++batches % collectEvery === 0) Bun.gc(false);
};

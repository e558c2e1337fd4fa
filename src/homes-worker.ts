// The second thread of createHomesInParallel (homes.ts): creates each batch of homes it is sent
// and answers, for each, null (made) or why not. Built into the executable as its own entry point.
import { createHomes, type HomeJob, type SkelEntry } from "./homes.ts";
import { setLabelRoot } from "./selinux.ts";

declare const self: Worker;

let skel: SkelEntry[] = [];
let batches = 0;
self.onmessage = (e: MessageEvent) => {
  const msg = e.data as { jobs: HomeJob[]; mode: number; skel?: SkelEntry[]; labelRoot?: string };
  if (msg.skel) skel = msg.skel;
  if (msg.labelRoot) setLabelRoot(msg.labelRoot);
  postMessage(createHomes(msg.jobs, msg.mode, skel));
  if (++batches % 20 === 0) Bun.gc(false);
};

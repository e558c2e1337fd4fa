// Guarantees of the commit that a one-line mistake would break silently: each file keeps its own
// mode and owner, and the commit runs while the lckpwdf() lock and all four FILE.lock files are
// held. Checked on the compiled binary: the files' stat after a pass, and the binary's own system
// calls (strace) during one.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { chmodSync, chownSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { DDUM, ddum, writeConfig } from "./helpers/ddum.ts";
import { type Dynamo, groupItem, startDynalite, userItem } from "./helpers/dynalite.ts";
import { ACCOUNT_FILES, cleanupRoots, makeRoot, snapshot } from "./helpers/root.ts";

let d: Dynamo;
let n = 0;
beforeAll(async () => {
  d = await startDynalite();
  await d.createTables();
});
afterAll(async () => {
  await d.close();
  cleanupRoots();
});

/** A new user and a new group in the tables: a pass then rewrites all four files. */
async function somethingNew(): Promise<void> {
  n++;
  await d.put("Users", [userItem(`guser${n}`, 4000 + n, { Groups: { SS: [`gteam${n}`] } })]);
  await d.put("Groups", [groupItem(`gteam${n}`, 5000 + n)]);
}

const statOf = (p: string) => {
  const st = statSync(p);
  return { mode: (st.mode & 0o7777).toString(8), uid: st.uid, gid: st.gid };
};

describe("the commit keeps each file's own mode and owner", () => {
  // Owners nobody would pick as a default, so that no fallback can pass for the original.
  const layouts: Record<string, Record<(typeof ACCOUNT_FILES)[number], [number, number, number]>> = {
    "Amazon Linux (shadow 0000, gshadow 0000)": { passwd: [0o644, 0, 0], shadow: [0o000, 0, 0], group: [0o644, 0, 0], gshadow: [0o000, 0, 0] },
    "shadow 0600 root:root, gshadow 0000": { passwd: [0o644, 0, 0], shadow: [0o600, 0, 0], group: [0o644, 0, 0], gshadow: [0o000, 0, 0] },
    "odd modes and owners on every file": { passwd: [0o640, 7, 8], shadow: [0o400, 9, 42], group: [0o604, 11, 12], gshadow: [0o440, 13, 42] },
  };
  for (const [name, layout] of Object.entries(layouts)) {
    test(name, async () => {
      const root = makeRoot();
      for (const f of ACCOUNT_FILES) {
        const [mode, uid, gid] = layout[f];
        chownSync(join(root, "etc", f), uid, gid);
        chmodSync(join(root, "etc", f), mode);
      }
      await somethingNew();
      const before = snapshot(root);
      const r = await ddum(["sync", "--root", root, "-c", writeConfig(d)]);
      expect(r.stderr).toBe("");
      expect(r.code).toBe(0);
      for (const f of ACCOUNT_FILES) {
        const [mode, uid, gid] = layout[f];
        // Rewritten, so the kept mode and owner are the commit's doing.
        expect(readFileSync(join(root, "etc", f), "utf8")).not.toBe(before[f]);
        expect({ f, ...statOf(join(root, "etc", f)) }).toEqual({ f, mode: mode.toString(8), uid, gid });
        // The FILE- backup is the previous file, and keeps its mode and owner too.
        expect({ f, ...statOf(join(root, "etc", `${f}-`)) }).toEqual({ f, mode: mode.toString(8), uid, gid });
      }
    });
  }
});

interface Event {
  call: string;
  paths: string[];
  fd: string | null;
  ok: boolean;
}

/** The strace -y log as events; a call split by another thread's is put back together. */
function events(log: string): Event[] {
  const pending = new Map<string, string>();
  const out: Event[] = [];
  for (const raw of log.split("\n")) {
    const m = /^(\d+)\s+(.*)$/.exec(raw);
    if (!m) continue;
    const [, pid, rest] = m as unknown as [string, string, string];
    let line = rest;
    if (line.endsWith("<unfinished ...>")) {
      pending.set(pid, line.slice(0, -"<unfinished ...>".length));
      continue;
    }
    const resumed = /^<\.\.\. \w+ resumed>(.*)$/.exec(line);
    if (resumed) {
      line = (pending.get(pid) ?? "") + resumed[1];
      pending.delete(pid);
    }
    const call = /^(\w+)\(/.exec(line)?.[1];
    if (!call) continue;
    const paths = [...line.matchAll(/"((?:[^"\\]|\\.)*)"/g)].map((x) => x[1]!);
    const fd = /^\w+\(\d+<([^>]*)>/.exec(line)?.[1] ?? null;
    out.push({ call, paths, fd, ok: / = 0$/.test(line) });
  }
  return out;
}

describe("the commit runs under every lock", () => {
  test("each rename onto an account file or its backup happens with .pwd.lock locked and all four FILE.lock held", async () => {
    const root = makeRoot();
    await somethingNew();
    const etc = join(root, "etc");
    const logFile = join(root, "strace.log");
    const proc = Bun.spawn(
      ["strace", "-f", "-qq", "-y", "-e", "trace=link,linkat,rename,renameat,renameat2,unlink,unlinkat,fcntl,close", "-o", logFile, DDUM, "sync", "--root", root, "-c", writeConfig(d)],
      { stdout: "pipe", stderr: "pipe" },
    );
    const [, stderr, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
    expect(stderr).toBe("");
    expect(code).toBe(0);
    const held = new Set<string>();
    let pwdLocked = false;
    const targets = new Set(ACCOUNT_FILES.flatMap((f) => [`${etc}/${f}`, `${etc}/${f}-`]));
    const renamed: string[] = [];
    for (const e of events(readFileSync(logFile, "utf8"))) {
      if (!e.ok) continue;
      if (e.call === "fcntl" && e.fd === `${etc}/.pwd.lock`) pwdLocked = true;
      else if (e.call === "close" && e.fd === `${etc}/.pwd.lock`) pwdLocked = false;
      else if (e.call.startsWith("link") && e.paths.at(-1)?.endsWith(".lock")) held.add(e.paths.at(-1)!);
      else if (e.call.startsWith("unlink") && e.paths.at(-1)?.endsWith(".lock")) held.delete(e.paths.at(-1)!);
      else if (e.call.startsWith("rename") && targets.has(e.paths.at(-1)!)) {
        const target = e.paths.at(-1)!;
        renamed.push(target.slice(etc.length + 1));
        expect({ target, pwdLocked, held: [...held].sort() }).toEqual({
          target,
          pwdLocked: true,
          held: ["group.lock", "gshadow.lock", "passwd.lock", "shadow.lock"].map((l) => `${etc}/${l}`),
        });
      }
    }
    // The pass did replace all four files and their backups, and let go of every lock at its end.
    expect(renamed.sort()).toEqual([...targets].map((t) => t.slice(etc.length + 1)).sort());
    expect([...held]).toEqual([]);
    expect(pwdLocked).toBe(false);
  });
});

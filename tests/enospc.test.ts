// A full disk under /etc: a real tmpfs of a few pages, mounted inside `unshare --mount` over a
// scratch root's etc, with the compiled binary. Whatever page the space runs out at, the pass
// leaves no temp file and no lock behind, changes nothing or everything, and the next pass (or
// the daemon's next round) applies once there is room again.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { cpSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { DDUM, writeConfig } from "./helpers/ddum.ts";
import { type Dynamo, startDynalite, userItem } from "./helpers/dynalite.ts";
import { ACCOUNT_FILES, cleanupRoots, makeRoot } from "./helpers/root.ts";

let d: Dynamo;
const USERS = Array.from({ length: 80 }, (_, i) => `user${String(i).padStart(3, "0")}`);

beforeAll(async () => {
  d = await startDynalite();
  await d.createTables();
  await d.put("Users", USERS.map((n, i) => userItem(n, 3000 + i, { RealName: { S: `${n} with a long real name to fill pages` } })));
});
afterAll(async () => {
  await d.close();
  cleanupRoots();
});

/**
 * A root whose etc is a 1 MiB tmpfs (inside a private mount namespace) filled up to `free`
 * pages; then `body` (bash, with $R, $DDUM, $CFG) runs there. What the test looks at is copied
 * out to $R/out before the namespace, and the tmpfs with it, goes away.
 */
async function inFullEtc(free: number, body: string, config: Record<string, unknown> = {}) {
  const root = makeRoot();
  cpSync(join(root, "etc"), join(root, "etc.orig"), { recursive: true });
  mkdirSync(join(root, "out"));
  const cfg = writeConfig(d, { lock_timeout: 2, state_dir: "/var/lib/ddum", ...config });
  const script = `set -u
mount -t tmpfs -o size=1m,mode=755 tmpfs "$R/etc" || { echo "MOUNT FAILED"; exit 99; }
[ "$(stat -f -c %T "$R/etc")" = tmpfs ] || { echo "NOT A TMPFS"; exit 99; }
cp -a "$R/etc.orig/." "$R/etc/"
dd if=/dev/zero of="$R/etc/fill" bs=4096 2>/dev/null
size=$(stat -c %s "$R/etc/fill")
truncate -s $((size - ${free} * 4096)) "$R/etc/fill"
${body}
`;
  writeFileSync(join(root, "script.sh"), script);
  // Not spawnSync: the tables are served by this process.
  const proc = Bun.spawn(["unshare", "--mount", "--propagation", "private", "bash", join(root, "script.sh")], {
    stdout: "pipe",
    stderr: "pipe",
    env: { ...process.env, R: root, DDUM, CFG: cfg },
  });
  const [stdout, stderr] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  const r = { stdout, stderr };
  expect(r.stdout).not.toContain("MOUNT FAILED");
  expect(r.stdout).not.toContain("NOT A TMPFS");
  return { root, ...r };
}

const EXPECTED_AFTER = new Set(["fill", "group", "gshadow", "login.defs", "passwd", "shadow", "skel", "passwd-", "shadow-", "group-", "gshadow-", ".pwd.lock"]);

describe("a full /etc", () => {
  // 0 free pages: the lock temps fail; a few: the locks are taken and a temp of the account files
  // fails; more: it all fits. Every case must end clean.
  test("whichever write runs out of space, no temp or lock is left, the files are whole, and the next pass applies", async () => {
    const outcomes = new Set<string>();
    for (const free of [0, 1, 2, 3, 4, 5, 6, 7, 8, 10, 14, 20]) {
      const { root, stdout, stderr } = await inFullEtc(
        free,
        `"$DDUM" sync --root "$R" -c "$CFG" >/dev/null 2>"$R/out/err1"; echo "rc1=$?"
ls -A "$R/etc" > "$R/out/list1"
cp -a "$R/etc/passwd" "$R/etc/shadow" "$R/etc/group" "$R/etc/gshadow" "$R/out/"
rm "$R/etc/fill"
"$DDUM" sync --root "$R" -c "$CFG" >/dev/null 2>"$R/out/err2"; echo "rc2=$?"
ls -A "$R/etc" > "$R/out/list2"
mkdir "$R/out/after"; cp -a "$R/etc/." "$R/out/after/"
pwck -qr -R "$R" >/dev/null 2>&1; echo "pwck=$?"`,
      );
      const out = join(root, "out");
      const rc1 = /rc1=(\d+)/.exec(stdout)?.[1];
      const err1 = readFileSync(join(out, "err1"), "utf8");
      expect({ free, rc1, stderr }).toEqual({ free, rc1: rc1 === "0" ? "0" : "1", stderr: "" });
      const list1 = readFileSync(join(out, "list1"), "utf8").trim().split("\n");
      if (rc1 === "1") {
        outcomes.add(/ENOSPC|no space/i.test(err1) ? "no space" : err1);
        expect(err1).toMatch(/ENOSPC|no space/i);
        // Nothing but what was there: no FILE.PID, no FILE.lock, no .FILE.ddum-* temp.
        expect(list1.filter((n) => !EXPECTED_AFTER.has(n))).toEqual([]);
        for (const f of ACCOUNT_FILES) expect(readFileSync(join(out, f), "utf8")).toBe(readFileSync(join(root, "etc.orig", f), "utf8"));
      } else {
        outcomes.add("applied");
        expect(list1.filter((n) => !EXPECTED_AFTER.has(n))).toEqual([]);
      }
      expect(stdout).toContain("rc2=0");
      expect(stdout).toContain("pwck=0");
      expect(readFileSync(join(out, "list2"), "utf8").trim().split("\n").filter((n) => !EXPECTED_AFTER.has(n))).toEqual([]);
      const passwd = readFileSync(join(out, "after", "passwd"), "utf8");
      for (const n of USERS) expect(passwd).toContain(`\n${n}:x:`);
      rmSync(root, { recursive: true, force: true });
    }
    // The sizes above cover both a failed and an applied first pass.
    expect([...outcomes].sort()).toEqual(["applied", "no space"]);
  });

  test("with the state directory and the metrics file on the full disk too, no temp is left there either", async () => {
    const outcomes = new Set<string>();
    for (const free of [0, 1, 2, 3, 4, 5, 6, 7, 8, 10, 12, 16, 24]) {
      const { root, stdout, stderr } = await inFullEtc(
        free,
        `"$DDUM" sync --root "$R" -c "$CFG" >/dev/null 2>"$R/out/err1"; echo "rc1=$?"
find "$R/etc" -name '*.tmp-*' > "$R/out/temps1"
ls -A "$R/etc" > "$R/out/list1"
rm "$R/etc/fill"
"$DDUM" sync --root "$R" -c "$CFG" >/dev/null 2>"$R/out/err2"; echo "rc2=$?"
find "$R/etc" -name '*.tmp-*' > "$R/out/temps2"
"$DDUM" status --root "$R" -c "$CFG" > "$R/out/status"; echo "status=$?"
mkdir "$R/out/after"; cp -a "$R/etc/." "$R/out/after/"`,
        { state_dir: "/etc/ddum-state", metrics_file: "/etc/ddum-state/ddum.prom" },
      );
      const out = join(root, "out");
      expect({ free, stderr }).toEqual({ free, stderr: "" });
      const rc1 = /rc1=(\d+)/.exec(stdout)?.[1];
      outcomes.add(rc1 === "0" ? "applied" : readFileSync(join(out, "err1"), "utf8").match(/ENOSPC|no space/i)?.[0] ? "no space" : `rc1=${rc1}`);
      expect({ free, temps: readFileSync(join(out, "temps1"), "utf8") }).toEqual({ free, temps: "" });
      const list1 = readFileSync(join(out, "list1"), "utf8").trim().split("\n");
      expect({ free, extra: list1.filter((n) => !EXPECTED_AFTER.has(n) && n !== "ddum-state") }).toEqual({ free, extra: [] });
      expect({ free, rc2: /rc2=(\d+)/.exec(stdout)?.[1], err2: readFileSync(join(out, "err2"), "utf8") }).toEqual({ free, rc2: "0", err2: "" });
      expect(readFileSync(join(out, "temps2"), "utf8")).toBe("");
      expect(stdout).toContain("status=0");
      const state = join(out, "after", "ddum-state");
      expect(readFileSync(join(state, "state.json-"), "utf8")).toBe(readFileSync(join(state, "state.json"), "utf8"));
      expect(JSON.parse(readFileSync(join(state, "state.json"), "utf8")).ownership.users).toEqual(USERS);
      expect(readFileSync(join(state, "ddum.prom"), "utf8")).toContain("ddum_last_pass_success 1");
      rmSync(root, { recursive: true, force: true });
    }
    expect([...outcomes].sort()).toEqual(["applied", "no space"]);
  });

  test("a daemon whose passes fail for want of space applies by itself once space returns", async () => {
    const { root, stdout } = await inFullEtc(
      3,
      `"$DDUM" daemon -f -p "$R/ddum.pid" --root "$R" -c "$CFG" 2>"$R/out/log" &
pid=$!
trap 'kill $pid 2>/dev/null' EXIT
st="$R/var/lib/ddum/status.json"
until grep -q '"result":"failed"' "$st" 2>/dev/null; do sleep 0.05; done
n=$(grep -c . "$R/out/log")
ls -A "$R/etc" > "$R/out/list1"
rm "$R/etc/fill"
until grep -q '"lastSuccess":{' "$st" 2>/dev/null; do sleep 0.05; done
kill -TERM $pid; wait $pid; echo "daemon=$?"
ls -A "$R/etc" > "$R/out/list2"
cp -a "$R/etc/passwd" "$R/out/"`,
      { full_update_period: 1, full_update_jitter: 0 },
    );
    const out = join(root, "out");
    expect(stdout).toContain("daemon=0");
    expect(readFileSync(join(out, "log"), "utf8")).toMatch(/ENOSPC|no space/i);
    for (const l of ["list1", "list2"]) {
      expect(readFileSync(join(out, l), "utf8").trim().split("\n").filter((n) => !EXPECTED_AFTER.has(n))).toEqual([]);
    }
    expect(readFileSync(join(out, "passwd"), "utf8")).toContain("\nuser079:x:3079:");
    const status = JSON.parse(readFileSync(join(root, "var/lib/ddum/status.json"), "utf8"));
    expect(status.lastPass.result).toBe("ok");
  });
});

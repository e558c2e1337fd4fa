// What is particular to Amazon Linux 2023 (the RHEL family) as a host: shadow files 0000
// root:root with no shadow group, ec2-user at UID 1000 inside the managed range, wheel at GID 10.
// (Every other end-to-end test also runs against this root: al2023.test.ts.)
import { afterAll, afterEach, beforeAll, beforeEach, expect, test } from "bun:test";
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ddum, pass, writeConfig } from "./helpers/ddum.ts";
import { type Dynamo, groupItem, startDynalite, userItem } from "./helpers/dynalite.ts";
import { ACCOUNT_FILES, AL2023_ROOT, checkAccounts, cleanupRoots, makeRoot, REPO, run, snapshot } from "./helpers/root.ts";

let d: Dynamo;
beforeAll(async () => {
  d = await startDynalite();
});
afterAll(async () => {
  await d.close();
  cleanupRoots();
});
beforeEach(() => d.createTables());
afterEach(() => d.reset());

const line = (root: string, file: string, name: string) =>
  readFileSync(join(root, "etc", file), "utf8")
    .split("\n")
    .find((l) => l.startsWith(`${name}:`));
const modes = (root: string) =>
  Object.fromEntries(ACCOUNT_FILES.map((f) => [f, (({ mode, uid, gid }) => [(mode & 0o7777).toString(8), uid, gid])(statSync(join(root, "etc", f)))]));

function expectClean(root: string) {
  const { pwck, grpck } = checkAccounts(root);
  expect(`${pwck.stdout}${pwck.stderr}`).toBe("");
  expect(`${grpck.stdout}${grpck.stderr}`).toBe("");
  expect([pwck.code, grpck.code]).toEqual([0, 0]);
}

test("the stock files are as on AL2023: shadow and gshadow 0000 root:root, no shadow group, ec2-user, wheel", () => {
  const root = makeRoot(AL2023_ROOT);
  expect(modes(root)).toEqual({ passwd: ["644", 0, 0], shadow: ["0", 0, 0], group: ["644", 0, 0], gshadow: ["0", 0, 0] });
  expect(line(root, "group", "shadow")).toBeUndefined();
  expect(line(root, "passwd", "ec2-user")).toBe("ec2-user:x:1000:1000:EC2 Default User:/home/ec2-user:/bin/bash");
  expect(line(root, "group", "wheel")).toBe("wheel:x:10:ec2-user");
  expect(readFileSync(join(root, "etc", "login.defs"), "utf8")).toMatch(/^HOME_MODE\t0700$/m);
  expectClean(root);
});

test("a pass that changes all four files keeps 0000 root:root on shadow and gshadow, and pwck/grpck stay clean", async () => {
  const root = makeRoot(AL2023_ROOT);
  const before = modes(root);
  await d.put("Users", [userItem("alice", 2001, { Password: { S: "$6$salt$CV0p.flyrqHlPZrvH5R0ARpT37cdpwwl7wdfCx2ee4eMmJedEM2cl9lbvvg5UJ1WQ2R3QT2C7yRfr/Co4Firs." } }), userItem("bob", 2002)]);
  await d.put("Groups", [groupItem("devs", 3000, { Members: { SS: ["alice", "bob"] }, Administrators: { SS: ["alice"] } })]);
  const r = await pass(d, root);
  expect(r.exitCode).toBe(0);
  expect(r.written.length).toBe(4);
  expect(modes(root)).toEqual(before);
  for (const f of ACCOUNT_FILES) {
    const st = statSync(join(root, "etc", `${f}-`));
    expect([(st.mode & 0o7777).toString(8), st.uid, st.gid]).toEqual(before[f]!);
  }
  expect(line(root, "shadow", "alice")).toBe("alice:$6$salt$CV0p.flyrqHlPZrvH5R0ARpT37cdpwwl7wdfCx2ee4eMmJedEM2cl9lbvvg5UJ1WQ2R3QT2C7yRfr/Co4Firs.:::::::");
  expect(line(root, "gshadow", "devs")).toBe("devs:!:alice:alice,bob");
  expectClean(root);
});

test("ec2-user is a local account: records naming it or taking its UID or GID are refused; its lines stay byte for byte", async () => {
  const root = makeRoot(AL2023_ROOT);
  const before = snapshot(root);
  await d.put("Users", [
    userItem("ec2-user", 2000, { Shell: { S: "/bin/sh" } }),
    // The first UID `ddum user add` hands out with uid_min 1000: ec2-user's on every AL2023 host.
    userItem("alice", 1000),
  ]);
  await d.put("Groups", [groupItem("admins", 1000, { Members: { SS: ["ec2-user"] } }), groupItem("ec2-user", 2600, { Members: { SS: ["alice"] } })]);
  const r = await pass(d, root);
  expect(r.exitCode).toBe(3);
  const reasons = Object.fromEntries(r.plan.refusals.map((x) => [`${x.table} ${x.name}`, `${x.field}: ${x.reason}`]));
  expect(reasons).toEqual({
    'Users "ec2-user"': 'Name: a local account "ec2-user" exists that ddum does not manage (list it in adopt_users to take it over)',
    'Users "alice"': 'UID: 1000 already belongs to the local account "ec2-user"',
    'Groups "admins"': expect.stringMatching(/^GID: 1000 already belongs to the local group "ec2-user"/),
    // ec2-user's group is its private group: a record cannot renumber it.
    'Groups "ec2-user"': `GID: a group named after the user "ec2-user" is that user's private group, with the user's GID 1000; the record's 2600 is refused`,
  });
  expect(r.written).toEqual([]);
  expect(snapshot(root)).toEqual(before);
});

test("with uid_min and gid_min at 2000, table IDs never meet ec2-user's: 1000 is outside the range, 2000 syncs", async () => {
  const root = makeRoot(AL2023_ROOT);
  await d.put("Users", [userItem("alice", 1000), userItem("bob", 2000)]);
  const r = await pass(d, root, { config: { uid_min: 2000, gid_min: 2000 } });
  expect(r.exitCode).toBe(3);
  expect(r.plan.refusals.map((x) => `${x.name} ${x.field}: ${x.reason}`)).toEqual(['"alice" UID: 1000 is outside the managed range 2000-60000']);
  expect(line(root, "passwd", "bob")).toBe("bob:x:2000:2000:bob user:/home/bob:/bin/bash");
  expect(line(root, "passwd", "ec2-user")).toBe("ec2-user:x:1000:1000:EC2 Default User:/home/ec2-user:/bin/bash");
  expectClean(root);
});

test("import --from-local on an AL2023 host takes ec2-user into the tables, unless uid_min and gid_min are 2000", async () => {
  const src = makeRoot(AL2023_ROOT);
  const dry = (extra: Record<string, unknown>) => ddum(["import", "--from-local", "--root", src, "--dry-run", "-c", writeConfig(d, extra)]);
  const stock = await dry({});
  expect(stock.code).toBe(0);
  expect(stock.stdout).toContain("would import user ec2-user (UID 1000)");
  expect(stock.stdout).toContain("would import group ec2-user (GID 1000)");
  const clear = await dry({ uid_min: 2000, gid_min: 2000 });
  expect(clear.code).toBe(0);
  expect(clear.stdout).not.toContain("ec2-user");
  expect(clear.stdout).toContain("would import 0 users into Users and 0 groups into Groups");
});

test("wheel (GID 10) takes the table's members beside ec2-user, and gives back only those", async () => {
  const root = makeRoot(AL2023_ROOT);
  const config = { merge_groups: ["wheel"] };
  await d.put("Users", [userItem("alice", 2001), userItem("bob", 2002)]);
  await d.put("Groups", [groupItem("wheel", 10, { Members: { SS: ["alice", "bob"] } })]);
  expect((await pass(d, root, { config })).exitCode).toBe(0);
  expect(line(root, "group", "wheel")).toBe("wheel:x:10:ec2-user,alice,bob");
  expect(line(root, "gshadow", "wheel")).toBe("wheel:::ec2-user,alice,bob");
  await d.put("Groups", [groupItem("wheel", 10, { Members: { SS: ["bob"] } })]);
  expect((await pass(d, root, { config })).exitCode).toBe(0);
  expect(line(root, "group", "wheel")).toBe("wheel:x:10:ec2-user,bob");
  expect(line(root, "gshadow", "wheel")).toBe("wheel:::ec2-user,bob");
  expectClean(root);
});

/**
 * sshd's effective settings (sshd -T) with one of ddum's snippets in sshd_config.d, and EC2
 * Instance Connect's AuthorizedKeysCommand given on sshd's command line (where a config file
 * cannot override it). In a private mount namespace, for sshd's /run/sshd.
 */
function sshdWith(snippet: string): Record<string, string> {
  if (process.getuid?.() !== 0) throw new Error("this test needs root (unshare --mount)");
  const dir = mkdtempSync(join(tmpdir(), "ddum-sshd-"));
  try {
    mkdirSync(join(dir, "sshd_config.d"));
    copyFileSync(join(REPO, "packaging", "sshd_config.d", snippet), join(dir, "sshd_config.d", "40-ddum.conf"));
    expect(run("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", join(dir, "hostkey")]).code).toBe(0);
    // As AL2023's sshd_config: the drop-ins first, then the stock AuthorizedKeysFile.
    writeFileSync(join(dir, "sshd_config"), `Include ${dir}/sshd_config.d/*.conf\nHostKey ${dir}/hostkey\nAuthorizedKeysFile .ssh/authorized_keys\n`);
    const eic = ["-o", "AuthorizedKeysCommand /usr/share/ec2-instance-connect/eic_run_authorized_keys %u %f", "-o", "AuthorizedKeysCommandUser ec2-instance-connect"];
    const r = run("unshare", ["--mount", "sh", "-c", 'mount -t tmpfs tmpfs /run && mkdir /run/sshd && exec /usr/sbin/sshd -T -f "$@"', "sh", join(dir, "sshd_config"), ...eic]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    return Object.fromEntries(
      r.stdout
        .split("\n")
        .filter((l) => l.startsWith("authorizedkeys"))
        .map((l) => [l.slice(0, l.indexOf(" ")), l.slice(l.indexOf(" ") + 1)]),
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test("beside EC2 Instance Connect, the file snippet keeps both; the AuthorizedKeysCommand one would lose ddum's keys", () => {
  expect(sshdWith("ddum-keys-file-instance-connect.conf")).toEqual({
    authorizedkeyscommand: "/usr/share/ec2-instance-connect/eic_run_authorized_keys %u %f",
    authorizedkeyscommanduser: "ec2-instance-connect",
    authorizedkeysfile: ".ssh/authorized_keys /etc/ssh/authorized_keys/%u",
  });
  // sshd runs one command, Instance Connect's; and that snippet turned the key files off.
  expect(sshdWith("ddum-keys-command.conf")).toMatchObject({
    authorizedkeyscommand: "/usr/share/ec2-instance-connect/eic_run_authorized_keys %u %f",
    authorizedkeysfile: "none",
  });
});

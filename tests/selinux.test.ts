// SELinux labels of the files ddum writes, on a file system that stores security.selinux (the
// disk or tmpfs, as root; the kernel here has no SELinux, so setfattr stores the label as is).
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, test } from "bun:test";
import { closeSync, mkdtempSync, openSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fdLabel, fileLabel, labelNewFile, replacementLabel, selinuxEnabled, setFdLabel, useFileContexts } from "../src/selinux.ts";
import { ddum, pass, writeConfig } from "./helpers/ddum.ts";
import { type Dynamo, groupItem, startDynalite, userItem } from "./helpers/dynalite.ts";
import { KEY_ALICE } from "./helpers/keys.ts";
import { ACCOUNT_FILES, checkAccounts, cleanupRoots, FLAVOURS, makeRoot, run } from "./helpers/root.ts";

let d: Dynamo;
beforeAll(async () => {
  if (process.getuid?.() !== 0) throw new Error("this test needs root (security.* attributes)");
  d = await startDynalite();
});
afterAll(async () => {
  await d.close();
  cleanupRoots();
});
beforeEach(() => d.createTables());
afterEach(() => d.reset());

const LABELS: Record<(typeof ACCOUNT_FILES)[number], string> = {
  passwd: "system_u:object_r:passwd_file_t:s0",
  shadow: "system_u:object_r:shadow_t:s0",
  group: "system_u:object_r:passwd_file_t:s0",
  gshadow: "system_u:object_r:shadow_t:s0",
};

/** The label as getfattr sees it, in hex (exact bytes), or null when the file has none. */
function label(path: string): string | null {
  const r = run("getfattr", ["--absolute-names", "--only-values", "-e", "hex", "-n", "security.selinux", path]);
  if (r.code !== 0) {
    expect(r.stderr).toContain("No such attribute");
    return null;
  }
  return Buffer.from(r.stdout, "latin1").toString("hex");
}
const hex = (s: string) => Buffer.from(s, "latin1").toString("hex");
function setLabel(path: string, value: string): void {
  const r = run("setfattr", ["-n", "security.selinux", "-v", `0x${hex(value)}`, path]);
  expect(r.stderr).toBe("");
  expect(r.code).toBe(0);
}
const etc = (root: string, f: string) => join(root, "etc", f);

describe.each(Object.values(FLAVOURS))("on the $name root", (flavour) => {
  test("a pass that replaces the four account files: each new file carries the label of the one it replaced; FILE- keeps its own", async () => {
    const root = makeRoot(flavour.root);
    const before: Record<string, { text: string; ino: number; mode: number; uid: number; gid: number }> = {};
    for (const f of ACCOUNT_FILES) {
      setLabel(etc(root, f), LABELS[f]);
      const st = statSync(etc(root, f));
      before[f] = { text: readFileSync(etc(root, f), "latin1"), ino: st.ino, mode: st.mode & 0o7777, uid: st.uid, gid: st.gid };
    }
    await d.put("Users", [userItem("alice", 2001, { Password: { S: "$6$salt$CV0p.flyrqHlPZrvH5R0ARpT37cdpwwl7wdfCx2ee4eMmJedEM2cl9lbvvg5UJ1WQ2R3QT2C7yRfr/Co4Firs." } })]);
    await d.put("Groups", [groupItem("devs", 3000, { Members: { SS: ["alice"] } })]);
    const r = await pass(d, root);
    expect(r.exitCode).toBe(0);
    expect(r.written.length).toBe(4);
    for (const f of ACCOUNT_FILES) {
      const st = statSync(etc(root, f));
      expect(st.ino).not.toBe(before[f]!.ino); // replaced, not rewritten
      expect(label(etc(root, f))).toBe(hex(LABELS[f]));
      expect([st.mode & 0o7777, st.uid, st.gid]).toEqual([before[f]!.mode, before[f]!.uid, before[f]!.gid]);
      expect(readFileSync(`${etc(root, f)}-`, "latin1")).toBe(before[f]!.text);
      expect(label(`${etc(root, f)}-`)).toBe(hex(LABELS[f]));
    }
    expect([statSync(etc(root, "shadow")).mode & 0o7777, statSync(etc(root, "shadow")).gid]).toEqual([flavour.shadowMode, flavour.shadowGid]);
    const { pwck, grpck } = checkAccounts(root);
    expect([pwck.code, grpck.code]).toEqual([0, 0]);
  });
});

test("the compiled binary copies labels too, each file its own, and a changed label is followed", async () => {
  const root = makeRoot(FLAVOURS.al2023.root);
  setLabel(etc(root, "shadow"), LABELS.shadow);
  setLabel(etc(root, "passwd"), LABELS.passwd);
  const cfg = writeConfig(d);
  await d.put("Users", [userItem("alice", 2001)]);
  const r = await ddum(["sync", "--root", root, "-c", cfg]);
  expect(r.stderr).toBe("");
  expect(r.code).toBe(0);
  expect(label(etc(root, "shadow"))).toBe(hex(LABELS.shadow));
  expect(label(etc(root, "passwd"))).toBe(hex(LABELS.passwd));
  // Files that had none get none.
  expect(label(etc(root, "group"))).toBeNull();
  expect(label(etc(root, "gshadow"))).toBeNull();
  // The admin relabels shadow (say, with a local policy type); the next replacement keeps that.
  const custom = "system_u:object_r:shadow_local_t:s0:c1,c2";
  setLabel(etc(root, "shadow"), custom);
  await d.put("Users", [userItem("alice", 2001, { RealName: { S: "Alice" } })]);
  expect((await ddum(["sync", "--root", root, "-c", cfg])).code).toBe(0);
  expect(label(etc(root, "shadow"))).toBe(hex(custom));
  expect(label(etc(root, "shadow-"))).toBe(hex(LABELS.shadow));
});

test("a label stored as the kernel stores it (ending in NUL) is copied byte for byte", async () => {
  const root = makeRoot(FLAVOURS.al2023.root);
  setLabel(etc(root, "shadow"), `${LABELS.shadow}\0`);
  await d.put("Users", [userItem("alice", 2001)]);
  expect((await pass(d, root)).exitCode).toBe(0);
  expect(label(etc(root, "shadow"))).toBe(hex(`${LABELS.shadow}\0`));
  expect(fileLabel(etc(root, "shadow"))).toBe(`${LABELS.shadow}\0`);
});

test("without SELinux (this host) nothing is labelled: not the account files, not homes, not key files", async () => {
  expect(selinuxEnabled()).toBe(false);
  const root = makeRoot(FLAVOURS.al2023.root);
  await d.put("Users", [userItem("alice", 2001, { SSHPublicKeys: { SS: [KEY_ALICE] } }), userItem("bob", 2002, { SSHPublicKeys: { SS: [KEY_ALICE] } })]);
  const r = await pass(d, root, { config: { create_homes: true } });
  expect(r.exitCode).toBe(0);
  expect(r.homes.homesCreated).toEqual(["alice", "bob"]);
  // Keys into existing homes too, and into root-owned files under a %u template.
  await d.put("Users", [userItem("alice", 2001, { SSHPublicKeys: { SS: [KEY_ALICE, "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIL1qfzByYcxhQpUKCXg+OLEFxu9aRYYARCr5sQuJOV3j x"] } })]);
  expect((await pass(d, root, { config: { create_homes: true } })).exitCode).toBe(0);
  expect((await pass(d, root, { config: { ssh_key_location: "/etc/ssh/authorized_keys/%u" } })).exitCode).toBe(0);
  const paths = run("find", [root, "-xdev"]).stdout.trim().split("\n");
  expect(paths).toContain(join(root, "home", "alice", ".ssh", "authorized_keys"));
  expect(paths).toContain(join(root, "etc", "ssh", "authorized_keys", "bob"));
  const labelled = run("getfattr", ["--absolute-names", "-R", "-P", "-n", "security.selinux", root]);
  expect(labelled.stdout).toBe("");
});

test("setting a label on an open file, and the policy's label, which nobody can look up without SELinux", () => {
  const root = makeRoot(FLAVOURS.al2023.root);
  const p = join(root, "etc", "new-file");
  writeFileSync(p, "x");
  const fd = openSync(p, "r+");
  try {
    expect(fdLabel(fd)).toBeNull();
    expect(setFdLabel(fd, LABELS.shadow)).toBe(0);
    expect(fdLabel(fd)).toBe(LABELS.shadow);
    // No policy here: a new file is left as it is.
    labelNewFile(fd, "/etc/shadow", 0o100000);
    expect(fdLabel(fd)).toBe(LABELS.shadow);
  } finally {
    closeSync(fd);
  }
  expect(label(p)).toBe(hex(LABELS.shadow));
  // The old file's own label first; a file with none and no policy: none.
  expect(replacementLabel(p, 0o100000)).toBe(LABELS.shadow);
  expect(replacementLabel(etc(root, "passwd"), 0o100000)).toBeNull();
  expect(replacementLabel(join(root, "etc", "missing"), 0o100000)).toBeNull();
});

describe("with a policy (a file_contexts file given to libselinux, as where SELinux is enabled)", () => {
  const spec = join(mkdtempSync(join(tmpdir(), "ddum-fc-")), "file_contexts");
  writeFileSync(
    spec,
    [
      "/etc/(passwd|group)-?\t--\tsystem_u:object_r:passwd_file_t:s0",
      "/etc/g?shadow-?\t--\tsystem_u:object_r:shadow_t:s0",
      "/etc/ssh/authorized_keys(/.*)?\tsystem_u:object_r:sshd_keys_t:s0",
      "/home/[^/]+\t-d\tunconfined_u:object_r:user_home_dir_t:s0",
      "/home/[^/]+/.+\tunconfined_u:object_r:user_home_t:s0",
      "/home/[^/]+/\\.ssh(/.*)?\tunconfined_u:object_r:ssh_home_t:s0",
      "",
    ].join("\n"),
  );
  beforeAll(() => useFileContexts(spec));
  afterAll(() => useFileContexts(null));

  test("a file with no label gets the policy's; one with a label keeps its own; paths are the root's", async () => {
    expect(selinuxEnabled()).toBe(true);
    const root = makeRoot(FLAVOURS.al2023.root);
    const custom = "system_u:object_r:shadow_local_t:s0";
    setLabel(etc(root, "shadow"), custom);
    await d.put("Users", [userItem("alice", 2001)]);
    await d.put("Groups", [groupItem("devs", 3000, { Members: { SS: ["alice"] } })]);
    expect((await pass(d, root)).exitCode).toBe(0);
    expect(label(etc(root, "shadow"))).toBe(hex(custom));
    expect(label(etc(root, "gshadow"))).toBe(hex("system_u:object_r:shadow_t:s0\0"));
    expect(label(etc(root, "passwd"))).toBe(hex("system_u:object_r:passwd_file_t:s0\0"));
    expect(label(etc(root, "group"))).toBe(hex("system_u:object_r:passwd_file_t:s0\0"));
  });

  test("new homes, ~/.ssh and key files get the policy's labels; root-owned key files too", async () => {
    const root = makeRoot(FLAVOURS.al2023.root);
    await d.put("Users", [userItem("alice", 2001, { SSHPublicKeys: { SS: [KEY_ALICE] } }), userItem("bob", 2002)]);
    expect((await pass(d, root, { config: { create_homes: true } })).exitCode).toBe(0);
    const home = join(root, "home", "alice");
    const typeOf = (p: string) => Buffer.from(label(p) ?? "", "hex").toString("latin1").split(":")[2];
    expect(typeOf(home)).toBe("user_home_dir_t");
    expect(typeOf(join(home, ".bashrc"))).toBe("user_home_t");
    expect(typeOf(join(home, ".ssh"))).toBe("ssh_home_t");
    expect(typeOf(join(home, ".ssh", "authorized_keys"))).toBe("ssh_home_t");
    // No restorecon digest left behind.
    expect(run("getfattr", ["--absolute-names", "-n", "security.sehash", home]).code).not.toBe(0);
    // bob's home exists without ~/.ssh; keys arrive later: the new .ssh and key file are labelled.
    const bobSsh = join(root, "home", "bob", ".ssh");
    await d.put("Users", [userItem("bob", 2002, { SSHPublicKeys: { SS: [KEY_ALICE] } })]);
    expect((await pass(d, root, { config: { create_homes: true } })).exitCode).toBe(0);
    expect(typeOf(bobSsh)).toBe("ssh_home_t");
    expect(typeOf(join(bobSsh, "authorized_keys"))).toBe("ssh_home_t");
    // Root-owned key files under a %u template: created, then replaced.
    const config = { ssh_key_location: "/etc/ssh/authorized_keys/%u" };
    expect((await pass(d, root, { config })).exitCode).toBe(0);
    expect(typeOf(join(root, "etc", "ssh", "authorized_keys", "alice"))).toBe("sshd_keys_t");
    await d.put("Users", [userItem("alice", 2001, { SSHPublicKeys: { SS: [KEY_ALICE, "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIL1qfzByYcxhQpUKCXg+OLEFxu9aRYYARCr5sQuJOV3j x"] } })]);
    const ino = statSync(join(root, "etc", "ssh", "authorized_keys", "alice")).ino;
    expect((await pass(d, root, { config })).exitCode).toBe(0);
    expect(statSync(join(root, "etc", "ssh", "authorized_keys", "alice")).ino).not.toBe(ino);
    expect(typeOf(join(root, "etc", "ssh", "authorized_keys", "alice"))).toBe("sshd_keys_t");
  });
});

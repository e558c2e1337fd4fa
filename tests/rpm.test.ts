import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readlinkSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { buildArm64, DDUM_ARM64 } from "./helpers/arm64.ts";
import { REPO, run } from "./helpers/root.ts";

const VERSION = JSON.parse(readFileSync(join(REPO, "package.json"), "utf8")).version as string;
const rpmOf = (arch: string) => join(REPO, "dist", `ddum-${VERSION}-1.${arch}.rpm`);
const ARCHES = [
  { arch: "x86_64", binary: () => join(REPO, "dist", "ddum"), loader: "ld-linux-x86-64.so.2()(64bit)" },
  { arch: "aarch64", binary: () => DDUM_ARM64, loader: "ld-linux-aarch64.so.1()(64bit)" },
];
const scratch = mkdtempSync(join(tmpdir(), "ddum-rpm-"));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

function sha256(path: string): string {
  return new Bun.CryptoHasher("sha256").update(readFileSync(path)).digest("hex");
}

beforeAll(() => {
  buildArm64();
  for (const { arch, binary } of ARCHES) {
    const r = run("bash", [join(REPO, "packaging", "build-rpm.sh"), arch, binary()]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(`dist/ddum-${VERSION}-1.${arch}.rpm\n`);
  }
}, 600_000);

describe.each(ARCHES)("the $arch RPM", ({ arch, binary, loader }) => {
  test("its /usr/bin/ddum is the built binary byte for byte (SHA-256 in the header): not stripped", () => {
    const digests = run("rpm", ["-qp", "--qf", "%{FILEDIGESTALGO}\\n[%{FILEDIGESTS} %{FILENAMES}\\n]", rpmOf(arch)]).stdout.split("\n");
    expect(digests[0]).toBe("8"); // SHA-256
    expect(digests).toContain(`${sha256(binary())} /usr/bin/ddum`);
  });

  test("rpm -qpi: name, version, release, architecture, license", () => {
    const info = run("rpm", ["-qpi", rpmOf(arch)]);
    expect(info.code).toBe(0);
    expect(info.stdout).toMatch(/^Name {8}: ddum$/m);
    expect(info.stdout).toMatch(new RegExp(`^Version {5}: ${VERSION.replaceAll(".", "\\.")}$`, "m"));
    expect(info.stdout).toMatch(/^Release {5}: 1$/m);
    expect(info.stdout).toMatch(new RegExp(`^Architecture: ${arch}$`, "m"));
    expect(info.stdout).toMatch(/^License {5}: Apache-2\.0$/m);
    // gzip, which every rpm reads (AL2's does not read zstd).
    expect(run("rpm", ["-qp", "--qf", "%{PAYLOADCOMPRESSOR}", rpmOf(arch)]).stdout).toBe("gzip");
  });

  test("rpm -qpl: the same files as the .deb, with their modes, and nothing in /etc", () => {
    const list = run("rpm", ["-qp", "--qf", "[%{FILEMODES:perms} %{FILEUSERNAME}:%{FILEGROUPNAME} %{FILENAMES}\\n]", rpmOf(arch)]);
    expect(list.code).toBe(0);
    expect(list.stdout.trim().split("\n").sort()).toEqual(
      [
        "-rwxr-xr-x root:root /usr/bin/ddum",
        "lrwxrwxrwx root:root /usr/sbin/dynamodb-user-manager",
        "-rw-r--r-- root:root /usr/lib/systemd/system/ddum.service",
        "-rw-r--r-- root:root /usr/lib/systemd/system/ddum.timer",
        "-rw-r--r-- root:root /usr/lib/systemd/system/ddum-daemon.service",
        "-rw-r--r-- root:root /usr/share/man/man8/ddum.8.gz",
        "drwxr-xr-x root:root /usr/share/doc/ddum",
        "-rw-r--r-- root:root /usr/share/doc/ddum/README.md",
        "-rw-r--r-- root:root /usr/share/doc/ddum/copyright",
        "-rw-r--r-- root:root /usr/share/doc/ddum/dynamodb-user-manager.cfg.example",
        "-rw-r--r-- root:root /usr/share/doc/ddum/iam-policy.json",
        "-rw-r--r-- root:root /usr/share/doc/ddum/iam-policy-admin.json",
        "drwxr-xr-x root:root /usr/share/doc/ddum/sshd_config.d",
        "-rw-r--r-- root:root /usr/share/doc/ddum/sshd_config.d/ddum-keys-command.conf",
        "-rw-r--r-- root:root /usr/share/doc/ddum/sshd_config.d/ddum-keys-file.conf",
        "-rw-r--r-- root:root /usr/share/doc/ddum/sshd_config.d/ddum-keys-file-instance-connect.conf",
        "drwxr-xr-x root:root /var/lib/ddum",
      ].sort(),
    );
    expect(run("rpm", ["-qpl", rpmOf(arch)]).stdout).not.toMatch(/^\/etc\//m);
    const conf = run("rpm", ["-qpc", rpmOf(arch)]);
    expect(conf.code).toBe(0);
    expect(conf.stdout).toBe("");
  });

  test("dependencies: the C library of its architecture (read from the ELF), shadow-utils; openssh-server recommended", () => {
    const req = run("rpm", ["-qpR", rpmOf(arch)]).stdout.split("\n");
    expect(req).toContain("shadow-utils");
    expect(req).toContain("libc.so.6()(64bit)");
    expect(req).toContain(loader);
    expect(run("rpm", ["-qp", "--recommends", rpmOf(arch)]).stdout.trim()).toBe("openssh-server");
    expect(run("rpm", ["-qp", "--provides", rpmOf(arch)]).stdout).toContain(`ddum = ${VERSION}-1`);
  });

  test("scriptlets: daemon-reload; the timer enabled on first install only with a config; disabled on erase", () => {
    const s = run("rpm", ["-qp", "--scripts", rpmOf(arch)]).stdout;
    expect(s).toContain("postinstall scriptlet (using /bin/sh)");
    expect(s).toContain("preuninstall scriptlet (using /bin/sh)");
    expect(s).toContain("postuninstall scriptlet (using /bin/sh)");
    expect(s).toContain('if [ "$1" -eq 1 ] && [ -f /etc/dynamodb-user-manager.cfg ]');
    expect(s).toContain("systemctl enable --now ddum.timer");
    expect(s).toContain("systemctl disable --now ddum.timer ddum-daemon.service");
    expect(s).not.toContain("%systemd");
  });
});

/** A scratch root with a /bin/sh (the host's dash and its libraries) and a systemctl that logs. */
function shellRoot(name: string, opts: { systemd: boolean; config: boolean }): string {
  const root = join(scratch, name);
  for (const d of ["bin", "usr/bin", "etc", "dev", "lib/x86_64-linux-gnu", "lib64"]) mkdirSync(join(root, d), { recursive: true });
  expect(run("mknod", ["-m", "0666", join(root, "dev", "null"), "c", "1", "3"]).code).toBe(0);
  copyFileSync("/bin/dash", join(root, "bin", "sh"));
  chmodSync(join(root, "bin", "sh"), 0o755);
  for (const lib of run("ldd", ["/bin/dash"]).stdout.matchAll(/(\/\S+)/g)) copyFileSync(lib[1]!, join(root, lib[1]!));
  writeFileSync(join(root, "usr", "bin", "systemctl"), '#!/bin/sh\necho "$*" >> /systemctl.log\n[ "$1" != is-enabled ]\n', { mode: 0o755 });
  if (opts.systemd) mkdirSync(join(root, "run", "systemd", "system"), { recursive: true });
  if (opts.config) writeFileSync(join(root, "etc", "dynamodb-user-manager.cfg"), "{}\n");
  return root;
}

const systemctlLog = (root: string) => (existsSync(join(root, "systemctl.log")) ? readFileSync(join(root, "systemctl.log"), "utf8") : "");
const rpmIn = (root: string, args: string[]) => run("rpm", ["--root", root, "--nodeps", ...args], { env: { LC_ALL: "C" } });
const rpmNoise = (stderr: string) => stderr.split("\n").filter((l) => l && !/^rpm: (RPM should not be used directly|However assuming)/.test(l));

describe("the x86_64 RPM installed with rpm --root DIR --nodeps -i", () => {
  test("the binary is the built one, not stripped, and runs under both names", () => {
    const root = shellRoot("plain", { systemd: false, config: false });
    const r = rpmIn(root, ["-i", rpmOf("x86_64")]);
    expect(rpmNoise(r.stderr)).toEqual([]);
    expect(r.code).toBe(0);
    const bin = join(root, "usr", "bin", "ddum");
    expect(statSync(bin).mode & 0o7777).toBe(0o755);
    expect(sha256(bin)).toBe(sha256(join(REPO, "dist", "ddum")));
    expect(run(bin, ["--version"]).stdout).toStartWith(`ddum ${VERSION} (commit `);
    expect(readlinkSync(join(root, "usr", "sbin", "dynamodb-user-manager"))).toBe("../bin/ddum");
    // Under the old name, --version too (a missing config and a scratch pidfile: were it taken
    // for the daemon, it would stop at once rather than run).
    const oldArgs = ["--version", "-f", "-c", join(root, "missing.cfg"), "-p", join(root, "ddum.pid")];
    const oldVersion = run(join(root, "usr", "sbin", "dynamodb-user-manager"), oldArgs);
    expect(oldVersion.stderr).toBe("");
    expect(oldVersion.stdout).toStartWith(`ddum ${VERSION} (commit `);
    expect(oldVersion.code).toBe(0);
    expect(run(bin, ["sync", "--version", "-c", join(root, "missing.cfg")]).stdout).toStartWith(`ddum ${VERSION} (commit `);
    const old = run(join(root, "usr", "sbin", "dynamodb-user-manager"), ["-h"]);
    expect(old.code).toBe(0);
    expect(old.stdout).toContain("$ ddum daemon");
    expect(old.stdout).toContain("--pidfile");
    expect(statSync(join(root, "var", "lib", "ddum")).isDirectory()).toBe(true);
    expect(existsSync(join(root, "etc", "dynamodb-user-manager.cfg"))).toBe(false);
    // Without systemd running, the scriptlets do nothing.
    expect(systemctlLog(root)).toBe("");
    expect(run("rpm", ["--root", root, "-q", "ddum"]).stdout).toBe(`ddum-${VERSION}-1.x86_64\n`);
  });

  test("under systemd with a config: first install enables the timer; an upgrade does not; erase disables it", () => {
    const root = shellRoot("configured", { systemd: true, config: true });
    expect(rpmIn(root, ["-i", rpmOf("x86_64")]).code).toBe(0);
    expect(systemctlLog(root)).toBe("daemon-reload\nis-enabled --quiet ddum-daemon.service\nenable --now ddum.timer\n");
    rmSync(join(root, "systemctl.log"));
    const up = rpmIn(root, ["-U", "--replacepkgs", rpmOf("x86_64")]);
    expect(rpmNoise(up.stderr)).toEqual([]);
    expect(up.code).toBe(0);
    expect(systemctlLog(root)).not.toContain("enable --now");
    expect(systemctlLog(root)).toContain("daemon-reload");
    rmSync(join(root, "systemctl.log"));
    const erase = rpmIn(root, ["-e", "ddum"]);
    expect(rpmNoise(erase.stderr)).toEqual([]);
    expect(erase.code).toBe(0);
    expect(systemctlLog(root)).toBe("disable --now ddum.timer ddum-daemon.service\ndaemon-reload\n");
    expect(existsSync(join(root, "usr", "bin", "ddum"))).toBe(false);
  });

  test("under systemd without a config: a first install enables nothing", () => {
    const root = shellRoot("bare", { systemd: true, config: false });
    expect(rpmIn(root, ["-i", rpmOf("x86_64")]).code).toBe(0);
    expect(systemctlLog(root)).toBe("daemon-reload\n");
  });
});

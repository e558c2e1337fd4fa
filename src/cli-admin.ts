// Command-line wiring of the admin commands (user …, group …, import). The work is in admin/.
import type { cac } from "cac";
import type { GroupOptions, UserOptions } from "./admin/commands.ts";
import { type Common, cmdAdmin, cmdImport } from "./commands.ts";
import { DEFAULT_CONFIG_PATH } from "./config.ts";
import type { Logger } from "./log.ts";

type Cli = ReturnType<typeof cac>;
type Cmd = ReturnType<Cli["command"]>;

const config = (c: Cmd) => c.option("-c, --config <file>", `Configuration file: tables, endpoint, credentials, ID ranges (default: ${DEFAULT_CONFIG_PATH})`);

const userFields = (c: Cmd) =>
  c
    .option("--real-name <text>", "RealName (GECOS): no ':' and no control characters")
    .option("--home <dir>", "Home directory, an absolute path")
    .option("--shell <path>", "Login shell, an absolute path")
    .option("--expire <date>", "AccountExpireDate: YYYY-MM-DD, today, or never (removes it)")
    .option("--min-days <n>", "PasswordAgeMinDays (a number, or none)")
    .option("--max-days <n>", "PasswordAgeMaxDays (a number, or none)")
    .option("--warn-days <n>", "PasswordWarnDays (a number, or none)")
    .option("--inactive-days <n>", "PasswordDisableDays (a number, or none)")
    .option("--ssh-key <file>", "Add the keys in FILE (authorized_keys format; - for stdin); may be repeated");

export function registerAdmin(cli: Cli, log: Logger, setExit: (code: number) => void): void {
  const run = (opts: Common, f: Parameters<typeof cmdAdmin>[2]) => cmdAdmin(opts, log, f).then(setExit);

  config(
    userFields(
      cli
        .command("user add <name>", "Add a user record; the whole record is checked first, the name and the UID are taken with conditional writes")
        .option("--uid <n|auto>", "UID, or auto: the first free one from uid_min (reserved so two admins never get the same)", { default: "auto" })
        .option("--gid <n>", "Primary GID (default: the UID, for a user private group)")
        .option("--password-stdin", "Read the password from the first line of stdin and store its hash")
        .option("--hash <scheme>", "yescrypt (default, as Debian) or sha512", { default: "yescrypt" }),
    ),
  ).action((name: string, o: Common & UserOptions) => run(o, (a) => a.userAdd(name, o)));

  config(
    userFields(
      cli
        .command("user set <name>", "Change fields of a user record (only what is given); the result is checked whole before it is written")
        .option("--uid <n|auto>", "New UID, or auto")
        .option("--gid <n>", "New primary GID"),
    ),
  ).action((name: string, o: Common & UserOptions) => run(o, (a) => a.userSet(name, o)));

  config(cli.command("user show <name>", "Print a user record, whether hosts accept it, and its keys' fingerprints (never the hash)").option("--json", "As JSON")).action(
    (name: string, o: Common & UserOptions) => run(o, (a) => a.userShow(name, o)),
  );

  config(cli.command("user list", "List the users: UID, GID, keys, enabled or disabled, records every host rejects").option("--json", "As JSON")).action(
    (o: Common & UserOptions) => run(o, (a) => a.userList(o)),
  );

  config(
    cli
      .command("user disable <name>", "Disable an account on every host: set AccountExpireDate (users are never deleted)")
      .option("--on <date>", "The day it stops working: YYYY-MM-DD or today", { default: "today" }),
  ).action((name: string, o: Common & UserOptions) => run(o, (a) => a.userDisable(name, o)));

  config(cli.command("user enable <name>", "Enable an account again: remove AccountExpireDate")).action((name: string, o: Common & UserOptions) =>
    run(o, (a) => a.userEnable(name)),
  );

  config(
    cli
      .command("user key add <name> [...keys]", "Add SSH public keys (each a whole authorized_keys line, quoted)")
      .option("--ssh-key <file>", "Add the keys in FILE (authorized_keys format; - for stdin); may be repeated"),
  ).action((name: string, keys: string[], o: Common & UserOptions) => run(o, (a) => a.userKey("add", name, keys, o)));

  config(
    cli.command(
      "user key remove <name> <...keys>",
      "Revoke SSH keys, each named by the whole key, its base64 data, or its SHA256: fingerprint",
    ),
  ).action((name: string, keys: string[], o: Common & UserOptions) => run(o, (a) => a.userKey("remove", name, keys, o)));

  config(
    cli
      .command("user passwd <name>", "Set a new password: asked twice without echo, or read from stdin; hashed here with the system's libcrypt")
      .option("--password-stdin", "Read the password from the first line of stdin (the default when stdin is not a terminal)")
      .option("--hash <scheme>", "yescrypt (default, as Debian) or sha512", { default: "yescrypt" }),
  ).action((name: string, o: Common & UserOptions) => run(o, (a) => a.userPasswd(name, o)));

  config(
    cli
      .command("group add <name>", "Add a group record; the name and the GID are taken with conditional writes")
      .option("--gid <n|auto>", "GID, or auto: the first free one from gid_min", { default: "auto" })
      .option("--member <user>", "A member; may be repeated")
      .option("--admin <user>", "An administrator (gshadow); may be repeated"),
  ).action((name: string, o: Common & GroupOptions) => run(o, (a) => a.groupAdd(name, o)));

  config(
    cli
      .command("group set <name>", "Change a group record: its GID, or its whole member or administrator list")
      .option("--gid <n|auto>", "New GID, or auto")
      .option("--member <user>", "Replace the members with these (repeat; --member '' for none)")
      .option("--admin <user>", "Replace the administrators with these (repeat; --admin '' for none)"),
  ).action((name: string, o: Common & GroupOptions) => run(o, (a) => a.groupSet(name, o)));

  config(cli.command("group show <name>", "Print a group record and whether hosts accept it").option("--json", "As JSON")).action(
    (name: string, o: Common & GroupOptions) => run(o, (a) => a.groupShow(name, o)),
  );

  config(cli.command("group list", "List the groups with their GIDs and members").option("--json", "As JSON")).action((o: Common & GroupOptions) =>
    run(o, (a) => a.groupListAll(o)),
  );

  for (const [word, field, what] of [
    ["member", "Members", "members"],
    ["admin", "Administrators", "administrators (gshadow)"],
  ] as const) {
    for (const action of ["add", "remove"] as const) {
      config(cli.command(`group ${word} ${action} <group> <...users>`, `${action === "add" ? "Add" : "Remove"} ${what} of a group`)).action(
        (group: string, users: string[], o: Common & GroupOptions) => run(o, (a) => a.groupList(field, action, group, users)),
      );
    }
  }

  config(
    cli
      .command("import", "Write this host's users and groups (IDs in the managed ranges) into the tables, with shadow fields and SSH keys")
      .option("--from-local", "Read the local account files (the only source)")
      .option("--root <dir>", "Read the system under DIR instead of /", { default: "/" })
      .option("--dry-run", "Print what would be imported and what would be refused; write nothing"),
  ).action(async (o: Common & { fromLocal?: boolean; dryRun?: boolean }) => setExit(await cmdImport(o, log)));
}

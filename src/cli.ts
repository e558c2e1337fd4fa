#!/usr/bin/env bun
// Command-line wiring only: flags become options, and each command returns its exit code.
import { basename } from "node:path";
import { cac } from "cac";
import { registerAdmin } from "./cli-admin.ts";
import { smallHeap } from "./heapsize.ts";
import { cmdAuthorizedKeys, cmdCheck, cmdDaemon, cmdStatus, cmdSync, cmdTablesBump, cmdTablesCreate, cmdVerify, type Common, endProgress, setVerbosity } from "./commands.ts";
import { DEFAULT_CONFIG_PATH } from "./config.ts";
import { DdumError, EXIT, errorMessage, jsonError } from "./errors.ts";
import { type Logger, makeLogger, redact } from "./log.ts";
import { setNoticeSink } from "./notices.ts";
import { VERSION, versionLine } from "./version.ts";

import { DEFAULT_PIDFILE } from "./daemon.ts";

const EXIT_HELP = `  0  success (nothing to do counts as success)
  1  failure; nothing was applied (scan failed, lock busy, safety brake)
  2  bad usage or configuration
  3  applied, but some records were rejected or refused (see the report)`;

const CHECK_EXIT_HELP = `  0  every record is valid (warnings are listed, and do not count)
  1  the tables could not be read
  2  bad usage or configuration
  3  some records would be rejected (listed)`;

const DAEMON_EXIT_HELP = `  0  stopped by SIGTERM or SIGINT (or, without -f, started in the background)
  1  could not start: another daemon holds the pidfile, or it cannot be written
  2  bad usage or configuration`;

const KEYS_EXIT_HELP = `  0  the user's keys are printed (none is no error: sshd then asks no further)
  1  the key file is refused (not root's, a link, too large): no key printed
  2  not a valid user name, or bad usage or configuration`;

const TABLES_EXIT_HELP = `  0  both tables exist and are active (created now or before), and so does the #version item
  1  failed: the tables could not be created or reached (the message says why)
  2  bad usage or configuration`;

const BUMP_EXIT_HELP = `  0  the version was raised; the new number is printed
  1  failed: the table cannot be reached, or its #version item holds no whole number (the message says which)
  2  bad usage or configuration`;

const ADMIN_EXIT_HELP = `  0  done (or nothing to change)
  1  failed: the record does not exist or already does, the ID is taken, the tables cannot be reached,
     or the change was written but the tables' version (#version) could not be raised
  2  bad usage, or a record every host would refuse (nothing was written)`;

const READ_EXIT_HELP = `  0  printed
  1  the record does not exist, or the tables cannot be reached
  2  bad usage or configuration`;

const IMPORT_EXIT_HELP = `  0  every account was written (or, with --dry-run, would be)
  1  failed: the tables cannot be reached, nothing could be written, or the tables' version
     (#version) could not be raised after the writes
  2  bad usage or configuration
  3  some records were refused (see the report); the others were written`;

const VERIFY_EXIT_HELP = `  0  in step: this host matches the tables (records refused or rejected are listed, not counted)
  1  could not check (the tables or the local files could not be read)
  2  bad usage or configuration
  4  drift: a pass would change something here (listed)`;

const STATUS_EXIT_HELP = `  0  the last pass succeeded within 2 x (full_update_period + full_update_jitter)
  1  the last pass failed
  2  no pass in that time (or never)`;

/** Each command's exit codes and an example, for its --help; more: said under its description. */
const COMMAND_HELP: Record<string, { exit: string; example: string; more?: string }> = {
  sync: { exit: EXIT_HELP, example: "ddum sync --dry-run            # the plan, nothing written\n  $ ddum sync --summary            # apply; print the summary line only" },
  check: { exit: CHECK_EXIT_HELP, example: "ddum check -c /etc/dynamodb-user-manager.cfg" },
  verify: { exit: VERIFY_EXIT_HELP, example: "ddum verify --summary || echo 'this host differs from the tables'" },
  daemon: { exit: DAEMON_EXIT_HELP, example: "ddum daemon -f                   # in the foreground, for systemd" },
  status: { exit: STATUS_EXIT_HELP, example: "ddum status --json" },
  "authorized-keys": { exit: KEYS_EXIT_HELP, example: "ddum authorized-keys alice        # AuthorizedKeysCommand /usr/bin/ddum authorized-keys %u" },
  "tables create": { exit: TABLES_EXIT_HELP, example: "ddum tables create --billing on-demand" },
  "tables bump": {
    exit: BUMP_EXIT_HELP,
    example: "aws dynamodb put-item --table-name Users --item file://alice.json && ddum tables bump",
    more: `The item #version in the Users table holds a number that goes up with every change to either
  table. Hosts with change_detection "version" read it before each pass and scan the tables only
  when it has changed. ddum's user, group and import commands raise it themselves, and the Lambda
  function in packaging/aws/ raises it for every change it sees in the tables' streams; anything
  else that writes the tables (the AWS CLI, the console, a script) must run this afterwards, or
  hosts see its change only at their next full scan.`,
  },
  "user add": { exit: ADMIN_EXIT_HELP, example: 'ddum user add alice --real-name "Alice Liddell" --ssh-key ~/alice.pub' },
  "user set": { exit: ADMIN_EXIT_HELP, example: "ddum user set alice --shell /bin/zsh --max-days 90" },
  "user show": { exit: READ_EXIT_HELP, example: "ddum user show alice --json" },
  "user list": { exit: READ_EXIT_HELP, example: "ddum user list" },
  "user disable": { exit: ADMIN_EXIT_HELP, example: "ddum user disable alice --on 2027-01-31" },
  "user enable": { exit: ADMIN_EXIT_HELP, example: "ddum user enable alice" },
  "user key add": { exit: ADMIN_EXIT_HELP, example: "ddum user key add alice --ssh-key ~/alice.pub" },
  "user key remove": { exit: ADMIN_EXIT_HELP, example: "ddum user key remove alice SHA256:geRZQY+ardGMCNh5Xg37jlfv3vT/bwtkd4XDH4fXll8" },
  "user passwd": { exit: ADMIN_EXIT_HELP, example: "echo 'new password' | ddum user passwd alice --password-stdin" },
  "group add": { exit: ADMIN_EXIT_HELP, example: "ddum group add developers --member alice --member bob" },
  "group set": { exit: ADMIN_EXIT_HELP, example: "ddum group set developers --gid 3000" },
  "group show": { exit: READ_EXIT_HELP, example: "ddum group show developers" },
  "group list": { exit: READ_EXIT_HELP, example: "ddum group list --json" },
  "group member add": { exit: ADMIN_EXIT_HELP, example: "ddum group member add developers carol" },
  "group member remove": { exit: ADMIN_EXIT_HELP, example: "ddum group member remove developers carol" },
  "group admin add": { exit: ADMIN_EXIT_HELP, example: "ddum group admin add developers alice" },
  "group admin remove": { exit: ADMIN_EXIT_HELP, example: "ddum group admin remove developers alice" },
  import: { exit: IMPORT_EXIT_HELP, example: "ddum import --from-local --dry-run" },
};

/**
 * Flags given another name so that one name means one thing across commands; the old name
 * still works, and is not shown. Keyed by command.
 */
export const FLAG_ALIASES: Record<string, Record<string, string>> = {
  "user passwd": { "--stdin": "--password-stdin" },
  "user key add": { "--file": "--ssh-key" },
};

/** Edit distance with swapped neighbours as one edit ("snyc"), for suggestions. */
function distance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) => Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)));
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const row = d[i]!;
      row[j] = Math.min(d[i - 1]![j]! + 1, row[j - 1]! + 1, d[i - 1]![j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) row[j] = Math.min(row[j]!, d[i - 2]![j - 2]! + 1);
    }
  }
  return d[a.length]![b.length]!;
}

/** The candidate nearest to what was typed, when it is near enough to be what was meant. */
export function nearest(typed: string, candidates: readonly string[]): string | null {
  let best: string | null = null;
  let bestD = Number.POSITIVE_INFINITY;
  for (const c of candidates) {
    const d = distance(typed.toLowerCase(), c.toLowerCase());
    if (d < bestD) {
      bestD = d;
      best = c;
    }
  }
  return best !== null && bestD <= Math.max(1, Math.min(3, Math.floor(best.length / 3))) ? best : null;
}

export function buildCli(log: Logger, setExit: (code: number) => void, argv: string[]) {
  const cli = cac("ddum");
  const withConfig = <T extends ReturnType<typeof cli.command>>(c: T) =>
    c.option("-c, --config <file>", `Configuration file (default: ${DEFAULT_CONFIG_PATH})`);
  const withRoot = <T extends ReturnType<typeof cli.command>>(c: T, what = "Operate on") =>
    c.option("--root <dir>", `${what} the system under DIR instead of /`, { default: "/" });

  withRoot(
    withConfig(
      cli
        .command("sync", "Run one pass: scan the tables, validate, and make the local account files match")
        .option("--dry-run", "Print what would change; take no lock and write nothing anywhere")
        .option("--json", "Print the plan and summary as one JSON document on stdout")
        .option("--summary", "Print only the summary line, not one line per change")
        .option("--force", "Apply even when the safety brake (max_disable_percent) would stop the pass"),
    ),
  ).action(async (opts: Common) => setExit(await cmdSync(opts, log)));

  withConfig(
    cli
      .command("check", "Scan the tables and report every record that would be rejected; change nothing")
      .option("--json", "Print rejections and the summary as JSON"),
  ).action(async (opts: Common) => setExit(await cmdCheck(opts, log)));

  withRoot(
    withConfig(
      cli
        .command("verify", "Compare this host with the tables and change nothing: exit 0 in step, 4 drift (listed), 1 could not check")
        .option("--json", "Print the result as one JSON document on stdout")
        .option("--summary", "Print only the summary and the verdict, not one line per change"),
    ),
    "Check",
  ).action(async (opts: Common) => setExit(await cmdVerify(opts, log)));

  withRoot(
    withConfig(
      cli
        .command("daemon", "Run a pass now and then every full_update_period + 0..full_update_jitter seconds")
        .option("-f, --foreground", "Do not detach; log to stderr (for systemd)")
        .option("-p, --pidfile <file>", `Locked pidfile (default: ${DEFAULT_PIDFILE})`),
    ),
  ).action(async (opts: Common) => setExit(await cmdDaemon(opts, log, argv)));

  withRoot(
    withConfig(
      cli
        .command("status", "Report the last pass, as a monitoring check (exit 0 ok, 1 failed, 2 stale)")
        .option("--json", "Print the status as JSON"),
    ),
    "Read",
  ).action(async (opts: Common) => setExit(await cmdStatus(opts, log)));

  withRoot(
    withConfig(
      cli.command(
        "authorized-keys <name>",
        "Print a user's SSH keys from local files only (for sshd's AuthorizedKeysCommand); no network",
      ),
    ),
    "Read",
  ).action(async (name: string, opts: Common) => setExit(await cmdAuthorizedKeys(name, opts, log)));

  withConfig(
    cli
      .command("tables create", "Create the Users and Groups tables (key Name, a string) and the #version item; idempotent, waits until active")
      .option("--billing <mode>", "on-demand or provisioned (5 read and 5 write units)", { default: "on-demand" }),
  ).action(async (opts: Common & { billing?: string }) => setExit(await cmdTablesCreate(opts, log)));

  withConfig(
    cli.command(
      "tables bump",
      "Raise the tables' version (#version) by one and print it: after changing the tables with another tool",
    ),
  ).action(async (opts: Common) => setExit(await cmdTablesBump(opts, log)));

  registerAdmin(cli, log, setExit);

  // "user", "group", "tables" alone (or with an unknown action): list what they can do.
  for (const prefix of PREFIXES) {
    cli
      .command(`${prefix} [...action]`, `${prefix} commands (see ddum ${prefix} --help)`)
      .allowUnknownOptions()
      .action((action: string[]) => {
      if (action.length > 0) {
        // "user ad bob": the action is one word or two ("user key ad"), the rest its arguments.
        const names = cli.commands.filter((c) => c.name.startsWith(`${prefix} `)).map((c) => c.name);
        const near = (action[1] ? nearest(`${prefix} ${action[0]} ${action[1]}`, names.filter((n) => n.split(" ").length === 3)) : null) ?? nearest(`${prefix} ${action[0]}`, names);
        log.error(`unknown action "${prefix} ${action.join(" ")}"${near ? ` (did you mean "ddum ${near}"?)` : ""}; see ddum ${prefix} --help`);
      }
      else process.stderr.write(subcommandList(cli, prefix));
      setExit(EXIT.usage);
    });
  }

  cli.help((sections) => {
    const name = cli.matchedCommand?.name ?? "";
    if (PREFIXES.includes(name)) {
      return [
        { body: `ddum ${VERSION}` },
        { title: "Usage", body: `  $ ddum ${name} <action> [options]` },
        { title: "Commands", body: subcommandList(cli, name).trimEnd() },
        { body: `For the options of one, run: ddum ${name} <action> --help` },
      ];
    }
    const cmd = cli.matchedCommand;
    if (!cmd) {
      // The top level: the commands, the options every command takes, and one pointer to more.
      const out = sections.filter((s) => !s.title?.startsWith("For more info") && s.title !== "Options");
      const common = [
        ["-c, --config <file>", `Configuration file (default: ${DEFAULT_CONFIG_PATH})`],
        ["--root <dir>", "Work on the system under DIR instead of / (sync, verify, status, daemon, authorized-keys, import)"],
        ["--json", "One JSON document on stdout (sync, verify, check, status, user/group show and list)"],
        ["-v, --verbose", "Say where ddum looks (config, region, endpoint, tables) and debug messages"],
        ["-q, --quiet", "Print only errors on stderr"],
        ["-V, --version", "Print the version, commit, build date and platform"],
        ["-h, --help", "Show this, or a command's options, exit codes and an example"],
      ];
      const width = Math.max(...common.map(([f]) => f!.length));
      out.push({ title: "Options for every command", body: common.map(([f, d]) => `  ${f!.padEnd(width)}  ${d}`).join("\n") });
      out.push({ body: "Run ddum COMMAND --help for a command's options, exit codes and an example." });
      return out;
    }
    const help = COMMAND_HELP[name];
    // The description, under the usage line; then the example and the exit codes true for it.
    const at = sections.findIndex((s) => s.title === "Usage");
    sections.splice(at + 1, 0, { title: "Description", body: `  ${cmd.description}${help?.more ? `\n\n  ${help.more}` : ""}` });
    if (help) {
      sections.push({ title: "Example", body: `  $ ${help.example}` });
      sections.push({ title: "Exit codes", body: help.exit });
    }
    return sections;
  });
  cli.option("-V, --version", "Print the version, commit, build date and platform");
  cli.option("-v, --verbose", "Say more: where ddum looks (config, region, endpoint, tables) and debug messages");
  cli.option("-q, --quiet", "Print only errors on stderr");
  return cli;
}

/**
 * Invoked as `dynamodb-user-manager` (the old daemon's name, installed as a link), the command
 * line is the old one: [-h] [-c FILE] [-f] [-p FILE], which is `ddum daemon`'s.
 */
export function normalizeArgv(argv0: string, args: string[]): string[] {
  return basename(argv0) === "dynamodb-user-manager" ? ["daemon", ...args] : args;
}

const PREFIXES = ["user", "group", "tables"];

/**
 * cac matches one word against a command's name: "ddum user key add NAME" becomes the single
 * word "user key add" followed by NAME when that is a command (longest name first).
 */
export function joinCommandWords(args: string[], names: string[]): string[] {
  const multi = names.filter((n) => n.includes(" ")).sort((a, b) => b.split(" ").length - a.split(" ").length);
  for (const n of multi) {
    const words = n.split(" ");
    if (words.every((w, i) => args[i] === w)) return [n, ...args.slice(words.length)];
  }
  return args;
}

/**
 * cac turns an option value that looks like a number into one ("007" → 7, "" → 0) and takes "-"
 * for no value. Marking each value of an option that takes one keeps the text as typed.
 */
const MARK = "\u0001";
function valueOptions(cli: ReturnType<typeof cac>): Set<string> {
  const out = new Set<string>();
  for (const c of [cli.globalCommand, ...cli.commands]) {
    for (const o of c.options) if (!o.isBoolean) for (const n of o.names) out.add(n);
  }
  return out;
}

/** The old names of renamed flags (FLAG_ALIASES) replaced by the new ones, for the command given. */
export function aliasFlags(words: string[]): string[] {
  const aliases = FLAG_ALIASES[words[0] ?? ""];
  if (!aliases) return words;
  const end = words.indexOf("--");
  return words.map((w, i) => (end >= 0 && i > end ? w : (aliases[w.split("=")[0]!] ? aliases[w.split("=")[0]!]! + w.slice(w.split("=")[0]!.length) : w)));
}

export function protectValues(args: string[], takesValue: Set<string>): string[] {
  const out: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === "--") {
      out.push(...args.slice(i));
      break;
    }
    const m = /^--?([^=]+)(=.*)?$/s.exec(a);
    const name = m?.[1]?.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
    if (m && name && takesValue.has(name)) {
      if (m[2] !== undefined) out.push(`${a.slice(0, a.indexOf("="))}=${MARK}${m[2].slice(1)}`);
      else {
        out.push(a);
        if (i + 1 < args.length) out.push(`${MARK}${args[++i]}`);
      }
    } else out.push(a);
  }
  return out;
}

function unprotect(options: Record<string, unknown>): void {
  const fix = (v: unknown): unknown =>
    typeof v === "string" && v.startsWith(MARK) ? v.slice(1) : Array.isArray(v) ? v.map(fix) : v;
  for (const k of Object.keys(options)) options[k] = fix(options[k]);
}

function subcommandList(cli: ReturnType<typeof cac>, prefix: string): string {
  const subs = cli.commands.filter((c) => c.name.startsWith(`${prefix} `));
  const width = Math.max(...subs.map((c) => c.rawName.length));
  return `${subs.map((c) => `  ddum ${c.rawName.padEnd(width)}  ${c.description}`).join("\n")}\n`;
}

export async function main(argv0: string, args: string[]): Promise<number> {
  const log = makeLogger();
  setNoticeSink((line) => log.warn(line));
  let code = EXIT.ok as number;
  const argv = normalizeArgv(argv0, args);
  const cli = buildCli(log, (c) => {
    code = c;
  }, argv);
  // With --json a failure is a JSON document on stdout too (and the message on stderr, as always).
  let json = argv.includes("--json");
  const fail = (message: string, exitCode: number): number => {
    if (json) process.stdout.write(jsonError(redact(message), exitCode));
    return exitCode;
  };
  try {
    const words = aliasFlags(joinCommandWords(argv, cli.commands.map((c) => c.name)));
    const parsed = cli.parse(["ddum", "ddum", ...protectValues(words, valueOptions(cli))], { run: false });
    unprotect(parsed.options);
    json = parsed.options.json === true;
    // Anywhere on the line, and before any command runs: `dynamodb-user-manager --version` (which
    // is `ddum daemon --version`) prints the version and starts nothing.
    if (parsed.options.version) {
      process.stdout.write(`${versionLine()}\n`);
      return EXIT.ok;
    }
    setVerbosity(parsed.options.verbose ? "verbose" : parsed.options.quiet ? "quiet" : "normal");
    if (parsed.options.help) return EXIT.ok;
    if (!cli.matchedCommand) {
      if (parsed.args.length > 0) {
        const typed = String(parsed.args[0]);
        const near = nearest(typed, [...new Set(cli.commands.map((c) => c.name.split(" ")[0]!))]);
        log.error(`unknown command "${typed}"${near ? ` (did you mean "ddum ${near}"?)` : ""}; see ddum --help`);
        return fail(`unknown command "${typed}"`, EXIT.usage);
      }
      cli.outputHelp();
      return EXIT.usage;
    }
    if (cli.matchedCommand.name === "sync" || cli.matchedCommand.name === "daemon") {
      // Returns only when the engine already runs with a small heap, or could not be told to.
      const why = smallHeap();
      if (why) log.debug(`running with the engine's default heap sizing: ${why}`);
    }
    await cli.runMatchedCommand();
    return code;
  } catch (e) {
    endProgress();
    if (e instanceof DdumError) {
      log.error(e.message);
      return fail(e.message, e.exitCode);
    }
    if (e instanceof Error && e.name === "CACError") {
      const m = /^Unknown option `(-[^`]*)`/.exec(e.message);
      if (m) {
        // The flags of the command given (or every flag, when no command matched), long form.
        const cmd = cli.matchedCommand;
        const flags = (cmd ? [cmd, cli.globalCommand] : [cli.globalCommand, ...cli.commands]).flatMap((c) => c.options.map((o) => o.rawName.split(/[ ,]+/).find((w) => w.startsWith("--"))!)).filter(Boolean);
        const aliases = FLAG_ALIASES[cmd?.name ?? ""] ?? {};
        const hit = nearest(m[1]!, [...flags, ...Object.keys(aliases)]);
        const near = hit ? (aliases[hit] ?? hit) : null;
        const help = cmd ? `ddum ${cmd.name} --help` : "ddum --help";
        log.error(`unknown option ${m[1]}${near ? ` (did you mean ${near}?)` : ""}; see ${help}`);
        return fail(`unknown option ${m[1]}`, EXIT.usage);
      }
      log.error(`${e.message}; see ddum --help`);
      return fail(e.message, EXIT.usage);
    }
    log.error(`unexpected error: ${errorMessage(e)}`);
    if (e instanceof Error && e.stack && process.env.DDUM_DEBUG) log.error(e.stack);
    return fail(`unexpected error: ${errorMessage(e)}`, EXIT.failed);
  }
}

if (import.meta.main) {
  // `ddum user list | head`: a reader that goes away is not an error worth a stack trace.
  process.stdout.on("error", (e: NodeJS.ErrnoException) => {
    if (e.code === "EPIPE") process.exit(process.exitCode ?? 0);
    throw e;
  });
  process.exitCode = await main(process.argv0, process.argv.slice(2));
}

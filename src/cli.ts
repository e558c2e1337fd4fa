#!/usr/bin/env bun
// Command-line wiring only: flags become options, and each command returns its exit code.
import { basename } from "node:path";
import { cac } from "cac";
import { registerAdmin } from "./cli-admin.ts";
import { cmdAuthorizedKeys, cmdCheck, cmdDaemon, cmdStatus, cmdSync, cmdTablesCreate, cmdVerify, type Common, endProgress, setVerbosity } from "./commands.ts";
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

const ADMIN_EXIT_HELP = `  0  done (or nothing to change)
  1  failed: the record does not exist or already does, the ID is taken, the tables cannot be reached
  2  bad usage, or a record every host would refuse (nothing was written)
  3  import: some records were refused (see the report); the others were written`;

const VERIFY_EXIT_HELP = `  0  in step: this host matches the tables (records refused or rejected are listed, not counted)
  1  could not check (the tables or the local files could not be read)
  2  bad usage or configuration
  4  drift: a pass would change something here (listed)`;

const STATUS_EXIT_HELP = `  0  the last pass succeeded within 2 x (full_update_period + full_update_jitter)
  1  the last pass failed
  2  no pass in that time (or never)`;

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
      .command("tables create", "Create the Users and Groups tables (key Name, a string); idempotent, waits until active")
      .option("--billing <mode>", "on-demand or provisioned (5 read and 5 write units)", { default: "on-demand" }),
  ).action(async (opts: Common & { billing?: string }) => setExit(await cmdTablesCreate(opts, log)));

  registerAdmin(cli, log, setExit);

  // "user", "group", "tables" alone (or with an unknown action): list what they can do.
  for (const prefix of PREFIXES) {
    cli
      .command(`${prefix} [...action]`, `${prefix} commands (see ddum ${prefix} --help)`)
      .allowUnknownOptions()
      .action((action: string[]) => {
      if (action.length > 0) log.error(`unknown action "${prefix} ${action.join(" ")}"; see ddum ${prefix} --help`);
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
    const admin = name.startsWith("user") || name.startsWith("group") || name === "import";
    sections.push({ title: "Exit codes", body: name === "status" ? STATUS_EXIT_HELP : name === "verify" ? VERIFY_EXIT_HELP : admin ? ADMIN_EXIT_HELP : EXIT_HELP });
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
    const words = joinCommandWords(argv, cli.commands.map((c) => c.name));
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
        log.error(`unknown command "${parsed.args[0]}"; see ddum --help`);
        return EXIT.usage;
      }
      cli.outputHelp();
      return EXIT.usage;
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

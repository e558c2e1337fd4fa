#!/usr/bin/env bun
// Command-line wiring only: flags become options, and each command returns its exit code.
import { basename } from "node:path";
import { cac } from "cac";
import { cmdAuthorizedKeys, cmdCheck, cmdDaemon, cmdStatus, cmdSync, cmdTablesCreate, type Common, endProgress } from "./commands.ts";
import { DEFAULT_CONFIG_PATH } from "./config.ts";
import { DdumError, EXIT, errorMessage } from "./errors.ts";
import { type Logger, makeLogger } from "./log.ts";
import { VERSION } from "./version.ts";

import { DEFAULT_PIDFILE } from "./daemon.ts";

const EXIT_HELP = `  0  success (nothing to do counts as success)
  1  failure; nothing was applied (scan failed, lock busy, safety brake)
  2  bad usage or configuration
  3  applied, but some records were rejected or refused (see the report)`;

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
      .command("tables <action>", "tables create: create the Users and Groups tables (key Name, a string); idempotent")
      .option("--billing <mode>", "on-demand or provisioned (5 read and 5 write units)", { default: "on-demand" }),
  ).action(async (action: string, opts: Common & { billing?: string }) => {
    if (action !== "create") {
      log.error(`unknown action "tables ${action}"; the only one is "tables create"`);
      return setExit(EXIT.usage);
    }
    setExit(await cmdTablesCreate(opts, log));
  });

  cli.help((sections) => {
    const status = cli.matchedCommand?.name === "status";
    sections.push({ title: "Exit codes", body: status ? STATUS_EXIT_HELP : EXIT_HELP });
    return sections;
  });
  cli.option("-v, --version", "Print the version");
  return cli;
}

/**
 * Invoked as `dynamodb-user-manager` (the old daemon's name, installed as a link), the command
 * line is the old one: [-h] [-c FILE] [-f] [-p FILE], which is `ddum daemon`'s.
 */
export function normalizeArgv(argv0: string, args: string[]): string[] {
  return basename(argv0) === "dynamodb-user-manager" ? ["daemon", ...args] : args;
}

export async function main(argv0: string, args: string[]): Promise<number> {
  const log = makeLogger();
  let code = EXIT.ok as number;
  const argv = normalizeArgv(argv0, args);
  const cli = buildCli(log, (c) => {
    code = c;
  }, argv);
  try {
    const parsed = cli.parse(["ddum", "ddum", ...argv], { run: false });
    if (parsed.options.version && !cli.matchedCommand) {
      process.stdout.write(`ddum ${VERSION}\n`);
      return EXIT.ok;
    }
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
      return e.exitCode;
    }
    if (e instanceof Error && e.name === "CACError") {
      log.error(`${e.message}; see ddum --help`);
      return EXIT.usage;
    }
    log.error(`unexpected error: ${errorMessage(e)}`);
    if (e instanceof Error && e.stack && process.env.DDUM_DEBUG) log.error(e.stack);
    return EXIT.failed;
  }
}

if (import.meta.main) {
  process.exitCode = await main(process.argv0, process.argv.slice(2));
}

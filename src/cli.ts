#!/usr/bin/env bun
// Command-line wiring only: flags become options, and each command returns its exit code.
import { cac } from "cac";
import { type Config, DEFAULT_CONFIG_PATH, type LoadedConfig, loadConfig } from "./config.ts";
import { DdumError, EXIT, errorMessage } from "./errors.ts";
import { addSecret, type Logger, makeLogger } from "./log.ts";
import { Root } from "./paths.ts";
import { VERSION } from "./version.ts";

interface Common {
  config?: string;
  root?: string;
}

function progress(): ((table: string, n: number) => void) | undefined {
  if (!process.stderr.isTTY) return undefined;
  const seen = new Map<string, number>();
  return (table, n) => {
    seen.set(table, n);
    process.stderr.write(`\rscanning ${[...seen].map(([t, c]) => `${t}: ${c}`).join(", ")} items   `);
  };
}

function endProgress(): void {
  if (process.stderr.isTTY) process.stderr.write("\r\x1b[K");
}

export function setupConfig(path: string | undefined, log: Logger): LoadedConfig {
  const loaded = loadConfig(path);
  for (const s of [loaded.config.aws_secret_key, loaded.config.aws_session_token]) addSecret(s);
  for (const w of loaded.warnings) log.warn(w);
  return loaded;
}

async function cmdSync(opts: Common & { dryRun?: boolean; json?: boolean; force?: boolean }, log: Logger): Promise<number> {
  const { config } = setupConfig(opts.config, log);
  const { runPass } = await import("./sync.ts");
  const { formatHuman, toJson } = await import("./report.ts");
  const result = await runPass(config, {
    root: new Root(opts.root ?? "/"),
    dryRun: opts.dryRun === true,
    force: opts.force === true,
    onProgress: progress(),
  });
  endProgress();
  process.stdout.write(opts.json ? toJson(result) : formatHuman(result));
  return result.exitCode;
}

async function cmdCheck(opts: Common & { json?: boolean }, log: Logger): Promise<number> {
  const { config } = setupConfig(opts.config, log);
  const { readTables } = await import("./tables.ts");
  const { rejectionMessage } = await import("./model.ts");
  const t = await readTables(config, progress());
  endProgress();
  const rejections = [...t.users.rejections, ...t.groups.rejections];
  const rejected = t.users.rejected + t.groups.rejected;
  const summary = {
    users: t.users.records.length + t.users.rejected,
    groups: t.groups.records.length + t.groups.rejected,
    valid: t.users.records.length + t.groups.records.length,
    rejected,
  };
  if (opts.json) {
    process.stdout.write(`${JSON.stringify({ rejections, summary }, null, 2)}\n`);
  } else {
    for (const r of rejections) process.stdout.write(`rejected: ${rejectionMessage(r)}\n`);
    process.stdout.write(
      `${summary.users} users and ${summary.groups} groups read: ${summary.valid} valid, ${summary.rejected} rejected\n`,
    );
  }
  return rejected > 0 ? EXIT.partial : EXIT.ok;
}

async function cmdAuthorizedKeys(name: string, opts: Common, log: Logger): Promise<number> {
  const { nameSchema } = await import("./model.ts");
  const v = await import("valibot");
  if (!v.safeParse(nameSchema, name).success) {
    log.error(`not a valid user name: ${JSON.stringify(name)}`);
    return EXIT.usage;
  }
  const { config } = setupConfig(opts.config, log);
  const { authorizedKeys } = await import("./sshkeys.ts");
  const keys = authorizedKeys(new Root(opts.root ?? "/"), config.ssh_key_location, name);
  if (keys.length > 0) process.stdout.write(`${keys.join("\n")}\n`);
  return EXIT.ok;
}

const EXIT_HELP = `Exit codes:
  0  success (nothing to do counts as success)
  1  failure; nothing was applied (scan failed, lock busy, safety brake)
  2  bad usage or configuration
  3  applied, but some records were rejected or refused (see the report)`;

export function buildCli(log: Logger, setExit: (code: number) => void) {
  const cli = cac("ddum");
  const wrap =
    <O>(fn: (opts: O, log: Logger) => Promise<number>) =>
    async (opts: O) => {
      setExit(await fn(opts, log));
    };
  const withConfig = (c: ReturnType<typeof cli.command>) =>
    c.option("-c, --config <file>", `Configuration file (default: ${DEFAULT_CONFIG_PATH})`);

  withConfig(
    cli
      .command("sync", "Run one pass: scan the tables, validate, and make the local account files match")
      .option("--root <dir>", "Operate on the system under DIR instead of / (image builds, tests)", { default: "/" })
      .option("--dry-run", "Print what would change; take no lock and write nothing anywhere")
      .option("--json", "Print the plan and summary as one JSON document on stdout")
      .option("--force", "Apply even when the safety brake (max_disable_percent) would stop the pass"),
  ).action(wrap(cmdSync));

  withConfig(
    cli
      .command("check", "Scan the tables and report every record that would be rejected; change nothing")
      .option("--json", "Print rejections and the summary as JSON"),
  ).action(wrap(cmdCheck));

  withConfig(
    cli
      .command(
        "authorized-keys <name>",
        "Print a user's SSH keys from local files only (for sshd's AuthorizedKeysCommand); no network",
      )
      .option("--root <dir>", "Read the system under DIR instead of /", { default: "/" }),
  ).action(async (name: string, opts: Common) => setExit(await cmdAuthorizedKeys(name, opts, log)));

  cli.help((sections) => {
    sections.push({ title: "Exit codes", body: EXIT_HELP.split("\n").slice(1).join("\n") });
    return sections;
  });
  cli.option("-v, --version", "Print the version");
  return cli;
}

export async function main(argv: string[]): Promise<number> {
  const log = makeLogger();
  let code = EXIT.ok as number;
  const cli = buildCli(log, (c) => {
    code = c;
  });
  try {
    const parsed = cli.parse(argv, { run: false });
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

export type { Config };

if (import.meta.main) {
  process.exitCode = await main(process.argv);
}
